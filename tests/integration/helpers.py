"""Helpers of the integration tests: workflow files, UI -> API conversion, images."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_host import ComfyClient, ExecutionFailed, PromptRejected
from devpack import ROOT

WORKFLOWS = ROOT / "workflows"

# Socket-less nodes that live only in the frontend and never reach /prompt.
FRONTEND_ONLY_NODES = {"Note", "MarkdownNote"}
# Value types the frontend shows as widgets (everything else is a socket).
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# The wildcard input type (e.g. Preview as Text's 'source'): links of any type may end there.
ANY_TYPE = "*"
# ComfyUI 8-bit PNGs: SaveImage truncates 255 * x to uint8.
PNG_TOLERANCE = 1 / 255 + 1e-4


def api_workflows() -> list[Path]:
    return sorted(WORKFLOWS.glob("*_api.json"))


def ui_workflows() -> list[Path]:
    return sorted(p for p in WORKFLOWS.glob("*.json") if not p.name.endswith("_api.json"))


def api_twin(ui_path: Path) -> Path:
    return ui_path.with_name(ui_path.stem + "_api.json")


def load_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def with_prefix_folder(prompt: dict, folder: str) -> dict:
    """A copy of an API workflow whose ``filename_prefix`` inputs save under ``folder/``,
    so every test run writes its own files (and ComfyUI's cache cannot skip the saves)."""
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        prefix = node["inputs"].get("filename_prefix")
        if isinstance(prefix, str):
            node["inputs"]["filename_prefix"] = f"{folder}/{prefix}"
    return prompt


# -- the CI shrink of the portrait workflows ---------------------------------------------
# The example portrait workflows carry the defaults users run (81 frames at 512x512, 30
# steps); on the tests' 2-core CPU with tiny random models (tests/integration/tiny_models.py)
# that would still take minutes. Workflows that contain a FactorPortrait Sampler are run
# with these inputs instead: 9 frames (3 latent frames) at 64x64 and 2 sampling steps. Every
# node and link stays as in the file; only these values change, and only when present.
CI_SHRINK: dict[str, dict[str, int]] = {
    "FactorPortraitSampler": {"steps": 2},
    "FactorPortraitCameraTrajectory": {"frames": 9},
    "FactorPortraitPluckerRayMaps": {"width": 64, "height": 64},
}
CI_FRAMES, CI_SIZE = 9, 64


# Workflows with a driving video (the shipped one has 81 frames) run on the tests' short
# clip instead (driving_video.py: 9 frames, written to the host's input folder), their
# cameras at its frame count, the Sampler with 2 steps; those that render an avatar (Render
# Avatar) also render at CI_SIZE.
CI_DRIVEN_SHRINK: dict[str, dict[str, int]] = {"FactorPortraitSampler": {"steps": 2}}
CI_AVATAR_SHRINK: dict[str, dict[str, int]] = {
    "FactorPortraitRenderAvatar": {"width": CI_SIZE, "height": CI_SIZE},
    "FactorPortraitWanControls": {"width": CI_SIZE, "height": CI_SIZE},
    "FactorPortraitFaceVideo": {"size": CI_SIZE},
    "FactorPortraitRenderNormalMaps": {"width": CI_SIZE, "height": CI_SIZE},
    "FactorPortraitPluckerRayMaps": {"width": CI_SIZE, "height": CI_SIZE},
}


def _short_clip() -> dict[str, dict[str, int | str]]:
    """The short clip and the cameras' frame count (imported here: scripts/api_to_ui.py
    imports this file as a plain module, outside the package)."""
    from .driving_video import DRIVING_NAME, FRAMES

    return {"LoadVideo": {"file": DRIVING_NAME}, "FactorPortraitCameraTrajectory": {"frames": FRAMES}}


# Workflows of the Wan models users own (their native nodes, the tiny random models of
# tests/integration/tiny_wan_models.py) run at 64x64, 5 frames (2 latent frames), 2 steps.
# Two of their encoders cannot be built tiny (ComfyUI builds them from fixed configs) and
# do not fit CI at full size: umt5-xxl's CLIPLoader + CLIPTextEncode become the CI stub
# text encoder (tests/integration/stub_text_encoder), and CLIP vision (an optional input
# of every Wan node) is left out. Every other node and link stays as in the file.
WAN_NODES = {"WanAnimateToVideo", "WanVaceToVideo", "WanFunControlToVideo", "WanCameraImageToVideo"}
CI_WAN_LENGTH = 5
CI_WAN_SHRINK: dict[str, dict[str, int]] = {
    **{name: {"width": CI_SIZE, "height": CI_SIZE, "length": CI_WAN_LENGTH} for name in WAN_NODES},
    "KSampler": {"steps": 2},
}
STUB_TEXT_ENCODER = "FactorPortraitTestTextEncode"


def _without_big_encoders(prompt: dict) -> None:
    """Swap umt5-xxl for the CI stub and drop CLIP vision, in place (see above)."""
    for node_id, node in list(prompt.items()):
        kind = node["class_type"]
        if kind == "CLIPTextEncode":
            stub = {"text": node["inputs"]["text"], "tokens": 16}
            prompt[node_id] = {"class_type": STUB_TEXT_ENCODER, "inputs": stub, "_meta": node.get("_meta", {})}
        elif kind in ("CLIPLoader", "CLIPVisionLoader", "CLIPVisionEncode"):
            del prompt[node_id]
    for node in prompt.values():
        for name, value in list(node["inputs"].items()):
            if isinstance(value, list) and value[0] not in prompt:
                del node["inputs"][name]  # an optional input fed by a dropped node


def shrunk_for_ci(prompt: dict) -> dict:
    """A copy of an API workflow that contains a FactorPortrait Sampler, Render Avatar, Wan
    Controls or a native Wan node, shrunk for CI: with a driving video (LoadVideo) as
    :data:`CI_DRIVEN_SHRINK` says, else with :data:`CI_SHRINK`; Wan workflows also as
    :data:`CI_WAN_SHRINK` says, with the text encoder stubbed. Any other workflow is
    returned unchanged (as a copy)."""
    prompt = copy.deepcopy(prompt)
    types = {node["class_type"] for node in prompt.values()}
    wan = bool(types & WAN_NODES)
    if not (types & {"FactorPortraitSampler", "FactorPortraitRenderAvatar", "FactorPortraitWanControls"} or wan):
        return prompt
    if "LoadVideo" in types:
        shrink = {**CI_DRIVEN_SHRINK, **_short_clip()}
        if types & {"FactorPortraitRenderAvatar", "FactorPortraitWanControls"}:
            shrink.update(CI_AVATAR_SHRINK)
    else:
        shrink = dict(CI_SHRINK)
    if wan:
        shrink.update(CI_WAN_SHRINK)
        _without_big_encoders(prompt)
    for node in prompt.values():
        for name, value in shrink.get(node["class_type"], {}).items():
            if not isinstance(node["inputs"].get(name), list):  # a widget value, not a link
                node["inputs"][name] = value
    return prompt


def failure_text(comfy: ComfyClient, prompt: dict, object_info: dict, timeout: float = 120) -> tuple[str, str | None]:
    """Run a prompt that must fail; return the error text and the failed node's type.

    ComfyUI may refuse a prompt at ``/prompt`` (HTTP 400) or the node may raise while
    running; both count. For a refusal the failed nodes' display names are added, since
    ComfyUI's own message only has their ids."""
    try:
        entry = comfy.run(prompt, timeout=timeout)
    except ExecutionFailed as e:
        return str(e), e.node_type
    except PromptRejected as e:
        failed = e.body.get("node_errors") or {}
        types = [info.get("class_type") for info in failed.values()]
        names = [object_info.get(t, {}).get("display_name", "") for t in types]
        return f"{e} [{', '.join(names)}]", types[0] if types else None
    pytest.fail(f"the prompt was expected to fail but ran: {entry.get('outputs')}")


# -- UI (LiteGraph) workflows ----------------------------------------------------------
def widget_inputs(schema: dict) -> list[tuple[str, str, dict]]:
    """Name, type and options of a node's widget inputs, in ``widgets_values`` order:
    the required then optional inputs whose type is a value type (not a socket)."""
    order = schema.get("input_order", {})
    widgets = []
    for section in ("required", "optional"):
        specs = schema["input"].get(section) or {}
        for name in order.get(section, list(specs)):
            kind, options = specs[name][0], (specs[name][1] if len(specs[name]) > 1 else {})
            is_value = isinstance(kind, list) or kind in WIDGET_TYPES
            if is_value and not options.get("forceInput"):
                widgets.append((name, "COMBO" if isinstance(kind, list) else kind, options))
    return widgets


def frontend_extra_values(name: str, kind: str, options: dict) -> int:
    """How many values the frontend stores after this widget's own in ``widgets_values``
    (frontend 1.32): the 'control_after_generate' mode of INT inputs (``control_after_generate
    ?? name in (seed, noise_seed)``) and of COMBOs that ask for it, and the upload button of
    image/video pickers (value "image")."""
    extra = 0
    flag = options.get("control_after_generate")
    if kind == "INT":
        extra += bool(name in ("seed", "noise_seed") if flag is None else flag)
    elif kind == "COMBO":
        extra += bool(flag)
        extra += any(options.get(k) for k in ("image_upload", "video_upload", "animated_image_upload"))
    return extra


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow to the API format (what the frontend queues),
    using the node schemas of ``/object_info``. Titles go to ``_meta.title``."""
    links = {link[0]: link for link in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        if node["type"] in FRONTEND_ONLY_NODES:
            continue
        assert node["type"] in object_info, f"node {node['id']}: unknown type {node['type']!r}"
        assert node.get("mode", 0) == 0, f"node {node['id']} is muted or bypassed"
        schema = object_info[node["type"]]
        values = list(node.get("widgets_values") or [])
        inputs, pos = {}, 0
        for name, kind, options in widget_inputs(schema):
            assert pos < len(values), f"node {node['id']} ({node['type']}): no widget value for {name!r}"
            inputs[name] = values[pos]
            pos += 1 + frontend_extra_values(name, kind, options)
        assert pos == len(values), (f"node {node['id']} ({node['type']}): {len(values)} widget values "
                                    f"for {pos} widgets")
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:  # a socket, or a widget turned into an input
                _, src, src_slot, dst, _, _ = links[slot["link"]]
                assert dst == node["id"]
                inputs[slot["name"]] = [str(src), src_slot]
        api[str(node["id"])] = {
            "inputs": inputs,
            "class_type": node["type"],
            "_meta": {"title": node.get("title") or schema["display_name"]},
        }
    return api


def graph_problems(ui: dict, object_info: dict) -> list[str]:
    """Inconsistencies that would stop the frontend from loading the graph as intended."""
    problems = []
    for key in ("last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra", "version"):
        if key not in ui:
            problems.append(f"missing top-level {key!r}")
    if ui.get("version") != 0.4:
        problems.append(f"version {ui.get('version')!r}, expected 0.4")
    nodes = {n["id"]: n for n in ui["nodes"]}
    if len(nodes) != len(ui["nodes"]):
        problems.append("duplicate node ids")
    if nodes and ui["last_node_id"] < max(nodes):
        problems.append("last_node_id is smaller than a node id")
    link_ids = [link[0] for link in ui["links"]]
    if len(set(link_ids)) != len(link_ids):
        problems.append("duplicate link ids")
    if link_ids and ui["last_link_id"] < max(link_ids):
        problems.append("last_link_id is smaller than a link id")
    for n in ui["nodes"]:
        where = f"node {n.get('id')} ({n.get('type')})"
        for key in ("id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs",
                    "properties", "widgets_values"):
            if key not in n:
                problems.append(f"{where}: missing {key!r}")
        if len(n.get("pos", [])) != 2 or len(n.get("size", [])) != 2:
            problems.append(f"{where}: pos and size must be [x, y]")
        if n["type"] in FRONTEND_ONLY_NODES:
            continue
        if n["type"] not in object_info:
            problems.append(f"{where}: unknown node type")
            continue
        schema = object_info[n["type"]]
        if n["properties"].get("Node name for S&R") != n["type"]:
            problems.append(f"{where}: properties['Node name for S&R'] must be the type")
        expected_out = list(zip(schema["output_name"], schema["output"]))
        actual_out = [(o["name"], o["type"]) for o in n["outputs"]]
        if actual_out != expected_out:
            problems.append(f"{where}: outputs {actual_out} != the node's {expected_out}")
        for i, o in enumerate(n["outputs"]):
            if o.get("slot_index", i) != i:
                problems.append(f"{where}: output {o['name']} has slot_index {o['slot_index']}, not {i}")
        specs = {**schema["input"].get("required", {}), **(schema["input"].get("optional") or {})}
        for slot in n["inputs"]:
            spec = specs.get(slot["name"])
            if spec is None:
                problems.append(f"{where}: input {slot['name']!r} does not exist")
            elif isinstance(spec[0], str) and spec[0] != slot["type"]:
                problems.append(f"{where}: input {slot['name']!r} has type {slot['type']}, not {spec[0]}")
    for link_id, src, src_slot, dst, dst_slot, kind in ui["links"]:
        where = f"link {link_id}"
        if src not in nodes or dst not in nodes:
            problems.append(f"{where}: joins missing nodes {src} -> {dst}")
            continue
        outs, ins = nodes[src]["outputs"], nodes[dst]["inputs"]
        if src_slot >= len(outs) or link_id not in (outs[src_slot].get("links") or []):
            problems.append(f"{where}: not listed on output {src_slot} of node {src}")
        elif outs[src_slot]["type"] != kind:
            problems.append(f"{where}: type {kind} but output is {outs[src_slot]['type']}")
        if dst_slot >= len(ins) or ins[dst_slot].get("link") != link_id:
            problems.append(f"{where}: not the link of input {dst_slot} of node {dst}")
        elif ins[dst_slot]["type"] not in (kind, ANY_TYPE):
            problems.append(f"{where}: type {kind} but input is {ins[dst_slot]['type']}")
        if nodes[src]["order"] >= nodes[dst]["order"]:
            problems.append(f"{where}: node {src} must come before node {dst} in 'order'")
    known = set(link_ids)
    for n in ui["nodes"]:
        used = [s.get("link") for s in n["inputs"]] + [i for o in n["outputs"] for i in (o.get("links") or [])]
        for link_id in used:
            if link_id is not None and link_id not in known:
                problems.append(f"node {n['id']}: refers to missing link {link_id}")
    return problems


def strip_meta(api: dict) -> dict:
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}


# -- images ----------------------------------------------------------------------------
def read_png(path: Path) -> torch.Tensor:
    """An 8-bit RGB PNG as a float tensor ``[H, W, 3]`` in 0..1 (ComfyUI IMAGE layout)."""
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
