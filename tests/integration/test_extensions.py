"""Third-party extensions on distilled models in a real A1111 (issue 19; ssd1b/webui/extensions/).

Runs only with SD_WEBUI_EXTENSIONS set (a folder of the extensions' checkouts: third_party.py): the session's server
then links SESSION in for its lifetime. Every request: 256², 2 steps, one seed (test_whole_session.BASE); an image
comes back and the log of the step holds no traceback. Per extension and family, what the adapter promises:
- made to work, or working as on SDXL: the image differs from the same request without the feature;
- stopped: the image is the one without the feature, and the adapter says so (`extension_steps.said`: the infotext
  entry `SSD-1B <feature>: …` and the console line `[ssd1b] <feature>: …`);
- nothing to do: nothing is said.
Families: SSD-1B, Segmind Vega and KOALA-700M, with SDXL as the control where the extension works there.

onediff and TensorRT need CUDA: they are linked too, and the start-up checks that the host names them as failing to
load and that this extension names them as not installed (test_what_the_start_up_says).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests import synthetic
from tests.integration import third_party
from tests.integration.extension_steps import assert_changed, assert_same, report, said, script_args, silent
from tests.integration.server import WebUI, models_dir
from tests.integration.test_whole_session import assert_real, generate, load
from tests.lora_files import kohya_attention_lora, write_random_weights

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get(third_party.EXTENSIONS_ENV),
        reason=f"set {third_party.EXTENSIONS_ENV} to the folder of the extensions' checkouts to run the extension "
        "tier (tests/integration/README.md)",
    ),
]

SDXL, SSD1B, VEGA, KOALA = "sdxl.safetensors", "ssd1b.safetensors", "vega.safetensors", "koala-700m.safetensors"
LABELS = {SDXL: "SDXL", SSD1B: "SSD-1B", VEGA: "Segmind Vega", KOALA: "KOALA-700M"}
DISTILLED = [SSD1B, VEGA, KOALA]
PROMPT = "a lighthouse on a cliff"
_references: dict[tuple[str, str], Any] = {}


@pytest.fixture(scope="module")
def checkpoint(request: pytest.FixtureRequest, webui: WebUI) -> str:
    """The family of the test, loaded (module-scoped: pytest runs the tests of one family together)."""
    load(webui, request.param)
    return request.param


def on(webui: WebUI, checkpoint: str) -> None:
    load(webui, checkpoint)  # a no-op when it is loaded already


def reference(webui: WebUI, checkpoint: str) -> Any:
    """The same request without any feature (one per server and checkpoint)."""
    key = (webui.base_url, checkpoint)
    if key not in _references:
        on(webui, checkpoint)
        _references[key] = generate(webui, prompt=PROMPT)[0]["image"]
    return _references[key]


def with_scripts(webui: WebUI, scripts: dict[str, Any], **fields: Any) -> tuple[dict[str, Any], str]:
    return generate(webui, **{"prompt": PROMPT, **fields, "alwayson_scripts": scripts})


def families(*checkpoints: str) -> Any:
    return pytest.mark.parametrize("checkpoint", checkpoints, indirect=True, ids=[LABELS[c] for c in checkpoints])


# --- start-up -------------------------------------------------------------------------------------------------------


def test_what_the_start_up_says(webui: WebUI) -> None:
    """Each extension that runs here is adapted, at the commit of its checkout; the CUDA-only ones fail to load in
    the host and are named as not installed; Hypertile is adapted where the host has it (v1.7.0+)."""
    lines = webui.log.text().splitlines()
    root = third_party.root()
    assert root is not None
    for extension in third_party.SESSION:
        if extension.cuda_only:
            continue
        commit = third_party.head_commit(extension.checkout(root))
        prefix = f"[ssd1b] {extension.name} {commit[:8]}: "
        found = [line for line in lines if line.startswith(prefix)]
        assert len(found) == 1, f"start-up lines {prefix!r}: {found}\n" + "\n".join(lines[-80:])
        report(extension.name, "start-up", f"`{found[0]}`")
    absent = [line for line in lines if line.startswith("[ssd1b] not installed, nothing adapted:")]
    assert len(absent) == 1, absent
    report("absent", "start-up", f"`{absent[0]}`")
    for extension in (third_party.ONEDIFF, third_party.TENSORRT):
        assert extension.name in absent[0], absent
        assert f"Error loading script: {extension.script}" in webui.log.text(), f"{extension.name} loaded?"
    has_hypertile = (webui_dir() / "extensions-builtin" / "hypertile").is_dir()
    assert ("Hypertile" in absent[0]) != has_hypertile, absent


def webui_dir() -> Any:
    from pathlib import Path

    return Path(os.environ["SD_WEBUI_DIR"])


# --- Self Attention Guidance (stopped without a middle-block attention) -----------------------------------------------


@families(SSD1B, VEGA, KOALA)
def test_sag_is_stopped_without_a_middle_attention(webui: WebUI, checkpoint: str) -> None:
    on(webui, checkpoint)
    before = reference(webui, checkpoint)
    info, step_log = with_scripts(webui, script_args(webui, "Self Attention Guidance", {0: True, 1: 0.75}))
    assert_same(info["image"], before, "SAG, stopped")
    entry = said(info, step_log, "SAG", LABELS[checkpoint])
    assert LABELS[checkpoint] in entry and "without SAG" in entry, entry
    assert "SAG Guidance Scale" not in info["infotexts"][0]


# --- Incantations: PAG and SEG ----------------------------------------------------------------------------------------

PAG_ACTIVE, PAG_SCALE, SEG_ACTIVE = 12, 13, 0
"""Indices in Incantations' arguments: SEG's 4 come first (active at 0), then SCFG's 8, then PAG's (active at 12)."""


@families(SDXL, SSD1B, VEGA, KOALA)
def test_incantations_pag_and_seg(webui: WebUI, checkpoint: str) -> None:
    on(webui, checkpoint)
    before = reference(webui, checkpoint)
    scripts = script_args(webui, "Incantations", {PAG_ACTIVE: True, PAG_SCALE: 3.0, SEG_ACTIVE: True})
    info, step_log = with_scripts(webui, scripts)
    if checkpoint == SDXL:  # the middle block has a self-attention: both run
        assert_changed(info["image"], before, "PAG and SEG on SDXL")
        assert "PAG Active: True" in info["infotexts"][0] and "SEG Active: True" in info["infotexts"][0]
        silent(info, step_log, "PAG")
        silent(info, step_log, "SEG")
        return
    assert_same(info["image"], before, "PAG and SEG, stopped")
    for feature in ("PAG", "SEG"):
        assert f"{feature} Active" not in info["infotexts"][0], info["infotexts"][0]
        assert LABELS[checkpoint] in said(info, step_log, feature, LABELS[checkpoint])


# --- Kohya Hires.fix --------------------------------------------------------------------------------------------------

KOHYA_ENABLE, KOHYA_DEPTH_1, KOHYA_DEPTH_2 = 0, 2, 3


@families(SSD1B, VEGA, KOALA)
def test_kohya_hires_fix_at_its_default_depths(webui: WebUI, checkpoint: str) -> None:
    on(webui, checkpoint)
    before = reference(webui, checkpoint)
    info, step_log = with_scripts(webui, script_args(webui, "Kohya Hires.fix", {KOHYA_ENABLE: True}))
    assert_changed(info["image"], before, "Kohya Hires.fix")
    assert "DSHF_d1" in info["infotexts"][0]
    if checkpoint == KOALA:  # runs on KOALA's own blocks, which is said
        assert "KOALA-700M's own blocks" in said(info, step_log, "Kohya Hires.fix", LABELS[checkpoint])
    else:
        silent(info, step_log, "Kohya Hires.fix")


@families(KOALA)
def test_kohya_hires_fix_past_koala_s_blocks_is_stopped(webui: WebUI, checkpoint: str) -> None:
    on(webui, checkpoint)
    before = reference(webui, checkpoint)
    scripts = script_args(webui, "Kohya Hires.fix", {KOHYA_ENABLE: True, KOHYA_DEPTH_1: 7})
    info, step_log = with_scripts(webui, scripts)
    assert_same(info["image"], before, "Kohya Hires.fix at depth 7, stopped")
    assert "not applied: depth 7" in said(info, step_log, "Kohya Hires.fix", LABELS[checkpoint])


# --- Hypertile (A1111's built-in, v1.7.0 and later) -------------------------------------------------------------------

HYPERTILE = {"hypertile_enable_unet": True, "hypertile_max_tile_unet": 128, "hypertile_swap_size_unet": 1}


@families(SSD1B, VEGA, KOALA)
def test_hypertile(webui: WebUI, checkpoint: str) -> None:
    if not (webui_dir() / "extensions-builtin" / "hypertile").is_dir():
        assert "Hypertile" in webui.log.text().split("not installed, nothing adapted:", 1)[1].split("\n", 1)[0]
        report("Hypertile", LABELS[checkpoint], "not in this host (A1111 < 1.7.0): named as not installed")
        return
    on(webui, checkpoint)
    before = reference(webui, checkpoint)
    overrides = {"ssd1b_tiled_vae": "Never", **HYPERTILE}
    info, step_log = generate(webui, prompt=PROMPT, override_settings=overrides)
    assert_changed(info["image"], before, "Hypertile")
    assert "Hypertile U-Net: True" in info["infotexts"][0]
    line = f"[ssd1b] Hypertile: {LABELS[checkpoint]}'s self-attention layers tiled by level (a KOALA layer table)"
    assert (line in step_log) == (checkpoint == KOALA), step_log[-3000:]
    report("Hypertile", LABELS[checkpoint], f"console `{line}`" if checkpoint == KOALA else "nothing said")


# --- Tiled VAE --------------------------------------------------------------------------------------------------------

TILED_VAE_ENABLED, TILED_VAE_DECODER_TILE = 0, 2


@families(SSD1B, VEGA, KOALA)
def test_tiled_vae_tiles_alone(webui: WebUI, checkpoint: str) -> None:
    on(webui, checkpoint)
    before = reference(webui, checkpoint)
    scripts = script_args(webui, "Tiled VAE", {TILED_VAE_ENABLED: True, TILED_VAE_DECODER_TILE: 48})
    info, step_log = with_scripts(webui, scripts)
    assert_real(info["image"], (256, 256))
    assert "by Tiled VAE" in said(info, step_log, "VAE tiles", LABELS[checkpoint])
    report("Tiled VAE", LABELS[checkpoint], f"mean difference to the untiled image {difference_of(info, before)}")


def difference_of(info: dict[str, Any], before: Any) -> str:
    from tests.integration.extension_steps import difference

    return f"{difference(info['image'], before):.2f} of 255"


# --- AnimateDiff ------------------------------------------------------------------------------------------------------


def animatediff(frames: int = 2) -> dict[str, Any]:
    params = {"enable": True, "model": third_party.MOTION_MODULE, "video_length": frames, "batch_size": frames}
    return {"AnimateDiff": {"args": [{**params, "format": ["PNG"], "fps": 8}]}}


@families(SSD1B, VEGA, KOALA)
def test_animatediff(webui: WebUI, checkpoint: str) -> None:
    motion_module = models_dir() / third_party.ANIMATEDIFF_MODELS / third_party.MOTION_MODULE
    assert motion_module.is_file(), f"{motion_module} missing: make_models/extension_files.py writes it"
    on(webui, checkpoint)
    before = reference(webui, checkpoint)
    info, step_log = with_scripts(webui, animatediff())
    if checkpoint != KOALA:  # SDXL's 9 + 9 blocks: its motion modules go in and out as on SDXL
        assert_changed(info["image"], before, "AnimateDiff")
        assert "AnimateDiff" in info["infotexts"][0] and "injection" in step_log.lower(), step_log[-3000:]
        silent(info, step_log, "AnimateDiff")
        return
    assert_same(info["image"], before, "AnimateDiff, stopped")
    assert "not applied" in said(info, step_log, "AnimateDiff", LABELS[checkpoint])
    after, _ = generate(webui, prompt=PROMPT)  # the model was not touched: the next image is the usual one
    assert_same(after["image"], before, "the next generation after AnimateDiff was stopped")


# --- LoRA Block Weight ------------------------------------------------------------------------------------------------

LBW_ACTIVE = 1
LBW_INPUTS_OFF = "1,0,0,0,0,0,1,1,1,1,1,1"
"""SDXL's 12-value format: BASE, IN04, IN05, IN07, IN08, M00, OUT00–05 (input and middle blocks off)."""


@pytest.fixture(scope="module")
def block_weight_loras(webui: WebUI) -> dict[str, str]:
    """Random-weight kohya attention LoRAs over SDXL's blocks and over KOALA-700M's, in the server's --lora-dir."""
    assert webui.lora_dir is not None
    names = {SSD1B: "style_x", VEGA: "style_x", KOALA: "koala_style"}
    kohya_attention_lora(webui.lora_dir / "style_x.safetensors", write=write_random_weights)
    koala_keys = synthetic.koala_unet("700m")
    kohya_attention_lora(webui.lora_dir / "koala_style.safetensors", unet_keys=koala_keys, write=write_random_weights)
    webui.post("/sdapi/v1/refresh-loras", {})
    return names


@families(SSD1B, VEGA, KOALA)
def test_lora_block_weight(webui: WebUI, checkpoint: str, block_weight_loras: dict[str, str]) -> None:
    on(webui, checkpoint)
    lora = block_weight_loras[checkpoint]
    plain, _ = generate(webui, prompt=f"{PROMPT} <lora:{lora}:1>")
    scripts = script_args(webui, "LoRA Block Weight", {LBW_ACTIVE: True})
    weighted, step_log = with_scripts(webui, scripts, prompt=f"{PROMPT} <lora:{lora}:1:lbw={LBW_INPUTS_OFF}>")
    assert "Lora hashes" in weighted["infotexts"][0], "the host did not apply the LoRA"
    if checkpoint != KOALA:  # SDXL's block numbering: the block weights apply
        assert_changed(weighted["image"], plain["image"], "block weights")
        silent(weighted, step_log, "LoRA Block Weight")
        return
    assert_same(weighted["image"], plain["image"], "block weights, withheld on KOALA")
    assert "without block weights" in said(weighted, step_log, "LoRA Block Weight", LABELS[checkpoint])
