"""Browser tests: Debian's Chromium (/usr/bin/chromium) driven by Playwright.

Missing Chromium (or Playwright) fails the tests when CI=true and skips them elsewhere. External requests (Gradio's
web fonts) are refused so that the page loads the same way offline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import app
from tests.webui.conftest import host_version, webui  # noqa: F401  (the fake host fixtures)

CHROMIUM = Path(os.environ.get("SSD1B_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: browser tests must run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install playwright")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class PageWatch:
    """Dialogs and uncaught errors of a page; a dialog would mean injected markup ran."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []

    def on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    watch = PageWatch()
    page.on("dialog", watch.on_dialog)
    page.on("pageerror", lambda error: watch.errors.append(str(error)))
    page.route("**/*", lambda route: route.continue_() if "//127.0.0.1" in route.request.url else route.abort())
    page.add_init_script(path=str(app.JAVASCRIPT))
    page.watch = watch
    yield page
    context.close()
