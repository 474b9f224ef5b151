"""Wan Controls and Face Video in the real ComfyUI host: the tests' driving clip tracked
and rendered as pose, depth and mask videos (from the track alone and from the avatar),
its face crops, and bad input named by node, input and fix. (The values are checked
against ground truth in tests/unit/test_wan_controls.py; the Wan workflows run end to end
in test_workflows.py.)
"""
from __future__ import annotations

import pytest

from . import driving_video as dv
from .helpers import CI_SIZE, failure_text, read_png
from .test_avatar_nodes import PHOTO, host, run  # noqa: F401  (the host fixture: face mesh on anny linked)

CONTROLS, FACE = "FactorPortraitWanControls", "FactorPortraitFaceVideo"
CONTROLS_NAME, FACE_NAME = "FactorPortrait Wan Controls", "FactorPortrait Face Video"


def controls_prompt(tag: str, *, avatar: bool = False, camera_frames: int | None = None, face_frames: int | None = None,
                    style: str = "dwpose") -> dict:
    """The tests' driving clip -> Track Body Mesh -> Wan Controls (64x64; with the avatar of
    the photo and an orbit camera of ``camera_frames`` when asked) and Face Video (of the
    first ``face_frames`` frames when given) -> PNGs and the info text."""
    prompt = {
        "video": {"class_type": "LoadVideo", "inputs": {"file": dv.DRIVING_NAME}},
        "frames": {"class_type": "GetVideoComponents", "inputs": {"video": ["video", 0]}},
        "track": {"class_type": "FactorPortraitTrackBodyMesh", "inputs": {
            "images": ["frames", 0], "body_model": "anny", "retarget": True, "video_fov": dv.FOV,
            "reference_fov": 0.0, "smoothness": 1.0, "iterations": 30}},
        "controls": {"class_type": CONTROLS, "inputs": {"body_track": ["track", 0], "width": CI_SIZE,
                                                        "height": CI_SIZE, "pose_style": style}},
        "face": {"class_type": FACE, "inputs": {"images": ["frames", 0], "body_track": ["track", 0], "size": CI_SIZE,
                                                "scale": 1.3, "smoothing": 0.0}},
        "pose": {"class_type": "SaveImage", "inputs": {"images": ["controls", 0], "filename_prefix": f"{tag}/pose"}},
        "depth": {"class_type": "SaveImage", "inputs": {"images": ["controls", 1], "filename_prefix": f"{tag}/depth"}},
        "mask_image": {"class_type": "MaskToImage", "inputs": {"mask": ["controls", 2]}},
        "mask": {"class_type": "SaveImage", "inputs": {"images": ["mask_image", 0], "filename_prefix": f"{tag}/mask"}},
        "faces": {"class_type": "SaveImage", "inputs": {"images": ["face", 0], "filename_prefix": f"{tag}/face"}},
        "info": {"class_type": "PreviewAny", "inputs": {"source": ["controls", 3]}},
    }
    if avatar:
        prompt["photo"] = {"class_type": "LoadImage", "inputs": {"image": PHOTO}}
        prompt["avatar"] = {"class_type": "FactorPortraitBuildAvatar", "inputs": {"image": ["photo", 0], "fov": 0.0}}
        prompt["controls"]["inputs"]["avatar"] = ["avatar", 0]
    if camera_frames is not None:
        prompt["camera"] = {"class_type": "FactorPortraitCameraTrajectory", "inputs": {
            "mode": "orbit", "frames": camera_frames, "fov": 30.0, "distance": 1.2, "yaw": -20.0, "pitch": 0.0,
            "roll": 0.0, "yaw_end": 20.0, "pitch_end": 0.0, "roll_end": 0.0, "distance_end": 1.2, "amplitude": 10.0,
            "turns": 1.0, "dolly_zoom": False, "easing": "linear", "keyframes": "[]"}}
        if avatar:
            prompt["camera"]["inputs"]["reference_camera"] = ["avatar", 1]
        prompt["controls"]["inputs"]["camera"] = ["camera", 0]
    if face_frames is not None:
        prompt["some"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["frames", 0], "batch_index": 0,
                                                                     "length": face_frames}}
        prompt["face"]["inputs"]["images"] = ["some", 0]
    return prompt


@pytest.mark.parametrize("avatar", [False, True], ids=["track", "avatar"])
def test_controls_and_face_video_of_the_driving_clip(host, avatar):
    entry, files = run(host, controls_prompt(f"it-wan-{avatar}", avatar=avatar, camera_frames=dv.FRAMES))
    pose = [read_png(p) for p in files["pose"]]
    depth = [read_png(p) for p in files["depth"]]
    mask = [read_png(p)[..., 0] for p in files["mask"]]
    faces = [read_png(p) for p in files["faces"]]
    assert len(pose) == len(depth) == len(mask) == len(faces) == dv.FRAMES
    assert pose[0].shape == (CI_SIZE, CI_SIZE, 3) and faces[0].shape == (CI_SIZE, CI_SIZE, 3)
    for p, d, m in zip(pose, depth, mask):
        assert (p.max(-1).values > 0.2).sum() > 10  # a skeleton was drawn
        person = m > 0.5
        assert person.float().mean() > 0.05
        assert float(d[..., 0][person].mean()) > float(d[..., 0][~person].mean())  # near bright
        if not avatar:
            assert float(d[~person].max()) == 0.0  # nothing behind a bare track
    # The face crop follows the face: skin-coloured centre, not black padding.
    assert all(float(f[CI_SIZE // 4:3 * CI_SIZE // 4, CI_SIZE // 4:3 * CI_SIZE // 4].mean()) > 0.2 for f in faces)
    info = "".join(entry["outputs"]["info"]["text"])
    assert f"{dv.FRAMES} frame(s) at {CI_SIZE}x{CI_SIZE}" in info
    assert ("the avatar" in info) == avatar


def test_controls_need_a_track_or_an_avatar(host, object_info):
    prompt = controls_prompt("it-wan-none")
    del prompt["controls"]["inputs"]["body_track"]
    text, failed = failure_text(host, prompt, object_info, timeout=300)
    assert failed == CONTROLS, text
    assert CONTROLS_NAME in text and "input 'body_track'" in text and "Track Body Mesh" in text, text


def test_a_camera_of_another_length_is_named(host, object_info):
    text, failed = failure_text(host, controls_prompt("it-wan-lengths", camera_frames=17), object_info, timeout=300)
    assert failed == CONTROLS, text
    assert CONTROLS_NAME in text and "input 'camera'" in text and "17 frames" in text, text
    assert f"to {dv.FRAMES}" in text, text  # the fix: the frames to set


def test_face_video_of_other_frames_is_named(host, object_info):
    text, failed = failure_text(host, controls_prompt("it-wan-face", face_frames=3), object_info, timeout=300)
    assert failed == FACE, text
    assert FACE_NAME in text and "input 'images'" in text and f"{dv.FRAMES} frame(s)" in text, text
    assert "same frames" in text, text

