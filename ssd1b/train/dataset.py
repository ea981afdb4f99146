"""The training images: found in a folder, captioned, repeated, bucketed; what cannot be used is said, not hidden.

Layout read (kohya's convention included): images directly in the folder count once; a subfolder named
`N_name` (e.g. `10_mycat`) counts its images N times and names their concept `name`; another subfolder counts
once. A caption is the same-name `.txt` file (its lines joined with ", "); the caption prefix (a trigger word) is
put in front. An image without a caption gets the prefix, or else its concept (folder) name, and a message says so.
Unreadable images and images that would have to be enlarged more than `max_upscale` are skipped with a message.
Only image headers are read here; pixels are decoded once, when the cache is built.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ssd1b.log import logger
from ssd1b.train.buckets import Placement, Size, buckets_for, nearest_bucket, place
from ssd1b.train.settings import TrainingSettings

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
REPEAT_FOLDER = re.compile(r"^(?P<repeats>\d+)_(?P<concept>.+)$")
EXIF_ORIENTATION = 0x0112
ROTATED_ORIENTATIONS = frozenset({5, 6, 7, 8})
"""EXIF orientations that turn the image by 90°: width and height swap once the image is shown upright."""


class DatasetError(ValueError):
    """No usable image; the message says why and what was found."""


@dataclass(frozen=True)
class ImageItem:
    path: Path
    caption: str
    caption_source: str
    """"file", "prefix" (no caption file: the prefix alone) or "folder" (no caption, no prefix: the folder name)."""
    repeats: int
    folder: str
    """The folder's own name (`10_mycat`), as kohya's `ss_tag_frequency` keys it."""
    placement: Placement


@dataclass
class Dataset:
    items: list[ImageItem]
    skipped: list[str] = field(default_factory=list)
    """One message per image left out (path and reason)."""
    notes: list[str] = field(default_factory=list)
    """Messages about images that are used, but not as given (a caption made up)."""

    @property
    def samples_per_epoch(self) -> int:
        return sum(item.repeats for item in self.items)

    def tag_frequency(self) -> dict[str, dict[str, int]]:
        """Per folder, how often each comma-separated tag occurs in the captions (kohya's `ss_tag_frequency`)."""
        frequency: dict[str, Counter[str]] = {}
        for item in self.items:
            tags = (tag.strip() for tag in item.caption.split(","))
            frequency.setdefault(item.folder, Counter()).update(tag for tag in tags if tag)
        return {folder: dict(counts) for folder, counts in frequency.items()}


def scan(settings: TrainingSettings) -> Dataset:
    """Every usable image under `settings.data_dir`; raises `DatasetError` when there is none."""
    root = Path(settings.data_dir)
    if not root.is_dir():
        raise DatasetError(f"the training folder {root} does not exist or is not a folder")
    dataset = Dataset(items=[])
    buckets = buckets_for(settings.resolution)
    for folder, repeats, concept in _folders(root):
        for path in _images_in(folder):
            item = _item(path, _Folder(folder, repeats, concept), settings, buckets, dataset)
            if item is not None:
                dataset.items.append(item)
    for message in dataset.skipped + dataset.notes:
        logger.warning("SSD-1B training: %s", message)
    if not dataset.items:
        raise DatasetError(_nothing_usable(root, dataset))
    return dataset


def _folders(root: Path) -> list[tuple[Path, int, str]]:
    found = [(root, 1, root.name)]
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        match = REPEAT_FOLDER.match(child.name)
        repeats, concept = (int(match["repeats"]), match["concept"]) if match else (1, child.name)
        if repeats > 0:
            found.append((child, repeats, concept))
    return found


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and p.name[0] != "."
    )


@dataclass(frozen=True)
class _Folder:
    path: Path
    repeats: int
    concept: str


def _item(
    path: Path,
    folder: _Folder,
    settings: TrainingSettings,
    buckets: tuple[Size, ...],
    dataset: Dataset,
) -> ImageItem | None:
    size = image_size(path)
    if size is None:
        dataset.skipped.append(f"{path}: not a readable image, skipped")
        return None
    placement = place(size, nearest_bucket(size, buckets))
    if placement.upscale > settings.max_upscale:
        dataset.skipped.append(
            f"{path}: too small ({size[1]}x{size[0]} px would be enlarged {placement.upscale:.1f}x to fill its "
            f"{placement.bucket[1]}x{placement.bucket[0]} bucket; the limit is {settings.max_upscale:g}x), skipped"
        )
        return None
    caption, source = caption_for(path, folder.concept, settings)
    if source != "file":
        dataset.notes.append(
            f"{path}: no caption file ({path.with_suffix(settings.caption_extension).name}); "
            f"using {'the caption prefix' if source == 'prefix' else 'the folder name'} {caption!r}"
        )
    return ImageItem(path, caption, source, folder.repeats, folder.path.name, placement)


def image_size(path: Path) -> Size | None:
    """(height, width) as the image is shown (EXIF rotation applied), from its header; None when unreadable."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    if width < 1 or height < 1:
        return None
    return (width, height) if orientation in ROTATED_ORIENTATIONS else (height, width)


def caption_for(path: Path, concept: str, settings: TrainingSettings) -> tuple[str, str]:
    text = _caption_file_text(path.with_suffix(settings.caption_extension))
    prefix = settings.caption_prefix.strip()
    if text:
        return (f"{prefix}, {text}" if prefix else text), "file"
    if prefix:
        return prefix, "prefix"
    return concept, "folder"


def _caption_file_text(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return ", ".join(line.strip() for line in lines if line.strip())


def _nothing_usable(root: Path, dataset: Dataset) -> str:
    if not dataset.skipped:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        return f"no images ({extensions}) in {root} or its subfolders (kohya's N_name folders are read too)"
    return f"none of the {len(dataset.skipped)} images in {root} can be used: " + "; ".join(dataset.skipped[:5])
