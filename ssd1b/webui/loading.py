"""Model-load hooks: give each distilled SDXL its own structure, prune it on meta, verify every load.

What A1111 does by itself (v1.7 … v1.10.1, dev): it builds every SDXL-family checkpoint from `sd_xl_base.yaml`,
marks a model `is_ssd` when the middle block has no attention, deletes SSD-1B's fixed list of blocks
(`convert_sdxl_to_ssd`) and loads with `strict=False`. Any other depth (Vega, …) silently gets zeros; switching
SSD-1B → SDXL reuses the pruned model ("same config"); v1.6.0 knows no distilled model at all.

What these hooks do instead (nothing runs at import time; `install()` / `uninstall()` are idempotent):

- `sd_models_config.find_checkpoint_config` — when the host chose its SDXL base config for a distilled checkpoint,
  answer with a copy of that config named after the family and depth signature. A1111 compares config paths to
  decide between rebuilding and reusing, so every change of structure now rebuilds, and equal structures reuse.
- `sd_models.load_model_weights` — before the host touches the model: refuse what pruning SDXL cannot build
  (KOALA), prune a freshly built (meta) UNet to the checkpoint's depth signature, mark the model so the host's fixed
  pruning does not run again, and require the UNet's keys to equal the checkpoint's. After the host loaded: check
  again, set the SDXL-family flags, record the report and log one line.
- `sd_models.reload_model_weights` — refuse an unbuildable checkpoint from its safetensors header before the host
  unloads the current model, so a refused switch leaves the loaded model in place; refuse any switch while a LoRA
  training holds the model (`ssd1b.webui.train.running`).
- `sd_hijack.model_hijack.convert_sdxl_to_ssd` (v1.7+) — a no-op for models whose structure this module decided.

On Forge nothing is patched: Forge builds distilled UNets itself.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ssd1b import inspect as inspector
from ssd1b.convert.pipeline import pipeline_of_part
from ssd1b.families import UNET_PREFIX, Classification, DepthSignature, KeyIndex, classify_index, signature_from_keys
from ssd1b.log import PREFIX, logger
from ssd1b.prune import KeyDiff, PruneError, count_parameters, prune_unet, unet_key_diff
from ssd1b.unet_config import StructureError, UNetStructure, network_params, rewrite_network_params, structure_of
from ssd1b.webui import host
from ssd1b.webui.patching import Patches

SIGNATURE_ATTR = "ssd1b_signature"
"""Set on a model whose UNet structure this module decided; the host's fixed SSD-1B pruning skips it."""
REPORT_ATTR = "ssd1b_load_report"
HOOK_MARK = "_ssd1b_hook"

# `sd_models_config` names of the host's SDXL base configs (v-prediction exists on dev only).
SDXL_BASE_CONFIG_NAMES = ("config_sdxl", "config_sdxlv")
# Families whose UNet keys must equal the checkpoint's exactly; anything else is only reported.
VERIFIED_ARCHITECTURES = frozenset({"sdxl", "sdxl-inpaint", "sdxl-refiner", "koala"})
SDXL_FAMILY_ARCHITECTURES = frozenset({"sdxl", "koala"})
"""Built on sgm's SDXL UNet and conditioner: `is_sdxl`, and for distilled ones `is_ssd` / ModelType.SSD."""
SDXL_TEXT_ENCODER_PREFIX = "conditioner.embedders."
SDXL_SECOND_TEXT_ENCODER = "conditioner.embedders.1."
# `model.model_type` by whether the family is distilled (only where `sd_models.ModelType` exists).
MODEL_TYPE_BY_DISTILLED = {True: "SSD", False: "SDXL"}
CONFIG_SUBDIR = ("cache", "ssd1b")


class ModelLoadError(RuntimeError):
    """A checkpoint does not fit the model built for it; raised instead of loading it into the wrong structure."""


class UnsupportedModelError(ModelLoadError):
    """A checkpoint of a family that pruning SDXL cannot build."""


class ModelSwitchRefusedError(ModelLoadError):
    """A switch asked for while a LoRA training holds the loaded model (`ssd1b.webui.train`)."""


_patches = Patches(HOOK_MARK, lambda: _installed)
_installed = False


def install() -> None:
    """Patch the host's model loading (once; nothing on Forge)."""
    global _installed
    if _installed:
        return
    _installed = True
    if host.probe().manages_loading:
        logger.info("Forge detected: model loading is left to Forge")
        return
    try:
        _patch_host()
    except AttributeError as error:  # a fork without the functions we hook: leave its loading alone
        uninstall()
        logger.info(f"model loading hooks not installed, this host lacks {error.name or error}")


def _patch_host() -> None:
    from modules import sd_hijack, sd_models, sd_models_config

    _patches.wrap(sd_models_config, "find_checkpoint_config", _find_checkpoint_config)
    _patches.wrap(sd_models, "load_model_weights", _load_model_weights)
    _patches.wrap(sd_models, "reload_model_weights", _reload_model_weights)
    if host.probe().has_native_ssd:
        _patches.wrap(sd_hijack.model_hijack, "convert_sdxl_to_ssd", _convert_sdxl_to_ssd)


def uninstall() -> None:
    """Put back every original the install replaced (where nobody has wrapped it since)."""
    global _installed
    _installed = False
    _patches.restore_all()


def is_installed() -> bool:
    return _installed


def current_report() -> dict[str, Any] | None:
    """The load report of the model A1111 currently uses, or None (nothing loaded, or loaded before install)."""
    from modules import sd_models

    model = getattr(sd_models.model_data, "sd_model", None)
    report = getattr(model, REPORT_ATTR, None) if model is not None else None
    return copy.deepcopy(report) if report is not None else None


# --- hooks ------------------------------------------------------------------------------------------------------


def _find_checkpoint_config(original: Callable[..., str], state_dict: Mapping[str, Any], info: Any) -> str:
    config = original(state_dict, info)
    if state_dict is None or not _is_sdxl_base_config(config):
        return config  # a config the user placed next to the checkpoint, or not SDXL: the host's choice stands
    index = _index(_shapes(state_dict))
    checkpoint = classify_index(index)
    family = checkpoint.info
    structure = _generated_structure(checkpoint, index)
    if checkpoint.depths is None or not (structure is not None or (family.distilled and family.prunable)):
        return config
    try:
        return distilled_config(config, checkpoint.family, checkpoint.depths, structure)
    except (OSError, ModelLoadError, StructureError) as error:  # the load still verifies: a wrong build is refused
        logger.info(f"warning: no config of its own for {family.label} ({error}); using {config}")
        return config


def _load_model_weights(original: Callable[..., Any], model: Any, checkpoint_info: Any, state_dict: Any, timer: Any):
    if state_dict is None:  # the host's "restore previous" path: read it the way the original would
        from modules import sd_models

        state_dict = sd_models.get_checkpoint_state_dict(checkpoint_info, timer)
    shapes = _shapes(state_dict)
    index = _index(shapes)
    checkpoint = classify_index(index)
    _refuse_unbuildable(checkpoint, index, _title(checkpoint_info), getattr(checkpoint_info, "filename", None))
    checkpoint_keys = [key for key in shapes if key.startswith(UNET_PREFIX)]  # the host consumes state_dict
    verified = _is_verified(checkpoint, shapes)
    if verified:
        _fit_unet(model, checkpoint, index, _title(checkpoint_info))
        _require_exact(model, checkpoint_keys, checkpoint, _title(checkpoint_info))
        setattr(model, SIGNATURE_ATTR, checkpoint.depths)

    result = original(model, checkpoint_info, state_dict, timer)

    report = _report(model, checkpoint_keys, checkpoint, _title(checkpoint_info))
    if verified:
        _require_exact(model, checkpoint_keys, checkpoint, _title(checkpoint_info))
        _set_flags(model, checkpoint)
    setattr(model, REPORT_ATTR, report)
    logger.info(_log_line(report, checkpoint))
    return result


def _reload_model_weights(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    _preflight(*args, **kwargs)
    return original(*args, **kwargs)


def _convert_sdxl_to_ssd(original: Callable[..., Any], model: Any) -> Any:
    if getattr(model, SIGNATURE_ATTR, None) is not None:
        return None  # already pruned to the checkpoint's exact depths
    return original(model)


# --- before the host builds or loads ----------------------------------------------------------------------------


def _preflight(sd_model: Any = None, info: Any = None, *_: Any, **__: Any) -> None:
    """Refuse an unbuildable checkpoint before `reload_model_weights` unloads the current model."""
    from modules import sd_models

    current = sd_model or sd_models.model_data.sd_model
    try:
        checkpoint_info = info or sd_models.select_checkpoint()
    except Exception:  # no checkpoint at all: the host says so itself
        return
    if current is not None and getattr(current, "sd_model_checkpoint", None) == checkpoint_info.filename:
        return
    from ssd1b.webui.train import running

    training = running.reason()
    if training is not None:
        raise ModelSwitchRefusedError(f"{training} (asked for {_title(checkpoint_info)})")
    found = _read_file(checkpoint_info.filename)
    if found is not None:
        _refuse_unbuildable(found[0], found[1], _title(checkpoint_info), checkpoint_info.filename)


def classify_file(filename: str | None) -> Classification | None:
    """Classification from a safetensors header (no tensor read, cached per file version); None for other formats
    or unreadable files."""
    return inspector.cached_classification(filename)


def _read_file(filename: str | None) -> tuple[Classification, KeyIndex] | None:
    return inspector.cached_index(filename)


def _refuse_unbuildable(checkpoint: Classification, index: KeyIndex, title: str, filename: str | None) -> None:
    reason = refusal(checkpoint, index, title, filename)
    if reason is not None:
        raise UnsupportedModelError(f"{PREFIX} {reason}")


def refusal(checkpoint: Classification, index: KeyIndex, title: str, filename: str | None = None) -> str | None:
    """Why this extension will not let the host load `checkpoint`, or None when it may."""
    part = pipeline_of_part(Path(filename)) if filename else None
    if part is not None:
        return (
            f"{title} is the {part[1]} of the diffusers pipeline {part[0].name}, not a checkpoint: A1111 loads single "
            "files. Convert the pipeline (SSD-1B panel → Diffusers pipelines, or POST /ssd1b/v1/convert) and pick "
            "the converted file."
        )
    family = checkpoint.info
    if not _wants_generated_config(checkpoint, index):
        return None
    try:
        structure_of(index)
    except StructureError as error:
        return (
            f"{title} ({family.label}) is not loaded: its UNet cannot be built exactly, {error}. "
            "A1111 would build an SDXL UNet and leave the blocks it cannot match random or zero."
        )
    return None


def _wants_generated_config(checkpoint: Classification, index: KeyIndex) -> bool:
    """KOALA-like families, and any UNet no family matches that comes with SDXL's two text encoders."""
    if checkpoint.info.configured:
        return True
    return checkpoint.family == "unknown" and index.has_prefix(SDXL_SECOND_TEXT_ENCODER)


def _generated_structure(checkpoint: Classification, index: KeyIndex) -> UNetStructure | None:
    """The structure to generate a config for, or None when the host's SDXL config (pruned or not) serves."""
    if not _wants_generated_config(checkpoint, index):
        return None
    try:
        return structure_of(index)
    except StructureError:
        return None  # refused in load_model_weights with the reason


def refusal_for_title(title: str) -> str | None:
    """`refusal` for a checkpoint of the host's model list named as the API names it (title, file name, hash);
    None for one the host does not know (its own answer stands) or that is not a readable safetensors file."""
    if not _installed or host.probe().manages_loading:
        return None
    from modules import sd_models

    info = sd_models.get_closet_checkpoint_match(title)
    found = _read_file(info.filename) if info is not None else None
    return refusal(found[0], found[1], _title(info), info.filename) if found is not None else None


def distilled_config(
    source: str, family: str, signature: DepthSignature, structure: UNetStructure | None = None
) -> str:
    """A copy of the host's SDXL config, one path per (family, depth signature, host config); with `structure`,
    its `network_config` builds that UNet (`ssd1b.unet_config`)."""
    text = Path(source).read_text(encoding="utf-8")
    note = "its own path makes A1111 rebuild the model when the UNet structure changes"
    if structure is not None:
        params = network_params(structure)
        text = rewrite_network_params(text, params)
        note += f"; network_config set to {params}"
    digest = hashlib.sha256(f"{signature.short()}\n{text}".encode()).hexdigest()[:10]
    content = f"# Written by sd-webui-ssd1b: {family}, depths {signature.short()}.\n# A copy of {source}; {note}.\n"
    content += text
    return str(_write_if_changed(config_dir() / f"ssd1b-{family}-{digest}.yaml", content))


def config_dir() -> Path:
    """`<webui data dir>/cache/ssd1b`, or a temporary folder when that is not writable."""
    from modules import paths

    for candidate in (Path(paths.data_path).joinpath(*CONFIG_SUBDIR), Path(tempfile.gettempdir()) / "ssd1b"):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    raise ModelLoadError(f"{PREFIX} no writable folder for the distilled model configs")


def _write_if_changed(path: Path, content: str) -> Path:
    if path.is_file() and path.read_text(encoding="utf-8") == content:
        return path
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(content, encoding="utf-8")
    os.replace(partial, path)
    return path


def _is_sdxl_base_config(config: str) -> bool:
    from modules import sd_models_config

    candidates = (getattr(sd_models_config, name, None) for name in SDXL_BASE_CONFIG_NAMES)
    return any(candidate and _same_path(candidate, config) for candidate in candidates)


def _same_path(first: str, second: str) -> bool:
    return os.path.normcase(os.path.abspath(first)) == os.path.normcase(os.path.abspath(second))


# --- shaping and verifying the UNet -----------------------------------------------------------------------------


def _is_verified(checkpoint: Classification, shapes: Mapping[str, Any]) -> bool:
    """SDXL-family checkpoints must fit exactly; other models are reported only (the host's behaviour stands)."""
    has_sdxl_text_encoders = any(key.startswith(SDXL_TEXT_ENCODER_PREFIX) for key in shapes)
    return checkpoint.info.architecture in VERIFIED_ARCHITECTURES or has_sdxl_text_encoders


def _fit_unet(model: Any, checkpoint: Classification, index: KeyIndex, title: str) -> None:
    """Prune a freshly built UNet to the checkpoint's depths (a loaded model keeps its structure)."""
    unet = _unet(model)
    target = checkpoint.depths
    shaped_here = checkpoint.info.prunable or _wants_generated_config(checkpoint, index)
    if unet is not None and target is not None and shaped_here and _is_fresh(model):
        current = signature_from_keys(name for name, _ in unet.named_parameters())
        if current != target:
            try:
                prune_unet(unet, target)
            except PruneError as error:
                raise ModelLoadError(
                    f"{PREFIX} {title} ({checkpoint.info.label}) cannot be built from the model A1111 made "
                    f"for it: {error}"
                ) from error


def _require_exact(model: Any, checkpoint_keys: list[str], checkpoint: Classification, title: str) -> None:
    diff = unet_key_diff(_model_unet_keys(model), checkpoint_keys)
    if not diff.exact:
        raise ModelLoadError(_mismatch_message(diff, model, checkpoint, title))


def _mismatch_message(diff: KeyDiff, model: Any, checkpoint: Classification, title: str) -> str:
    model_depths = signature_from_keys(_model_unet_keys(model))
    depths = (
        f" Checkpoint depths {checkpoint.depths.short()}, model depths {model_depths.short()}."
        if checkpoint.depths is not None and model_depths is not None and model_depths != checkpoint.depths
        else ""
    )
    return (
        f"{PREFIX} {title} ({checkpoint.info.label}) does not fit the UNet built for it: "
        f"{_count_and_first(diff.missing, 'missing')}, {_count_and_first(diff.unexpected, 'unexpected')}.{depths} "
        "Not loaded: with strict=False the missing weights would stay zero and the images would be noise."
    )


def _count_and_first(keys: list[str], what: str) -> str:
    return f"{len(keys)} {what} key(s)" + (f" (first: {keys[0]})" if keys else "")


def _report(model: Any, checkpoint_keys: Iterable[str], checkpoint: Classification, title: str) -> dict[str, Any]:
    diff = unet_key_diff(_model_unet_keys(model), checkpoint_keys)
    unet = _unet(model)
    return {
        "checkpoint": title,
        "family": checkpoint.family,
        "label": checkpoint.info.label,
        "distilled": checkpoint.info.distilled,
        "depths": checkpoint.depths.to_json() if checkpoint.depths is not None else None,
        "unet_params": count_parameters(unet) if unet is not None else 0,
        "missing": diff.missing,
        "unexpected": diff.unexpected,
    }


def _log_line(report: Mapping[str, Any], checkpoint: Classification) -> str:
    missing, unexpected = report["missing"], report["unexpected"]
    line = (
        f"{PREFIX} {checkpoint.info.label} UNet: {report['unet_params']:,} parameters, "
        f"{len(missing)} missing / {len(unexpected)} unexpected keys ({report['checkpoint']})"
    )
    if missing or unexpected:
        line += f"; {_count_and_first(missing, 'missing')}, {_count_and_first(unexpected, 'unexpected')}"
    return line


def _set_flags(model: Any, checkpoint: Classification) -> None:
    """The flags A1111 and extensions read: an SDXL-family model, distilled ones marked SSD where the host can."""
    if checkpoint.info.architecture not in SDXL_FAMILY_ARCHITECTURES:
        return
    distilled = checkpoint.info.distilled
    model.is_sdxl = True
    info = host.probe()
    if info.has_native_ssd:
        model.is_ssd = distilled
    if info.has_model_type:
        from modules import sd_models

        model.model_type = getattr(sd_models.ModelType, MODEL_TYPE_BY_DISTILLED[distilled])


# --- small helpers ----------------------------------------------------------------------------------------------


def _shapes(state_dict: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Keys with the UNet's shapes; other values are not touched (they may be loaded lazily)."""
    return {key: _shape(state_dict[key]) if key.startswith(UNET_PREFIX) else () for key in state_dict}


def _index(shapes: Mapping[str, tuple[int, ...]]) -> KeyIndex:
    return KeyIndex(list(shapes), list(shapes.values()))


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(getattr(value, "shape", ()))


def _unet(model: Any) -> Any:
    return getattr(getattr(model, "model", None), "diffusion_model", None)


def _model_unet_keys(model: Any) -> list[str]:
    unet = _unet(model)
    return list(unet.state_dict(prefix=UNET_PREFIX)) if unet is not None else []


def _is_fresh(model: Any) -> bool:
    """Built by `load_model` and not loaded yet (the host sets `sd_checkpoint_info` at the end of a load)."""
    return not hasattr(model, "sd_checkpoint_info")


def _title(checkpoint_info: Any) -> str:
    return str(getattr(checkpoint_info, "title", None) or getattr(checkpoint_info, "filename", "?"))
