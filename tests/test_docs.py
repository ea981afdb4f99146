"""Every relative link and image of README.md and docs/*.md resolves: the file exists, and a `#fragment` names a
heading of the page it points to (GitHub's anchors). tests/run.sh's pointer to the README section too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]

PENDING_PAGES = {"docs/gpu.md", "docs/extensions.md"}
"""Pages written on other branches (gpu.md; extensions.md is on main already), linked before they are merged here.
A link to one is checked like any other as soon as the file exists; take a page out of this set once it is here."""

LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$", re.MULTILINE)


def links(page: Path) -> list[str]:
    text = CODE.sub("", page.read_text(encoding="utf-8"))
    return [match["target"] for match in LINK.finditer(text)]


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(CODE.sub("", page.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", match["title"].strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("//")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(page):
    assert page.exists()
    broken = []
    for target in filter(relative, links(page)):
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        name = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)
        if not resolved.exists():
            if name not in PENDING_PAGES:
                broken.append(f"{target}: no such file")
            continue
        if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment}")
    assert broken == [], broken


def test_the_readme_stays_a_users_page_of_at_most_12_kb():
    assert len((ROOT / "README.md").read_bytes()) <= 12 * 1024


def test_the_images_are_small_pngs():
    images = sorted((ROOT / "docs" / "images").glob("*"))
    assert {image.name for image in images} >= {"panel.png", "settings.png"}
    for image in images:
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
        assert image.stat().st_size <= 400 * 1024, image


def test_the_test_script_points_at_a_readme_section_that_exists():
    script = (ROOT / "tests" / "run.sh").read_text()
    section = re.search(r'README\.md, "(?P<title>[^"]+)"', script)
    assert section is not None
    titles = [match["title"] for match in HEADING.finditer((ROOT / "README.md").read_text())]
    assert section["title"] in titles


def test_the_link_checker_catches_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](page.md#title) [gone](missing.md) [bad](page.md#nope) `[code](x.md)`\n")
    assert links(page) == ["page.md#title", "missing.md", "page.md#nope"]
    assert anchors(page) == {"title"}
