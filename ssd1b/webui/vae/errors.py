"""What the VAE modules say: the console prefix, warnings, and the errors a decode/encode raises."""

from __future__ import annotations

import sys

LOG_PREFIX = "[ssd1b]"


def warn(message: str) -> None:
    print(f"{LOG_PREFIX} warning: {message}", file=sys.stderr)


class VaeUnavailableError(RuntimeError):
    """No usable VAE for this model (the 'Stop' choice, or no VAE file / TAESD weights where one is needed)."""


class VaeNaNError(RuntimeError):
    """The VAE produced NaN in every dtype and the user's choice forbids TAESD."""
