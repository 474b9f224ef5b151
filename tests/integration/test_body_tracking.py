"""Body tracking and normal maps in the real host (which runs every node under
``torch.inference_mode()``), against the known motion of the synthetic driving video
(tests/integration/driving_video.py), and their errors through the server."""
from __future__ import annotations

import torch

from factorportrait.models.render.normal_maps import render_normal_maps

from . import driving_video as dv
from .helpers import failure_text, read_png

TRACK, RENDER = "FactorPortraitTrackBodyMesh", "FactorPortraitRenderNormalMaps"
TRACK_NAME, RENDER_NAME = "FactorPortrait Track Body Mesh", "FactorPortrait Render Normal Maps"


def track_prompt(tag: str, **track_inputs) -> dict:
    """driving.mp4 -> Track (known fov) -> Render from the track's camera at the video size ->
    SaveImage of the normal maps, plus the info text."""
    inputs = {"images": ["frames", 0], "body_model": "anny", "retarget": True, "video_fov": dv.FOV,
              "reference_fov": 0.0, "smoothness": 1.0, "iterations": 30} | track_inputs
    return {
        "video": {"class_type": "LoadVideo", "inputs": {"file": dv.DRIVING_NAME}},
        "frames": {"class_type": "GetVideoComponents", "inputs": {"video": ["video", 0]}},
        "track": {"class_type": TRACK, "inputs": inputs},
        "render": {"class_type": RENDER, "inputs": {"body_track": ["track", 0], "camera": ["track", 1],
                                                    "width": dv.SIZE, "height": dv.SIZE, "backend": "torch"}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["render", 0], "filename_prefix": f"{tag}/normals"}},
        "info": {"class_type": "PreviewAny", "inputs": {"source": ["track", 3]}},
    }


def decode(normal_map: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(normal_map * 2 - 1, dim=-1)


def test_tracked_driving_video_renders_the_true_normal_maps(comfy):
    entry = comfy.run(track_prompt("it-body-truth"), timeout=300)
    assert entry["status"]["status_str"] == "success"
    saved = torch.stack([read_png(f) for f in comfy.output_files({"outputs": {"save": entry["outputs"]["save"]}})])
    assert saved.shape == (dv.FRAMES, dv.SIZE, dv.SIZE, 3)

    model = comfy.anny_model
    with torch.no_grad():
        truth_vertices = model(dv.driving_truth(model))
    truth, truth_mask = render_normal_maps(truth_vertices, model.faces, dv.driving_camera(), dv.SIZE, dv.SIZE)
    mask = (saved - torch.tensor([0.5, 0.5, 1.0])).abs().amax(-1) > 0.02  # not background
    both = mask & (truth_mask > 0)
    iou = both.sum((1, 2)) / (mask | (truth_mask > 0)).sum((1, 2))
    assert iou.min() > 0.85, iou
    cos = (decode(saved) * decode(truth)).sum(-1)[both]
    angle = torch.rad2deg(torch.acos(cos.clamp(-1, 1)))
    assert angle.median() < 8.0, angle.median()  # the fitted head turns and the jaw opens like the truth
    info = entry["outputs"]["info"]["text"][0]
    assert "reprojection error" in info and "filled in" not in info, info


def test_bad_inputs_name_the_node_and_the_fix(comfy, object_info):
    # No person in any frame (EmptyImage: three black frames).
    prompt = track_prompt("it-body-empty")
    prompt["frames"] = {"class_type": "EmptyImage", "inputs": {"width": 128, "height": 128, "batch_size": 3,
                                                              "color": 0}}
    del prompt["video"]
    text, failed = failure_text(comfy, prompt, object_info)
    assert failed == TRACK, text
    assert TRACK_NAME in text and "no face" in text, text

    # A licensed SMPL-X file that is not there: the error names the folder and the file.
    text, _ = failure_text(comfy, track_prompt("it-body-smplx", body_model="SMPL-X neutral"), object_info)
    assert TRACK_NAME in text and "SMPLX_NEUTRAL.npz" in text and "smplx" in text, text

    # A moving camera of another length than the track.
    prompt = track_prompt("it-body-camera")
    prompt["orbit"] = {"class_type": "FactorPortraitCameraTrajectory", "inputs": {
        "mode": "orbit", "frames": 81, "fov": 30.0, "distance": 1.2, "yaw": 0.0, "pitch": 0.0, "roll": 0.0,
        "yaw_end": 30.0, "pitch_end": 0.0, "roll_end": 0.0, "distance_end": 1.2, "amplitude": 10.0,
        "turns": 1.0, "dolly_zoom": False, "easing": "linear", "keyframes": "[]"}}
    prompt["render"]["inputs"]["camera"] = ["orbit", 0]
    text, failed = failure_text(comfy, prompt, object_info)
    assert RENDER_NAME in text and "input 'camera'" in text, text
    assert f"set 'frames' on the Camera Trajectory node to {dv.FRAMES}" in text, text
