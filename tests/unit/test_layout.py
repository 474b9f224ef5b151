"""The pack's layout: every import resolves, no file imports itself back, no room of
``models/`` imports a room that imports it back, each room says what it holds.

Imports are read from the source (``ast``), lazy ones inside functions included, so the
checks see what a reader sees, whatever is installed.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACK = "factorportrait"  # the name the checkout is imported under (scripts/devpack.py)
PACK_DIRS = ("models", "nodes", "training")
OTHER_DIRS = ("tests", "benchmarks", "scripts")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str) -> Path | None:
    """The file of pack module ``name`` ("models.camera.paths"), or None if there is none."""
    base = ROOT.joinpath(*name.split(".")) if name else ROOT
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def pack_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of a pack module in ``path``: relative imports
    resolved, ``factorportrait.`` imports stripped, ``from X import name`` taken as
    ``X.name`` where that is a module."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = ".".join(p for p in (base, node.module or "") if p)
            elif node.module == PACK or (node.module or "").startswith(PACK + "."):
                target = node.module[len(PACK) + 1:]
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                out.append((node.lineno, sub if module_file(sub) is not None else target))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACK + "."):
                    out.append((node.lineno, alias.name[len(PACK) + 1:]))
    return out


def python_files(dirs: tuple[str, ...]) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py"))


def import_graph(dirs: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the pack modules it imports (within the files of ``dirs``)."""
    graph = {}
    for path in python_files(dirs):
        graph[module_name(path)] = {m for _line, m in pack_imports(path) if m != module_name(path)}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def room(module: str) -> str:
    """The room of a ``models`` module: its first folder under ``models/`` (root files are
    their own room)."""
    return ".".join(module.split(".")[:2])


def test_cycles_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_import_of_the_pack_resolves():
    """Old module paths (or typos) anywhere, the tests and benchmarks included, fail here."""
    missing = [f"{p.relative_to(ROOT)}:{line}: {m}"
               for p in python_files(PACK_DIRS + OTHER_DIRS) for line, m in pack_imports(p)
               if module_file(m) is None]
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def test_no_file_imports_itself_back():
    graph = import_graph(PACK_DIRS)
    assert cycles(graph) == []


def test_no_room_of_models_imports_itself_back():
    graph = import_graph(("models",))
    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        rooms.setdefault(room(module), set()).update(
            room(t) for t in targets if t.startswith("models.") and room(t) != room(module))
    assert cycles(rooms) == [], "rooms of models/ that import each other (directly or through others)"


def test_models_never_imports_comfy():
    for path in python_files(("models",)):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not any(n.split(".")[0] in ("comfy", "comfy_api", "comfy_extras", "folder_paths")
                           for n in names), f"{path.relative_to(ROOT)} imports ComfyUI"


def test_models_root_holds_only_what_every_room_shares():
    loose = sorted(p.name for p in (ROOT / "models").glob("*.py"))
    assert loose == ["__init__.py", "errors.py", "safetensors_io.py", "threads.py"]


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in (ROOT / "models").glob("*/__init__.py")))
def test_each_room_says_what_it_holds(folder):
    doc = ast.get_docstring(ast.parse((ROOT / "models" / folder / "__init__.py").read_text(encoding="utf-8")))
    assert doc, f"models/{folder}/__init__.py has no docstring"
    first = doc.splitlines()[0]
    assert first.endswith((".", ":", "?")) and len(first) <= 110, f"models/{folder}: first line is not one line: {first!r}"
