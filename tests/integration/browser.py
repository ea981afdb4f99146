"""The real page in Debian's Chromium (Playwright), for the integration tests that drive the UI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("SSD1B_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]


@contextmanager
def real_page(base_url: str) -> Iterator[tuple[Any, list[str]]]:
    """(page, errors) once the page has loaded the extension's txt2img panel; `errors` collects page errors and
    dialogs (dismissed), for the test to assert empty."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} not found: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("dialog", lambda dialog: (errors.append("dialog: " + dialog.message), dialog.dismiss()))
            page.set_default_timeout(30_000)
            page.goto(base_url + "/", timeout=300_000)
            page.wait_for_selector("#ssd1b-txt2img-accordion", timeout=300_000)
            yield page, errors
        finally:
            browser.close()
