"""The example workflows under workflows/ run on the real host and give the right results.

Every ``*_api.json`` runs through ``/prompt``; every UI workflow ``x.json`` (the one users
drop onto ComfyUI) describes the same graph as its API twin ``x_api.json``.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from factorportrait.models.camera import paths as tr
from factorportrait.models.camera.files import trajectory_from_json
from factorportrait.models.camera.preview import ray_direction_preview, trajectory_preview

from .helpers import (
    PNG_TOLERANCE,
    WORKFLOWS,
    api_twin,
    api_workflows,
    graph_problems,
    load_json,
    read_png,
    strip_meta,
    ui_to_api,
    ui_workflows,
)


@pytest.mark.parametrize("path", api_workflows(), ids=lambda p: p.name)
def test_api_workflow_runs(run_workflow, path):
    run = run_workflow(path.name)
    assert run.entry["status"]["status_str"] == "success"
    output_nodes = [k for k, v in run.prompt.items() if "filename_prefix" in v["inputs"]]
    for node_id in output_nodes:
        files = run.files.get(node_id)
        assert files, f"node {node_id} ({run.prompt[node_id]['class_type']}) saved nothing"
        for f in files:
            assert f.is_file() and f.stat().st_size > 0, f


def test_example_workflows_come_in_pairs():
    ui = {p.stem for p in ui_workflows()}
    api = {p.name.removesuffix("_api.json") for p in api_workflows()}
    assert ui and ui == api, f"UI workflows {sorted(ui)} and API workflows {sorted(api)} must pair up"


# -- camera_rays: values against the models computed in-process -------------------------
@pytest.fixture(scope="module")
def camera_rays(run_workflow):
    run = run_workflow("camera_rays_api.json")
    cam_node = run.node_of("FactorPortraitCameraTrajectory")
    rays_node = run.node_of("FactorPortraitPluckerRayMaps")
    w = run.prompt[cam_node]["inputs"]
    assert w["mode"] == "orbit"
    start = tr.View(yaw=w["yaw"], pitch=w["pitch"], roll=w["roll"], distance=w["distance"], fov=w["fov"])
    camera = tr.orbit(w["frames"], start, w["yaw_end"], w["easing"])
    return run, camera, cam_node, rays_node


def saved_by(run, source: str, slot: int, class_type: str) -> list:
    """Files saved by the ``class_type`` node fed by output ``slot`` of node ``source``."""
    (saver,) = [k for k, v in run.prompt.items()
                if v["class_type"] == class_type and [source, slot] in v["inputs"].values()]
    return run.files[saver]


def test_camera_rays_saves_the_orbit_trajectory(camera_rays):
    run, expected, cam_node, _ = camera_rays
    (path,) = saved_by(run, cam_node, 0, "FactorPortraitSaveCameraTrajectory")
    assert path.suffix == ".json"
    loaded = trajectory_from_json(path.read_text(encoding="utf-8"))
    assert loaded.num_frames == expected.num_frames == 81
    for name in ("w2c", "focal", "pixel_aspect", "principal"):
        torch.testing.assert_close(getattr(loaded, name), getattr(expected, name), rtol=0, atol=1e-9)


def test_camera_rays_camera_preview(camera_rays):
    run, camera, cam_node, _ = camera_rays
    (path,) = saved_by(run, cam_node, 1, "SaveImage")
    expected = trajectory_preview(camera)[0]  # [H, W, 3]
    saved = read_png(path)
    assert saved.shape == expected.shape  # 256 x 514 with the default panel size
    assert (saved - expected).abs().max() <= PNG_TOLERANCE


def test_camera_rays_ray_direction_previews(camera_rays):
    run, camera, _, rays_node = camera_rays
    inputs = run.prompt[rays_node]["inputs"]
    files = saved_by(run, rays_node, 1, "SaveImage")
    assert len(files) == camera.num_frames
    expected = ray_direction_preview(camera, inputs["width"], inputs["height"])  # [F, h, w, 3]
    for frame in (0, camera.num_frames // 2, camera.num_frames - 1):
        saved = read_png(files[frame])
        assert saved.shape == expected[frame].shape
        assert (saved - expected[frame]).abs().max() <= PNG_TOLERANCE, f"frame {frame}"
    # An orbit turns the view: first and last frames must differ visibly.
    assert (read_png(files[0]) - read_png(files[-1])).abs().max() > 0.05


def test_saved_pngs_carry_the_ui_workflow(camera_rays):
    """Dropping a saved PNG onto ComfyUI restores the editable UI workflow."""
    from PIL import Image

    run, _, cam_node, _ = camera_rays
    (path,) = saved_by(run, cam_node, 1, "SaveImage")
    with Image.open(path) as im:
        workflow = json.loads(im.info["workflow"])
    assert workflow == load_json(WORKFLOWS / "camera_rays.json")


# -- UI workflows -------------------------------------------------------------------------
@pytest.mark.parametrize("path", ui_workflows(), ids=lambda p: p.name)
def test_ui_workflow_is_a_consistent_litegraph(object_info, path):
    assert graph_problems(load_json(path), object_info) == []


@pytest.mark.parametrize("path", ui_workflows(), ids=lambda p: p.name)
def test_ui_workflow_matches_its_api_twin(object_info, path):
    from_ui = ui_to_api(load_json(path), object_info)
    api = load_json(api_twin(path))
    assert strip_meta(from_ui) == strip_meta(api)
    for node_id, node in api.items():
        if "_meta" in node:
            assert node["_meta"]["title"] == from_ui[node_id]["_meta"]["title"], node_id


def test_ui_conversion_reads_frontend_files_like_the_frontend(object_info):
    """The converter above, on a workflow saved by ComfyUI's own frontend (the default
    graph of comfyui-workflow-templates): KSampler's seed is followed by its
    'control after generate' value, which is not an input."""
    spec = importlib.util.find_spec("comfyui_workflow_templates_media_other")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("comfyui-workflow-templates is not installed")
    ui = load_json(Path(spec.submodule_search_locations[0]) / "templates" / "default.json")
    api = ui_to_api(ui, object_info)
    (node,) = [n for n in ui["nodes"] if n["type"] == "KSampler"]
    seed, control, steps, cfg, sampler, scheduler, denoise = node["widgets_values"]
    assert control in ("fixed", "increment", "decrement", "randomize")
    inputs = api[str(node["id"])]["inputs"]
    assert {k: inputs[k] for k in ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise")} == {
        "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": scheduler,
        "denoise": denoise}
    assert {k for k, v in inputs.items() if isinstance(v, list)} == {"model", "positive", "negative", "latent_image"}
