"""A1111 entry point. All logic lives in the `ssd1b` package next to this folder."""

from ssd1b.webui import install
from ssd1b.webui.script import Ssd1bScript as Script  # noqa: F401  (A1111 collects Script subclasses from here)

install()
