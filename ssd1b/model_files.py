"""The files `python -m ssd1b inspect FOLDER` looks at: what A1111's model list holds for that folder.

A1111 (`modules.modelloader.load_models` over `modules.util.walk_files`) walks a checkpoint folder with
`os.walk(followlinks=True)`, keeps the files whose suffix is `.safetensors` or `.ckpt` in any case, skips broken
links with a console line, and sorts folders, then the files of each, in natural order. This walk does the same,
with two differences that are said, never silent: a link to a folder that contains it (a loop, which A1111 follows
until the path is too long) is not followed, and every file that is listed but cannot be inspected says why (a
`.ckpt` is a pickle and is never opened; a broken link). `*.vae.safetensors` files, which A1111 lists as VAEs
rather than checkpoints, are listed too, so the inspector can name them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

LISTED_SUFFIXES = (".safetensors", ".ckpt")
"""What A1111 lists in models/Stable-diffusion (compared in lower case, as A1111 does)."""

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class ListedFile:
    path: Path
    skipped: str | None = None
    """Why the file is not inspected ("a broken link to …"), None when it is."""


def listed_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[ListedFile]:
    """Files as given; a folder stands for what A1111's model list would hold from it."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk(path)
        else:
            yield ListedFile(path, not_inspected(path))


def not_inspected(path: Path) -> str | None:
    """Why a file is not opened for inspection: a pickle, or a link that leads nowhere."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return f"not inspected: {path.suffix} files are Python pickles and are never unpickled for inspection"
    if path.is_symlink() and not path.exists():
        return f"not inspected: a broken link (to {os.readlink(path)})"
    return None


def _walk(top: Path) -> Iterator[ListedFile]:
    """os.walk with links to folders followed, except those that lead back into the folders they are in."""
    ancestors: dict[str, frozenset[str]] = {str(top): frozenset({os.path.realpath(top)})}
    found: list[tuple[str, list[ListedFile]]] = []
    for root, folders, files in os.walk(top, followlinks=True):
        chain = ancestors[root]
        loops = [name for name in folders if os.path.realpath(os.path.join(root, name)) in chain]
        folders[:] = [name for name in folders if name not in loops]
        for name in folders:
            ancestors[os.path.join(root, name)] = chain | {os.path.realpath(os.path.join(root, name))}
        listed = [_loop(Path(root, name)) for name in loops]
        listed += [ListedFile(Path(root, name), not_inspected(Path(root, name))) for name in files if _is_listed(name)]
        found.append((root, listed))
    for _, listed in sorted(found, key=lambda item: natural_sort_key(item[0])):
        yield from sorted(listed, key=lambda item: natural_sort_key(item.path.name))


def _loop(link: Path) -> ListedFile:
    target = os.path.realpath(link)
    return ListedFile(link, f"not followed: a link to {target}, a folder it is in (a loop)")


def _is_listed(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in LISTED_SUFFIXES


_DIGITS = re.compile(r"([0-9]+)")


def natural_sort_key(text: str) -> list[int | str]:
    """A1111's order (`modules.util.natural_sort_key`): numbers by value, the rest without case."""
    return [int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(text)]
