"""`python -m ssd1b inspect|convert …` (`--help` says more).

Kept parseable by old Pythons, and checks the version before importing anything that needs 3.10: an older Python
(a system python3.8, say) gets one line saying what to run instead, not an ImportError.
"""

import sys

REQUIRED = (3, 10)
EXIT_PYTHON = 3

if sys.version_info[:2] < REQUIRED:
    # %-formatting: an f-string is a syntax error in the oldest Pythons this line is for
    sys.stderr.write(
        "sd-webui-ssd1b needs Python %d.%d or newer; this is Python %d.%d (%s): run it with the WebUI's Python, "  # noqa: UP031
        "e.g. stable-diffusion-webui/venv/bin/python -m ssd1b ...\n"
        % (REQUIRED + tuple(sys.version_info[:2]) + (sys.executable,))
    )
    raise SystemExit(EXIT_PYTHON)

from ssd1b.cli import main  # noqa: E402  (after the version check, on purpose)

raise SystemExit(main())
