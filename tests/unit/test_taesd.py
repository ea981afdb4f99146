"""TAESD / TAESDXL (tests/helpers/taesd.py): the published weight files' layout, and exact crop-with-padding tiling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import taesd

KEYS = json.loads((Path(__file__).resolve().parents[1] / "data" / "taesdxl_keys.json").read_text())


def shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {key: list(tensor.shape) for key, tensor in module.state_dict().items()}


def random_decoder(seed: int = 0) -> taesd.TAESDDecoder:
    """Random weights that keep the signal alive through the ReLU stack (He init; residual branches damped), so
    that the output depends strongly on every latent pixel it can see (PyTorch's default init lets it fade)."""
    torch.manual_seed(seed)
    decoder = taesd.TAESDDecoder().eval().requires_grad_(False)
    for module in decoder.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if isinstance(module, taesd.ResidualTriple):
            module.conv[4].weight.mul_(0.3)
    return decoder


def decode_sensitivity(decoder: torch.nn.Module, z: torch.Tensor) -> float:
    with torch.no_grad():
        return float((decoder(z) - decoder(torch.zeros_like(z))).abs().mean())


@pytest.mark.parametrize("part", ["decoder", "encoder"])
def test_networks_have_the_taesdxl_weight_files_keys_and_shapes(part):
    network = taesd.TAESDDecoder() if part == "decoder" else taesd.TAESDEncoder()
    assert shapes(network) == KEYS[part]


def test_weight_files_load_strictly_and_round_trip(tmp_path):
    decoder = random_decoder(3)
    path = tmp_path / "taesdxl_decoder.pth"
    torch.save(decoder.state_dict(), path)
    loaded = taesd.decoder_from_state_dict(taesd.load_state_dict(path))
    z = torch.randn(1, 4, 8, 8)
    assert torch.equal(loaded(z), decoder(z))
    encoder = taesd.TAESDEncoder().eval()
    rebuilt = taesd.encoder_from_state_dict(encoder.state_dict())
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(rebuilt(x), encoder(x))
    broken = dict(decoder.state_dict())
    broken.pop("7.weight")
    with pytest.raises(RuntimeError, match=r"7\.weight"):
        taesd.decoder_from_state_dict(broken)


def test_decoder_receptive_field_is_the_default_pad():
    assert taesd.receptive_pad(taesd.TAESDDecoder()) == taesd.TAESD_DECODE_PAD == 19


def test_tiled_taesd_decode_equals_untiled():
    decoder = random_decoder()
    # 4 tiles of 18 latent pixels along a 72-pixel row: the middle tiles' crops (18 + 2 × 19) stop short of both
    # image borders, so their edges are cut out of the latent, not the image's own border
    z = torch.randn(1, 4, 16, 72, generator=torch.Generator().manual_seed(1))
    assert decode_sensitivity(decoder, z) > 0.5  # the output is made of the latent, not of the biases
    with torch.no_grad():
        reference = decoder(z)
    tiled = taesd.decode_taesd(decoder, z, tile_latent=20)
    assert tiled.shape == reference.shape == (1, 3, 128, 576)
    assert (tiled - reference).abs().max().item() <= 1e-5 * reference.abs().max().item()


def test_a_pad_smaller_than_the_receptive_field_is_not_exact():
    decoder = random_decoder()
    z = torch.randn(1, 4, 16, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = decoder(z)
    short = taesd.decode_taesd(decoder, z, tile_latent=16, pad_latent=4)
    assert (short - reference).abs().max().item() > 0.1 * reference.abs().max().item()
