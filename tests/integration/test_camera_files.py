"""Save Camera Trajectory -> input folder -> Load Camera Trajectory on the real host."""
from __future__ import annotations

import shutil
import uuid

import torch

from factorportrait.models.camera.files import trajectory_from_json

from .helpers import PNG_TOLERANCE, failure_text, read_png


def load_and_save(file: str, tag: str) -> dict:
    return {
        "1": {"class_type": "FactorPortraitLoadCameraTrajectory", "inputs": {"file": file}},
        "2": {"class_type": "FactorPortraitSaveCameraTrajectory",
              "inputs": {"camera": ["1", 0], "filename_prefix": f"{tag}/camera"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 1], "filename_prefix": f"{tag}/preview"}},
    }


def put_in_input_folder(comfy, text_or_path, name: str) -> str:
    """Write a file into the server's input folder; returns the Load node's combo value.
    The node lists the input folder when its schema is requested, so this comes first."""
    tag = f"it-{uuid.uuid4().hex[:8]}"
    target = comfy.input_dir / tag / name
    target.parent.mkdir(parents=True)
    if isinstance(text_or_path, str):
        target.write_text(text_or_path, encoding="utf-8")
    else:
        shutil.copyfile(text_or_path, target)
    value = f"{tag}/{name}"
    options = comfy.object_info("FactorPortraitLoadCameraTrajectory")["input"]["required"]["file"][1]["options"]
    assert value in options, f"{value} not offered by the Load node: {options}"
    return value


def test_load_reproduces_a_saved_trajectory(comfy, run_workflow):
    run = run_workflow("camera_rays_api.json")
    saver = run.node_of("FactorPortraitSaveCameraTrajectory")
    (saved,) = run.files[saver]
    original = trajectory_from_json(saved.read_text(encoding="utf-8"))

    file = put_in_input_folder(comfy, saved, "orbit.json")
    prompt = load_and_save(file, f"it-load-{uuid.uuid4().hex[:8]}")
    result = comfy.run(prompt, timeout=120)
    (resaved,) = comfy.output_files({"outputs": {"2": result["outputs"]["2"]}})
    again = trajectory_from_json(resaved.read_text(encoding="utf-8"))
    for name in ("w2c", "focal", "pixel_aspect", "principal"):
        torch.testing.assert_close(getattr(again, name), getattr(original, name), rtol=0, atol=1e-12)

    # Its preview is the one the Camera Trajectory node drew for the same path.
    (preview,) = comfy.output_files({"outputs": {"3": result["outputs"]["3"]}})
    source_preview = run.files[run.node_of("SaveImage", images=[run.node_of("FactorPortraitCameraTrajectory"), 1])]
    assert (read_png(preview) - read_png(source_preview[0])).abs().max() <= PNG_TOLERANCE


def test_load_refuses_a_json_that_is_no_camera_file(comfy, object_info):
    file = put_in_input_folder(comfy, '{"frames": []}', "not_a_camera.json")
    text, failed = failure_text(comfy, load_and_save(file, "it-load-bad"), object_info)
    assert failed == "FactorPortraitLoadCameraTrajectory", text
    assert "FactorPortrait Load Camera Trajectory" in text and "input 'file'" in text, text
    assert "not_a_camera.json" in text and "Save Camera Trajectory" in text, text  # names the fix
