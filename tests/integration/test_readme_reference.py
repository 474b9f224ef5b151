"""The node reference (docs/nodes.md) matches the nodes as they are (schemas read in process),
and README's node table names every node."""
import re

import pytest
from devpack import ROOT, import_comfyui

import_comfyui()

from factorportrait.nodes import NODES  # noqa: E402

README = (ROOT / "README.md").read_text(encoding="utf-8")
REFERENCE = (ROOT / "docs" / "nodes.md").read_text(encoding="utf-8")


def node_section(display_name: str) -> str:
    match = re.search(rf"^### {re.escape(display_name)} .*?(?=^### |^## |\Z)", REFERENCE, re.M | re.S)
    assert match, f"docs/nodes.md has no '### {display_name}' section"
    return match.group(0)


def table_names(section: str) -> set[str]:
    """Names in the first column of the section's tables: `a`, `b` -> {a, b}."""
    names = set()
    for row in re.findall(r"^\| (.+?) \|", section, re.M):
        names.update(re.findall(r"`([^`]+)`", row))
    return names


@pytest.mark.parametrize("node", NODES, ids=lambda n: n.define_schema().node_id)
def test_node_documented(node):
    schema = node.define_schema()
    section = node_section(schema.display_name)
    assert f"`{schema.node_id}`" in section.splitlines()[0]
    documented = table_names(section)
    for inp in schema.inputs:
        assert inp.id in documented, f"input {inp.id} of {schema.node_id} missing from docs/nodes.md"
    for out in schema.outputs:
        assert out.display_name in documented, f"output {out.display_name} of {schema.node_id} missing"


@pytest.mark.parametrize("node", NODES, ids=lambda n: n.define_schema().node_id)
def test_node_in_readme_table(node):
    """README's node table has a row naming the node's id and linking to its reference."""
    schema = node.define_schema()
    rows = [row for row in re.findall(r"^\|.*\|\s*$", README, re.M) if f"`{schema.node_id}`" in row]
    assert rows, f"README's node table has no row for `{schema.node_id}`"
    assert any("docs/nodes.md#" in row for row in rows), \
        f"README's row for `{schema.node_id}` does not link to its section of docs/nodes.md"


def test_custom_types_documented():
    from factorportrait.nodes import types

    custom = {t.io_type for t in (types.Camera, types.Rays)}
    section = REFERENCE[REFERENCE.index("### Custom types"):]
    for name in custom:
        assert f"`{name}`" in section
