"""A loaded SDXL-family model the trainer can really train, in the fake host: tiny, real module names, the host's
call conventions, what A1111 leaves on a model after a load.

- `model.diffusion_model`: tests/helpers/ldm_unet at width 32 (SSD-1B's block layout), with sgm's per-block
  checkpoint flags on (`checkpoint` on every transformer block, `use_checkpoint` on every ResBlock, as SDXL's config
  has them). Like sgm's `CheckpointFunction`, which asks autograd for the gradient of EVERY parameter of the
  block, a flagged block fails a forward that builds a graph while any of its parameters is frozen.
- `conditioner`: stands in for sgm's `GeneralConditioner` with A1111's wrappers around the text embedders: the
  same call (`conditioner(batch)` with `txt`, `original_size_as_tuple`, `crop_coords_top_left`,
  `target_size_as_tuple`), the same rule (an embedder runs under `torch.no_grad()` unless `is_trainable`), the same
  output keys by dimension (3-D: `crossattn`, concatenated on the features; 2-D: `vector`). The text embedders hold
  `wrapped.transformer` (HF CLIP names) and `wrapped.model` (OpenCLIP names) and give A1111's chunked output: 77
  tokens per 75 of the caption (a character is a token here).
- `first_stage_model`: tests/webui/vae_doubles' `StubVae` (x8 pooling encoder); sgm's `encode_first_stage` with the
  scale factor, A1111's `get_first_stage_encoding`.
- `alphas_cumprod`, `parameterization` (what A1111's `extend_sdxl` sets), the checkpoint info, and the extension's
  load report (`ssd1b.webui.loading.REPORT_ATTR`), as after a load.
"""

from __future__ import annotations

import importlib
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from ssd1b.families import SSD_1B_SIGNATURE, VEGA_SIGNATURE
from tests import synthetic
from tests.helpers import ldm_unet
from tests.helpers.train_host import HfTextModel, OpenClipText, sdxl_alphas_cumprod, tokenize
from tests.webui.vae_doubles import StubVae

TEXT_WIDTH = 32
SIZE_WIDTH = 4
"""Features per size number (sgm's ConcatTimestepEmbedderND has 256)."""
ADM = TEXT_WIDTH + 3 * 2 * SIZE_WIDTH
CHUNK = 75
SIGNATURES = {"ssd-1b": SSD_1B_SIGNATURE, "segmind-vega": VEGA_SIGNATURE}
LABELS = {"ssd-1b": "SSD-1B", "segmind-vega": "Segmind Vega"}


class FrozenBlockError(RuntimeError):
    pass


def _sgm_checkpoint_guard(block: nn.Module, flag: str) -> None:
    if getattr(block, flag) and torch.is_grad_enabled() and any(not p.requires_grad for p in block.parameters()):
        raise FrozenBlockError("One of the differentiated Tensors does not require grad (sgm checkpoint on)")


class SgmTransformerBlock(ldm_unet.BasicTransformerBlock):
    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        _sgm_checkpoint_guard(self, "checkpoint")
        return super().forward(x, context)


class SgmResBlock(ldm_unet.ResBlock):
    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        _sgm_checkpoint_guard(self, "use_checkpoint")
        return super().forward(x, emb)


def tiny_unet(family: str = "ssd-1b", seed: int = 0) -> nn.Module:
    unet = ldm_unet.build_family(family, 32, context_dim=2 * TEXT_WIDTH, adm_in_channels=ADM, head_dim=16, seed=seed)
    for module in unet.modules():
        if type(module) is ldm_unet.BasicTransformerBlock:
            module.__class__ = SgmTransformerBlock
            module.checkpoint = True
        elif type(module) is ldm_unet.ResBlock:
            module.__class__ = SgmResBlock
            module.use_checkpoint = True
    return unet.eval().requires_grad_(False)


class TextEmbedder(nn.Module):
    """A1111's FrozenCLIPEmbedderForSDXLWithCustomWords / FrozenOpenCLIPEmbedder2WithCustomWords, as seen from sgm."""

    def __init__(self, wrapped: nn.Module, pooled: bool) -> None:
        super().__init__()
        self.wrapped, self.pooled = wrapped, pooled
        self.is_trainable = False
        self.input_key = "txt"
        self.legacy_ucg_val = None
        self.ucg_rate = 0.0

    def encoder(self) -> nn.Module:
        return self.wrapped.transformer if hasattr(self.wrapped, "transformer") else self.wrapped.model

    def forward(self, texts: list[str]) -> Tensor | tuple[Tensor, Tensor]:
        chunks = max(1, *(math.ceil(len(text) / CHUNK) for text in texts))
        pieces = ([text[i * CHUNK : (i + 1) * CHUNK] for text in texts] for i in range(chunks))
        parts = [self.encoder()(tokenize(piece)) for piece in pieces]
        z = torch.cat(parts, dim=1)
        return (z, parts[0].mean(dim=1)) if self.pooled else z


class SizeEmbedder(nn.Module):
    """sgm's ConcatTimestepEmbedderND: sinusoidal features of each number of a (height, width) pair."""

    def __init__(self, input_key: str) -> None:
        super().__init__()
        self.input_key, self.is_trainable, self.legacy_ucg_val, self.ucg_rate = input_key, False, None, 0.0

    def forward(self, x: Tensor) -> Tensor:
        frequencies = torch.exp(-math.log(1000.0) * torch.arange(SIZE_WIDTH // 2, device=x.device) / SIZE_WIDTH)
        angles = x.float()[:, :, None] * frequencies[None, None]
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1).flatten(1)


class Conditioner(nn.Module):
    """sgm's GeneralConditioner.forward: no_grad unless is_trainable; outputs keyed and concatenated by dim."""

    KEYS: ClassVar[dict[int, str]] = {2: "vector", 3: "crossattn"}
    CAT_DIM: ClassVar[dict[str, int]] = {"vector": 1, "crossattn": 2}

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed + 1)
        clip_l, big_g = nn.Module(), nn.Module()
        clip_l.transformer = HfTextModel(TEXT_WIDTH)
        big_g.model = OpenClipText(TEXT_WIDTH)
        keys = ("original_size_as_tuple", "crop_coords_top_left", "target_size_as_tuple")
        self.embedders = nn.ModuleList(
            [TextEmbedder(clip_l, pooled=False), TextEmbedder(big_g, pooled=True), *map(SizeEmbedder, keys)]
        )
        self.requires_grad_(False)
        self.batches: list[dict] = []

    def forward(self, batch: dict) -> dict[str, Tensor]:
        self.batches.append(batch)
        output: dict[str, Tensor] = {}
        for embedder in self.embedders:
            with nullcontext() if embedder.is_trainable else torch.no_grad():
                result = embedder(batch[embedder.input_key])
            for emb in result if isinstance(result, tuple) else (result,):
                key = self.KEYS[emb.dim()]
                output[key] = torch.cat((output[key], emb), self.CAT_DIM[key]) if key in output else emb
        return output


def load_tiny_model(webui, family: str = "ssd-1b", filename: str = "SSD-1B.safetensors", seed: int = 0):
    """Register a checkpoint of `family`, build the tiny model, and hand it to the fake host as loaded."""
    unet_keys = synthetic.ssd_1b_unet() if family == "ssd-1b" else synthetic.vega_unet()
    info = webui.add_checkpoint(filename, synthetic.full_checkpoint(unet_keys))
    info.calculate_shorthash()
    engine = webui.module("sd_models").DiffusionEngine
    model = nn.Module()
    model.model = nn.Module()
    model.model.diffusion_model = tiny_unet(family, seed)
    model.conditioner = Conditioner(seed)
    model.first_stage_model = StubVae()
    model.scale_factor = 0.13025
    for name in ("decode_first_stage", "encode_first_stage", "get_first_stage_encoding"):
        setattr(model, name, getattr(engine, name).__get__(model))
    model.alphas_cumprod = sdxl_alphas_cumprod()
    model.parameterization = "eps"
    model.is_sdxl, model.is_ssd, model.lowvram = True, True, False
    model.sd_checkpoint_info, model.sd_model_checkpoint = info, info.filename
    model.sd_model_hash = info.shorthash
    loading = webui.module("ssd1b.webui.loading")
    setattr(model, loading.REPORT_ATTR, _report(info.title, family))
    webui.module("sd_models").model_data.set_sd_model(model)
    return model


def _report(title: str, family: str) -> dict:
    return {
        "checkpoint": title,
        "family": family,
        "label": LABELS[family],
        "distilled": True,
        "depths": SIGNATURES[family].to_json(),
        "unet_params": 0,
        "missing": [],
        "unexpected": [],
    }


def trainable_host(webui, images: Path):
    """The fake host with the tiny model loaded, the loading hooks and the API installed on a FastAPI app
    (`webui.client`), three captioned 64 px images in `images`, and the modules the training tests drive."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from tests.helpers.train_host import write_image

    webui.api = webui.module("ssd1b.webui.api")
    webui.loading = webui.module("ssd1b.webui.loading")
    webui.jobs = webui.module("ssd1b.webui.train.jobs")
    webui.call_queue = webui.module("call_queue")
    webui.sd_models = webui.module("sd_models")
    webui.networks = importlib.import_module("networks")  # the built-in Lora extension, loaded as in A1111
    webui.loading.install()
    webui.api.install()
    app = FastAPI()
    webui.module("script_callbacks").app_started_callback(None, app)
    webui.client = TestClient(app)
    webui.model = load_tiny_model(webui)
    webui.images = images
    for index in range(3):
        write_image(images / f"{index}.png", (64, 64), seed=index, caption=f"sks pattern {index}")
    webui.lora_dir = webui.module("ssd1b.webui.host").lora_dir()
    return webui


def wait_until_finished(webui, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        state = webui.client.get("/ssd1b/v1/train").json()
        if not state["running"]:
            return state
        time.sleep(0.05)
    raise AssertionError(f"the training did not end within {timeout} s: {state}")


def stop_any_run(webui) -> None:
    job = webui.jobs.current()
    if job is not None and job.running:
        job.monitor.request_stop()
        wait_until_finished(webui)
