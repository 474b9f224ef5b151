"""Build Avatar and Render Avatar in the real ComfyUI host: the avatar workflow end to end
(shrunk for CI: the tests' 9-frame driving clip, 64x64 renders), the avatar giving the
photo back at the photo's camera (PSNR against the photo, within the person's mask), each
control acting alone, and bad input named by node, input and fix.

The photo is the public-domain NASA astronaut portrait shipped as ``assets/astronaut.png``
(conftest copies it into the host's input folder); the driving clip is driving_video.py's
anny render with a known head turn and jaw opening.
"""
from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from devpack import ROOT
from factorportrait.models.expression import ExpressionImageEncoder, ImageEncoderConfig, save_image_encoder

from . import driving_video as dv
from .helpers import CI_SIZE, failure_text, read_png

PHOTO = "astronaut.png"
BUILD, RENDER = "FactorPortraitBuildAvatar", "FactorPortraitRenderAvatar"
BUILD_NAME, RENDER_NAME = "FactorPortrait Build Avatar", "FactorPortrait Render Avatar"
EDGE_PX = 4  # at PSNR_SIZE: the person's soft edge (hair, the layers' matte)
PSNR_SIZE = 256  # the photo is 512x512: a 2x area resize is exactly what the renderer samples
MIN_PSNR_DB = 30.0
# A field of view given to Build Avatar (near the 37.6 degrees it fits on its own): the
# static run's avatar is built afresh, never taken from ComfyUI's cache of another prompt,
# so that its info output is sent.
PHOTO_FOV = 37.5


@pytest.fixture(scope="module")
def host(comfy, anny_cache_dir):
    """The host with MediaPipe's face mesh on anny already placed (linked from the tests'
    anny cache, so Build Avatar does not spend half a minute building it)."""
    target = Path(comfy.base_dir) / "models" / "anny"
    target.mkdir(parents=True, exist_ok=True)
    for src in Path(anny_cache_dir).glob("face_correspondence_*.safetensors"):
        if not (target / src.name).exists():
            try:
                os.link(src, target / src.name)
            except OSError:
                shutil.copy2(src, target / src.name)
    assert (Path(comfy.input_dir) / PHOTO).is_file(), "conftest copies assets/ into the input folder"
    return comfy


def photo(size: int | None = None) -> torch.Tensor:
    """The astronaut as ComfyUI's LoadImage reads it ``[H, W, 3]``, area-resized to ``size``."""
    with Image.open(ROOT / "assets" / PHOTO) as im:
        image = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
    if size is None:
        return image
    return F.interpolate(image.movedim(-1, 0)[None], size=(size, size), mode="area")[0].movedim(0, -1)


def psnr(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> float:
    """PSNR in dB of two images ``[H, W, 3]`` in 0..1, over the pixels weighted by ``weight [H, W]``."""
    err = (a - b).square().mean(-1)
    w = torch.ones_like(err) if weight is None else weight
    return 10 * math.log10(1.0 / max(float((err * w).sum() / w.sum()), 1e-12))


def avatar_prompt(tag: str, *, size: int = CI_SIZE, camera: dict | None = None, track: bool = True,
                  expression: str | None = None, fov: float = 0.0) -> dict:
    """Photo -> Build Avatar; the tests' driving clip -> Track Body Mesh (and Extract
    Expression with ``expression``, an encoder choice); a Camera Trajectory (``camera``:
    its widgets over a static camera at the photo's view) -> Render Avatar -> frames, mask
    and info."""
    cam = {"mode": "static frontal", "frames": 1, "fov": 30.0, "distance": 1.2, "yaw": 0.0, "pitch": 0.0,
           "roll": 0.0, "yaw_end": 30.0, "pitch_end": 0.0, "roll_end": 0.0, "distance_end": 1.2, "amplitude": 10.0,
           "turns": 1.0, "dolly_zoom": False, "easing": "linear", "keyframes": "[]",
           "reference_camera": ["avatar", 1], **(camera or {})}
    prompt = {
        "photo": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
        "avatar": {"class_type": BUILD, "inputs": {"image": ["photo", 0], "fov": fov}},
        "video": {"class_type": "LoadVideo", "inputs": {"file": dv.DRIVING_NAME}},
        "frames": {"class_type": "GetVideoComponents", "inputs": {"video": ["video", 0]}},
        "camera": {"class_type": "FactorPortraitCameraTrajectory", "inputs": cam},
        "render": {"class_type": RENDER, "inputs": {"avatar": ["avatar", 0], "camera": ["camera", 0],
                                                    "width": size, "height": size}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["render", 0], "filename_prefix": f"{tag}/frame"}},
        "mask": {"class_type": "MaskToImage", "inputs": {"mask": ["render", 1]}},
        "save_mask": {"class_type": "SaveImage", "inputs": {"images": ["mask", 0], "filename_prefix": f"{tag}/mask"}},
        "save_preview": {"class_type": "SaveImage", "inputs": {"images": ["avatar", 2],
                                                               "filename_prefix": f"{tag}/preview"}},
        "info": {"class_type": "PreviewAny", "inputs": {"source": ["render", 2]}},
        "avatar_info": {"class_type": "PreviewAny", "inputs": {"source": ["avatar", 3]}},
    }
    if track:
        prompt["track"] = {"class_type": "FactorPortraitTrackBodyMesh", "inputs": {
            "images": ["frames", 0], "body_model": "anny", "reference_image": ["photo", 0], "retarget": True,
            "video_fov": dv.FOV, "reference_fov": 0.0, "smoothness": 1.0, "iterations": 30}}
        prompt["render"]["inputs"]["body_track"] = ["track", 0]
    if expression is not None:
        prompt["encoder"] = {"class_type": "FactorPortraitLoadExpressionEncoder", "inputs": {"encoder": expression}}
        prompt["expression"] = {"class_type": "FactorPortraitExtractExpression", "inputs": {
            "encoder": ["encoder", 0], "images": ["frames", 0], "fov": dv.FOV}}
        prompt["render"]["inputs"]["expression"] = ["expression", 0]
    return prompt


def run(host, prompt: dict) -> tuple[dict, dict]:
    """Run a prompt; its history entry and the saved files per node."""
    entry = host.run(prompt, timeout=300)
    files = {k: host.output_files({"outputs": {k: v}}) for k, v in entry["outputs"].items()}
    return entry, files


# -- the example workflow ----------------------------------------------------------------

def test_the_shipped_driving_video_has_the_papers_length():
    """The main job renders 81 frames (the paper's clips; 4k+1 for Wan), the driving video's
    length: the workflow's camera path has as many frames."""
    import json

    import run_default

    video = ROOT / "assets" / "factorportrait_demo_driving.mp4"
    assert run_default.video_frame_count(video) == 81
    workflow = json.loads(run_default.DEFAULT_WORKFLOW.read_text(encoding="utf-8"))
    (camera,) = [v for v in workflow.values() if v["class_type"] == "FactorPortraitCameraTrajectory"]
    assert camera["inputs"]["frames"] == 81 and camera["inputs"]["reference_camera"][1] == 1
    (render,) = [v for v in workflow.values() if v["class_type"] == RENDER]
    assert (render["inputs"]["width"], render["inputs"]["height"]) == (512, 512)


def test_avatar_workflow_end_to_end(host, run_workflow):
    """workflows/avatar_portrait_api.json, shrunk for CI: a video of the clip's frames at the
    render size, the mask video, the camera orbit moving the view."""
    import av

    run = run_workflow("avatar_portrait_api.json")
    render = run.node_of(RENDER)
    (info_node,) = [k for k, v in run.prompt.items()
                    if v["class_type"] == "PreviewAny" and v["inputs"]["source"] == [render, 2]]
    info = run.entry["outputs"][info_node]["text"][0]
    assert f"{dv.FRAMES} frame(s) at {CI_SIZE}x{CI_SIZE}" in info, info
    assert "body track" in info and "anny-arkit52" in info and f"camera: {dv.FRAMES} frames" in info, info
    videos = {}
    for name in ("avatar", "avatar_mask"):
        (node,) = [k for k, v in run.prompt.items() if v["class_type"] == "SaveVideo"
                   and v["inputs"]["filename_prefix"].endswith(f"/factorportrait/{name}")]
        (path,) = run.files[node]
        with av.open(str(path)) as container:
            videos[name] = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    frames, masks = videos["avatar"], videos["avatar_mask"]
    assert frames.shape == (dv.FRAMES, CI_SIZE, CI_SIZE, 3) and masks.shape == frames.shape
    assert frames.std() > 20, "the frames are flat"
    person = masks[..., 0] > 127
    assert 0.1 < person.mean() < 0.9, "the mask does not outline a person"
    # The orbit turns the view (yaw -30 -> +30): the first and last frames differ visibly.
    assert np.abs(frames[0].astype(float) - frames[-1].astype(float)).mean() > 10


# -- the photo given back, and each control alone ------------------------------------------

@pytest.fixture(scope="module")
def static_run(host):
    """The driving track and a static camera at the photo's view, no expression input
    (the photo's own), at PSNR_SIZE."""
    tag = f"it-avatar-static-{uuid.uuid4().hex[:8]}"
    return run(host, avatar_prompt(tag, size=PSNR_SIZE, fov=PHOTO_FOV))


def test_frame_zero_at_the_photos_camera_is_the_photo(static_run):
    """The track's motion starts at the photo's pose, the expression is the photo's and the
    camera is the photo's: frame 0 gives the photo back, sharply (a blurred render of a
    512-px photo at 256 px would be far below this)."""
    entry, files = static_run
    frames = [read_png(p) for p in files["save"]]
    mask = read_png(files["save_mask"][0])[..., 0]
    assert len(frames) == dv.FRAMES and frames[0].shape == (PSNR_SIZE, PSNR_SIZE, 3)
    target = photo(PSNR_SIZE)
    assert float(mask.mean()) > 0.2, "the person's mask is nearly empty"
    on_person = psnr(frames[0], target, mask)
    assert on_person > MIN_PSNR_DB, f"frame 0 within the person's mask: {on_person:.1f} dB"
    blurred = F.avg_pool2d(target.movedim(-1, 0)[None], 5, stride=1, padding=2, count_include_pad=False)[0]
    assert psnr(blurred.movedim(0, -1), target, mask) < on_person - 5, "the check cannot tell a blur"
    # Build Avatar's preview: the avatar at the photo's own size and view.
    preview = read_png(files["save_preview"][0])
    assert preview.shape == (512, 512, 3)
    assert psnr(preview, photo()) > MIN_PSNR_DB
    info = entry["outputs"]["avatar_info"]["text"][0]
    assert "avatar of a 512x512 photo" in info and f"field of view {PHOTO_FOV:.1f} deg" in info, info


def test_only_the_pose_moves(static_run):
    """A body track alone under a static camera: the head turns (the person's pixels
    change), the background stays as it was (farther than a few pixels from the person,
    whose matte's soft edge moves with it)."""
    entry, files = static_run
    frames = torch.stack([read_png(p) for p in files["save"]])
    masks = torch.stack([read_png(p)[..., 0] for p in files["save_mask"]])
    info = entry["outputs"]["info"]["text"][0]
    assert "expression: the photo's own" in info and "camera: static" in info, info
    middle = dv.FRAMES // 2  # the turn's peak (driving_video.py: yaw 0 -> 20 -> 0 degrees)
    moved = (frames[middle] - frames[0]).abs().mean(-1)
    head = masks[0] > 0.5
    assert float(moved[head].mean()) > 0.02, "the driving head turn does not move the avatar"
    either = torch.maximum(masks[0], masks[middle])[None, None]
    near = F.max_pool2d(either, 2 * EDGE_PX + 1, stride=1, padding=EDGE_PX)[0, 0]
    background = near < 0.01
    assert int(background.sum()) > 0.2 * background.numel()
    assert float(moved[background].max()) <= 1 / 255, "a static camera moved the background"


# -- bad input ---------------------------------------------------------------------------------

def test_no_face_names_the_node_the_input_and_the_fix(host, object_info):
    prompt = {
        "blank": {"class_type": "EmptyImage", "inputs": {"width": 256, "height": 256, "batch_size": 1, "color": 0}},
        "avatar": {"class_type": BUILD, "inputs": {"image": ["blank", 0], "fov": 0.0}},
        "info": {"class_type": "PreviewAny", "inputs": {"source": ["avatar", 3]}},
    }
    text, failed = failure_text(host, prompt, object_info, timeout=300)
    assert failed == BUILD, text
    assert BUILD_NAME in text and "input 'image'" in text and "no face" in text, text
    assert "use another photo" in text, text  # the fix


def test_learned_expression_codes_are_refused(host, object_info):
    folder = Path(host.base_dir) / "models" / "factorportrait_expression"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny16_avatar.safetensors"
    if not path.exists():
        network = ExpressionImageEncoder(ImageEncoderConfig(code_dim=16, width=8, depth=2, crop_size=64), "tiny-16")
        save_image_encoder(network, str(path), "tiny-16")
    prompt = avatar_prompt("it-avatar-learned", track=False, expression=path.name)
    text, failed = failure_text(host, prompt, object_info, timeout=300)
    assert failed == RENDER, text
    assert RENDER_NAME in text and "input 'expression'" in text and "ARKit" in text, text
    assert "built-in encoder" in text, text  # the fix


def test_controls_of_different_lengths(host, object_info):
    """A camera path of 17 frames with a track of 9."""
    prompt = avatar_prompt("it-avatar-lengths", camera={"mode": "orbit", "frames": 17})
    text, failed = failure_text(host, prompt, object_info, timeout=300)
    assert failed == RENDER, text
    assert RENDER_NAME in text and ("input 'camera'" in text or "input 'body_track'" in text), text
    assert "17 frames" in text and f"{dv.FRAMES} frames" in text, text
    assert "Camera Trajectory" in text, text  # the fix: its 'frames'


# -- scripts/run_default.py on a user's files ---------------------------------------------------

def test_run_default_follows_the_users_driving_video(host, tmp_path):
    """``--reference --driving --camera`` edit the avatar workflow: the camera path gets the
    video's frame count (read with OpenCV), presets and keyframe files set the Camera
    Trajectory, a saved trajectory file replaces it; the edited workflow runs."""
    import json

    import run_default
    from comfy_host import load_api_workflow

    video = Path(host.input_dir) / dv.DRIVING_NAME
    reference = ROOT / "assets" / PHOTO
    assert run_default.video_frame_count(video) == dv.FRAMES

    def configured(camera: str | None) -> tuple[dict, dict, str]:
        """The edited workflow, the files for the input folder and the notes (one text)."""
        prompt, _ = load_api_workflow(run_default.DEFAULT_WORKFLOW)
        inputs, notes = run_default.configure(prompt, reference, video, camera)
        assert {PHOTO: reference, dv.DRIVING_NAME: video}.items() <= inputs.items()
        return prompt, inputs, "\n".join(notes)

    def camera_inputs(prompt: dict) -> dict:
        (node,) = [v for v in prompt.values() if v["class_type"] in (run_default.CAMERA_NODE,
                                                                     run_default.LOAD_CAMERA_NODE)]
        return node["inputs"]

    prompt, _, notes = configured(None)
    assert camera_inputs(prompt)["frames"] == dv.FRAMES and f"{dv.FRAMES} frames" in notes
    prompt, _, notes = configured("static")
    assert camera_inputs(prompt)["mode"] == "static frontal" and not notes  # follows any number of frames
    prompt, _, _ = configured("pan/tilt arc")
    assert camera_inputs(prompt)["mode"] == "pan/tilt arc" and camera_inputs(prompt)["frames"] == dv.FRAMES
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([{"frame": 0}, {"frame": 8, "yaw": 20}]))
    inputs = camera_inputs(configured(str(keys))[0])
    assert inputs["mode"] == "keyframes" and json.loads(inputs["keyframes"])[1]["yaw"] == 20
    saved = tmp_path / "path.json"
    saved.write_text(json.dumps({"format": "factorportrait-camera", "version": 1, "frames": [{}, {}, {}]}))
    prompt, inputs, notes = configured(str(saved))
    assert camera_inputs(prompt) == {"file": "path.json"} and inputs["path.json"] == saved
    assert "warning" in notes and "3 cameras" in notes, notes
    with pytest.raises(ValueError, match="preset"):
        configured("sideways")

    prompt = configured("dolly")[0]
    for node in prompt.values():
        if node["class_type"] == RENDER:
            node["inputs"].update(width=CI_SIZE, height=CI_SIZE)
        if "filename_prefix" in node["inputs"]:
            node["inputs"]["filename_prefix"] = f"it-avatar-user-{uuid.uuid4().hex[:8]}/out"
    entry, files = run(host, prompt)
    (info,) = [v["text"][0] for k, v in entry["outputs"].items() if "frame(s) at" in "".join(v.get("text", []))]
    assert f"{dv.FRAMES} frame(s) at {CI_SIZE}x{CI_SIZE}" in info and f"camera: {dv.FRAMES} frames" in info, info
    assert all(files[k] for k, v in prompt.items() if v["class_type"] == "SaveVideo")
