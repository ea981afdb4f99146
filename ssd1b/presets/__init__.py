"""Presets, host-free: the schema, the built-in table, negative-prompt merging, samplers, the user's store, and what
"Apply" changes (`apply`)."""
