"""Camera trajectories as shareable JSON (format ``factorportrait-camera``, version 1).

::

    {"format": "factorportrait-camera", "version": 1,
     "frames": [{"w2c": [[...4 numbers...] x 4], "focal": 1.866,
                 "pixel_aspect": 1.0, "principal": [0.5, 0.5]}, ...]}

Conventions are those of :mod:`models.camera.trajectory` (DESIGN.md world, OpenCV camera axes,
world-to-camera extrinsics, intrinsics normalised by image size).
"""
from __future__ import annotations

import json

import torch

from .trajectory import CameraTrajectory
from ..errors import InputError

FORMAT = "factorportrait-camera"
VERSION = 1
CONVENTION = (
    "world: right-handed, metres, +Y up, subject faces +Z; camera axes: OpenCV (x right, "
    "y down, z forward); w2c: world-to-camera; focal: fy/height; pixel_aspect: fx/fy; "
    "principal: (cx/width, cy/height)"
)


def trajectory_to_dict(camera: CameraTrajectory) -> dict:
    """A JSON-serialisable dict of the trajectory."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "convention": CONVENTION,
        "frames": [
            {
                "w2c": camera.w2c[i].tolist(),
                "focal": float(camera.focal[i]),
                "pixel_aspect": float(camera.pixel_aspect[i]),
                "principal": camera.principal[i].tolist(),
            }
            for i in range(camera.num_frames)
        ],
    }


def trajectory_to_json(camera: CameraTrajectory) -> str:
    return json.dumps(trajectory_to_dict(camera), indent=1)


def trajectory_from_json(text: str, input_name: str = "trajectory", label: str = "the text") -> CameraTrajectory:
    """Parse a trajectory; errors name the input and ``label`` (e.g. the file name)."""

    def fail(msg: str) -> InputError:
        return InputError(input_name, f"{label} {msg}")

    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise fail(f"is not valid JSON ({e.msg} at line {e.lineno}).") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise fail(f"is not a FactorPortrait camera file (expected \"format\": \"{FORMAT}\"; "
                   "save one with the FactorPortrait Save Camera Trajectory node).")
    if type(data.get("version")) is not int or data["version"] != VERSION:
        raise fail(f"has version {data.get('version')!r}; this pack reads version {VERSION}.")
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise fail("has no frames.")
    try:
        w2c = torch.tensor([f["w2c"] for f in frames], dtype=torch.float64)
        focal = torch.tensor([f["focal"] for f in frames], dtype=torch.float64)
        aspect = torch.tensor([f.get("pixel_aspect", 1.0) for f in frames], dtype=torch.float64)
        principal = torch.tensor([f.get("principal", [0.5, 0.5]) for f in frames], dtype=torch.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise fail(f"has a malformed frame ({type(e).__name__}: {e}); every frame needs a 4x4 "
                   "'w2c' and a 'focal'.") from None
    try:
        return CameraTrajectory(w2c, focal, aspect, principal)
    except InputError as e:
        raise fail(e.message) from None
