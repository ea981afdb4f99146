"""The pieces of benchmarks/gpu.py: every GPU figure of the project in one run (see that file and docs/gpu.md)."""
