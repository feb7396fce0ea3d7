"""The README a newcomer reads first, and the docs/ pages it leads to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# Written on other branches at the same time; the lead's merge brings them.
ELSEWHERE = {"docs/proxy.md", "docs/organizations.md", "docs/sam-local.md"}


def test_the_readme_keeps_its_two_commands_first() -> None:
    readme = (ROOT / "README.md").read_text()

    commands = readme.index("## Two commands")
    assert readme.index("make dev    # run the broker on http://127.0.0.1:3000") > commands
    assert readme.index("make test   # install what is needed and run the whole test suite") > commands
    assert (
        commands < readme.index("## Your first five minutes") < readme.index("## How a sync job gets a token")
    )
    assert len(readme.splitlines()) < 150


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_leads_to_a_file_of_the_repository(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        resolved = (page.parent / target).resolve()
        relative = resolved.relative_to(ROOT).as_posix()
        assert resolved.exists() or relative in ELSEWHERE, f"{page.name} links to {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_nothing_points_outside_the_clone(page: Path) -> None:
    text = page.read_text()

    assert "../shared" not in text
    assert not re.search(r"\bseeds?\b", text), page.name


def test_the_console_picture_is_a_png() -> None:
    assert (ROOT / "docs" / "console.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "](docs/console.png)" in (ROOT / "README.md").read_text()
