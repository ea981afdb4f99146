"""One optimiser step: `gradient_accumulation` micro-batches of the diffusion loss, then AdamW on the deltas.

Every random number of micro-batch n (its noise and timesteps) comes from a CPU generator seeded by (seed, n), so
a step is the same whether the run was resumed or not, and on any device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional

from ssd1b.train.cache import CachedDataset, CachedSample, load_embeddings, load_latents
from ssd1b.train.host import HostModel
from ssd1b.train.network import LoraNetwork
from ssd1b.train.precision import Precision
from ssd1b.train.sampler import EPOCH_SEED_STRIDE, BatchPlan
from ssd1b.train.schedule import draw, lr_factor, min_snr_weight, noised, snr, target
from ssd1b.train.settings import TrainingSettings

NOISE_SEED_OFFSET = 7_919
"""Keeps the noise generators apart from the sampler's epoch generators of the same seed."""


class NonFiniteLossError(ArithmeticError):
    pass


class Stepper:
    def __init__(
        self,
        host: HostModel,
        settings: TrainingSettings,
        network: LoraNetwork,
        data: CachedDataset,
        precision: Precision,
    ) -> None:
        self.host, self.settings, self.network, self.data, self.precision = host, settings, network, data, precision
        buckets = [item.placement.bucket for item in data.items]
        repeats = [item.repeats for item in data.items]
        self.plan = BatchPlan(buckets, repeats, settings.batch_size, settings.flip, settings.seed)
        self.optimizer = torch.optim.AdamW(
            self._param_groups(),
            lr=settings.learning_rate,
            betas=settings.betas,
            eps=settings.adam_eps,
            weight_decay=settings.weight_decay,
        )
        self.scaler = precision.scaler()
        self.alphas_cumprod = host.alphas_cumprod.detach().cpu().double()

    def _param_groups(self) -> list[dict[str, object]]:
        rates = {"unet": self.settings.learning_rate}
        text_rate = self.settings.text_encoder_lr or self.settings.learning_rate
        groups = []
        for group in ("unet", "te1", "te2"):
            parameters = list(self.network.parameters(group))
            if parameters:
                rate = rates.get(group, text_rate)
                groups.append({"params": parameters, "lr": rate, "base_lr": rate, "name": group})
        if not groups:
            raise ValueError("the model has no module to train (no attention projection found)")
        return groups

    @property
    def parameters(self) -> list[nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def epoch_of(self, step: int) -> int:
        return self.plan.epoch_of(step * self.settings.gradient_accumulation)

    def step(self, step: int) -> float:
        """Optimiser step `step` (0-based); returns its loss (the mean over its micro-batches)."""
        settings = self.settings
        factor = lr_factor(
            step, settings.max_train_steps, settings.warmup_steps, settings.lr_schedule, settings.min_lr_ratio
        )
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(settings.gradient_accumulation):
            loss = self.micro_batch_loss(step * settings.gradient_accumulation + micro) / settings.gradient_accumulation
            self.scaler.scale(loss).backward()
            total += float(loss.detach())
        if not math.isfinite(total) and not self.scaler.is_enabled():
            raise NonFiniteLossError(f"the loss is {total} at step {step + 1}; try a lower learning rate")
        if settings.max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.parameters, settings.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return total

    def micro_batch_loss(self, number: int) -> Tensor:
        host, device = self.host, self.host.device
        samples = [self.data.samples[s.item][s.flipped] for s in self.plan.micro_batch(number)]
        latents = load_latents(samples).to(device, torch.float32)
        generator = torch.Generator().manual_seed(self.settings.seed * EPOCH_SEED_STRIDE + NOISE_SEED_OFFSET + number)
        noise, timesteps = draw(latents.shape, len(self.alphas_cumprod), generator)
        alphas = self.alphas_cumprod[timesteps].float().to(device)
        noise = noise.to(device)
        with self.precision.autocast():
            crossattn, vector = self._conditioning(samples)
            prediction = host.denoise(
                noised(latents, noise, alphas).to(host.dtype),
                timesteps.to(device),
                crossattn.to(host.dtype),
                vector.to(host.dtype),
            )
        wanted = target(latents, noise, alphas, host.prediction)
        per_sample = functional.mse_loss(prediction.float(), wanted, reduction="none").mean(dim=(1, 2, 3))
        if self.settings.min_snr_gamma:
            weights = min_snr_weight(snr(self.alphas_cumprod, timesteps), self.settings.min_snr_gamma, host.prediction)
            per_sample = per_sample * weights.to(device)
        return per_sample.mean()

    def _conditioning(self, samples: list[CachedSample]) -> tuple[Tensor, Tensor]:
        if not self.settings.train_text_encoders:
            crossattn, vector = load_embeddings(samples)
            return crossattn.to(self.host.device), vector.to(self.host.device)
        crossattn, vector = self.host.encode_prompts(
            [sample.caption for sample in samples], [sample.size_cond for sample in samples]
        )
        if not crossattn.requires_grad:
            raise RuntimeError(
                "encode_prompts returned embeddings without gradients while the text encoders train: the adapter "
                "must run the text encoders with autograd on (not under torch.no_grad / is_trainable=False)"
            )
        return crossattn, vector
