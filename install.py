"""Run by A1111's launcher on start-up (skipped with --skip-install).

Everything the extension needs at run time (torch, safetensors, gradio, numpy, pillow) ships with A1111,
so there is nothing to install: this only says so when an environment lacks one, without touching it.
"""

import importlib.util

REQUIRED = ("torch", "safetensors", "gradio", "numpy", "PIL")

missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
if missing:
    print(f"[ssd1b] missing packages that A1111 normally ships: {', '.join(missing)}")
