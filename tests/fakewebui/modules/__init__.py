"""A fake of A1111's `modules` package for adapter tests: real names and signatures, tiny behaviour."""
