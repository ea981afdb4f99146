"""Tiled VAE decode/encode (ssd1b.vae.tiled) against the untiled network, on the SDXL layout with random weights.

The network is tests/helpers/sdxl_vae.py: our own AutoencoderKL with the ldm module names. ``base=128`` is the
SDXL VAE at its real channel widths; a narrower ``base`` keeps the layout (and every code path of the tiler) at a
sixteenth of the arithmetic, for the tests whose claim does not depend on the width.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from torch.nn import functional

from ssd1b import vae as tiling
from ssd1b.vae.grid import Box, split_evenly, tile_grid
from tests.helpers.sdxl_vae import SDXL_BASE, build_vae

DATA = Path(__file__).resolve().parents[1] / "data"
NARROW = 32  # the narrowest width GroupNorm(32 groups) allows


def rel_rmse(result: torch.Tensor, reference: torch.Tensor) -> float:
    return float((result.double() - reference.double()).norm() / reference.double().norm())


def latent(height: int, width: int, *, batch: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 4, height, width, generator=torch.Generator().manual_seed(seed))


def image(height: int, width: int, *, seed: int = 2) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def sdxl_vae():
    return build_vae(SDXL_BASE, seed=0)


@pytest.fixture(scope="module")
def narrow_vae():
    return build_vae(NARROW, seed=0)


# --- the helper network is the SDXL VAE layout ----------------------------------------------------------------------


def test_helper_vae_has_the_sdxl_first_stage_keys_and_shapes(sdxl_vae):
    reference = json.loads((DATA / "sdxl_conditioner_vae_ldm_keys.json").read_text())["keys"]
    prefix = "first_stage_model."
    expected = {key[len(prefix) :]: shape for key, shape in reference.items() if key.startswith(prefix)}
    ours = {key: list(tensor.shape) for key, tensor in sdxl_vae.state_dict().items()}
    assert len(expected) > 200
    assert ours == expected


# --- exact mode -----------------------------------------------------------------------------------------------------


def test_exact_decode_equals_untiled_at_sdxl_widths_512px_in_256px_tiles(sdxl_vae):
    z = latent(64, 64)
    with torch.no_grad():
        reference = sdxl_vae.decode(z)
    calls = []
    tiled = tiling.decode(sdxl_vae, z, tiling.TileConfig(tile_px=256, mode="exact"), lambda *done: calls.append(done))
    assert tiled.shape == reference.shape == (1, 3, 512, 512)
    assert rel_rmse(tiled, reference) <= 1e-4
    # the progress callback counted passes over the 4 tiles, up to its total
    total = calls[-1][1]
    assert calls == [(done, total) for done in range(1, total + 1)]
    assert total % 4 == 0


def test_exact_encode_equals_untiled_at_sdxl_widths(sdxl_vae):
    x = image(192, 192)
    with torch.no_grad():
        reference = sdxl_vae.encode_moments(x)
    tiled = tiling.encode_moments(sdxl_vae, x, tiling.TileConfig(tile_px=64, mode="exact"))
    assert tiled.shape == reference.shape == (1, 8, 24, 24)
    assert rel_rmse(tiled, reference) <= 1e-4
    mean = tiling.encode(sdxl_vae, x, tiling.TileConfig(tile_px=64, mode="exact"), sample=False)
    assert torch.equal(mean, tiled[:, :4])


def test_exact_encode_draws_the_posterior_sample_as_the_host_does(narrow_vae):
    x = image(128, 96)
    torch.manual_seed(5)
    with torch.no_grad():
        reference = narrow_vae.encode(x)
    torch.manual_seed(5)
    tiled = tiling.encode(narrow_vae, x, tiling.TileConfig(tile_px=64, mode="exact"))
    assert rel_rmse(tiled, reference) <= 1e-4


def test_exact_decode_with_uneven_tiles_a_batch_and_a_non_square_image(narrow_vae):
    z = latent(40, 24, batch=2)  # 320 × 192 px, 16-latent-pixel tiles: 3 × 2 tiles of unequal sizes
    with torch.no_grad():
        reference = narrow_vae.decode(z)
    tiled = tiling.decode(narrow_vae, z, tiling.TileConfig(tile_px=128, mode="exact"))
    assert rel_rmse(tiled, reference) <= 1e-4
    assert rel_rmse(tiled[1], reference[1]) <= 1e-4


def test_chunked_attention_equals_the_blocks_own_forward(narrow_vae):
    attn = narrow_vae.decoder.mid.attn_1
    h = torch.randn(2, attn.q.in_channels, 20, 30, generator=torch.Generator().manual_seed(4))  # 600 tokens > 1 chunk
    with torch.no_grad():
        assert rel_rmse(tiling.attend(attn, h), attn(h)) <= 1e-5
    other = torch.nn.Conv2d(8, 8, 1)  # not an ldm AttnBlock: its own forward
    y = torch.randn(1, 8, 4, 4)
    assert torch.equal(tiling.attend(other, y), other(y))


def test_parking_on_the_cpu_gives_the_same_image(narrow_vae):
    z = latent(24, 24)
    on_device = tiling.decode(narrow_vae, z, tiling.TileConfig(tile_px=64, mode="exact"))
    parked = tiling.decode(narrow_vae, z, tiling.TileConfig(tile_px=64, mode="exact", park_device=torch.device("cpu")))
    assert torch.equal(parked, on_device)


@pytest.mark.cuda  # activations parked off the GPU
def test_on_a_gpu_parking_on_the_cpu_gives_the_same_image(narrow_vae):
    vae = build_vae(NARROW, seed=0).cuda()
    z = latent(32, 32).cuda()
    with torch.no_grad():
        reference = vae.decode(z)
    parked = tiling.decode(vae, z, tiling.TileConfig(tile_px=64, mode="exact", park_device=torch.device("cpu")))
    assert parked.device == z.device
    assert rel_rmse(parked, reference) <= 1e-4


# --- fast mode: bounded error, no seams -----------------------------------------------------------------------------


def seam_ratio(picture: torch.Tensor, borders: list[int]) -> float:
    """Mean |step| across the vertical and horizontal tile borders over the mean |step| everywhere else."""
    steps_x = (picture[..., 1:] - picture[..., :-1]).abs().mean(dim=(0, 1, 2))  # step between column j and j+1
    steps_y = (picture[..., 1:, :] - picture[..., :-1, :]).abs().mean(dim=(0, 1, 3))
    across = [border - 1 for border in borders]
    inside = [j for j in range(len(steps_x)) if j not in across]
    border_step = (steps_x[across].mean() + steps_y[across].mean()) / 2
    inner_step = (steps_x[inside].mean() + steps_y[inside].mean()) / 2
    return float(border_step / inner_step)


def low_pass(picture: torch.Tensor) -> torch.Tensor:
    """4 × 4 pixel means (tile borders fall between blocks): tone shifts stay, pixel noise averages out."""
    return functional.avg_pool2d(picture, 4)


def naive_tiles(vae, z: torch.Tensor, tile_latent: int) -> torch.Tensor:
    """Each tile decoded on its own (its own GroupNorm statistics, no context): what seams look like."""
    rows = []
    with torch.no_grad():
        for top in range(0, z.shape[-2], tile_latent):
            row = [
                vae.decode(z[..., top : top + tile_latent, left : left + tile_latent])
                for left in range(0, z.shape[-1], tile_latent)
            ]
            rows.append(torch.cat(row, dim=-1))
    return torch.cat(rows, dim=-2)


def test_fast_mode_error_is_bounded_and_it_leaves_no_seams(narrow_vae):
    z = latent(48, 48)  # 384², 128 px tiles: 3 × 3 tiles, borders at 128 and 256 px
    with torch.no_grad():
        reference = narrow_vae.decode(z)
    fast = tiling.decode(narrow_vae, z, tiling.TileConfig(tile_px=128, overlap_px=64, mode="fast"))
    naive = naive_tiles(narrow_vae, z, 16)
    borders = [128, 256]

    fast_error, naive_error = rel_rmse(fast, reference), rel_rmse(naive, reference)
    assert fast_error <= 0.2  # random weights amplify statistics errors; measured 0.157
    assert fast_error < naive_error / 3

    # seams: tiles decoded on their own shift tone and colour tile by tile, so the (low-passed) error image jumps
    # at the borders; blended tiles with shared statistics show no jump there, and the picture shows no grid
    naive_seams = seam_ratio(low_pass(naive - reference), [border // 4 for border in borders])
    fast_seams = seam_ratio(low_pass(fast - reference), [border // 4 for border in borders])
    assert naive_seams > 1.4  # the measure sees real seams
    assert fast_seams <= 1.15
    assert seam_ratio(fast, borders) <= 1.1


def test_fast_encode_error_is_bounded(narrow_vae):
    x = image(256, 256)
    with torch.no_grad():
        reference = narrow_vae.encode_moments(x)
    fast = tiling.encode_moments(narrow_vae, x, tiling.TileConfig(tile_px=128, overlap_px=64, mode="fast"))
    assert rel_rmse(fast, reference) <= 0.15


# --- configuration and geometry -------------------------------------------------------------------------------------


def test_config_rejects_unknown_modes_and_bad_sizes():
    with pytest.raises(ValueError, match="mode"):
        tiling.TileConfig(mode="quick")
    with pytest.raises(ValueError, match="tile_px"):
        tiling.TileConfig(tile_px=4)


def test_attention_above_latent_resolution_cannot_be_tiled(narrow_vae):
    vae = build_vae(NARROW, seed=0)
    vae.decoder.up[0].attn.append(torch.nn.Identity())
    with pytest.raises(tiling.TilingUnsupportedError):
        tiling.decode(vae, latent(16, 16), tiling.TileConfig(tile_px=64))


@pytest.mark.parametrize(("length", "tile"), [(1, 1), (7, 3), (64, 16), (65, 16), (100, 512)])
def test_split_evenly_partitions_into_near_equal_spans(length, tile):
    spans = split_evenly(length, tile)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(stop == start for (_, stop), (start, _) in pairwise(spans))
    sizes = [stop - start for start, stop in spans]
    assert max(sizes) <= tile and max(sizes) - min(sizes) <= 1


def test_tile_grid_covers_the_plane_once():
    boxes = tile_grid(37, 50, 16)
    covered = torch.zeros(37, 50, dtype=torch.int64)
    for box in boxes:
        rows, cols = box.slices()
        covered[rows, cols] += 1
    assert bool((covered == 1).all())
    assert Box(2, 3, 10, 12).grown(5, 12, 14) == Box(0, 0, 12, 14)


# --- memory model: predictions against measurements, and the tile choice ---------------------------------------------


def profiled_peak_bytes(action) -> int:
    """Peak live tensor bytes `action` allocates on the CPU (profiler allocation events in time order)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        action()
    events = sorted(
        (event for event in prof.profiler.kineto_results.events() if event.name() == "[memory]"),
        key=lambda event: event.start_ns(),
    )
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def test_predicted_peaks_match_measured_ones_at_sdxl_widths(sdxl_vae):
    z, x = latent(16, 16), image(128, 128)
    config = tiling.TileConfig(tile_px=64, mode="exact")
    measured = {
        "decode": profiled_peak_bytes(lambda: sdxl_vae.decode(z)),
        "decode exact": profiled_peak_bytes(lambda: tiling.decode(sdxl_vae, z, config)),
        "encode": profiled_peak_bytes(lambda: sdxl_vae.encode_moments(x)),
        "encode exact": profiled_peak_bytes(lambda: tiling.encode_moments(sdxl_vae, x, config)),
    }
    predicted = {
        "decode": tiling.predict_peak_bytes("decode", 128, 128, 4),
        "decode exact": tiling.predict_tiled_peak_bytes("decode", 128, 128, 4, 64, "exact"),
        "encode": tiling.predict_peak_bytes("encode", 128, 128, 4),
        "encode exact": tiling.predict_tiled_peak_bytes("encode", 128, 128, 4, 64, "exact"),
    }
    for key, value in measured.items():
        assert 0.95 <= predicted[key] / value <= 1.25, (key, predicted[key], value)
    assert measured["decode exact"] < measured["decode"]


SIZES = [(512, 512), (1216, 832), (1024, 1024), (2048, 2048)]  # by pixel count


@pytest.mark.parametrize("operation", tiling.OPS)
@pytest.mark.parametrize("mode", tiling.MODES)
def test_predictions_grow_with_the_image_the_dtype_and_the_tile(operation, mode):
    def tiled(height, width, dtype_bytes, tile, **options):
        return tiling.predict_tiled_peak_bytes(operation, height, width, dtype_bytes, tile, mode, **options)

    untiled = [tiling.predict_peak_bytes(operation, h, w, 2) for h, w in SIZES]
    assert untiled == sorted(untiled)
    assert tiling.predict_peak_bytes(operation, 1024, 1024, 4) == 2 * tiling.predict_peak_bytes(
        operation, 1024, 1024, 2
    )
    for height, width in SIZES[1:]:
        by_tile = [
            tiled(height, width, 2, tile) for tile in sorted(tiling.TILE_CHOICES_PX) if tile < max(height, width)
        ]
        assert by_tile == sorted(by_tile)
        assert tiled(height, width, 2, 256) < tiling.predict_peak_bytes(operation, height, width, 2)
        for tile in (256, 512):
            assert tiled(height, width, 4, tile) < tiling.predict_peak_bytes(operation, height, width, 4)
            assert tiled(height, width, 2, tile) <= tiled(height, width, 4, tile)
            assert tiled(height, width, 2, tile, parked_counts=False) <= tiled(height, width, 2, tile)
    # orders of magnitude: the untiled SDXL decode at 1024² in fp16 is gigabytes, a 256 px exact tile's share is not
    if operation == "decode":
        assert 1.5 * 2**30 < tiling.predict_peak_bytes("decode", 1024, 1024, 2) < 5 * 2**30


def test_tile_choices_are_descending_multiples_of_64():
    choices = tiling.TILE_CHOICES_PX
    assert list(choices) == sorted(choices, reverse=True)
    assert all(tile % 64 == 0 for tile in choices) and choices[-1] == 64


@pytest.mark.parametrize("mode", tiling.MODES)
@pytest.mark.parametrize("parked_counts", [True, False])
def test_choose_tile_takes_the_largest_tile_that_fits_the_budget(mode, parked_counts):
    height, width, dtype_bytes = 2048, 1536, 2

    def peak(tile):
        return tiling.predict_tiled_peak_bytes(
            "decode", height, width, dtype_bytes, tile, mode, parked_counts=parked_counts
        )

    def choose(budget):
        return tiling.choose_tile("decode", height, width, dtype_bytes, budget, mode, parked_counts=parked_counts)

    untiled = tiling.predict_peak_bytes("decode", height, width, dtype_bytes)
    assert choose(untiled) is None
    assert choose(untiled + 1) is None
    previous = None
    for budget in [untiled - 1, *(int(untiled * share) for share in (0.6, 0.4, 0.3, 0.2, 0.1, 0.01))]:
        tile = choose(budget)
        assert tile in tiling.TILE_CHOICES_PX
        larger = [choice for choice in tiling.TILE_CHOICES_PX if tile < choice < max(height, width)]
        if peak(tile) <= budget:
            assert all(peak(choice) > budget for choice in larger)
        else:
            assert tile == min(tiling.TILE_CHOICES_PX)  # nothing fits: the smallest
        assert previous is None or tile <= previous  # a smaller budget never gets a larger tile
        previous = tile


def test_choose_tile_never_offers_a_tile_as_large_as_the_image():
    budget = tiling.predict_peak_bytes("decode", 1024, 1024, 4) - 1
    assert tiling.choose_tile("decode", 1024, 1024, 4, budget, "exact") < 1024
