"""Copy the integration tier's screenshots into docs/images/, reduced to a 256-colour palette (a few hundred KB at
most): `python -m tests.integration.docs_images <folder of server.log>`.

The tier writes `panel.png` (txt2img with the SSD-1B panel open, `test_vae_and_panel.py`) and `settings.png`
(Settings > SSD-1B) next to its server log; the README and docs/settings.md show them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
SCREENSHOTS = ("panel.png", "settings.png")


def reduce(source: Path, target: Path) -> int:
    """`source` as a palette PNG at `target`; returns its size in bytes."""
    with Image.open(source) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(target, optimize=True)
    return target.stat().st_size


def main(folder: str) -> None:
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    for name in SCREENSHOTS:
        size = reduce(Path(folder) / name, DOCS_IMAGES / name)
        print(f"{DOCS_IMAGES / name}: {size / 1024:.0f} KB")


if __name__ == "__main__":
    main(sys.argv[1])
