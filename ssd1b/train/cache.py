"""Latents and text embeddings, computed once per image and kept on disk (safetensors, never pickle).

A latent is keyed by the sha256 of the image file's bytes, where it lands in its bucket, the flip and the host's
`fingerprint`; an embedding by the caption, the size conditioning and the fingerprint. A changed image, caption,
resolution or model therefore misses the cache, and an unchanged one is never encoded again. Files end in
`.tensors` (safetensors inside) so A1111's Lora list, which walks models/Lora, does not show them. An image that
fails to decode here is skipped with a message, like the ones the scan left out.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from ssd1b.log import logger
from ssd1b.train.buckets import pixels
from ssd1b.train.dataset import Dataset, ImageItem
from ssd1b.train.files import save_tensors
from ssd1b.train.host import HostModel, SizeCond

CACHE_VERSION = "1"
SUFFIX = ".tensors"

CacheProgress = Callable[[int, int], None]
"""(images done, images in all)."""


@dataclass(frozen=True)
class CachedSample:
    latent: Path
    embedding: Path | None
    """None when the text encoders train (the embedding must be recomputed every step)."""
    caption: str
    size_cond: SizeCond


@dataclass
class CachedDataset:
    items: list[ImageItem]
    samples: list[dict[bool, CachedSample]]
    """Per item, per flip (False, and True with flip augmentation)."""


def key(*parts: object) -> str:
    digest = hashlib.sha256(CACHE_VERSION.encode())
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode() + b"\0")
    return digest.hexdigest()


class TrainingCache:
    def __init__(self, folder: Path, host: HostModel, flip: bool, embeddings: bool) -> None:
        self.folder, self.host = folder, host
        self.flips = (False, True) if flip else (False,)
        self.embeddings = embeddings

    def build(self, dataset: Dataset, progress: CacheProgress | None = None) -> CachedDataset:
        cached = CachedDataset(items=[], samples=[])
        for done, item in enumerate(dataset.items, start=1):
            samples = self._item(item)
            if samples is None:
                dataset.skipped.append(f"{item.path}: could not be decoded, skipped")
                logger.warning("SSD-1B training: %s", dataset.skipped[-1])
            else:
                cached.items.append(item)
                cached.samples.append(samples)
            if progress:
                progress(done, len(dataset.items))
        return cached

    def _item(self, item: ImageItem) -> dict[bool, CachedSample] | None:
        try:
            data = item.path.read_bytes()
        except OSError:
            return None
        digest = hashlib.sha256(data).hexdigest()
        image: Image.Image | None = None
        samples: dict[bool, CachedSample] = {}
        for flipped in self.flips:
            latent_path = self._path("latents", digest, item.placement.to_json(), flipped, self.host.fingerprint)
            if not _readable(latent_path):
                image = image or _decode(data)
                if image is None:
                    return None
                self._encode_image(image, item, flipped, latent_path)
            size_cond = item.placement.size_cond(flipped)
            samples[flipped] = CachedSample(
                latent_path, self._embedding(item.caption, size_cond), item.caption, size_cond
            )
        return samples

    def _path(self, kind: str, *parts: object) -> Path:
        name = key(kind, *parts)
        return self.folder / kind / name[:2] / f"{name}{SUFFIX}"

    @torch.no_grad()
    def _encode_image(self, image: Image.Image, item: ImageItem, flipped: bool, path: Path) -> None:
        batch = pixels(image, item.placement, flipped)[None].to(self.host.device, self.host.dtype)
        latent = self.host.encode_images(batch)[0]
        save_tensors(path, {"latent": latent.cpu()}, {"source": item.path.name, "flipped": str(flipped)})

    @torch.no_grad()
    def _embedding(self, caption: str, size_cond: SizeCond) -> Path | None:
        if not self.embeddings:
            return None
        path = self._path("embeddings", caption, size_cond.to_json(), self.host.fingerprint)
        if not _readable(path):
            crossattn, vector = self.host.encode_prompts([caption], [size_cond])
            save_tensors(path, {"crossattn": crossattn[0].cpu(), "vector": vector[0].cpu()}, {"caption": caption})
        return path


def _readable(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        load_file(str(path))
    except (SafetensorError, OSError, ValueError):
        logger.warning("SSD-1B training: cache file %s is damaged; computing it again", path)
        return False
    return True


def _decode(data: bytes) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            return ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def load_latents(samples: list[CachedSample]) -> Tensor:
    return torch.stack([load_file(str(sample.latent))["latent"] for sample in samples])


def load_embeddings(samples: list[CachedSample]) -> tuple[Tensor, Tensor]:
    loaded = [load_file(str(sample.embedding)) for sample in samples if sample.embedding is not None]
    if len(loaded) != len(samples):
        raise ValueError("embeddings were not cached for this run (text encoders train)")
    return torch.stack([entry["crossattn"] for entry in loaded]), torch.stack([entry["vector"] for entry in loaded])
