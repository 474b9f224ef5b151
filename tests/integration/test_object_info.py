"""/object_info of the real host lists every node of the pack as expected_nodes.py says."""
from __future__ import annotations

import pytest

from comfy_host import PACK_FOLDER

from .expected_nodes import EXPECTED_NODES

NODE_IDS = sorted(EXPECTED_NODES)


def test_the_table_lists_exactly_the_packs_nodes(object_info):
    ours = {k for k, v in object_info.items() if v.get("python_module", "").endswith(PACK_FOLDER)}
    assert ours == set(EXPECTED_NODES), (
        "nodes registered by the pack and tests/integration/expected_nodes.py differ: "
        f"only registered {sorted(ours - set(EXPECTED_NODES))}, "
        f"only in the table {sorted(set(EXPECTED_NODES) - ours)}")


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_node_schema(object_info, node_id):
    display_name, category, required, output_types, output_names = EXPECTED_NODES[node_id]
    info = object_info[node_id]
    assert info["display_name"] == display_name
    assert info["category"] == category
    assert info["input_order"]["required"] == required
    assert list(info["input"]["required"]) == required
    assert info["output"] == output_types
    assert info["output_name"] == output_names


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_node_conventions(object_info, node_id):
    """DESIGN.md: ids prefixed FactorPortrait, category FactorPortrait/..., a description
    on every node and a tooltip on every input."""
    info = object_info[node_id]
    assert node_id.startswith("FactorPortrait")
    assert info["category"].startswith("FactorPortrait/")
    assert info["description"].strip(), f"{node_id} has no description"
    for section in ("required", "optional"):
        for name, spec in (info["input"].get(section) or {}).items():
            options = spec[1] if len(spec) > 1 else {}
            assert str(options.get("tooltip") or "").strip(), f"{node_id} input {name!r} has no tooltip"
