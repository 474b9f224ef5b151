"""Bad input through the real server: the error names the node, the input and the fix."""
from __future__ import annotations

from .helpers import WORKFLOWS, failure_text, load_json, with_prefix_folder

CAMERA_NAME = "FactorPortrait Camera Trajectory"
RAYS_NAME = "FactorPortrait Plücker Ray Maps"


def camera_rays_prompt(tag: str) -> dict:
    return with_prefix_folder(load_json(WORKFLOWS / "camera_rays_api.json"), tag)


def node_id(prompt: dict, class_type: str) -> str:
    (found,) = [k for k, v in prompt.items() if v["class_type"] == class_type]
    return found


def test_frame_count_that_wan_cannot_pack(comfy, object_info):
    prompt = camera_rays_prompt("it-errors-frames")
    prompt[node_id(prompt, "FactorPortraitCameraTrajectory")]["inputs"]["frames"] = 80
    text, failed = failure_text(comfy, prompt, object_info)
    assert failed == "FactorPortraitPluckerRayMaps", text
    assert RAYS_NAME in text and "input 'camera'" in text, text
    assert "4k+1" in text and "77 or 81" in text, text  # the rule and the fix


def test_malformed_keyframes_json(comfy, object_info):
    prompt = camera_rays_prompt("it-errors-keyframes")
    inputs = prompt[node_id(prompt, "FactorPortraitCameraTrajectory")]["inputs"]
    inputs["mode"] = "keyframes"
    inputs["keyframes"] = '[{"frame": 0, "yaw": 10}, {"frame": 80 "yaw": 40}]'  # missing comma
    text, failed = failure_text(comfy, prompt, object_info)
    assert failed == "FactorPortraitCameraTrajectory", text
    assert CAMERA_NAME in text and "input 'keyframes'" in text, text
    assert "not valid JSON" in text and "line 1" in text, text


def test_server_still_runs_after_errors(comfy, object_info):
    """A failed node leaves the host usable: the same graph with valid input runs."""
    prompt = camera_rays_prompt("it-errors-after")
    for nid in list(prompt):  # only the trajectory and its saver, to stay quick
        if prompt[nid]["class_type"] not in ("FactorPortraitCameraTrajectory",
                                            "FactorPortraitSaveCameraTrajectory"):
            del prompt[nid]
    entry = comfy.run(prompt, timeout=120)
    assert entry["status"]["status_str"] == "success"
