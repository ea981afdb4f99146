"""What the VAE modules say: warnings, and the errors a decode/encode raises."""

from __future__ import annotations

from ssd1b.log import logger


def warn(message: str) -> None:
    logger.warning(f"warning: {message}")


class VaeUnavailableError(RuntimeError):
    """No usable VAE for this model (the 'Stop' choice, or no VAE file / TAESD weights where one is needed)."""


class VaeNaNError(RuntimeError):
    """The VAE produced NaN in every dtype and the user's choice forbids TAESD."""
