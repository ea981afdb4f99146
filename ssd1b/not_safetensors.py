"""What a file that is not safetensors is, from its first bytes, and what to do about it.

A safetensors file starts with its header's length, 8 bytes little-endian: a header under the reader's limit has
at least three zero bytes there. Eight bytes of text instead mean a text file was saved under the model's name:
most often a git-lfs pointer (a clone without `git lfs`), an HTML page (a login, error or redirect page downloaded
instead of the file) or some other text. Each is named with the fix.
"""

from __future__ import annotations

import os
import stat

SNIFF_BYTES = 512
"""How much of the file's start is read to tell what text it is."""

LFS_POINTER = b"version https://git-lfs.github.com/spec/"
HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<!--")
TEXT_BYTES = frozenset(b"\t\n\r\f\v" + bytes(range(0x20, 0x7F)))
UTF8_BOM = b"\xef\xbb\xbf"


def starts_like_text(prefix: bytes) -> bool:
    """True when the 8-byte length prefix is text: no safetensors header length reads so."""
    return bool(prefix) and all(byte in TEXT_BYTES for byte in prefix.removeprefix(UTF8_BOM))


def describe_text(start: bytes) -> str:
    """What a file that starts with the text `start` is, with the fix."""
    text = start.removeprefix(UTF8_BOM).lstrip()
    if text.startswith(LFS_POINTER):
        return (
            "a git-lfs pointer, not the model: run `git lfs pull` in the repository it was cloned from, "
            "or download the file itself"
        )
    if text.lower().startswith(HTML_STARTS) or b"<html" in text[:SNIFF_BYTES].lower():
        return "an HTML page, not the model (a login or error page saved under its name): download the model again"
    return "a text file, not a model: download the model again"


FILE_TYPES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file(status: os.stat_result) -> str | None:
    """What a path that is not a regular file is ("a FIFO (named pipe)"); None for a regular file. Reading a FIFO
    or a device could block forever or never end, so such a path is never opened."""
    if stat.S_ISREG(status.st_mode):
        return None
    return next((name for test, name in FILE_TYPES if test(status.st_mode)), "not a regular file")
