"""What the GPU run ran on, for env.txt: Python, torch and CUDA, the device, where each imported package came from
(the machine's own or the wheels carried in .gpu/wheels), and nvidia-smi."""

from __future__ import annotations

import importlib
import platform
import subprocess
import sys

import torch

PACKAGES = ("numpy", "safetensors", "einops", "PIL", "pytest", "packaging", "fsspec", "yaml", "omegaconf", "antlr4")


def main() -> None:
    print("python", sys.version.split()[0], platform.machine(), sys.executable)
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        print("device", properties.name, properties.total_memory // 2**20, "MiB")
    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            print(f"{name:12} missing: {error}")
            continue
        print(f"{name:12} {getattr(module, '__version__', '?'):12} {module.__file__}")
    try:
        print(subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20, check=False).stdout)
    except (OSError, subprocess.TimeoutExpired) as error:
        print("nvidia-smi not available:", error)


if __name__ == "__main__":
    main()
