"""Camera trajectory generators: static, orbit, spiral, dolly, arcs and keyframes.

Every mode produces per-frame *orbit parameters* (yaw, pitch, roll, distance, look-at
target and intrinsics, see :func:`models.camera.trajectory.orbit_extrinsics`) and turns them into a
:class:`CameraTrajectory` in one place. Rotations are therefore never interpolated as
matrices or Euler triples of the camera: they are built from smoothly interpolated orbit
angles, which keeps the camera looking at its target, is C1 on SO(3) wherever the
angles are, and lets a turntable go past 180° (which slerp between two poses cannot).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace

import torch

from .trajectory import CameraTrajectory, check_fov, focal_from_fov, fov_from_focal, orbit_extrinsics
from ..errors import InputError
from .interpolation import interpolate_keys

EASINGS = ("linear", "ease in-out")
INTERPOLATIONS = ("smooth", "linear")


@dataclass(frozen=True)
class View:
    """One camera view around a target. Angles in degrees, distance in metres.

    ``fov`` is the vertical field of view; ``focal`` (focal over image height) overrides it
    when set, e.g. to express intrinsics from a calibration or another tool.
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    distance: float = 1.2
    fov: float = 30.0
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    focal: float | None = None
    pixel_aspect: float = 1.0
    principal: tuple[float, float] = (0.5, 0.5)

    def focal_length(self) -> float:
        return float(focal_from_fov(self.fov)) if self.focal is None else self.focal

    def vector(self) -> list[float]:
        """The interpolated channels, in :data:`_CHANNELS` order."""
        return [
            self.yaw, self.pitch, self.roll, self.distance, self.focal_length(),
            *self.target, self.pixel_aspect, *self.principal,
        ]


_CHANNELS = ("yaw", "pitch", "roll", "distance", "focal", "tx", "ty", "tz", "pixel_aspect", "cx", "cy")


def reference_view(camera: CameraTrajectory) -> View:
    """A frontal start view with the distance and intrinsics of ``camera``'s first frame.

    The distance is the camera centre's from the world origin (the look-at target of every
    trajectory). Angles stay relative to the world's frontal direction: a body track's
    reference camera is frontal, the subject's own turn being part of the body's pose.
    """
    first = camera.frames([0])
    return View(distance=float(first.centers[0].norm()), focal=float(first.focal[0]),
                pixel_aspect=float(first.pixel_aspect[0]),
                principal=(float(first.principal[0, 0]), float(first.principal[0, 1])))


def check_view(view: View, suffix: str = "") -> None:
    """Raise an :class:`InputError` for a non-finite or impossible view. Errors name the
    field plus ``suffix`` (``"_end"`` names the node's end widgets, e.g. ``yaw_end``)."""
    for f in fields(View):
        value = getattr(view, f.name)
        items = value if isinstance(value, tuple) else (value,)
        if value is None:
            continue
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in items):
            raise InputError(f.name + suffix, f"must be a finite number, got {value!r}.")
    if view.distance <= 0:
        raise InputError("distance" + suffix, f"must be positive (metres), got {view.distance:g}.")
    if view.focal is None:
        check_fov(view.fov, "fov" + suffix)
    elif view.focal <= 0:
        raise InputError("focal" + suffix, f"must be positive, got {view.focal:g}.")
    if view.pixel_aspect <= 0:
        raise InputError("pixel_aspect" + suffix, f"must be positive, got {view.pixel_aspect:g}.")


def check_frames(frames: int) -> None:
    if not isinstance(frames, int) or frames < 1:
        raise InputError("frames", f"must be a positive whole number, got {frames!r}.")


def trajectory_from_channels(channels: torch.Tensor) -> CameraTrajectory:
    """Cameras from per-frame orbit channels ``[F, 11]`` in :data:`_CHANNELS` order."""
    c = channels.to(torch.float64)
    w2c = orbit_extrinsics(c[:, 0], c[:, 1], c[:, 2], c[:, 3], c[:, 5:8])
    return CameraTrajectory(w2c=w2c, focal=c[:, 4].clone(), pixel_aspect=c[:, 8].clone(),
                            principal=c[:, 9:11].clone())


def progress(frames: int, easing: str = "linear") -> torch.Tensor:
    """Motion progress ``[F]`` from 0 at the first frame to 1 at the last."""
    s = torch.linspace(0.0, 1.0, frames, dtype=torch.float64) if frames > 1 else torch.zeros(1, dtype=torch.float64)
    if easing == "linear":
        return s
    if easing == "ease in-out":
        return s * s * (3 - 2 * s)
    raise InputError("easing", f"unknown easing {easing!r}; choose one of {', '.join(EASINGS)}.")


def blend_views(start: View, end: View, s: torch.Tensor) -> CameraTrajectory:
    """Cameras moving from ``start`` to ``end`` as ``s`` goes 0 -> 1 (``[F]``)."""
    check_view(start)
    check_view(end, "_end")
    a = torch.tensor(start.vector(), dtype=torch.float64)
    b = torch.tensor(end.vector(), dtype=torch.float64)
    return trajectory_from_channels(a + s[:, None] * (b - a))


def static(frames: int, view: View = View()) -> CameraTrajectory:
    """The same view on every frame (frontal when ``view`` is the default)."""
    check_frames(frames)
    return blend_views(view, view, torch.zeros(frames, dtype=torch.float64))


def orbit(frames: int, start: View, yaw_end: float, easing: str = "linear") -> CameraTrajectory:
    """Turntable: yaw from ``start.yaw`` to ``yaw_end`` (may exceed 360°), the rest fixed."""
    check_frames(frames)
    return blend_views(start, replace(start, yaw=yaw_end), progress(frames, easing))


def arc(frames: int, start: View, end: View, easing: str = "ease in-out") -> CameraTrajectory:
    """Pan/tilt arc around the target: yaw, pitch, roll and distance move start -> end."""
    check_frames(frames)
    return blend_views(start, end, progress(frames, easing))


def dolly(
    frames: int, start: View, distance_end: float, dolly_zoom: bool = False, easing: str = "linear"
) -> CameraTrajectory:
    """Move toward or away from the target. With ``dolly_zoom`` the focal length follows the
    distance so the subject keeps its size on screen while the perspective changes."""
    check_frames(frames)
    end = replace(start, distance=distance_end)
    s = progress(frames, easing)
    traj = blend_views(start, end, s)
    if not dolly_zoom:
        return traj
    # On-screen size of the subject ~ focal / distance: keep that ratio.
    distances = start.distance + s * (distance_end - start.distance)
    zoom_focal = start.focal_length() * distances / start.distance
    fov_end = float(fov_from_focal(zoom_focal[-1]))
    try:
        check_fov(fov_end, "distance_end")
    except InputError:
        raise InputError("distance_end", f"a dolly zoom from {start.distance:g} m to "
                         f"{distance_end:g} m needs a field of view of {fov_end:.2f}° at the end, "
                         "outside (1°, 179°); move less or start with another fov.") from None
    return CameraTrajectory(traj.w2c, zoom_focal, traj.pixel_aspect, traj.principal)


def spiral(
    frames: int, start: View, amplitude: float, turns: float, distance_end: float | None = None
) -> CameraTrajectory:
    """The view direction circles ``turns`` times on a circle of ``amplitude`` degrees that
    passes through the start view (first frame = start view), while the distance moves
    to ``distance_end``."""
    check_frames(frames)
    for name, v in (("amplitude", amplitude), ("turns", turns)):
        if not math.isfinite(v):
            raise InputError(name, f"must be a finite number, got {v!r}.")
    end = replace(start, distance=start.distance if distance_end is None else distance_end)
    check_view(start)
    check_view(end, "_end")
    s = progress(frames)
    theta = 2 * math.pi * turns * s
    base = torch.tensor(start.vector(), dtype=torch.float64).repeat(frames, 1)
    base[:, 0] += amplitude * torch.sin(theta)
    base[:, 1] += amplitude * (1 - torch.cos(theta))
    base[:, 3] += s * (end.distance - start.distance)
    return trajectory_from_channels(base)


_KEY_FIELDS = {
    "frame", "yaw", "pitch", "roll", "distance", "fov", "focal", "pixel_aspect", "principal", "target",
}


def _key_error(i: int, msg: str) -> InputError:
    return InputError("keyframes", f"keyframe {i}: {msg}")


def parse_keyframes(text: str, frames: int, defaults: View = View()) -> tuple[list[int], list[View], str]:
    """Parse keyframe JSON into sorted frames, full views and the interpolation method.

    Accepts a list of keyframes or ``{"keyframes": [...], "interpolation": "smooth"}``.
    Each keyframe has an integer ``frame`` and any of yaw, pitch, roll, distance, fov
    (or focal), pixel_aspect, principal ``[cx, cy]``, target ``[x, y, z]``; missing values
    carry over from the previous keyframe (the first from ``defaults``).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError("keyframes", f"is not valid JSON ({e.msg} at line {e.lineno}, "
                         f"column {e.colno}). Example: "
                         '[{"frame": 0, "yaw": 0}, {"frame": 80, "yaw": 45}]') from None
    method = "smooth"
    if isinstance(data, dict):
        unknown = set(data) - {"keyframes", "interpolation"}
        if unknown:
            raise InputError("keyframes", f"unknown top-level field(s) {sorted(unknown)}; "
                             "expected 'keyframes' and optionally 'interpolation'.")
        method = data.get("interpolation", "smooth")
        if method not in INTERPOLATIONS:
            raise InputError("keyframes", f"interpolation {method!r} is not one of {INTERPOLATIONS}.")
        data = data.get("keyframes")
    if not isinstance(data, list) or not data:
        raise InputError("keyframes", "must be a non-empty list of keyframe objects.")
    key_frames: list[int] = []
    views: list[View] = []
    current = defaults
    for i, key in enumerate(data):
        if not isinstance(key, dict):
            raise _key_error(i, f"must be an object like {{\"frame\": 0, \"yaw\": 10}}, got {key!r}.")
        unknown = set(key) - _KEY_FIELDS
        if unknown:
            raise _key_error(i, f"unknown field(s) {sorted(unknown)}; known: {sorted(_KEY_FIELDS)}.")
        frame = key.get("frame")
        if isinstance(frame, float) and frame.is_integer():
            frame = int(frame)
        if not isinstance(frame, int) or isinstance(frame, bool):
            raise _key_error(i, f"'frame' must be a whole number, got {frame!r}.")
        if not 0 <= frame < frames:
            raise _key_error(i, f"frame {frame} is outside the trajectory's frames 0..{frames - 1}.")
        if key_frames and frame <= key_frames[-1]:
            raise _key_error(i, f"frame {frame} does not come after the previous keyframe's "
                                f"frame {key_frames[-1]}; keyframes must be strictly increasing.")
        changes = {k: v for k, v in key.items() if k != "frame"}
        for vec, n in (("principal", 2), ("target", 3)):
            if vec in changes:
                v = changes[vec]
                if not (isinstance(v, list) and len(v) == n):
                    raise _key_error(i, f"'{vec}' must be a list of {n} numbers, got {v!r}.")
                changes[vec] = tuple(v)
        if "fov" in changes and "focal" in changes:
            raise _key_error(i, "give either 'fov' (degrees) or 'focal' (focal length / image "
                                "height), not both.")
        if "fov" in changes:
            changes["focal"] = None
        current = replace(current, **changes)
        try:
            check_view(current)
        except InputError as e:
            raise _key_error(i, f"{e.input_name}: {e.message}") from None
        key_frames.append(frame)
        views.append(current)
    return key_frames, views, method


def keyframed(frames: int, text: str, defaults: View = View()) -> CameraTrajectory:
    """Cameras interpolated through JSON keyframes; every keyframe is hit exactly."""
    check_frames(frames)
    key_frames, views, method = parse_keyframes(text, frames, defaults)
    values = torch.tensor([v.vector() for v in views], dtype=torch.float64)
    channels = interpolate_keys(torch.tensor(key_frames, dtype=torch.float64), values,
                                torch.arange(frames, dtype=torch.float64), method)
    return trajectory_from_channels(channels)
