"""Which samples form each micro-batch: a pure function of (seed, micro-batch number).

An epoch holds every image `repeats` times, grouped by bucket (a batch never mixes sizes), shuffled within the
bucket, cut into batches, and the batches shuffled. With flip augmentation every sample of an epoch draws its
side. Everything is drawn from a generator seeded by (seed, epoch), so a resumed run finds exactly the batches the
uninterrupted run had, without any sampler state in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from ssd1b.train.buckets import Size

EPOCH_SEED_STRIDE = 1_000_003
"""Keeps the generators of neighbouring epochs (and seeds) apart."""


@dataclass(frozen=True)
class Sample:
    item: int
    """Index into the dataset's items."""
    flipped: bool


class BatchPlan:
    def __init__(self, buckets: list[Size], repeats: list[int], batch_size: int, flip: bool, seed: int) -> None:
        self.buckets, self.repeats = buckets, repeats
        self.batch_size, self.flip, self.seed = batch_size, flip, seed
        self.batches_per_epoch = sum(-(-count // batch_size) for count in self._bucket_counts().values())

    def _bucket_counts(self) -> dict[Size, int]:
        counts: dict[Size, int] = {}
        for bucket, repeat in zip(self.buckets, self.repeats, strict=True):
            counts[bucket] = counts.get(bucket, 0) + repeat
        return counts

    def micro_batch(self, number: int) -> list[Sample]:
        """The samples of micro-batch `number` (0-based over the whole run)."""
        epoch, position = divmod(number, self.batches_per_epoch)
        return self.epoch(epoch)[position]

    def epoch_of(self, number: int) -> int:
        return number // self.batches_per_epoch

    @lru_cache(maxsize=2)  # noqa: B019  (a plan lives as long as its run; two epochs cover a boundary)
    def epoch(self, epoch: int) -> list[list[Sample]]:
        generator = torch.Generator().manual_seed(self.seed * EPOCH_SEED_STRIDE + epoch)
        batches: list[list[Sample]] = []
        for bucket in sorted(set(self.buckets)):
            members = [i for i, b in enumerate(self.buckets) for _ in range(self.repeats[i]) if b == bucket]
            order = torch.randperm(len(members), generator=generator).tolist()
            flips = torch.rand(len(members), generator=generator).lt(0.5).tolist()
            samples = [Sample(members[j], self.flip and flips[j]) for j in order]
            batches += [samples[start : start + self.batch_size] for start in range(0, len(samples), self.batch_size)]
        shuffle = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in shuffle]
