"""The controls of an avatar render, each acting alone: the pose from a body track, the
expression from expression codes, the view from a camera. A control not given holds the
photo's own (its pose, its expression, its camera).

- Pose: the driving fit retargeted onto the photo's fit (``tracking/retarget.py``: the
  driving motion since its first frame, on the photo's pose and shape), so the first frame
  is the photo's pose whatever the driving actor's. Frames where the driving video showed
  no face hold the last pose that was seen (the frames are listed in the notes).
- Expression: ARKit-52 codes set the 52 face actions as they are (they are absolute and
  identity-free); the body track's own face actions are not used, so changing the
  expression never moves the head and changing the track never changes the expression.
- Frames: the output has as many frames as the longest control; every control must have
  that many or one (held). A camera whose frames are all the same counts as one.
"""
from __future__ import annotations

import torch

from ..body.upper_body import UpperBodyParams
from ..camera.trajectory import CameraTrajectory
from ..errors import InputError
from ..expression.arkit_codes import ARKIT_ENCODER
from ..expression.codes import ExpressionCodes
from ..tracking.body_track import BodyTrack
from ..tracking.rendering import is_static
from ..tracking.retarget import retarget
from .avatar import Avatar


def frame_count(track: BodyTrack | None, expression: ExpressionCodes | None,
                camera: CameraTrajectory | None) -> int:
    """The number of frames to render (see the module docstring); an InputError naming the
    control whose length does not fit."""
    lengths = {}
    if track is not None:
        lengths["body_track"] = track.frames
    if expression is not None:
        lengths["expression"] = expression.num_frames
    if camera is not None and not (camera.num_frames > 1 and is_static(camera)):
        lengths["camera"] = camera.num_frames
    n = max(lengths.values(), default=1)
    wrong = [name for name, count in lengths.items() if count not in (1, n)]
    if wrong:
        given = ", ".join(f"{k}: {v} frames" for k, v in lengths.items())
        driving = lengths.get("body_track", lengths.get("expression"))
        if "camera" in lengths and driving is not None and lengths["camera"] != driving:
            name, fix = "camera", (f"set 'frames' on the Camera Trajectory node to {driving} (the driving video's "
                                   "frames), or use a static camera")
        else:
            name, fix = wrong[0], ("make the body track and the expression from the same frames of the driving "
                                   "video")
        raise InputError(name, f"the controls have different lengths ({given}); each needs the same number of "
                               f"frames, or 1: {fix}.")
    return n


def held_pose(track: BodyTrack) -> tuple[UpperBodyParams, list[int]]:
    """The driving fit with frames that had no face holding the last seen pose (the first
    seen, before any), and those frames."""
    params = track.driving.params
    missing = sorted(set(track.driving.report.filled_frames))
    if not missing or len(missing) == params.frames:
        return params, missing
    seen = [f for f in range(params.frames) if f not in set(missing)]
    source = []
    for f in range(params.frames):
        before = [s for s in seen if s <= f]
        source.append(before[-1] if before else seen[0])
    return params.select(torch.tensor(source)), missing


def avatar_controls(avatar: Avatar, track: BodyTrack | None = None, expression: ExpressionCodes | None = None,
                    camera: CameraTrajectory | None = None) -> tuple[UpperBodyParams, CameraTrajectory, list[str]]:
    """Per-frame parameters ``[N]`` of the avatar's body model, the camera (``N`` frames or
    one) and notes for the user.

    Raises:
        InputError: ``body_track`` from another body model, ``expression`` codes that are not
            ARKit-52, or controls of different lengths.
    """
    n = frame_count(track, expression, camera)
    notes = []
    photo = avatar.params
    if track is not None:
        if track.model.name != avatar.model.name or track.model.num_vertices != avatar.model.num_vertices:
            raise InputError("body_track", f"the track was fitted with the {track.model.name} body model; the avatar "
                                           "needs a track made with 'anny' (Track Body Mesh, body_model: anny).")
        driving, missing = held_pose(track)
        if missing:
            notes.append(f"no face in {len(missing)} driving frame(s) ({_frames(missing)}): the last pose seen is held.")
        params = retarget(driving, photo)
        if params.frames == 1 and n > 1:
            params = params.select([0] * n)
    else:
        params = photo.select([0] * n)
    if expression is not None:
        params = with_arkit_face(params, expression, "the avatar")
    else:
        params = UpperBodyParams(**{**params.tensors(), "face": photo.face.expand(n, -1).clone()})
    return params, avatar.camera if camera is None else still_as_one(camera), notes


def with_arkit_face(params: UpperBodyParams, expression: ExpressionCodes, owner: str) -> UpperBodyParams:
    """``params`` (``N`` frames) with ARKit-52 codes as their face actions (one code is held
    over every frame; otherwise ``N`` codes); the rest unchanged.

    Raises:
        InputError: codes of another encoder, or a body model whose face is not ARKit-52
            (named as ``owner``, e.g. "the avatar").
    """
    if expression.encoder != ARKIT_ENCODER or expression.dim != params.face.shape[1]:
        raise InputError("expression", f"{owner} takes ARKit-52 codes (encoder '{ARKIT_ENCODER}': Extract "
                                       "Expression with the built-in encoder, or Expression Keyframes); got "
                                       f"encoder '{expression.encoder}' with D={expression.dim}.")
    codes = expression.codes.to(params.face)
    face = codes.expand(params.frames, -1) if codes.shape[0] == 1 else codes
    return UpperBodyParams(**{**params.tensors(), "face": face.clone()})


def still_as_one(camera: CameraTrajectory) -> CameraTrajectory:
    """A camera whose frames are all the same as its one frame (which then follows any
    number of frames, see ``frame_count``); any other camera unchanged."""
    return camera.frames([0]) if camera.num_frames > 1 and is_static(camera) else camera


def _frames(frames: list[int], limit: int = 12) -> str:
    shown = ", ".join(str(f) for f in frames[:limit])
    return shown + (", ..." if len(frames) > limit else "")
