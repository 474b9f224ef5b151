"""The keyframe editor's edits, the Load Camera Trajectory preview and failing soft, in the
real frontend (headless Chromium).

- Inserting, moving and deleting keyframes (js/lib/keyframe_edits.mjs) changes only the
  edited keyframe: every other keyframe, as the Python parser reads it from the rewritten
  JSON, keeps all its values (those it inherited are written out).
- Load Camera Trajectory shows the chosen file's path before running, equal to the file.
- When the frontend's DOM widgets fail for the pack (as an API change in a newer frontend
  would make them), the nodes are still created with all their widgets, and nothing is
  logged as an error (a warning is).
"""
from __future__ import annotations

import json
import uuid

import pytest
import torch

from .frontend_browser import console_errors, frontend_page, new_graph, offline_noise, run_js, wait_for

KEYS = {"interpolation": "smooth", "keyframes": [
    {"frame": 0, "yaw": 0, "pitch": 0, "distance": 1.2, "fov": 30},
    {"frame": 20, "roll": 4, "focal": 1.5},
    {"frame": 40, "yaw": 30, "pitch": 10, "target": [0, 0.05, 0]},
    {"frame": 80, "yaw": -20}]}
DEFAULTS = dict(frames=81, distance=1.2, fov=30.0, yaw=5.0, pitch=2.0, roll=1.0)


@pytest.fixture(scope="module")
def page(comfy):
    with frontend_page(comfy) as driver:
        yield driver


def python_views(text: str) -> dict[int, dict]:
    """Keyframe frame -> every field of its view, as the node's parser reads ``text``."""
    from factorportrait.models.camera import paths as tr

    start = tr.View(yaw=DEFAULTS["yaw"], pitch=DEFAULTS["pitch"], roll=DEFAULTS["roll"],
                    distance=DEFAULTS["distance"], fov=DEFAULTS["fov"])
    frames, views, _ = tr.parse_keyframes(text, DEFAULTS["frames"], start)
    return {f: tr.View.vector(v) for f, v in zip(frames, views)}


def edit(page, operation: str, text: str, *args):
    """Apply a keyframe_edits.mjs operation to ``text`` parsed as the editor parses it."""
    return run_js(page, """
        const path = await pack('camera_path.mjs'), edits = await pack('keyframe_edits.mjs');
        const [operation, text, defaults, ...rest] = args;
        const parsed = path.parseKeyframes(text, defaults.frames, path.makeView(defaults));
        return edits[operation](parsed, ...rest);""", operation, text, DEFAULTS, *args)


def assert_others_unchanged(before: str, after: str, changed: set[int]) -> None:
    old, new = python_views(before), python_views(after)
    for frame, vector in old.items():
        if frame in changed or frame not in new:
            continue
        assert new[frame] == pytest.approx(vector, abs=1e-12), f"keyframe {frame} changed"


def test_editor_edits_keep_the_other_keyframes(page):
    text = json.dumps(KEYS)
    moved = edit(page, "setKeyValues", text, 1, {"yaw": 12.34, "distance": 0.9})
    assert json.loads(moved)["keyframes"][1] == {"frame": 20, "roll": 4, "focal": 1.5, "yaw": 12.3, "distance": 0.9}
    assert_others_unchanged(text, moved, {20})
    inserted, index = edit(page, "insertKey", text, 60, {"yaw": 3.0, "pitch": -4.0, "distance": 1.5})
    assert index == 3 and [k["frame"] for k in json.loads(inserted)["keyframes"]] == [0, 20, 40, 60, 80]
    assert_others_unchanged(text, inserted, {60})
    first, index = edit(page, "insertKey", json.dumps(KEYS["keyframes"][1:]), 5, {"yaw": 1.0, "pitch": 1.0, "distance": 1.0})
    assert index == 0
    assert_others_unchanged(json.dumps(KEYS["keyframes"][1:]), first, {5})  # the widgets no longer feed key 20
    for k, frame in enumerate([0, 20, 40]):
        deleted = edit(page, "deleteKey", text, k)
        assert frame not in python_views(deleted)
        assert_others_unchanged(text, deleted, {frame})
    assert edit(page, "deleteKey", json.dumps([{"frame": 0}]), 0) is None, "the last keyframe stays"


def test_load_camera_trajectory_shows_the_file(page, comfy):
    from factorportrait.models.camera import paths as tr
    from factorportrait.models.camera.files import trajectory_to_json

    name = f"fe-{uuid.uuid4().hex[:8]}.json"
    camera = tr.spiral(17, tr.View(yaw=10, distance=1.4), amplitude=20, turns=1, distance_end=2.0)
    (comfy.input_dir / name).write_text(trajectory_to_json(camera), encoding="utf-8")
    console_errors(page)
    (node_id,) = new_graph(page, ["FactorPortraitLoadCameraTrajectory"])
    run_js(page, "app.graph.getNodeById(args[0]).widgets.find(w => w.name === 'file').value = args[1];", node_id, name)
    # The node starts on the input folder's first file (other tests may have put some there),
    # then shows the chosen one: wait for the file's camera centres (to 1e-9).
    expected = torch.linalg.inv(camera.w2c)[:, :3, 3]

    def shows_the_file() -> bool:
        centers = run_js(page, "return app.graph.getNodeById(args[0]).factorPortraitPreview.cameras.map(c => c.center);",
                         node_id)
        return len(centers) == len(expected) and torch.allclose(
            torch.tensor(centers, dtype=torch.float64), expected, rtol=0, atol=1e-9)

    wait_for(shows_the_file, 10, "the chosen file's path (its camera centres) in the preview")
    assert not [e for e in console_errors(page) if not offline_noise(e)]


def test_nodes_work_without_dom_widgets(page):
    """addDOMWidget failing for the previews: no preview, a warning, the node intact."""
    console_errors(page)
    state = run_js(page, """
        const LG = window.LiteGraph ?? window.comfyAPI?.litegraph?.LiteGraph;
        const proto = LG.LGraphNode.prototype, saved = proto.addDOMWidget;
        proto.addDOMWidget = function (name, type, ...rest) {  // the frontend's own DOM widgets still work
          if (type === 'factorportrait_preview') throw new Error('simulated frontend change');
          return saved.call(this, name, type, ...rest);
        };
        try {
          app.graph.clear();
          const made = ['FactorPortraitCameraTrajectory', 'FactorPortraitExpressionKeyframes'].map(type => {
            const node = LG.createNode(type);
            app.graph.add(node);
            return node;
          });
          await new Promise(r => setTimeout(r, 500));
          return made.map(n => ({type: n.type, widgets: n.widgets.map(w => w.name), values: app.graph.serialize().nodes
            .find(s => s.id === n.id).widgets_values.length}));
        } finally {
          proto.addDOMWidget = saved;
        }""")
    assert state[0]["widgets"][-1] == "keyframes" and state[0]["values"] == 16
    assert state[1]["widgets"] == ["frames", "keyframes"] and state[1]["values"] == 2
    logs = page.get_log("browser")
    assert not [e for e in logs if e["level"] == "SEVERE" and not offline_noise(e["message"])]
    assert sum("[FactorPortrait]" in e["message"] and e["level"] == "WARNING" for e in logs) == 2
