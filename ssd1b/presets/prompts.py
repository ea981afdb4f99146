"""Negative prompts merged term by term, and the infotext entries of a generation made with a preset."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ssd1b.presets.schema import Preset

INFOTEXT_PRESET = "SSD-1B preset"

INFOTEXT_LORA = "SSD-1B LCM-LoRA"

INFOTEXT_PRESET_ALIASES = (INFOTEXT_PRESET, "1B preset")
"""v1.6's infotext parser only takes word characters and spaces in a key, so "SSD-1B preset" comes back as
"1B preset" there (see ssd1b.webui.host.parsed_infotext_key)."""

_OPENERS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def merge_negative(current: str, addition: str) -> str:
    """`current` with the comma-separated terms of `addition` that it lacks appended (never rewritten).

    Terms are split at commas outside matched brackets, so "(worst quality, low quality)" is one term. A term
    counts as present when it stands between commas (or the ends) of `current`, compared case-insensitively with
    runs of whitespace collapsed. The result always starts with `current` (trailing whitespace aside), and
    merging the same addition twice changes nothing the second time.
    """
    current = current or ""
    normalized_current = _normalized(current)
    missing: list[str] = []
    for term in split_terms(addition or ""):
        if not _contains_term(normalized_current, term) and _normalized(term) not in map(_normalized, missing):
            missing.append(term)
    if not missing:
        return current
    base = current.rstrip()
    separator = "" if not base else (" " if base.endswith(",") else ", ")
    return base + separator + ", ".join(missing)


def split_terms(text: str) -> list[str]:
    """Comma-separated terms, commas inside matched (), [], {}, <> kept; unmatched brackets are plain text."""
    protected = _protected_positions(text)
    terms, start = [], 0
    for index, character in enumerate(text):
        if character == "," and index not in protected:
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return [term.strip() for term in terms if term.strip()]


def _protected_positions(text: str) -> set[int]:
    stack: list[tuple[str, int]] = []
    protected: set[int] = set()
    for index, character in enumerate(text):
        if character in _OPENERS:
            stack.append((character, index))
        elif stack and character == _OPENERS[stack[-1][0]]:
            _, begin = stack.pop()
            protected.update(range(begin, index + 1))
    return protected


def _normalized(text: str) -> str:
    return " ".join(text.casefold().split())


def _contains_term(normalized_text: str, term: str) -> bool:
    pattern = rf"(?:^|,)\s*{re.escape(_normalized(term))}\s*(?:,|$)"
    return re.search(pattern, normalized_text) is not None


def preset_to_infotext(preset: Preset, lora_name: str | None = None) -> dict[str, str]:
    """The infotext entries of a generation made with `preset` (+ the LCM-LoRA's name when one was added)."""
    entries = {INFOTEXT_PRESET: preset.name}
    if lora_name:
        entries[INFOTEXT_LORA] = lora_name
    return entries


def preset_from_infotext(params: Mapping[str, Any]) -> str | None:
    """The preset name from parsed infotext params (either key spelling), or None."""
    for key in INFOTEXT_PRESET_ALIASES:
        value = params.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
