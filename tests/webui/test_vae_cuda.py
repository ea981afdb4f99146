"""The VAE adapter on a real CUDA device: real allocator failures, the free-memory budget, half-precision NaN.

Marked `cuda`: skipped where torch sees no CUDA device (CI); tests/device/run.sh runs them on the GPU machine with
SSD1B_REQUIRE_CUDA=1, where a skip is a failure (tests/conftest.py).
The first stage has the SDXL VAE's real widths (128/256/512/512) with random weights.
"""

from __future__ import annotations

import pytest
import torch

from tests.webui.vae_doubles import HostVae, light_model, opts_set, with_vae_modules

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")
SDXL_WIDTH = 128


@pytest.fixture
def gpu_host(webui):
    with_vae_modules(webui)
    webui.devices.device = webui.shared.device = CUDA
    webui.devices.dtype = webui.devices.dtype_vae = torch.float16
    webui.vae.install()
    yield webui
    torch.cuda.set_per_process_memory_fraction(1.0)
    torch.cuda.empty_cache()


def sdxl_sized_model(host):
    torch.manual_seed(0)
    vae = HostVae(SDXL_WIDTH).eval().requires_grad_(False).to(CUDA, torch.float16)
    return light_model(host, first_stage_model=vae)


def decode(host, model, latent):
    return host.module("sd_samplers_common").decode_first_stage(model, latent)


def peak_of(run):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = run()
    torch.cuda.synchronize()
    return result, torch.cuda.max_memory_allocated() - before


def test_a_real_out_of_memory_is_recovered_with_smaller_tiles(gpu_host):
    model = sdxl_sized_model(gpu_host)
    fsm = model.first_stage_model
    torch.manual_seed(1)
    latent = torch.randn(1, 4, 128, 128, device=CUDA, dtype=torch.float16)  # 1024²
    reference, untiled_peak = peak_of(lambda: type(fsm).decode(fsm, 1.0 / model.scale_factor * latent))
    total = torch.cuda.get_device_properties(CUDA).total_memory
    allowed = torch.cuda.memory_allocated() + untiled_peak // 3
    torch.cuda.set_per_process_memory_fraction(allowed / total)

    image = decode(gpu_host, model, latent)

    assert torch.isfinite(image).all()
    assert (image.float() - reference.float()).abs().max().item() < 2e-2
    fallback = gpu_host.vae.infotext_fields(model)["SSD-1B VAE fallback"]
    assert fallback.startswith("out of memory, decode retried: ")
    print(f"untiled peak {untiled_peak / 2**20:.0f} MiB, allowed {untiled_peak // 3 / 2**20:.0f} MiB: {fallback}")


def test_the_budget_option_bounds_the_peak(gpu_host):
    model = sdxl_sized_model(gpu_host)
    torch.manual_seed(2)
    latent = torch.randn(1, 4, 128, 128, device=CUDA, dtype=torch.float16)
    _, untiled_peak = peak_of(lambda: decode(gpu_host, model, latent))
    budget_mib = untiled_peak / 4 / 2**20
    opts_set(gpu_host, ssd1b_vram_budget_mib=budget_mib)

    image, tiled_peak = peak_of(lambda: decode(gpu_host, model, latent))

    tiles = gpu_host.vae.infotext_fields(model).get("SSD-1B VAE tiles")
    print(f"untiled {untiled_peak / 2**20:.0f} MiB, budget {budget_mib:.0f} MiB, tiled {tiled_peak / 2**20:.0f} MiB")
    assert tiles is not None
    assert torch.isfinite(image).all()
    assert tiled_peak <= budget_mib * 2**20


def test_the_free_memory_budget_follows_the_device(gpu_host):
    free, _ = torch.cuda.mem_get_info(CUDA)
    budget = gpu_host.vae_tiles.budget_bytes(CUDA)
    assert 0.8 * free <= budget <= free + torch.cuda.memory_reserved(CUDA)


def test_half_precision_nan_is_retried_in_bfloat16_on_the_gpu(gpu_host):
    model = sdxl_sized_model(gpu_host)
    model.first_stage_model.nan_dtypes = {torch.float16}
    latent = torch.randn(1, 4, 64, 64, device=CUDA, dtype=torch.float16)
    image = decode(gpu_host, model, latent)
    assert image.dtype == torch.bfloat16
    assert torch.isfinite(image).all()
    expected = "decode: NaN in float16, used bfloat16"
    assert gpu_host.vae.infotext_fields(model)["SSD-1B VAE fallback"] == expected
