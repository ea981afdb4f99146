"""What every third-party extension adapter shares: its life cycle, finding the extension as A1111 loaded it, its
version, the loaded UNet's layout, stopping a feature for one generation, and saying so.

How A1111 (v1.6.0 … v1.10.1, and Forge) loads an extension: each `scripts/*.py` is executed under its file name,
outside `sys.modules` (reach it through `modules.scripts.scripts_data`), with the extension's root first on
`sys.path`, so what those scripts import (`scripts.attention`, `motion_module`, …) is a second copy that *is* in
`sys.modules`, and that copy is what runs. Adapters patch the copy that runs, only while this extension is
installed, and put everything back on uninstall. An extension may load after this one: adapters are applied when
this extension is installed and again once the app has started.

A feature that would break on the loaded model is stopped for one generation (`set_script_arg` rewrites that
script's argument in `p.script_args`, which the host slices again before every later hook; never the objects in
it), and `say` tells the user: one console line, a comment under the image and an infotext entry
`SSD-1B <feature>: <what happened>`. Per-generation state is kept beside `p`, never on it: Distributed sends
`p.__dict__` to its workers as JSON.
"""

from __future__ import annotations

import contextlib
import os
import sys
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ssd1b.log import logger
from ssd1b.unet_layout import UNetLayout, unet_layout
from ssd1b.webui.patching import Patches

INFOTEXT_PREFIX = "SSD-1B"
UNKNOWN_VERSION = "unknown version"


@dataclass(frozen=True)
class Found:
    """An extension as this process has it: its version, and what the adapter will patch."""

    version: str
    modules: dict[str, Any]


class ExtensionAdapter:
    """One third-party extension. Subclasses set `name` (as users know it) and implement `probe()` (find it and read
    its version, in one place) and `patch(found)` (wrap through `self.patches`; return what was done, one line);
    they may implement `before_process(p)`, `process(p)` and `describe(layout)` (what the panel says before a
    generation, for a model the extension does not fully apply to)."""

    name = "an extension"

    def __init__(self) -> None:
        self.patches = Patches(f"__ssd1b_{type(self).__name__}__", lambda: self.installed)
        self.installed = False
        self.found: Found | None = None
        self.problem: str | None = None

    # --- for subclasses
    def probe(self) -> Found | None:
        raise NotImplementedError

    def patch(self, found: Found) -> str:
        raise NotImplementedError

    def before_process(self, p: Any) -> None:
        """Before the host applies `override_settings`: only what must change them."""

    def process(self, p: Any) -> None:
        """With `p.sd_model` final, before any `process_batch` / `process_before_every_sampling`."""

    def describe(self, layout: UNetLayout) -> str | None:
        """What this extension does on `layout` when it does not fully apply (None: it does, or it is absent)."""
        return None

    # --- life cycle
    def install(self) -> None:
        self.installed = True
        self.apply()

    def apply(self) -> None:
        """Patch the extension if it is loaded and not patched yet; one console line says what was done or why not
        (the registry names the absent ones, once)."""
        if not self.installed or self.patches or (self.found is not None and self.problem is None):
            return  # patched already (an adapter that only acts in `process` has nothing to wrap)
        self.found = self.probe()
        if self.found is None:
            return
        try:
            done = self.patch(self.found)
        except (AttributeError, KeyError, TypeError) as error:  # another version, shaped otherwise: leave all of it
            self.patches.restore_all()
            self.problem = f"{self.name} {self.found.version} not adapted, it lacks {error}"
            logger.info(self.problem)
            return
        self.problem = None
        logger.info(f"{self.name} {self.found.version}: {done}")

    def uninstall(self) -> None:
        self.patches.restore_all(lambda name: logger.info(f"{name} was wrapped again; ours passes straight through"))
        self.installed = False
        self.found = None

    @property
    def active(self) -> bool:
        """Installed, and the extension found and patched."""
        return self.installed and self.found is not None and self.problem is None


# --- finding an extension ------------------------------------------------------------------------------------------


def runtime_module(name: str) -> ModuleType | None:
    """The copy of an extension's module that runs (`scripts.attention`, `motion_module`, …), if loaded."""
    module = sys.modules.get(name)
    return module if isinstance(module, ModuleType) else None


def script_module(filename: str) -> ModuleType | None:
    """The module A1111 loaded from an extension's `scripts/<filename>` (not in `sys.modules`), if any."""
    try:
        from modules import scripts
    except ImportError:
        return None
    for data in getattr(scripts, "scripts_data", ()):
        if os.path.basename(getattr(data, "path", "")) == filename and getattr(data, "module", None) is not None:
            return data.module
    return None


def loaded_scripts(title: str) -> list[Any]:
    """The Script instances titled `title` (case-insensitively) in txt2img and img2img."""
    try:
        from modules import scripts
    except ImportError:
        return []
    found = []
    for runner in (getattr(scripts, "scripts_txt2img", None), getattr(scripts, "scripts_img2img", None)):
        for script in getattr(runner, "scripts", None) or ():
            if _title(script).lower() == title.lower():
                found.append(script)
    return found


def script_in(p: Any, title: str) -> Any | None:
    """The Script titled `title` among the scripts that run for `p`."""
    runner = getattr(p, "scripts", None)
    return next((s for s in getattr(runner, "scripts", None) or () if _title(s).lower() == title.lower()), None)


def _title(script: Any) -> str:
    try:
        return str(script.title())
    except Exception:  # another extension's title() failing must not stop ours
        return ""


def git_version(path: str | os.PathLike[str] | None) -> str:
    """The short commit of the git checkout holding `path` (walking up: worktrees, submodules and symlinked
    folders included), read from `.git` without running git; `UNKNOWN_VERSION` when there is none."""
    folder = Path(path).resolve() if path else None
    while folder is not None and folder != folder.parent:
        commit = _commit_of(folder / ".git")
        if commit:
            return commit[:8]
        folder = folder.parent
    return UNKNOWN_VERSION


def _commit_of(dot_git: Path) -> str | None:
    if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = _read(dot_git)
        if not text.startswith("gitdir:"):
            return None
        dot_git = (dot_git.parent / text.removeprefix("gitdir:").strip()).resolve()
    head = _read(dot_git / "HEAD")
    if not head.startswith("ref:"):
        return head or None
    ref = head.removeprefix("ref:").strip()
    for folder in _ref_folders(dot_git):
        commit = _read(folder / ref) or _packed_ref(folder, ref)
        if commit:
            return commit
    return None


def _ref_folders(dot_git: Path) -> tuple[Path, ...]:
    """Where the branches are: the git dir, and for a linked worktree the main repository's (its `commondir`)."""
    common = _read(dot_git / "commondir")
    return (dot_git, (dot_git / common).resolve()) if common else (dot_git,)


def _packed_ref(dot_git: Path, ref: str) -> str | None:
    for line in _read(dot_git / "packed-refs").splitlines():
        commit, _, name = line.partition(" ")
        if name == ref:
            return commit
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def probe_script_class(filename: str, class_name: str, key: str | None = None) -> Found | None:
    """The usual probe: the module A1111 loaded from an extension's `scripts/<filename>` (as "module") and the class
    an adapter patches in it (as `key`, by default its name), with the checkout's version; None when either is
    absent."""
    module = script_module(filename)
    script_class = getattr(module, class_name, None)
    if script_class is None:
        return None
    return Found(git_version(module_path(module)), {"module": module, key or class_name: script_class})


def module_path(module: ModuleType | None) -> str | None:
    return getattr(module, "__file__", None) if module is not None else None


# --- the loaded model ----------------------------------------------------------------------------------------------

_layouts: weakref.WeakKeyDictionary[Any, UNetLayout | None] = weakref.WeakKeyDictionary()


def unet_of(model: Any) -> Any | None:
    """The UNet module of a loaded model: A1111's `model.diffusion_model`, Forge's `forge_objects.unet.model
    .diffusion_model`."""
    found = getattr(getattr(model, "model", None), "diffusion_model", None)
    if found is None:
        unet = getattr(getattr(model, "forge_objects", None), "unet", None)
        found = getattr(getattr(unet, "model", None), "diffusion_model", None)
    return found


def layout_of(model: Any) -> UNetLayout | None:
    """The loaded model's UNet layout (read once per UNet object)."""
    return layout_of_unet(unet_of(model))


def layout_of_unet(unet: Any) -> UNetLayout | None:
    """The layout of a UNet module (`diffusion_model`), read once per UNet object."""
    if unet is None:
        return None
    with contextlib.suppress(KeyError, TypeError):  # TypeError: not weak-referenceable, never cached
        return _layouts[unet]
    layout = unet_layout((name, tuple(value.shape)) for name, value in unet.named_parameters())
    with contextlib.suppress(TypeError):
        _layouts[unet] = layout
    return layout


def blocks_renumbered(layout: UNetLayout) -> bool:
    """A distilled SDXL whose blocks are not numbered as SDXL's (KOALA: 6 input and 6 output blocks), so an SDXL
    block index or id names another block there, or none."""
    return layout.distilled and not layout.sdxl_numbering


def current_model() -> Any | None:
    """The loaded model, without the host's lazy loader."""
    try:
        from modules import sd_models
    except ImportError:
        return None
    return getattr(getattr(sd_models, "model_data", None), "sd_model", None)


# --- one generation --------------------------------------------------------------------------------------------------

_said: weakref.WeakKeyDictionary[Any, set[tuple[str, str]]] = weakref.WeakKeyDictionary()


def set_script_arg(p: Any, script: Any, offset: int, value: Any) -> Any:
    """Rewrite argument `offset` of `script` for this generation only (later hooks of `p` see it); returns the old."""
    args = list(getattr(p, "script_args", ()) or ())
    position = int(script.args_from) + offset
    old = args[position] if position < len(args) else None
    if position < len(args):
        args[position] = value
        p.script_args = tuple(args)
    return old


def script_arg(p: Any, script: Any, offset: int, default: Any = None) -> Any:
    args = getattr(p, "script_args", ()) or ()
    position = int(getattr(script, "args_from", 0)) + offset
    return args[position] if position < len(args) else default


def say(p: Any, feature: str, text: str) -> None:
    """Tell the user once per generation: a console line, a comment under the image, `SSD-1B <feature>: <text>` in
    the infotext (entries of one feature joined with '; ')."""
    seen = _seen(p)
    if (feature, text) in seen:
        return
    seen.add((feature, text))
    logger.info(f"{feature}: {text}")
    comment = getattr(p, "comment", None)
    if callable(comment):
        comment(f"{feature}: {text}")
    extra = getattr(p, "extra_generation_params", None)
    if isinstance(extra, dict):
        key = f"{INFOTEXT_PREFIX} {feature}"
        extra[key] = f"{extra[key]}; {text}" if extra.get(key) and text not in extra[key] else text


def _seen(p: Any) -> set[tuple[str, str]]:
    try:
        return _said.setdefault(p, set())
    except TypeError:  # not weak-referenceable: say every time
        return set()


def joined(items: Iterable[str]) -> str:
    return ", ".join(items)
