"""Steps shared by the extension tier (test_extensions*.py): a third-party script's arguments from the server's own
defaults, what an adapter said, and how two images compare.

What an adapter says (ssd1b/webui/extensions/base.py `say`) is one entry `SSD-1B <feature>: <text>` in the infotext
(entries of one feature joined with "; ") and, for each text, one console line `[ssd1b] <feature>: <text>`. `said`
checks all three and returns the entry; `silent` checks that there is none. Every check prints a `REPORT` line with
what a user sees (the exact infotext entry and console line), which docs/extensions.md quotes.
"""

from __future__ import annotations

import re
from typing import Any

from tests.integration.server import WebUI
from tests.integration.test_whole_session import assert_real, host_quote

INFOTEXT_PREFIX = "SSD-1B"
SAME_IMAGE = 2.0
"""Largest difference (of 255) between two images of the same computation (threads may sum in another order)."""
CHANGED_IMAGE = 0.2
"""Smallest mean difference (of 255) for "the feature changed the image"."""
_defaults: dict[tuple[str, str], list[Any]] = {}


def script_defaults(webui: WebUI, title: str) -> list[Any]:
    """The default value of every argument of the txt2img always-on script titled `title`, as the server lists them
    (`GET /sdapi/v1/script-info`): what the UI would send untouched."""
    key = (webui.base_url, title.lower())
    if key not in _defaults:
        listed = webui.get("/sdapi/v1/script-info")
        assert isinstance(listed, list), listed
        found = [s for s in listed if s["name"] == title.lower() and s["is_alwayson"] and not s["is_img2img"]]
        assert found, f"{title!r} is not an always-on txt2img script of this server: {[s['name'] for s in listed]}"
        _defaults[key] = [argument.get("value") for argument in found[0]["args"]]
    return list(_defaults[key])


def script_args(webui: WebUI, title: str, changes: dict[int, Any]) -> dict[str, dict[str, list[Any]]]:
    """`alwayson_scripts` for `title`: its defaults with the arguments at the given indices changed."""
    args = script_defaults(webui, title)
    for index, value in changes.items():
        args[index] = value
    return {title: {"args": args}}


def said(info: dict[str, Any], step_log: str, feature: str, family: str = "") -> str:
    """The adapter's entry `SSD-1B <feature>`: in the API's parameters, in the infotext as the host writes it, and in
    the console as the step's lines `[ssd1b] <feature>: <message>`, whose messages joined by "; " are the entry.
    Returns the entry."""
    key = f"{INFOTEXT_PREFIX} {feature}"
    entry = info["extra_generation_params"].get(key)
    assert entry, f"no {key!r} in {info['extra_generation_params']}\n--- log ---\n{step_log[-3000:]}"
    assert f"{key}: {host_quote(str(entry))}" in info["infotexts"][0], info["infotexts"][0]
    prefix = f"[ssd1b] {feature}: "
    lines = [line.removeprefix(prefix) for line in step_log.splitlines() if line.startswith(prefix)]
    # one console line per message; the infotext joins the messages with "; " (a message may hold "; " itself)
    assert "; ".join(lines) == str(entry), f"console {lines!r} is not the entry {entry!r}:\n{step_log[-3000:]}"
    report(feature, family, f"infotext `{key}: {host_quote(str(entry))}`; console `[ssd1b] {feature}: {entry}`")
    return str(entry)


def silent(info: dict[str, Any], step_log: str, feature: str) -> None:
    key = f"{INFOTEXT_PREFIX} {feature}"
    assert key not in info["extra_generation_params"], info["extra_generation_params"][key]
    assert f"[ssd1b] {feature}:" not in step_log, step_log[-3000:]


def report(feature: str, family: str, text: str) -> None:
    print(f"\nREPORT {feature} | {family} | {text}")


def difference(image: Any, other: Any, region: tuple[slice, slice] | None = None) -> float:
    """Mean absolute difference (of 255), over `region` (rows, columns) when given."""
    import numpy as np

    if region is not None:
        image, other = image[region], other[region]
    return float(np.abs(image - other).mean())


def assert_changed(image: Any, reference: Any, what: str) -> float:
    assert_real(image, reference.shape[:2])
    found = difference(image, reference)
    assert found > CHANGED_IMAGE, f"{what} did not change the image (mean difference {found:.3f} of 255)"
    return found


def assert_same(image: Any, reference: Any, what: str) -> None:
    import numpy as np

    assert_real(image, reference.shape[:2])
    largest = float(np.abs(image - reference).max())
    assert largest <= SAME_IMAGE, f"{what}: the image is not the one without it (largest difference {largest:.0f})"


def assert_nearly_same(image: Any, reference: Any, what: str, mean: float = 0.5) -> None:
    """For a unit left out while sd-webui-controlnet still runs the UNet through its own forward (the same sums,
    maybe in another order)."""
    assert_real(image, reference.shape[:2])
    found = difference(image, reference)
    assert found < mean, f"{what}: the image is not the one without it (mean difference {found:.3f} of 255)"


def infotext_value(info: dict[str, Any], key: str) -> str | None:
    """A host or extension infotext entry (`Key: value`) as written in the first infotext."""
    found = re.search(rf"(?:^|, ){re.escape(key)}: (\"(?:[^\"\\]|\\.)*\"|[^,]*)", info["infotexts"][0])
    return found.group(1) if found else None
