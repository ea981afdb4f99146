"""What the LoRA fit costs a generation, per network, cached and uncached, beside the host's own load of the file.

    python benchmarks/lora_fit.py [--json] [--repeats 200]

Networks (real key names and shapes, written as safetensors headers over sparse data): a kohya SDXL attention LoRA
with both text encoders (560 UNet modules), the SDXL LCM-LoRA (788 modules, diffusers names), an SD 1.5 LoRA, and a
LoHa over every ResBlock convolution. The model is SSD-1B with SDXL's text encoders, as the adapter sees it.

Per generation, the adapter parses the prompts for `<lora:…>` tags and asks `ssd1b.lora.fit.cached_fit` for each:
- uncached: every cache is cleared first (the fit, the targets, the name mapping's memo), so the header is read,
  parsed and compared as for the first network of a session;
- cached: the same call again (one `stat` and a dictionary look-up);
- beside it, `safetensors.torch.load_file` of the same file: what the built-in Lora extension does the first time a
  network is used.
`model_modules_ms`: building the loaded model's module set from its parameter names, once per model load.
Target: cached under 1 ms per network.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ssd1b.lora import fit as lora_fit  # noqa: E402
from ssd1b.lora import kind as lora  # noqa: E402
from ssd1b.webui.lora_fit import network_names  # noqa: E402
from tests import synthetic  # noqa: E402
from tests.lora_files import (  # noqa: E402
    RESBLOCK_CONVS,
    kohya_attention_lora,
    kohya_tensors,
    lcm_lora_file,
    lycoris_tensors,
    sd15_lora,
    weight_shapes,
)

CACHED_TARGET_MS = 1.0


def write_networks(folder: Path) -> dict[str, Path]:
    loha = {}
    for module, shape in weight_shapes(synthetic.sdxl_unet()).items():
        if RESBLOCK_CONVS.search(module):
            loha.update(lycoris_tensors(module, shape, "loha"))
    loha.update(kohya_tensors("lora_te1_text_model_encoder_layers_0_mlp_fc1", (3072, 768), 4))
    return {
        "style_x": kohya_attention_lora(folder / "style_x.safetensors"),
        "lcm_sdxl": lcm_lora_file(folder / "lcm_sdxl.safetensors", synthetic.sdxl_unet()),
        "sd15": sd15_lora(folder / "sd15.safetensors"),
        "loha": synthetic.write_sparse(folder / "loha.safetensors", loha),
    }


def per_call_ms(repeats: int, action) -> float:
    """Best of `repeats` single calls, in milliseconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def measure(repeats: int) -> dict[str, object]:
    parameters = list({**synthetic.ssd_1b_unet(), **synthetic.text_encoders_only()}.items())
    model_ms = per_call_ms(max(5, repeats // 20), lambda: lora_fit.model_modules(parameters))
    model = lora_fit.model_modules(parameters)
    with tempfile.TemporaryDirectory() as folder:
        networks = write_networks(Path(folder))
        prompt = "a cat, " + " ".join(f"<lora:{name}:0.8>" for name in networks)
        rows = {name: _network_row(path, name, model, prompt, repeats) for name, path in networks.items()}
    cached = max(row["cached_ms"] for row in rows.values())
    uncached = max(row["uncached_ms"] for row in rows.values())
    return {
        "networks": rows,
        "cached_ms_per_network": round(cached, 4),
        "uncached_ms_per_network": round(uncached, 4),
        "model_modules_ms": round(model_ms, 3),
        "cached_target_ms": CACHED_TARGET_MS,
        "cached_target_met": cached < CACHED_TARGET_MS,
    }


def _network_row(path: Path, name: str, model, prompt: str, repeats: int) -> dict[str, float | str]:
    def generation_step() -> None:
        for found in network_names([prompt]):
            if found == name:
                lora_fit.cached_fit(path, name, model, "ssd-1b", "SSD-1B")

    def uncached() -> None:
        lora_fit.clear_cache()
        lora.to_ldm.cache_clear()  # the name mapping's memo too: as for the first network of a session
        generation_step()

    from safetensors.torch import load_file

    uncached_ms = per_call_ms(repeats, uncached)
    generation_step()
    cached_ms = per_call_ms(repeats, generation_step)
    load_ms = per_call_ms(max(3, repeats // 20), lambda: load_file(str(path)))
    fit = lora_fit.cached_fit(path, name, model, "ssd-1b", "SSD-1B")
    return {
        "infotext": fit.infotext(),
        "uncached_ms": round(uncached_ms, 4),
        "cached_ms": round(cached_ms, 4),
        "host_load_file_ms": round(load_ms, 3),
        "load_file_over_uncached": round(load_ms / uncached_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    result = measure(args.repeats)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'network':10} {'fit (SSD-1B)':58} {'uncached ms':>12} {'cached ms':>10} {'load_file ms':>13} {'ratio':>6}")
    for name, row in result["networks"].items():
        print(
            f"{name:10} {row['infotext']:58} {row['uncached_ms']:12.3f} {row['cached_ms']:10.4f} "
            f"{row['host_load_file_ms']:13.2f} {row['load_file_over_uncached']:6.1f}"
        )
    met = "met" if result["cached_target_met"] else "MISSED"
    print(
        f"cached: {result['cached_ms_per_network']} ms per network (target < {CACHED_TARGET_MS} ms: {met}); "
        f"uncached: {result['uncached_ms_per_network']} ms; model module set: {result['model_modules_ms']} ms per load"
    )


if __name__ == "__main__":
    main()
