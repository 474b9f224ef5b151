"""A textured room around the subject, ray cast with the camera's own rays.

Why 3-D: a flat backdrop pasted behind the avatar would not move with the camera as a real
scene does. The room is an axis-aligned box around the subject (walls 1.5 to 4 m away, the
floor and ceiling about where a room's are), each of its six walls painted by a procedural
texture of the WORLD position on it (stripes, checkers, blobs, waves in random colours).
Every pixel's ray (the pack's Plücker rays: pixel centres, OpenCV axes; see
:mod:`models.camera.plucker`) is intersected with the box, so a moving camera sees the parallax of
walls at finite depth that only its rays explain: what the ray-map conditioning tells the
model.

A camera inside the box sees exactly one wall along each ray: the first box plane the ray
reaches, ``t = min over axes of (bound - o) / d`` with the bound on the side the ray heads
to. Vectorised over all frames and pixels; the textures are evaluated per wall on its pixels.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import torch

from ...models.camera.trajectory import CameraTrajectory
from ...models.camera.plucker import plucker_rays
from .appearance import RGB, choice, uniform

WALL_NAMES = ("left", "right", "floor", "ceiling", "back", "front")  # -X, +X, -Y, +Y, -Z, +Z
# The two world axes spanning the walls of each axis (their texture coordinates u, v).
WALL_UV_AXES = ((2, 1), (0, 2), (0, 1))
KINDS = ("stripes", "checkers", "blobs", "waves")
WALL_DISTANCE = (1.5, 4.0)  # metres from the head centre (the origin)
FLOOR_DEPTH = (1.1, 1.7)  # floor below the head centre: seated to standing
CEILING_HEIGHT = (0.9, 1.6)
FREQUENCY = (1.0, 5.0)  # pattern cycles per metre: periods of 0.2 to 1 m, a few pixels or more at 128 px
EDGE_SHARPNESS = 4.0  # tanh gain of the pattern edges: soft enough not to alias at 128 px


@dataclass(frozen=True)
class WallTexture:
    """A procedural texture of a wall's coordinates ``(u, v)`` (metres, world axes).

    Attributes:
        kind: ``KINDS``: stripes, checkers, blobs (soft discs over ``colours[0]``), waves.
        colours: three RGB colours in 0..1.
        frequency: pattern cycles per metre.
        angle: the pattern's direction in the wall plane (radians from ``u``).
        phase: radians.
        blobs: ``(u, v, radius, colour index)`` of each blob (kind "blobs").
    """

    kind: str
    colours: tuple[RGB, RGB, RGB]
    frequency: float
    angle: float
    phase: float
    blobs: tuple[tuple[float, float, float, int], ...] = ()

    def evaluate(self, uv: torch.Tensor) -> torch.Tensor:
        """Colours ``[N, 3]`` (float32) at wall coordinates ``uv [N, 2]``."""
        uv = uv.double()
        c = torch.tensor(self.colours, dtype=torch.float64)
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        along = uv[:, 0] * cos + uv[:, 1] * sin
        across = -uv[:, 0] * sin + uv[:, 1] * cos
        w = 2 * math.pi * self.frequency
        if self.kind == "stripes":
            mix = 0.5 + 0.5 * torch.tanh(EDGE_SHARPNESS * torch.sin(w * along + self.phase))
            out = torch.lerp(c[0], c[1], mix[:, None])
        elif self.kind == "checkers":
            cells = torch.sin(w * along + self.phase) * torch.sin(w * across + self.phase)
            out = torch.lerp(c[0], c[1], (0.5 + 0.5 * torch.tanh(2 * EDGE_SHARPNESS * cells))[:, None])
        elif self.kind == "waves":  # three crossing sinusoids: a smooth marbled field
            field = sum(torch.sin(w * f * (uv[:, 0] * math.cos(self.angle + a) + uv[:, 1] * math.sin(self.angle + a))
                                  + self.phase * f) for f, a in ((1.0, 0.0), (1.7, 2.1), (2.9, 4.2))) / 3
            t = (0.5 + 0.5 * field)[:, None]
            out = torch.where(t < 0.5, torch.lerp(c[0], c[1], 2 * t), torch.lerp(c[1], c[2], 2 * t - 1))
        elif self.kind == "blobs":
            out = c[0].expand(len(uv), 3).clone()
            for bu, bv, radius, k in self.blobs:
                d2 = (uv[:, 0] - bu).square() + (uv[:, 1] - bv).square()
                out = torch.lerp(out, c[k], torch.exp(-0.5 * d2 / radius ** 2)[:, None])
        else:
            raise ValueError(f"unknown wall texture {self.kind!r}; known: {', '.join(KINDS)}")
        return out.float()

    def to_json(self) -> dict:
        return {"kind": self.kind, "colours": [list(c) for c in self.colours], "frequency": self.frequency,
                "angle": self.angle, "phase": self.phase, "blobs": [list(b) for b in self.blobs]}

    @staticmethod
    def from_json(data: dict) -> WallTexture:
        return WallTexture(data["kind"], tuple(tuple(c) for c in data["colours"]), data["frequency"],
                           data["angle"], data["phase"], tuple((*b[:3], int(b[3])) for b in data["blobs"]))


@dataclass(frozen=True)
class Room:
    """An axis-aligned box ``low .. high`` (metres, world axes) with a texture per wall
    (``WALL_NAMES`` order: -X, +X, -Y floor, +Y ceiling, -Z back, +Z front)."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]
    walls: tuple[WallTexture, ...]

    def contains(self, points: torch.Tensor, margin: float = 0.0) -> bool:
        """Whether every point ``[N, 3]`` lies inside, at least ``margin`` from each wall."""
        lo = torch.tensor(self.low, dtype=points.dtype) + margin
        hi = torch.tensor(self.high, dtype=points.dtype) - margin
        return bool(((points > lo) & (points < hi)).all())

    def to_json(self) -> dict:
        return {"low": list(self.low), "high": list(self.high), "walls": [w.to_json() for w in self.walls]}

    @staticmethod
    def from_json(data: dict) -> Room:
        return Room(tuple(data["low"]), tuple(data["high"]), tuple(WallTexture.from_json(w) for w in data["walls"]))


def _wall_colours(generator: torch.Generator, hue: float) -> tuple[RGB, RGB, RGB]:
    """Three colours near the room's hue (sometimes far from it), of varied value."""
    out = []
    for _ in range(3):
        far = uniform(generator, 0, 1) < 0.3  # now and then a colour from elsewhere on the wheel
        h = (hue + (uniform(generator, 0, 1) if far else uniform(generator, -0.08, 0.08))) % 1
        out.append(tuple(colorsys.hsv_to_rgb(h, uniform(generator, 0.05, 0.7), uniform(generator, 0.2, 0.95))))
    return tuple(out)


def sample_room(generator: torch.Generator) -> Room:
    """A random room around the origin (see the module docstring)."""
    low = (-uniform(generator, *WALL_DISTANCE), -uniform(generator, *FLOOR_DEPTH), -uniform(generator, *WALL_DISTANCE))
    high = (uniform(generator, *WALL_DISTANCE), uniform(generator, *CEILING_HEIGHT), uniform(generator, *WALL_DISTANCE))
    hue = uniform(generator, 0, 1)
    walls = []
    for wall in range(6):
        kind = KINDS[choice(generator, len(KINDS))]
        colours = _wall_colours(generator, hue)
        blobs = ()
        if kind == "blobs":
            u_axis, v_axis = WALL_UV_AXES[wall // 2]
            n = 6 + choice(generator, 7)
            blobs = tuple((uniform(generator, low[u_axis], high[u_axis]), uniform(generator, low[v_axis], high[v_axis]),
                           uniform(generator, 0.05, 0.35), 1 + choice(generator, 2)) for _ in range(n))
        walls.append(WallTexture(kind, colours, uniform(generator, *FREQUENCY), uniform(generator, 0, math.pi),
                                 uniform(generator, 0, 2 * math.pi), blobs))
    return Room(low, high, tuple(walls))


def wall_shading(light_direction, light_intensity: float, ambient: float,
                 light_colour=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """Light on each wall ``[6, 3]``: the key light on the wall's inward normal, wrapped
    (``(1 + cos) / 2``: a room's walls also get the light bounced around it, never black)."""
    inward = torch.tensor([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=torch.float64)
    cos = inward @ torch.tensor(light_direction, dtype=torch.float64)
    level = ambient + light_intensity * (1 + cos) / 2
    return (level[:, None] * torch.tensor(light_colour, dtype=torch.float64)).float()


def cast_rays(room: Room, camera: CameraTrajectory, width: int,
              height: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each pixel's ray leaves the room.

    Returns:
        ``wall [F, H, W]`` (int64, ``WALL_NAMES`` index), ``points [F, 3, H, W]`` (world)
        and ``depth [F, H, W]`` (metres along the optical axis), float32.
    Raises:
        ValueError: a camera centre outside the room.
    """
    centres = camera.centers
    if not room.contains(centres):
        raise ValueError(f"a camera centre lies outside the room {room.low}..{room.high}: {centres.tolist()}")
    # float32: a few micrometres at 4 m, far below a pixel; twice as fast as float64.
    d = plucker_rays(camera, width, height)[:, 3:]  # [F, 3, H, W] unit directions
    o = centres.float()[:, :, None, None]
    lo = torch.tensor(room.low)[None, :, None, None]
    hi = torch.tensor(room.high)[None, :, None, None]
    bound = torch.where(d > 0, hi, lo)
    t_axis = torch.where(d != 0, (bound - o) / torch.where(d != 0, d, 1.0), torch.inf)  # >= 0 from inside
    t, axis = t_axis.min(1)
    wall = 2 * axis + (d.gather(1, axis[:, None])[:, 0] > 0).long()
    points = o + t[:, None] * d
    forward = camera.c2w[:, :3, 2].float()  # the optical axis in world axes
    depth = t * (d * forward[:, :, None, None]).sum(1)
    return wall, points, depth


def render_room(room: Room, camera: CameraTrajectory, width: int, height: int,
                shading: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The room seen by every camera frame: images ``[F, H, W, 3]`` (float32, 0..1) and the
    depth ``[F, H, W]`` (float32 metres along the optical axis). ``shading [6, 3]``: light
    per wall (:func:`wall_shading`; None: unlit albedo)."""
    wall, points, depth = cast_rays(room, camera, width, height)
    points = points.permute(0, 2, 3, 1)  # [F, H, W, 3]
    image = torch.empty(*wall.shape, 3)
    for w, texture in enumerate(room.walls):
        on = wall == w
        if not bool(on.any()):
            continue
        u_axis, v_axis = WALL_UV_AXES[w // 2]
        hit = points[on]
        colour = texture.evaluate(torch.stack([hit[:, u_axis], hit[:, v_axis]], 1))
        image[on] = colour if shading is None else colour * shading[w]
    return image.clamp_(0, 1), depth
