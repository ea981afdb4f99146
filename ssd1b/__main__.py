"""`python -m ssd1b inspect [--json] PATH...`."""

from ssd1b.cli import main

raise SystemExit(main())
