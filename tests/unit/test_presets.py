import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssd1b.families import FAMILIES
from ssd1b.lora.kind import LORA_KINDS
from ssd1b.presets import (
    BUILTIN_PRESETS,
    RESOLUTIONS,
    Preset,
    PresetError,
    builtin,
    default_preset_for,
    merge_negative,
    preset_from_infotext,
    preset_to_infotext,
    sampler_for_host,
    snap_to_bucket,
    split_terms,
    swap_orientation,
)

# DESIGN.md "Recommended settings" (Segmind model cards / API docs, latent-consistency cards), copied here.
RECOMMENDED = {
    "SSD-1B": ("ssd-1b", 25, 9.0, "UniPC", "ugly, blurry, poor quality", None),
    "Segmind Vega": ("segmind-vega", 25, 9.0, "UniPC", "(worst quality, low quality)", None),
    "SSD-1B + LCM-LoRA": ("ssd-1b", 4, 1.5, "LCM", "", "lcm-ssd-1b"),
    "Vega + VegaRT": ("segmind-vega", 4, 1.0, "LCM", "", "vegart"),
}
SDXL_BUCKETS = {(1152, 896), (896, 1152), (1216, 832), (832, 1216), (1344, 768), (768, 1344), (1536, 640), (640, 1536)}

# Sampler lists as the hosts show them (read from modules/sd_samplers_*.py of each tag).
SAMPLERS_V1_6 = ["DPM++ 2M Karras", "DPM++ SDE Karras", "Euler a", "Euler", "DPM++ 2M", "DDIM", "PLMS", "UniPC"]
SAMPLERS_V1_8 = [*SAMPLERS_V1_6, "LCM"]
SAMPLERS_V1_10 = ["DPM++ 2M", "DPM++ SDE", "Euler a", "Euler", "LCM", "DDIM", "DDIM CFG++", "PLMS", "UniPC"]


def by_name(name):
    return next(preset for preset in BUILTIN_PRESETS if preset.name == name)


# --- the built-in table ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RECOMMENDED))
def test_builtin_presets_carry_the_recommended_values(name):
    family, steps, cfg, sampler, negative, lora = RECOMMENDED[name]
    preset = by_name(name)
    assert (preset.family, preset.steps, preset.cfg_scale, preset.sampler, preset.negative_prompt, preset.lora) == (
        family,
        steps,
        cfg,
        sampler,
        negative,
        lora,
    )
    assert (preset.width, preset.height) == (1024, 1024)


def test_the_quality_preset_follows_segminds_api_defaults():
    preset = by_name("SSD-1B quality")
    assert (preset.steps, preset.cfg_scale, preset.sampler, preset.scheduler) == (45, 7.0, "DPM++ 2M", "Karras")
    assert "segmind.com/models/ssd-1b/api" in preset.source


def test_every_builtin_cites_a_source_and_passes_the_schema():
    assert len({preset.name for preset in BUILTIN_PRESETS}) == len(BUILTIN_PRESETS)
    for preset in BUILTIN_PRESETS:
        assert preset.builtin
        assert "https://" in preset.source, preset.name
        assert preset.family in FAMILIES
        assert preset.lora is None or preset.lora in LORA_KINDS
        assert preset.validated() == Preset(**{**preset.to_json(), "builtin": False})


def test_lcm_presets_cite_the_lcm_cards():
    assert "latent-consistency/lcm-lora-ssd-1b" in by_name("SSD-1B + LCM-LoRA").source
    assert "segmind/Segmind-VegaRT" in by_name("Vega + VegaRT").source


def test_default_preset_per_family():
    assert default_preset_for("ssd-1b").name == "SSD-1B"
    assert default_preset_for("segmind-vega").name == "Segmind Vega"
    assert default_preset_for("sdxl") is None
    assert default_preset_for("no such family") is None


# --- sizes ----------------------------------------------------------------------------------------------------------


def test_resolutions_are_1024_square_then_the_eight_sdxl_buckets():
    assert RESOLUTIONS[0] == (1024, 1024)
    assert set(RESOLUTIONS[1:]) == SDXL_BUCKETS
    assert len(RESOLUTIONS) == 9


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((512, 512), (1024, 1024)),
        ((1920, 1080), (1344, 768)),
        ((1080, 1920), (768, 1344)),
        ((1200, 800), (1216, 832)),
        ((3000, 1000), (1536, 640)),
        ((10, 1000), (640, 1536)),
        ((1152, 896), (1152, 896)),
    ],
)
def test_snap_to_bucket_picks_the_nearest_aspect_ratio(size, expected):
    assert snap_to_bucket(*size) == expected


def test_snap_to_bucket_breaks_ties_towards_the_larger_area(monkeypatch):
    monkeypatch.setattr(builtin, "RESOLUTIONS", ((512, 512), (1024, 1024), (768, 768)))
    assert snap_to_bucket(100, 100) == (1024, 1024)


def test_snap_to_bucket_refuses_non_positive_sizes():
    with pytest.raises(PresetError):
        snap_to_bucket(0, 1024)


@given(st.integers(64, 4096), st.integers(64, 4096))
def test_snapped_size_is_the_nearest_bucket_in_log_ratio(width, height):
    snapped = snap_to_bucket(width, height)
    assert snapped in RESOLUTIONS
    wanted = math.log(width / height)
    best = min(abs(math.log(w / h) - wanted) for w, h in RESOLUTIONS)
    assert abs(math.log(snapped[0] / snapped[1]) - wanted) == pytest.approx(best)
    assert snap_to_bucket(height, width) == swap_orientation(*snapped) or snapped == (1024, 1024)


def test_swap_orientation():
    assert swap_orientation(1216, 832) == (832, 1216)


# --- negative prompts -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "addition", "expected"),
    [
        ("", "ugly, blurry, poor quality", "ugly, blurry, poor quality"),
        ("text, watermark", "ugly, blurry", "text, watermark, ugly, blurry"),
        ("Blurry,  UGLY", "ugly, blurry, poor quality", "Blurry,  UGLY, poor quality"),
        ("text,", "ugly", "text, ugly"),
        ("text, \n", "ugly", "text, ugly"),
        ("(worst quality, low quality), text", "(worst quality, low quality)", "(worst quality, low quality), text"),
        ("worst quality", "(worst quality, low quality)", "worst quality, (worst quality, low quality)"),
        ("ugly blurry", "ugly", "ugly blurry, ugly"),
        ("a", "", "a"),
        ("keep   my spacing ", "keep my spacing", "keep   my spacing "),
        ("x", "ugly, ugly, UGLY", "x, ugly"),
    ],
)
def test_merge_negative(current, addition, expected):
    assert merge_negative(current, addition) == expected


def test_split_terms_keeps_bracketed_groups_and_treats_unmatched_brackets_as_text():
    assert split_terms("(a, b), [c, d], e") == ["(a, b)", "[c, d]", "e"]
    assert split_terms("(a, b") == ["(a", "b"]
    assert split_terms("a), b") == ["a)", "b"]
    assert split_terms(" , ,") == []


negative_text = st.text(alphabet=st.sampled_from(list("ab ,()[]<>{}\nÄßẞ")), max_size=40)


@given(negative_text, negative_text)
def test_merge_negative_is_idempotent(current, addition):
    once = merge_negative(current, addition)
    assert merge_negative(once, addition) == once


@given(negative_text, negative_text)
def test_merge_negative_never_loses_what_the_user_typed(current, addition):
    merged = merge_negative(current, addition)
    assert merged == current or merged.startswith(current.rstrip())


@given(negative_text, negative_text)
def test_merge_negative_leaves_every_added_term_in_place(current, addition):
    merged = merge_negative(current, addition)
    assert all(merge_negative(merged, term) == merged for term in split_terms(addition))


@given(negative_text)
def test_merging_a_prompt_into_itself_changes_nothing(text):
    assert merge_negative(text, text) == text


# --- samplers ---------------------------------------------------------------------------------------------------------


def test_v1_10_gets_sampler_and_scheduler_separately():
    assert sampler_for_host(by_name("SSD-1B quality"), SAMPLERS_V1_10, True) == ("DPM++ 2M", "Karras", [])
    assert sampler_for_host(by_name("SSD-1B"), SAMPLERS_V1_10, True) == ("UniPC", "Automatic", [])
    assert sampler_for_host(by_name("Vega + VegaRT"), SAMPLERS_V1_10, True) == ("LCM", "Automatic", [])


def test_v1_6_gets_the_combined_sampler_name():
    assert sampler_for_host(by_name("SSD-1B quality"), SAMPLERS_V1_6, False) == ("DPM++ 2M Karras", None, [])
    assert sampler_for_host(by_name("SSD-1B"), SAMPLERS_V1_6, False) == ("UniPC", None, [])


def test_a_combined_name_saved_on_v1_6_is_split_on_v1_9_and_later():
    preset = Preset("old", "ssd-1b", 30, 7, "DPM++ 2M Karras", None, "")
    assert sampler_for_host(preset, SAMPLERS_V1_10, True) == ("DPM++ 2M", "Karras", [])


def test_lcm_is_missing_before_v1_8_and_the_notes_say_so():
    sampler, scheduler, notes = sampler_for_host(by_name("SSD-1B + LCM-LoRA"), SAMPLERS_V1_6, False)
    assert (sampler, scheduler) == ("Euler a", None)
    assert notes == ["this WebUI has no LCM sampler (A1111 added it in v1.8.0): used Euler a instead"]
    assert sampler_for_host(by_name("SSD-1B + LCM-LoRA"), SAMPLERS_V1_8, False) == ("LCM", None, [])


def test_a_scheduler_a_v1_6_host_cannot_express_is_reported():
    preset = Preset("p", "ssd-1b", 30, 7, "UniPC", "Karras", "")
    sampler, scheduler, notes = sampler_for_host(preset, SAMPLERS_V1_6, False)
    assert (sampler, scheduler) == ("UniPC", None)
    assert "no separate scheduler field" in notes[0]


def test_unknown_sampler_without_fallback_keeps_the_hosts_first_one():
    preset = Preset("p", "ssd-1b", 30, 7, "Made Up", None, "")
    sampler, _, notes = sampler_for_host(preset, SAMPLERS_V1_10, True)
    assert sampler == "DPM++ 2M"
    assert "no Made Up sampler" in notes[0]


def test_sampler_names_match_case_insensitively():
    assert sampler_for_host(by_name("SSD-1B"), ["unipc"], True)[0] == "unipc"


# --- schema ---------------------------------------------------------------------------------------------------------

VALID = {
    "name": "mine",
    "family": "ssd-1b",
    "steps": 30,
    "cfg_scale": 7.5,
    "sampler": "Euler a",
    "scheduler": None,
    "negative_prompt": "ugly",
}


def test_a_minimal_preset_gets_the_defaults():
    preset = Preset.from_json(VALID)
    assert (preset.width, preset.height, preset.lora, preset.lora_weight, preset.builtin) == (
        1024,
        1024,
        None,
        1,
        False,
    )


def test_cfg_may_be_written_as_a_whole_number():
    assert Preset.from_json({**VALID, "cfg_scale": 7}).cfg_scale == 7.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": "30"}, "'steps' must be a whole number (got \"30\")"),
        ({"steps": 30.5}, "'steps' must be a whole number"),
        ({"steps": True}, "'steps' must be a whole number"),
        ({"steps": 0}, "'steps' must be between 1 and 150"),
        ({"cfg_scale": "7"}, "'cfg_scale' must be a number"),
        ({"cfg_scale": float("nan")}, "'cfg_scale' must be a number"),
        ({"cfg_scale": 31}, "'cfg_scale' must be between 0 and 30"),
        ({"width": 1020}, "'width' must be a multiple of 8"),
        ({"height": 4096}, "'height' must be between 64 and 2048"),
        ({"family": "sd3"}, "'family' must be one of"),
        ({"lora": "some-lora"}, "'lora' must be one of"),
        ({"name": ""}, "'name' must not be empty"),
        ({"name": " padded"}, "'name' must not start or end with spaces"),
        ({"name": "two\nlines"}, "'name' must be one line"),
        ({"name": "x" * 101}, "'name' must be at most 100 characters"),
        ({"name": 5}, "'name' must be text"),
        ({"negative_prompt": ["a"]}, "'negative_prompt' must be text"),
        ({"sampler": " "}, "'sampler' must not be empty"),
        ({"colour": "red"}, "unknown field(s) 'colour'"),
    ],
)
def test_wrong_values_are_refused_with_a_clear_message(change, message):
    with pytest.raises(PresetError) as caught:
        Preset.from_json({**VALID, **change})
    assert message in str(caught.value)


def test_missing_required_fields_are_named():
    with pytest.raises(PresetError, match="'steps' is missing"):
        Preset.from_json({key: value for key, value in VALID.items() if key != "steps"})


def test_a_preset_must_be_an_object():
    with pytest.raises(PresetError, match="must be a JSON object, got a list"):
        Preset.from_json([1, 2])


def test_builtin_flag_in_data_is_ignored():
    assert Preset.from_json({**VALID, "builtin": True}).builtin is False


@pytest.mark.parametrize("name", ["<img src=x onerror=alert(1)>", "../../etc/passwd", "日本語 ✨ preset", "a/b\\c"])
def test_any_one_line_text_is_a_valid_name(name):
    assert Preset.from_json({**VALID, "name": name}).name == name


# --- infotext ---------------------------------------------------------------------------------------------------------


def test_infotext_round_trip():
    entries = preset_to_infotext(by_name("SSD-1B + LCM-LoRA"), "lcm-lora-ssd-1b")
    assert entries == {"SSD-1B preset": "SSD-1B + LCM-LoRA", "SSD-1B LCM-LoRA": "lcm-lora-ssd-1b"}
    assert preset_from_infotext(entries) == "SSD-1B + LCM-LoRA"
    assert preset_to_infotext(by_name("SSD-1B")) == {"SSD-1B preset": "SSD-1B"}


def test_infotext_as_v1_6_parses_it():
    assert preset_from_infotext({"1B preset": "Segmind Vega"}) == "Segmind Vega"
    assert preset_from_infotext({"Steps": "20"}) is None
    assert preset_from_infotext({"SSD-1B preset": "  "}) is None
