"""Packaging metadata: requirements.txt and pyproject.toml agree; registry section present."""
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _normalise(requirement: str) -> str:
    """Lower-case the project name (PEP 503) and drop whitespace."""
    requirement = re.sub(r"\s+", "", requirement)
    match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(.*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() + match.group(2)


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _requirements_txt() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    reqs = [line.split("#", 1)[0].strip() for line in lines]
    return [r for r in reqs if r and not r.startswith("-")]


def test_requirements_match_pyproject_dependencies():
    txt = sorted(_normalise(r) for r in _requirements_txt())
    deps = sorted(_normalise(r) for r in _pyproject()["project"]["dependencies"])
    assert txt, "requirements.txt lists no requirements"
    assert len(set(txt)) == len(txt), "duplicate lines in requirements.txt"
    assert txt == deps


def test_runtime_dependencies_cover_what_models_import():
    deps = {re.match(r"[A-Za-z0-9._-]+", d).group(0).lower() for d in _pyproject()["project"]["dependencies"]}
    assert {"torch", "kornia"} <= deps


def test_pyproject_license_and_comfy_registry_section():
    data = _pyproject()
    assert data["project"]["license"] == "GPL-3.0-or-later"
    comfy = data["tool"]["comfy"]
    for key in ("PublisherId", "DisplayName", "Icon", "requires-comfyui"):
        assert isinstance(comfy.get(key), str) and comfy[key].strip(), key
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", comfy["PublisherId"])
    assert comfy["Icon"].startswith("https://")
    assert re.match(r"[<>=~!]=?\s*\d", comfy["requires-comfyui"])


def test_comfyignore_excludes_tests():
    path = ROOT / ".comfyignore"
    if not path.exists():
        pytest.skip(".comfyignore is not in the checkout yet")
    entries = {line.strip() for line in path.read_text().splitlines()
               if line.strip() and not line.lstrip().startswith("#")}
    assert entries & {"tests/", "tests", "/tests/", "/tests", "tests/**"}, entries
