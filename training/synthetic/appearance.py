"""A random identity per clip: anny's shape, the face's and the clothing's colours, and the
scene's light.

Everything is drawn from a ``torch.Generator`` (never the global RNG), so a clip's identity
is a function of its seed alone. The colours paint anny through per-vertex fields
(:func:`models.expression.face_correspondence.face_paint_fields`, plus a neckline, see
:mod:`.render`); the light is fixed in the world, so when the camera moves the shading stays
on the surface as real light does.

Shape (anny, ``[150]``): 6 phenotypes in [0, 1] (gender, age, muscle, weight, height,
proportions), drawn over adult ranges, then 144 local changes of the face, head, neck and
shoulders in [-1, 1], drawn small (``LOCAL_CHANGE_STD``) so that faces stay plausible.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import asdict, dataclass

import torch

from ...models.body.anny_model import AnnyUpperBody

RGB = tuple[float, float, float]

# Adult ranges of anny's phenotypes (age: 2/3 is "young", 1 "old"; see anny's anchors).
PHENOTYPE_RANGES: dict[str, tuple[float, float]] = {
    "gender": (0.0, 1.0), "age": (0.6, 1.0), "muscle": (0.2, 0.8), "weight": (0.2, 0.8),
    "height": (0.3, 0.7), "proportions": (0.3, 0.7),
}
LOCAL_CHANGE_STD = 0.15
LOCAL_CHANGE_LIMIT = 0.4

# Skin tones from light to dark (a 1-D family sampled continuously), hair colours for the
# brows, iris colours.
SKIN_TONES: tuple[RGB, ...] = ((0.98, 0.84, 0.74), (0.92, 0.72, 0.60), (0.80, 0.58, 0.45),
                               (0.62, 0.43, 0.31), (0.44, 0.29, 0.20), (0.28, 0.18, 0.12))
HAIR_COLOURS: tuple[RGB, ...] = ((0.06, 0.05, 0.04), (0.20, 0.13, 0.08), (0.38, 0.25, 0.14),
                                 (0.62, 0.48, 0.28), (0.48, 0.22, 0.10), (0.55, 0.55, 0.55))
IRIS_COLOURS: tuple[RGB, ...] = ((0.30, 0.18, 0.08), (0.15, 0.09, 0.05), (0.45, 0.35, 0.15),
                                 (0.30, 0.42, 0.22), (0.30, 0.45, 0.65), (0.45, 0.50, 0.52))


@dataclass(frozen=True)
class Appearance:
    """One identity and its light.

    Attributes:
        shape: anny's shape vector (``model.shape_labels``), 150 floats.
        skin, brow, lips, iris, clothing: RGB albedos in 0..1.
        collar_height: height of the neckline at the back and sides (metres; the head centre
            is at 0, the neck's base about -0.12).
        neckline_depth: how much lower the neckline dips at the front (0: a crew neck).
        neckline_width: half-width of that dip (metres).
        light_direction: unit vector toward the key light, world axes (+Y up, +Z the face).
        light_intensity: the key light's Lambert strength.
        light_colour: its RGB tint (about white).
        ambient: light reaching every surface, also those facing away.
    """

    shape: tuple[float, ...]
    skin: RGB
    brow: RGB
    lips: RGB
    iris: RGB
    clothing: RGB
    collar_height: float
    neckline_depth: float
    neckline_width: float
    light_direction: tuple[float, float, float]
    light_intensity: float
    light_colour: RGB
    ambient: float

    def shape_tensor(self, like: torch.Tensor) -> torch.Tensor:
        """The shape ``[S]`` in ``like``'s dtype and device (e.g. ``model.template``)."""
        return torch.tensor(self.shape, dtype=like.dtype, device=like.device)

    def to_json(self) -> dict:
        """Plain lists and floats (the sample's ``info["identity"]``)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @staticmethod
    def from_json(data: dict) -> Appearance:
        return Appearance(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def uniform(generator: torch.Generator, low: float, high: float, n: int | None = None):
    """A float (or ``[n]`` float64 tensor) uniform in ``[low, high)``."""
    u = torch.rand(1 if n is None else n, generator=generator, dtype=torch.float64) * (high - low) + low
    return float(u[0]) if n is None else u


def choice(generator: torch.Generator, n: int) -> int:
    """A uniformly random index in ``0..n-1``."""
    return int(torch.randint(n, (1,), generator=generator)[0])


def _jitter(generator: torch.Generator, rgb: RGB, amount: float) -> RGB:
    """``rgb`` times a random factor per channel in ``1 +- amount``, clamped to 0..1."""
    f = 1 + amount * (2 * torch.rand(3, generator=generator, dtype=torch.float64) - 1)
    return tuple(min(1.0, max(0.0, c * float(x))) for c, x in zip(rgb, f))


def _lerp_palette(palette: tuple[RGB, ...], t: float) -> RGB:
    """The colour at ``t`` in 0..1 along a piecewise-linear palette."""
    x = t * (len(palette) - 1)
    i = min(int(x), len(palette) - 2)
    a = x - i
    return tuple(p * (1 - a) + q * a for p, q in zip(palette[i], palette[i + 1]))


def _luminance(rgb: RGB) -> float:
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]


def sample_shape(model: AnnyUpperBody, generator: torch.Generator) -> torch.Tensor:
    """A random anny shape ``[S]`` (float32): adult phenotypes, modest local changes."""
    shape = torch.zeros(len(model.shape_labels), dtype=torch.float64)
    for i, label in enumerate(model.phenotype_labels):
        low, high = PHENOTYPE_RANGES.get(label, (0.5, 0.5))
        shape[i] = uniform(generator, low, high)
    n_phen = len(model.phenotype_labels)
    local = torch.randn(len(model.local_change_labels), generator=generator, dtype=torch.float64)
    shape[n_phen:] = (LOCAL_CHANGE_STD * local).clamp(-LOCAL_CHANGE_LIMIT, LOCAL_CHANGE_LIMIT)
    return shape.float()


def sample_appearance(model: AnnyUpperBody, generator: torch.Generator) -> Appearance:
    """A random identity and light (see the module docstring)."""
    shape = sample_shape(model, generator)
    skin = _jitter(generator, _lerp_palette(SKIN_TONES, uniform(generator, 0, 1)), 0.05)
    # Lips: the skin, redder and darker; brows: a hair colour kept darker than the skin.
    lips = _jitter(generator, tuple(c * f for c, f in zip(skin, (0.80, 0.55, 0.55))), 0.08)
    brow = _jitter(generator, HAIR_COLOURS[choice(generator, len(HAIR_COLOURS))], 0.1)
    if _luminance(brow) > 0.6 * _luminance(skin):
        scale = 0.6 * _luminance(skin) / max(_luminance(brow), 1e-6)
        brow = tuple(c * scale for c in brow)
    iris = _jitter(generator, IRIS_COLOURS[choice(generator, len(IRIS_COLOURS))], 0.1)
    clothing = colorsys.hsv_to_rgb(uniform(generator, 0, 1), uniform(generator, 0.1, 0.9),
                                   uniform(generator, 0.15, 0.9))
    azimuth = math.radians(uniform(generator, -70, 70))  # from the front (+Z) toward +X
    elevation = math.radians(uniform(generator, 5, 60))
    direction = (math.cos(elevation) * math.sin(azimuth), math.sin(elevation),
                 math.cos(elevation) * math.cos(azimuth))
    return Appearance(
        shape=tuple(shape.tolist()), skin=skin, brow=brow, lips=lips, iris=iris, clothing=tuple(clothing),
        collar_height=uniform(generator, -0.15, -0.12), neckline_depth=uniform(generator, 0.0, 0.1),
        neckline_width=uniform(generator, 0.04, 0.08), light_direction=direction,
        light_intensity=uniform(generator, 0.55, 0.95), light_colour=_jitter(generator, (1.0, 1.0, 1.0), 0.08),
        ambient=uniform(generator, 0.15, 0.4))
