"""Head, neck and torso rotation curves, and the camera of each regime.

Head motion: the head's total turn (pitch about +X, positive looking down; yaw about +Y,
positive toward the subject's left; roll about +Z, positive tipping the crown toward the
subject's right; degrees) is keyframed every 0.4 to 1.2 s and interpolated by monotone
cubics (:func:`models.camera.interpolation.interpolate_keys`: C1, no overshoot past the keys, so the
curves stay within ``POSE_LIMITS``), then shared out between torso, neck and head as people
turn (``SHARES``). The rotations are axis-angle vectors in world axes (radians), as
:class:`models.body.UpperBodyParams` takes them.

Cameras come from the pack's own trajectory generators (:mod:`models.camera.paths`), so the
clips' cameras are the ones a user can make with the Camera Trajectory node:

- ``view_sweep``: an orbit, arc, spiral or dolly around the head, at portrait framing
  (the head and shoulders fill 0.45 to 0.65 m of the frame's height);
- ``dynamic_sweep``: the same cameras (the expression and pose move too, see
  :mod:`.generate`);
- ``phone``: a static selfie camera, 0.35 to 0.55 m in front, 55 to 75 degree field of view.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch

from ...models.camera import paths as tr
from ...models.camera.trajectory import CameraTrajectory
from ...models.camera.interpolation import interpolate_keys
from .appearance import choice, uniform

REGIMES = ("view_sweep", "dynamic_sweep", "phone")
POSE_LIMITS = (20.0, 35.0, 10.0)  # degrees: |pitch|, |yaw|, |roll| of the head's total turn
# Share of each axis (pitch, yaw, roll) taken by each joint group; each column sums to 1.
SHARES = {"torso": (0.10, 0.15, 0.20), "neck": (0.35, 0.35, 0.35), "head": (0.55, 0.50, 0.45)}
POSE_GROUPS = ("head", "neck", "torso")
SWEEP_KINDS = ("orbit", "arc", "spiral", "dolly")
MAX_CAMERA_DISTANCE = 1.35  # metres: inside every room (walls 1.5 m or more away)


@dataclass(frozen=True)
class HeadMotion:
    """The head's total turn at keyframes: ``knots`` (seconds, increasing) and ``angles``
    ``(pitch, yaw, roll)`` in degrees at each."""

    knots: tuple[float, ...]
    angles: tuple[tuple[float, float, float], ...]

    def total(self, times: torch.Tensor) -> torch.Tensor:
        """The total turn ``[N, 3]`` (degrees, float64) at ``times [N]`` (seconds)."""
        return interpolate_keys(torch.tensor(self.knots, dtype=torch.float64),
                                torch.tensor(self.angles, dtype=torch.float64),
                                torch.as_tensor(times, dtype=torch.float64).reshape(-1))

    def evaluate(self, times: torch.Tensor) -> dict[str, torch.Tensor]:
        """Axis-angle rotations ``{"head", "neck", "torso"} -> [N, 3]`` (float32 radians)."""
        total = torch.deg2rad(self.total(times))
        return {group: (total * torch.tensor(SHARES[group], dtype=torch.float64)).float() for group in POSE_GROUPS}


def still_motion(angles: tuple[float, float, float]) -> HeadMotion:
    """A head held at ``angles`` (degrees) at all times."""
    return HeadMotion((0.0,), (tuple(angles),))


def sample_head_motion(generator: torch.Generator, t0: float, t1: float) -> HeadMotion:
    """Random head motion over ``[t0, t1]`` seconds: a resting pose the head returns near,
    keyframes around it, some of them held."""
    scale = uniform(generator, 0.3, 1.0)
    limits = torch.tensor(POSE_LIMITS, dtype=torch.float64)
    rest = limits * 0.4 * (2 * torch.rand(3, generator=generator, dtype=torch.float64) - 1)
    knots, angles = [], []
    t = t0 - uniform(generator, 0.3, 1.0)
    while True:
        if angles and uniform(generator, 0, 1) < 0.25:
            value = angles[-1]  # a held pose
        else:
            swing = scale * limits * (2 * torch.rand(3, generator=generator, dtype=torch.float64) - 1)
            value = tuple(torch.maximum(torch.minimum(rest + swing, limits), -limits).tolist())
        knots.append(t)
        angles.append(value)
        if t > t1:
            break
        t += uniform(generator, 0.4, 1.2)
    return HeadMotion(tuple(knots), tuple(angles))


@dataclass(frozen=True)
class CameraPlan:
    """How a clip's camera was made: the trajectory kind, its start view and its settings
    (the sample's ``info["camera_motion"]``)."""

    kind: str
    start: tr.View
    settings: dict

    def to_json(self) -> dict:
        return {"kind": self.kind, "start": asdict(self.start), "settings": dict(self.settings)}


def sample_view(generator: torch.Generator, regime: str) -> tr.View:
    """A camera view for ``regime``: portrait framing around the head (sweeps), or a
    selfie camera (``phone``)."""
    if regime == "phone":
        return tr.View(yaw=uniform(generator, -8, 8), pitch=uniform(generator, -5, 12), roll=uniform(generator, -4, 4),
                       distance=uniform(generator, 0.35, 0.55), fov=uniform(generator, 55, 75),
                       target=(0.0, uniform(generator, -0.08, -0.02), 0.0))
    fov = uniform(generator, 18, 40)
    span = uniform(generator, 0.45, 0.65)  # metres of the subject the frame's height spans
    distance = min(max(span / (2 * math.tan(math.radians(fov) / 2)), 0.6), 1.3)
    return tr.View(yaw=uniform(generator, -35, 35), pitch=uniform(generator, -10, 15), distance=distance, fov=fov,
                   target=(0.0, uniform(generator, -0.12, -0.04), 0.0))


def _distance(d: float) -> float:
    return min(max(d, 0.5), MAX_CAMERA_DISTANCE)


def sample_camera(generator: torch.Generator, regime: str, frames: int) -> tuple[CameraTrajectory, CameraPlan]:
    """The camera of a clip of ``regime`` (``REGIMES``), ``frames`` frames."""
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")
    start = sample_view(generator, regime)
    if regime == "phone":
        return tr.static(frames, start), CameraPlan("static", start, {})
    kind = SWEEP_KINDS[choice(generator, len(SWEEP_KINDS))]
    easing = tr.EASINGS[choice(generator, len(tr.EASINGS))]
    sign = 1.0 if uniform(generator, 0, 1) < 0.5 else -1.0
    if kind == "orbit":
        settings = {"yaw_end": start.yaw + sign * uniform(generator, 20, 60), "easing": easing}
        camera = tr.orbit(frames, start, **settings)
    elif kind == "arc":
        end = replace(start, yaw=start.yaw + sign * uniform(generator, 15, 45),
                      pitch=min(max(start.pitch + uniform(generator, -15, 15), -15.0), 25.0),
                      distance=_distance(start.distance * uniform(generator, 0.85, 1.15)))
        settings = {"end": asdict(end), "easing": easing}
        camera = tr.arc(frames, start, end, easing)
    elif kind == "spiral":
        settings = {"amplitude": uniform(generator, 5, 15), "turns": uniform(generator, 0.5, 1.0),
                    "distance_end": _distance(start.distance * uniform(generator, 0.9, 1.1))}
        camera = tr.spiral(frames, start, **settings)
    else:
        settings = {"distance_end": _distance(start.distance * uniform(generator, 0.7, 1.3)),
                    "dolly_zoom": uniform(generator, 0, 1) < 0.3, "easing": easing}
        camera = tr.dolly(frames, start, **settings)
    return camera, CameraPlan(kind, start, settings)
