"""Parity with ComfyUI's own WanCameraEmbedding node, called in process.

For each of its nine presets our Camera Trajectory node expresses the same trajectory
(keyframes with linear interpolation) and our WAN_CAMERA_EMBEDDING matches ComfyUI's.
ComfyUI builds pose rows that it reads as camera-to-world, relative to the first frame;
``test_pose_convention`` shows they are exactly our ``relative_to_first().c2w``.
"""
import json
import math

import numpy as np
import pytest
import torch
from devpack import import_comfyui

import_comfyui()

from comfy_extras import nodes_camera_trajectory as comfy_camera  # noqa: E402

from factorportrait.models.camera.trajectory import FRONTAL_W2C_ROTATION  # noqa: E402
from factorportrait.models.camera.plucker import wan_camera_embedding  # noqa: E402
from factorportrait.nodes.camera_trajectory import CameraTrajectoryNode  # noqa: E402
from factorportrait.nodes.plucker_rays import PluckerRayMaps  # noqa: E402

PRESETS = list(comfy_camera.CAMERA_DICT)[2:]
START_DISTANCE = 5.0  # far enough that "Zoom In" never reaches the target

# ComfyUI's CameraCtrl-style intrinsics assume poses recorded at 1280x720.
COMFY_POSE_ASPECT = 1280 / 720


def comfy_intrinsics_keyframe(fx, fy, cx, cy, width, height) -> dict:
    """ComfyUI's (fx, fy, cx, cy) as our focal / pixel_aspect / principal (square-free)."""
    if COMFY_POSE_ASPECT > width / height:
        fx_px, fy_px = fx * height * COMFY_POSE_ASPECT, fy * height
    else:
        fx_px, fy_px = fx * width, fy * width / COMFY_POSE_ASPECT
    return {"focal": fy_px / height, "pixel_aspect": fx_px / fy_px, "principal": [cx, cy]}


def preset_keyframes(preset: str, length: int, speed: float, intrinsics: dict) -> str:
    """Our keyframes for a ComfyUI preset. ComfyUI moves by (i / length) * speed per frame,
    so the last frame (i = length - 1) is at progress (length - 1) / length."""
    p = (length - 1) / length * speed
    angle = comfy_camera.CAMERA_DICT[preset]["angle"]
    t = [v * comfy_camera.CAMERA_DICT["base_T_norm"] * p for v in comfy_camera.CAMERA_DICT[preset]["T"]]
    roll = math.degrees(angle[2] * comfy_camera.CAMERA_DICT["base_angle"] * p)
    # A camera-frame translation t of the frontal camera is a world move F^T t: x -> +X,
    # y (down) -> -Y, z (forward) -> -Z, i.e. the look-at target moves and distance shrinks.
    world = (FRONTAL_W2C_ROTATION.double().T @ torch.tensor(t, dtype=torch.float64)).tolist()
    first = {"frame": 0, "yaw": 0, "pitch": 0, "roll": 0, "distance": START_DISTANCE,
             "target": [0, 0, 0], **intrinsics}
    last = {"frame": length - 1, "roll": roll, "distance": START_DISTANCE - t[2],
            "target": [world[0], world[1], 0.0]}
    return json.dumps({"interpolation": "linear", "keyframes": [first, last]})


def our_camera(keyframes: str, length: int):
    out = CameraTrajectoryNode.execute(
        mode="keyframes", frames=length, fov=30.0, distance=1.2, yaw=0.0, pitch=0.0, roll=0.0,
        yaw_end=0.0, pitch_end=0.0, roll_end=0.0, distance_end=1.2, amplitude=0.0, turns=0.0,
        dolly_zoom=False, easing="linear", keyframes=keyframes)
    return out.args[0]


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_match_comfyui(preset):
    width, height, length, speed = 208, 128, 33, 1.0
    ref = comfy_camera.WanCameraEmbedding.execute(preset, width, height, length).args[0]
    camera = our_camera(
        preset_keyframes(preset, length, speed, comfy_intrinsics_keyframe(0.5, 0.5, 0.5, 0.5, width, height)),
        length)
    ours = PluckerRayMaps.execute(camera, width, height).args[2]
    assert ours.shape == ref.shape == (1, 24, (length - 1) // 4 + 1, height, width)
    torch.testing.assert_close(ours, ref.float(), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "preset,width,height,speed,fx,fy,cx,cy",
    [
        ("ClockWise (CW)", 320, 144, 2.5, 0.7, 0.6, 0.45, 0.55),  # wider than 16:9
        ("Zoom Out", 128, 192, 0.5, 0.4, 0.55, 0.5, 0.5),  # portrait
        ("Pan Left", 832, 480, 1.0, 0.5, 0.5, 0.5, 0.5),  # the paper-size default
    ],
)
def test_speed_intrinsics_and_sizes_match_comfyui(preset, width, height, speed, fx, fy, cx, cy):
    length = 81 if width == 832 else 21
    ref = comfy_camera.WanCameraEmbedding.execute(
        preset, width, height, length, speed, fx, fy, cx, cy).args[0]
    intrinsics = comfy_intrinsics_keyframe(fx, fy, cx, cy, width, height)
    ours = wan_camera_embedding(our_camera(preset_keyframes(preset, length, speed, intrinsics), length),
                                width, height)
    torch.testing.assert_close(ours, ref.float(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("preset", PRESETS)
def test_pose_convention(preset):
    """ComfyUI's pose rows are camera-to-world relative to frame 0: our relative c2w."""
    length = 17
    rt = comfy_camera.get_camera_motion(
        np.array(comfy_camera.CAMERA_DICT[preset]["angle"]),
        np.array(comfy_camera.CAMERA_DICT[preset]["T"]), 1.0, length)
    intrinsics = comfy_intrinsics_keyframe(0.5, 0.5, 0.5, 0.5, 208, 128)
    camera = our_camera(preset_keyframes(preset, length, 1.0, intrinsics), length)
    relative_c2w = camera.relative_to_first().c2w[:, :3, :]
    torch.testing.assert_close(relative_c2w, torch.from_numpy(rt).double(), atol=1e-9, rtol=0)
    # And the absolute pose really is a world-space camera: frame 0 is the frontal view.
    torch.testing.assert_close(camera.w2c[0, :3, :3], FRONTAL_W2C_ROTATION.double())
