"""Write the UI (LiteGraph) twin of an API-format workflow, from a running host's node schemas.

    python scripts/api_to_ui.py workflows/animate_portrait_api.json   # -> workflows/animate_portrait.json

Starts the dev ComfyUI host (scripts/comfy_host.py) for ``/object_info``; lays the nodes
out in columns by their depth in the graph. The tests check the result against the API
twin (tests/integration/test_workflows.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from comfy_host import running_comfyui  # noqa: E402
from helpers import frontend_extra_values, widget_inputs  # noqa: E402

EXTRA_VALUE = {"INT": "fixed", "COMBO": "image"}  # what the frontend stores after the value


def to_ui(api: dict, info: dict) -> dict:
    ids = {k: i + 1 for i, k in enumerate(api)}
    depth: dict[str, int] = {}

    def level(k: str) -> int:
        if k not in depth:
            ups = [v[0] for v in api[k]["inputs"].values() if isinstance(v, list)]
            depth[k] = 1 + max((level(u) for u in ups), default=-1)
        return depth[k]

    links, nodes, rows = [], [], {}
    outputs = {k: [[] for _ in info[v["class_type"]]["output"]] for k, v in api.items()}
    for k, node in api.items():
        schema = info[node["class_type"]]
        specs = {**schema["input"].get("required", {}), **(schema["input"].get("optional") or {})}
        values, widget_names = [], set()
        for name, kind, options in widget_inputs(schema):
            widget_names.add(name)
            values.append(node["inputs"][name])
            extra = frontend_extra_values(name, kind, options)
            values += [EXTRA_VALUE[kind]] * extra if extra else []
        slots = []
        for name, spec in specs.items():
            if name in widget_names:
                continue
            value = node["inputs"].get(name)
            link = None
            if isinstance(value, list):
                link = len(links) + 1
                src, slot = value
                links.append([link, ids[src], slot, ids[k], len(slots), info[api[src]["class_type"]]["output"][slot]])
                outputs[src][slot].append(link)
            slots.append({"name": name, "type": spec[0], "link": link})
        col = level(k)
        row = rows.get(col, 0)
        rows[col] = row + 1
        nodes.append({"id": ids[k], "type": node["class_type"], "pos": [40 + 380 * col, 60 + 300 * row],
                      "size": [340, 260], "flags": {}, "order": 0, "mode": 0, "inputs": slots, "outputs": [],
                      "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": values,
                      "title": node.get("_meta", {}).get("title", schema["display_name"])})
    order = sorted(api, key=lambda k: (level(k), ids[k]))
    for n, k in zip(nodes, api):
        schema = info[api[k]["class_type"]]
        n["order"] = order.index(k)
        n["outputs"] = [{"name": name, "type": kind, "links": outputs[k][i], "slot_index": i}
                        for i, (name, kind) in enumerate(zip(schema["output_name"], schema["output"]))]
    return {"last_node_id": len(nodes), "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {"ds": {"scale": 0.7, "offset": [0, 0]}}, "version": 0.4}


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    api = json.loads(path.read_text())
    with running_comfyui() as comfy:
        info = comfy.object_info()
    target = path.with_name(path.name.removesuffix("_api.json") + ".json")
    target.write_text(json.dumps(to_ui(api, info), indent=1) + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
