"""README.md and docs/*.md: every relative link resolves, and the README stays short.

A link's target must exist; a ``#fragment`` must be the GitHub anchor of a heading in the
target file (lowercase, spaces to '-', punctuation other than '-' and '_' removed, letters
such as 'ü' kept; repeated headings get '-1', '-2', ...). Plain pytest, no ComfyUI host.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold an image: [![a](b)](c)
INLINE_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_TARGET = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=[\"']([^\"']+)[\"']", re.I)
HTML_ANCHOR = re.compile(r"<a\s[^>]*?(?:name|id)=[\"']([^\"']+)[\"']", re.I)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, ...


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks, with code spans blanked."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, CODE_SPAN.sub("", line)


def github_anchor(heading: str) -> str:
    """GitHub's id for a heading: the rendered text, lowercased, punctuation dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()  # inline HTML tags
    return "".join("-" if c == " " else c for c in text if c.isalnum() or c in " -_")


def anchors(path: Path) -> set[str]:
    found, seen = set(), {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if match:
            base = github_anchor(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    out = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        targets = INLINE_LINK.findall(line) + HTML_TARGET.findall(line)
        ref = REFERENCE_DEF.match(line)
        if ref:
            targets.append(ref.group(1))
        out.extend((number, t) for t in targets)
    return out


def relative_links():
    for page in PAGES:
        for number, target in links(page):
            if not EXTERNAL.match(target):
                yield pytest.param(page, number, target,
                                   id=f"{page.relative_to(ROOT)}:{number}:{target}")


def broken(page: Path, target: str) -> str | None:
    """Why a relative link from page is broken, or None."""
    file_part, _, fragment = target.partition("#")
    file_part, fragment = unquote(file_part), unquote(fragment)
    dest = (page.parent / file_part).resolve() if file_part else page
    if not dest.exists():
        return f"{file_part} does not exist"
    if fragment:
        if dest.is_dir() or dest.suffix.lower() != ".md":
            return f"#{fragment} points into {file_part}, which is not a markdown page"
        if fragment not in anchors(dest):
            return f"{dest.relative_to(ROOT)} has no heading with anchor #{fragment}"
    return None


def test_pages_found():
    assert README.exists()
    assert len(PAGES) > 1, "docs/*.md pages are missing"
    assert any(True for _ in relative_links()), "no relative links found: the parser is broken"


@pytest.mark.parametrize(("page", "line", "target"), list(relative_links()))
def test_relative_link_resolves(page, line, target):
    reason = broken(page, target)
    assert reason is None, f"{page.relative_to(ROOT)}:{line}: broken link ({target}): {reason}"


def test_readme_is_short():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; keep it under " \
        f"{README_MAX_LINES} and move details into docs/"


def test_github_anchor_rules():
    assert github_anchor("FactorPortrait Attention & Compile (`FactorPortraitAttentionCompile`)") \
        == "factorportrait-attention--compile-factorportraitattentioncompile"
    assert github_anchor("FactorPortrait Plücker Ray Maps") == "factorportrait-plücker-ray-maps"
    assert github_anchor("Quick start (fresh machine)") == "quick-start-fresh-machine"
    assert github_anchor("snake_case and [a link](x.md)") == "snake_case-and-a-link"
