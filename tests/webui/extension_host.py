"""Third-party extensions loaded into the fake A1111 the way A1111 loads them, and a generation that runs their
Script hooks and ours, for the adapter tests of `ssd1b.webui.extensions`.

As in `modules/scripts.py` (v1.6.0 … v1.10.1): each `scripts/*.py` of an extension folder is executed under its
file name (`spec_from_file_location(basename, path)`, not put in `sys.modules`) with the extension's root first on
`sys.path` (so its `import scripts.x` makes the `sys.modules` copy that runs), and every Script subclass found in it
is registered in `modules.scripts.scripts_data` as `ScriptClassData(script_class, path, basedir, module)`.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from torch import nn

from tests import synthetic
from tests.metatree import build_meta_tree

FAKE_EXTENSIONS = Path(__file__).resolve().parents[1] / "fakeextensions"
FORGE_BUILTINS = Path(__file__).resolve().parents[1] / "fakewebui" / "forge" / "extensions-builtin"
HOST_BUILTINS = Path(__file__).resolve().parents[1] / "fakewebui" / "extensions-builtin"
EXTENSION_ROOTS = (FAKE_EXTENSIONS, FORGE_BUILTINS)
"""Where fake third-party extensions and Forge's built-ins live (A1111's built-ins, HOST_BUILTINS, are on `sys.path`
for every test, and their modules dropped after it: tests/webui/conftest.py)."""
UNETS = {
    "sdxl": synthetic.sdxl_unet,
    "ssd-1b": synthetic.ssd_1b_unet,
    "segmind-vega": synthetic.vega_unet,
    "koala-700m": lambda: synthetic.koala_unet("700m"),
    "koala-1b": lambda: synthetic.koala_unet("1b"),
}


def model(family: str) -> Any:
    """A loaded model as the adapters see it: `model` (sgm's DiffusionWrapper, a module) holding `diffusion_model`,
    the UNet's real module tree on meta."""
    unet = build_meta_tree(UNETS[family](), prefix="model.diffusion_model.")
    if not hasattr(unet, "middle_block"):  # KOALA-700M: ssd1b.prune leaves an empty middle block, as DeepCache needs
        unet.middle_block = nn.Sequential()
    wrapper = nn.Module()
    wrapper.diffusion_model = unet
    return SimpleNamespace(model=wrapper, is_sdxl=True)


@dataclass
class LoadedExtension:
    root: Path
    modules: dict[str, ModuleType] = field(default_factory=dict)
    """`scripts/<file>.py` → the module A1111 executed."""

    def script_class(self, title: str) -> type:
        for module in self.modules.values():
            for value in vars(module).values():
                if inspect.isclass(value) and value.__module__ == module.__name__ and _title_of(value) == title:
                    return value
        raise LookupError(title)


def _title_of(cls: type) -> str | None:
    try:
        return cls().title()
    except Exception:
        return None


def load_extension(webui: Any, folder: str, base: Path = FAKE_EXTENSIONS) -> LoadedExtension:
    """Execute `<base>/<folder>/scripts/*.py` (base: `FAKE_EXTENSIONS`, `FORGE_BUILTINS` or `HOST_BUILTINS`) as A1111
    does and register their Script classes."""
    scripts = webui.module("scripts")
    root = base / folder
    loaded = LoadedExtension(root)
    sys.path.insert(0, str(root))
    try:
        for path in sorted((root / "scripts").glob("*.py")):
            spec = importlib.util.spec_from_file_location(path.name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded.modules[path.name] = module
            for value in vars(module).values():
                if _is_script_class(value, scripts.Script, module):
                    scripts.scripts_data.append(scripts.ScriptClassData(value, str(path), str(root), module))
    finally:
        sys.path.remove(str(root))
    return loaded


def _is_script_class(value: Any, base: type, module: ModuleType) -> bool:
    return (
        inspect.isclass(value) and issubclass(value, base) and value is not base and value.__module__ == module.__name__
    )


def forget_extension_modules() -> None:
    """Drop the `scripts.*` copies and the root modules a fake extension made (each test loads afresh)."""
    for name in list(sys.modules):
        module = sys.modules[name]
        path = str(getattr(module, "__file__", ""))
        if name == "scripts" or name.startswith("scripts.") or any(path.startswith(str(r)) for r in EXTENSION_ROOTS):
            del sys.modules[name]


def runner(webui: Any, *script_classes: type, is_img2img: bool = False) -> Any:
    """A ScriptRunner holding our Script and the given ones (always-visible, in this order), with their argument
    ranges laid out as the host lays them out when it builds the UI."""
    scripts = webui.module("scripts")
    ours = webui.module("ssd1b.webui.script").Ssd1bScript
    result = scripts.ScriptRunner()
    position = 1
    for cls in (ours, *script_classes):
        script = cls()
        script.is_img2img, script.alwayson, script.filename = is_img2img, True, _path_of(scripts, cls)
        script.tabname = "img2img" if is_img2img else "txt2img"
        controls = _controls(script, cls is ours)
        script.args_from, script.args_to = position, position + len(controls)
        script.default_args = controls
        position = script.args_to
        result.scripts.append(script)
        result.alwayson_scripts.append(script)
    return result


def _path_of(scripts: Any, cls: type) -> str:
    found = (data.path for data in scripts.scripts_data if data.script_class is cls)
    return next(found, str(Path(__file__).resolve().parents[2] / "scripts" / "ssd1b.py"))


def _controls(script: Any, ours: bool) -> list[Any]:
    if ours:
        return [False, "", False]  # enabled, preset, apply_at_generation (the panel needs gradio)
    return list(script.ui(script.is_img2img) or [])


def generate(
    webui: Any,
    sd_model: Any,
    scripts: Any,
    args: dict[str, list[Any]] | None = None,
    *,
    prompt: str = "a lighthouse",
    attributes: dict[str, Any] | None = None,
    sampling: Callable[[Any], Any] | None = None,
    **fields: Any,
) -> tuple[Any, str]:
    """A txt2img through the host's process_images with `scripts` on `sd_model` (also `shared.sd_model`): `args` by
    title replace each script's defaults, `fields` are the processing object's (4 steps unless given), `attributes`
    are set on `p` after it is made (as XYZ or the API would); `sampling(p)`, if given, runs where the host samples
    and decodes (the extensions' per-generation hooks are on then; their `postprocess` takes them off). Returns
    (p, infotext)."""
    processing = webui.module("processing")
    p = processing.StableDiffusionProcessingTxt2Img(**{"prompt": prompt, "steps": 4, **fields})
    p.sd_model = webui.module("shared").sd_model = sd_model
    for name, value in (attributes or {}).items():
        setattr(p, name, value)
    if sampling is not None:
        p.sample = lambda: sampling(p)
    p.scripts = scripts
    values: list[Any] = [None]
    for script in scripts.alwayson_scripts:
        values += list((args or {}).get(script.title(), script.default_args))
    p.script_args = tuple(values)
    infotext = processing.process_images(p)
    return p, infotext
