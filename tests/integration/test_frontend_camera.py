"""The camera preview and keyframe editor in the real frontend (headless Chromium).

- The browser's camera path (js/lib/camera_path.mjs) equals the Python node's trajectory
  for the same widget values, in every mode: camera centres, rotations and intrinsics to
  1e-9 (both are float64; measured differences are ~1e-15); so does the inset's picture
  (points on the subject projected by each camera, normalised image coordinates).
- The preview draws the path into its canvas and redraws when ``yaw_end`` changes.
- A keyframe dragged with the mouse in the editor is written to the keyframes widget, and
  the prompt the frontend queues makes the backend save exactly the edited path.
"""
from __future__ import annotations

import json
import math
import uuid

import pytest
import torch

from .frontend_browser import (add_trajectory_graph, artifacts_dir, canvas_state, console_errors, frontend_page,
                               offline_noise, run_js, save_screenshot, set_widget, show_node, wait_for)

TOLERANCE = 1e-9
TRAJECTORY = "FactorPortraitCameraTrajectory"
DEFAULTS = dict(mode="orbit", frames=81, fov=30.0, distance=1.2, yaw=0.0, pitch=0.0, roll=0.0, yaw_end=30.0,
                pitch_end=0.0, roll_end=0.0, distance_end=1.2, amplitude=10.0, turns=1.0, dolly_zoom=False,
                easing="linear")
CASES = {  # widget values that differ from DEFAULTS; one or more per mode
    "orbit": dict(mode="orbit", yaw=-10.0, pitch=12.0, roll=3.0, yaw_end=400.0, easing="ease in-out"),
    "spiral": dict(mode="spiral", amplitude=15.0, turns=2.5, distance_end=2.0, pitch=-5.0, frames=33),
    "dolly zoom": dict(mode="dolly", distance_end=2.5, dolly_zoom=True, easing="ease in-out"),
    "arc": dict(mode="pan/tilt arc", yaw_end=-60.0, pitch_end=30.0, roll_end=-10.0, distance_end=0.8),
    "novel view": dict(mode="static novel view", yaw=33.0, pitch=-20.0, frames=5),
    "frontal": dict(mode="static frontal", yaw=33.0, frames=1),
    "keyframes": dict(mode="keyframes", keyframes=json.dumps({"interpolation": "smooth", "keyframes": [
        {"frame": 0, "yaw": 0, "pitch": 0, "distance": 1.2, "fov": 30}, {"frame": 40, "yaw": 30, "pitch": 10},
        {"frame": 80, "yaw": -20, "pitch": 0, "roll": 5, "target": [0, 0.05, 0]}]})),
    "keyframes, all fields": dict(mode="keyframes", frames=9, yaw=7.0, keyframes=json.dumps([
        {"frame": 0, "pitch": 5}, {"frame": 3, "yaw": 40, "focal": 2.0, "pixel_aspect": 1.1},
        {"frame": 7, "pitch": -30, "target": [0.1, 0, 0], "principal": [0.45, 0.55]}, {"frame": 8, "fov": 50}])),
    "keyframes, linear": dict(mode="keyframes", keyframes=json.dumps({"interpolation": "linear", "keyframes": [
        {"frame": 10, "yaw": 5}, {"frame": 60, "yaw": -90, "distance": 3}]})),
}


@pytest.fixture(scope="module")
def page(comfy):
    with frontend_page(comfy) as driver:
        yield driver


def widget_values(case: dict) -> dict:
    return {**DEFAULTS, "keyframes": "[]", **case}


def js_path(page, values: dict) -> list[dict]:
    return run_js(page, "return (await pack('camera_path.mjs')).cameraPath(args[0]);", values)


def saved_trajectory(comfy, entry: dict, node_id: str) -> list[dict]:
    path = comfy.output_dir / entry["outputs"][node_id]["text"][0]
    return json.loads(path.read_text(encoding="utf-8"))["frames"]


def assert_same_path(js: list[dict], saved: list[dict], what: str) -> None:
    """The browser's cameras equal the saved trajectory's (w2c inverted to centre and rotation)."""
    assert len(js) == len(saved), what
    w2c = torch.tensor([f["w2c"] for f in saved], dtype=torch.float64)
    c2w = torch.linalg.inv(w2c)
    errors = {
        "centre": (torch.tensor([c["center"] for c in js], dtype=torch.float64) - c2w[:, :3, 3]).abs().max(),
        "rotation": (torch.tensor([c["rotation"] for c in js], dtype=torch.float64) - c2w[:, :3, :3]).abs().max(),
        "focal": max(abs(c["focal"] - f["focal"]) for c, f in zip(js, saved)),
        "pixel_aspect": max(abs(c["pixelAspect"] - f["pixel_aspect"]) for c, f in zip(js, saved)),
        "principal": max(abs(a - b) for c, f in zip(js, saved) for a, b in zip(c["principal"], f["principal"])),
    }
    bad = {k: float(v) for k, v in errors.items() if v > TOLERANCE}
    assert not bad, f"{what}: the browser's path differs from the node's by {bad}"


POINTS = [[0.0, 0.0, 0.0], [0.05, 0.1, 0.02], [-0.2, -0.3, 0.1]]  # metres, on the subject


def js_projections(page, values: dict) -> list:
    """The inset's projection (CameraProjector on a 1x1 picture) of POINTS, every frame."""
    return run_js(page, """
        const { cameraPath } = await pack('camera_path.mjs'), { CameraProjector } = await pack('scene_projection.mjs');
        return cameraPath(args[0]).map(cam => {
          const view = new CameraProjector(cam, 0, 0, 1, 1);
          return args[1].map(p => view.project(p).slice(0, 2));
        });""", values, POINTS)


def python_projections(saved: list[dict]) -> torch.Tensor:
    """POINTS in normalised image coordinates (u/W, v/H) of the saved cameras (square picture)."""
    w2c = torch.tensor([f["w2c"] for f in saved], dtype=torch.float64)
    cam = torch.einsum("fij,pj->fpi", w2c[:, :3, :3], torch.tensor(POINTS, dtype=torch.float64)) + w2c[:, None, :3, 3]
    focal = torch.tensor([f["focal"] for f in saved], dtype=torch.float64)[:, None]
    aspect = torch.tensor([f["pixel_aspect"] for f in saved], dtype=torch.float64)[:, None]
    principal = torch.tensor([f["principal"] for f in saved], dtype=torch.float64)
    u = focal * aspect * cam[..., 0] / cam[..., 2] + principal[:, None, 0]
    v = focal * cam[..., 1] / cam[..., 2] + principal[:, None, 1]
    return torch.stack([u, v], -1)


def test_browser_path_equals_the_python_node(page, comfy):
    """Every mode: the node (queued through the API) saves what the browser computes, and the
    inset's picture of the subject is the saved cameras' projection."""
    prompt, folder = {}, f"fe-{uuid.uuid4().hex[:8]}"
    for i, case in enumerate(CASES.values()):
        prompt[f"t{i}"] = {"class_type": TRAJECTORY, "inputs": widget_values(case)}
        prompt[f"s{i}"] = {"class_type": "FactorPortraitSaveCameraTrajectory",
                           "inputs": {"camera": [f"t{i}", 0], "filename_prefix": f"{folder}/case{i}"}}
    entry = comfy.run(prompt, timeout=120)
    for i, (name, case) in enumerate(CASES.items()):
        saved = saved_trajectory(comfy, entry, f"s{i}")
        assert_same_path(js_path(page, widget_values(case)), saved, name)
        projected = torch.tensor(js_projections(page, widget_values(case)), dtype=torch.float64)
        assert projected == pytest.approx(python_projections(saved), abs=TOLERANCE), name


def test_preview_renders_and_follows_yaw_end(page):
    console_errors(page)
    node_id, _ = add_trajectory_graph(page)
    show_node(page, node_id)
    before = wait_for(lambda: (s := canvas_state(page, node_id))["path"] > 200 and s, 20, "path pixels in the preview")
    assert before["width"] >= 300 and before["height"] >= 150
    set_widget(page, node_id, "yaw_end", 150.0)
    after = wait_for(lambda: (s := canvas_state(page, node_id))["hash"] != before["hash"] and s, 10,
                     "the preview to redraw after yaw_end changed")
    assert after["path"] > 200, "the redrawn preview shows the path"
    last = run_js(page, "const p = app.graph.getNodeById(args[0]).factorPortraitPreview; return p.cameras.at(-1).yaw;", node_id)
    assert last == pytest.approx(150.0)
    save_screenshot(page, artifacts_dir(), "camera-preview-yaw_end-150")
    # The view: a mouse drag on the empty canvas turns it, the wheel zooms, a double click fits.
    viewer = lambda: run_js(page, "const v = app.graph.getNodeById(args[0]).factorPortraitPreview.viewer;"
                                  "return {yaw: v.yaw, radius: v.radius};", node_id)
    fitted = viewer()
    canvas = page.execute_script(
        "return window.comfyAPI.app.app.graph.getNodeById(arguments[0]).factorPortraitPreview.canvas;", node_id)
    drag(page, canvas, (12, 40), (40, 0))
    assert viewer()["yaw"] == pytest.approx(fitted["yaw"] - 20)
    run_js(page, """
        const canvas = app.graph.getNodeById(args[0]).factorPortraitPreview.canvas, r = canvas.getBoundingClientRect();
        canvas.dispatchEvent(new WheelEvent('wheel', {deltaY: 100, clientX: r.left + 12, clientY: r.top + 40, cancelable: true}));""",
           node_id)
    assert viewer()["radius"] == pytest.approx(fitted["radius"] * 1.1)
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(page).double_click(canvas).perform()
    assert viewer() == pytest.approx(fitted)
    assert not [e for e in console_errors(page) if not offline_noise(e)]


def drag(page, element, start: tuple[float, float], offset: tuple[int, int], shift: bool = False) -> None:
    """A real mouse drag on ``element`` from ``start`` (pixels from its top left) by ``offset``
    (with the shift key held when ``shift``)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    rect = page.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", element)
    actions = ActionChains(page, duration=50)
    actions.move_to_element_with_offset(element, round(start[0] - rect[0] / 2), round(start[1] - rect[1] / 2))
    if shift:
        actions.key_down(Keys.SHIFT)
    actions.click_and_hold()
    for _ in range(4):
        actions.move_by_offset(offset[0] // 4, offset[1] // 4)
    actions.release()
    if shift:
        actions.key_up(Keys.SHIFT)
    actions.perform()


def key_screen_position(page, node_id: int, key: int) -> list[float]:
    return run_js(page, "return app.graph.getNodeById(args[0]).factorPortraitPreview.keyScreen[args[1]];", node_id, key)


def keyframes_text(page, node_id: int) -> str:
    return run_js(page, "return app.graph.getNodeById(args[0]).widgets.find(w => w.name === 'keyframes').value;", node_id)


def test_keyframe_edited_in_the_editor_reaches_the_backend(page, comfy):
    console_errors(page)
    node_id, save_id = add_trajectory_graph(page)
    set_widget(page, node_id, "mode", "keyframes")
    show_node(page, node_id)
    canvas = wait_for(lambda: page.execute_script(
        "return window.comfyAPI.app.app.graph.getNodeById(arguments[0]).factorPortraitPreview.canvas;", node_id),
        10, "the preview canvas")
    original = json.loads(keyframes_text(page, node_id))
    assert original["keyframes"][1] == {"frame": 40, "yaw": 30, "pitch": 10}  # the node's example
    # Drag the keyframe at frame 40 by 60 px to the right: yaw + 30 (0.5 degree per pixel).
    drag(page, canvas, key_screen_position(page, node_id, 1), (60, 0))
    edited = json.loads(wait_for(lambda: (t := keyframes_text(page, node_id)) != json.dumps(original) and
                                 json.loads(t)["keyframes"][1].get("yaw") != 30 and t, 10, "the dragged keyframe"))
    assert edited["keyframes"][1]["yaw"] == pytest.approx(60.0)
    assert edited["keyframes"][1]["pitch"] == pytest.approx(10.0)
    assert edited["keyframes"][2] == original["keyframes"][2]  # pinned already: unchanged
    # Shift-drag it 40 px down: distance + 0.2 m (5 mm per pixel); it inherited 1.2 m, and so
    # did the next keyframe, which now has its 1.2 m written out.
    drag(page, canvas, key_screen_position(page, node_id, 1), (0, 40), shift=True)
    edited = json.loads(wait_for(lambda: (t := keyframes_text(page, node_id)) and "distance" in json.loads(t)["keyframes"][1]
                                 and t, 10, "the shift-dragged keyframe"))
    assert edited["keyframes"][1]["distance"] == pytest.approx(1.4)
    assert edited["keyframes"][1]["yaw"] == pytest.approx(60.0)
    assert edited["keyframes"][2]["distance"] == pytest.approx(1.2)
    # Scrub to frame 20 with a real click on the slider, add a keyframe there with "+ key",
    # delete it with "- key" (it is selected), and add it again.
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    toolbar = canvas.find_element(By.XPATH, "..").find_element(By.TAG_NAME, "div")
    scrubber = toolbar.find_element(By.TAG_NAME, "input")
    width = page.execute_script("return arguments[0].getBoundingClientRect().width;", scrubber)
    ActionChains(page).move_to_element_with_offset(scrubber, round(-width / 2 + width / 4), 0).click().perform()
    frame = wait_for(lambda: run_js(page, "return app.graph.getNodeById(args[0]).factorPortraitPreview.currentFrame;",
                                    node_id), 5, "the scrubbed frame")
    assert 12 <= frame <= 28, f"a click a quarter along the slider scrubs to about frame 20, got {frame}"
    run_js(page, """
        const scrubber = app.graph.getNodeById(args[0]).factorPortraitPreview.scrubber;
        scrubber.value = 20;
        scrubber.dispatchEvent(new Event('input'));""", node_id)  # exactly 20 for the checks below
    play_button, add_button, delete_button = toolbar.find_elements(By.TAG_NAME, "button")
    frames = lambda: [k["frame"] for k in json.loads(keyframes_text(page, node_id))["keyframes"]]
    add_button.click()
    assert frames() == [0, 20, 40, 80]
    delete_button.click()
    assert frames() == [0, 40, 80]
    add_button.click()
    assert frames() == [0, 20, 40, 80]
    with_key = json.loads(keyframes_text(page, node_id))
    save_screenshot(page, artifacts_dir(), "camera-keyframe-editor")
    save_screenshot(page, artifacts_dir(), "camera-keyframe-editor-node", node_id)  # the README's picture
    # Play runs through the frames; a second click stops.
    play_button.click()
    wait_for(lambda: run_js(page, "return app.graph.getNodeById(args[0]).factorPortraitPreview.currentFrame;", node_id) > 24,
             10, "the frames to play")
    play_button.click()
    # Queue the prompt as the Run button does and read what the backend saved.
    before = set(comfy.get("/history"))
    run_js(page, "await app.queuePrompt(0, 1);")
    prompt_id = wait_for(lambda: (new := set(comfy.get("/history")) - before) and new.pop(), 60, "the queued prompt to finish")
    entry = comfy.wait(prompt_id, timeout=60)
    saved = saved_trajectory(comfy, entry, str(save_id))
    values = run_js(page, """
        const node = app.graph.getNodeById(args[0]);
        return Object.fromEntries(node.widgets.filter(w => w.name !== 'camera_preview').map(w => [w.name, w.value]));""", node_id)
    assert json.loads(values["keyframes"]) == with_key
    assert_same_path(js_path(page, values), saved, "the edited keyframes")
    center = torch.linalg.inv(torch.tensor(saved[40]["w2c"], dtype=torch.float64))[:3, 3]
    assert math.degrees(math.atan2(center[0], center[2])) == pytest.approx(60.0, abs=1e-9)
    assert float(center.norm()) == pytest.approx(1.4, abs=1e-9)  # the target of frame 40 is the origin
    assert not [e for e in console_errors(page) if not offline_noise(e)]
