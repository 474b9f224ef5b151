"""Smooth ARKit-52 face-action curves: what a face does over a few seconds.

A script is a set of timed events, each a smooth pulse (a plateau between two tanh ramps,
C-infinity) times a few face actions with amplitudes:

- talking: syllables at 3 to 6 per second, each a jaw opening and a viseme (open, funnel,
  pucker, lips closed, stretched, rolled, upper lip up), with pauses between phrases;
- smiles: seconds long, both corners or one more than the other, with cheek and eye squints;
- blinks: 0.1 to 0.2 s, both eyes (sometimes one), 0.2 to 0.6 per second;
- brows: raised (inner and outer), lowered (frown), inner up alone (worry);
- others: surprise, mouth frown, mouth sideways, cheek puff, wide or squinting eyes, sneer;
- gaze shifts (the eyeLook actions of both eyes, consistently);
- neutral spans, in which everything but blinks fades out.

An action's curve is the sum of its pulses, softly saturated into [0, 1] by
``s / (1 + s^4)^(1/4)`` (the identity for small ``s``, smooth, below 1), so curves are
smooth and in range by construction. A script is defined for all times, so the clip and its
reference image (taken at another time) read the same face.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...models.body.anny_model import ARKIT_FACE_ACTIONS
from .appearance import choice, uniform

ACTION_INDEX = {name: i for i, name in enumerate(ARKIT_FACE_ACTIONS)}
VISEMES = ("open", "funnel", "pucker", "close", "stretch", "roll", "upper")
OTHERS = ("surprise", "frown", "sideways", "puff", "wide", "squint", "sneer")
MIN_RAMP = 0.03  # seconds: the fastest change (a blink's lid)


@dataclass(frozen=True)
class FaceEvent:
    """A pulse from ``start`` to ``end`` (seconds) with tanh ramps of ``ramp`` seconds,
    times ``actions`` ``((name, amplitude), ...)``. Blinks ignore neutral spans."""

    start: float
    end: float
    ramp: float
    actions: tuple[tuple[str, float], ...]
    blink: bool = False

    def envelope(self, times: torch.Tensor) -> torch.Tensor:
        """The pulse ``[N]`` (float64, 0..1) at ``times [N]``."""
        return 0.5 * (torch.tanh((times - self.start) / self.ramp) - torch.tanh((times - self.end) / self.ramp))


@dataclass(frozen=True)
class ExpressionScript:
    """Face events and neutral spans (events whose envelope damps all non-blink actions)."""

    events: tuple[FaceEvent, ...]
    neutral: tuple[FaceEvent, ...] = ()

    def evaluate(self, times: torch.Tensor) -> torch.Tensor:
        """ARKit weights ``[N, 52]`` (float32, in [0, 1]) at ``times [N]`` (seconds)."""
        t = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
        active = torch.zeros(len(t), len(ARKIT_FACE_ACTIONS), dtype=torch.float64)
        blinks = torch.zeros_like(active)
        for event in self.events:
            pulse = event.envelope(t)
            target = blinks if event.blink else active
            for name, amplitude in event.actions:
                target[:, ACTION_INDEX[name]] += amplitude * pulse
        calm = torch.ones(len(t), dtype=torch.float64)
        for span in self.neutral:
            calm = calm * (1 - span.envelope(t))
        s = (active * calm[:, None] + blinks).clamp(min=0)
        return (s / (1 + s ** 4) ** 0.25).float()


def _count(generator: torch.Generator, rate: float, duration: float) -> int:
    """A Poisson number of events at ``rate`` per second over ``duration`` seconds."""
    return int(torch.poisson(torch.tensor([rate * duration], dtype=torch.float64), generator=generator)[0])


def _pulse(generator: torch.Generator, t0: float, t1: float, length: tuple[float, float],
           ramp: tuple[float, float]) -> tuple[float, float, float]:
    """A random ``(start, end, ramp)`` overlapping ``[t0, t1]``."""
    duration = uniform(generator, *length)
    start = uniform(generator, t0 - duration, t1)
    return start, start + duration, max(MIN_RAMP, uniform(generator, *ramp) * duration)


def _both(name: str, amplitude: float, right: float | None = None) -> tuple[tuple[str, float], ...]:
    """A left/right action pair (``name`` with ``{side}`` for Left / Right)."""
    return ((name.format(side="Left"), amplitude), (name.format(side="Right"), amplitude if right is None else right))


def _talking(generator: torch.Generator, t0: float, t1: float, scale: float) -> list[FaceEvent]:
    """Syllables from before ``t0`` to ``t1``, phrases of 3 to 8 separated by pauses."""
    events, t = [], t0 - uniform(generator, 0, 0.5)
    while t < t1:
        for _ in range(3 + choice(generator, 6)):
            length = uniform(generator, 0.12, 0.3)
            jaw = scale * uniform(generator, 0.1, 0.55)
            viseme = VISEMES[choice(generator, len(VISEMES))]
            a = scale * uniform(generator, 0.3, 0.8)
            shapes = {
                "open": (("jawOpen", jaw),) + _both("mouthLowerDown{side}", 0.6 * a),
                "funnel": (("jawOpen", 0.5 * jaw), ("mouthFunnel", a)),
                "pucker": (("jawOpen", 0.3 * jaw), ("mouthPucker", a)),
                "close": (("jawOpen", 0.3 * jaw), ("mouthClose", 0.5 * a)) + _both("mouthPress{side}", 0.5 * a),
                "stretch": (("jawOpen", 0.6 * jaw),) + _both("mouthStretch{side}", 0.8 * a),
                "roll": (("jawOpen", 0.2 * jaw), ("mouthRollLower", 0.8 * a), ("mouthRollUpper", 0.5 * a)),
                "upper": (("jawOpen", 0.5 * jaw), ("mouthShrugUpper", 0.4 * a)) + _both("mouthUpperUp{side}", 0.5 * a),
            }[viseme]
            events.append(FaceEvent(t, t + length, max(MIN_RAMP, 0.3 * length), shapes))
            t += length * uniform(generator, 0.7, 1.1)
        t += uniform(generator, 0.2, 0.8)  # a pause between phrases
    return events


def _smile(generator: torch.Generator, t0: float, t1: float, scale: float) -> FaceEvent:
    a = scale * uniform(generator, 0.3, 0.9)
    left, right = a, a
    if uniform(generator, 0, 1) < 0.3:  # lopsided: one corner lifts less
        if uniform(generator, 0, 1) < 0.5:
            left *= uniform(generator, 0.1, 0.6)
        else:
            right *= uniform(generator, 0.1, 0.6)
    actions = (_both("mouthSmile{side}", left, right) + _both("cheekSquint{side}", 0.5 * left, 0.5 * right)
               + _both("eyeSquint{side}", 0.3 * left, 0.3 * right)
               + _both("mouthDimple{side}", 0.2 * left, 0.2 * right))
    return FaceEvent(*_pulse(generator, t0, t1, (0.5, 3.0), (0.1, 0.3)), actions)


def _blink(generator: torch.Generator, t0: float, t1: float) -> FaceEvent:
    a = uniform(generator, 1.2, 2.0)  # saturates to 0.9..0.97: lids fully closed
    start = uniform(generator, t0 - 0.2, t1)
    length = uniform(generator, 0.08, 0.2)
    side = uniform(generator, 0, 1)
    if side < 0.85:
        actions = _both("eyeBlink{side}", a)
    else:  # a wink
        actions = (("eyeBlinkLeft" if side < 0.925 else "eyeBlinkRight", a),)
    return FaceEvent(start, start + length, MIN_RAMP, actions, blink=True)


def _brows(generator: torch.Generator, t0: float, t1: float, scale: float) -> FaceEvent:
    a = scale * uniform(generator, 0.3, 0.9)
    kind = choice(generator, 3)
    if kind == 0:
        actions = (("browInnerUp", a),) + _both("browOuterUp{side}", a * uniform(generator, 0.5, 1.0))
    elif kind == 1:
        actions = _both("browDown{side}", a) + _both("noseSneer{side}", 0.2 * a)
    else:
        actions = (("browInnerUp", a),) + _both("mouthFrown{side}", 0.3 * a)
    return FaceEvent(*_pulse(generator, t0, t1, (0.4, 2.0), (0.1, 0.3)), actions)


def _other(generator: torch.Generator, t0: float, t1: float, scale: float) -> FaceEvent:
    a = scale * uniform(generator, 0.3, 0.8)
    kind = OTHERS[choice(generator, len(OTHERS))]
    side = "Left" if uniform(generator, 0, 1) < 0.5 else "Right"
    actions = {
        "surprise": ((("jawOpen", a), ("browInnerUp", a)) + _both("eyeWide{side}", a)
                     + _both("browOuterUp{side}", 0.7 * a)),
        "frown": _both("mouthFrown{side}", a) + _both("mouthStretch{side}", 0.3 * a) + (("mouthShrugLower", 0.4 * a),),
        "sideways": ((f"mouth{side}", 0.7 * a), (f"jaw{side}", 0.3 * a)),
        "puff": (("cheekPuff", a), ("mouthClose", 0.3 * a)),
        "wide": _both("eyeWide{side}", a),
        "squint": _both("eyeSquint{side}", a) + _both("cheekSquint{side}", 0.4 * a),
        "sneer": _both("noseSneer{side}", a) + _both("mouthUpperUp{side}", 0.4 * a),
    }[kind]
    return FaceEvent(*_pulse(generator, t0, t1, (0.4, 1.5), (0.1, 0.3)), actions)


def _gaze(generator: torch.Generator, t0: float, t1: float) -> FaceEvent:
    """Both eyes turn the same way: toward the subject's left is the left eye looking out
    and the right eye looking in."""
    h, v = uniform(generator, -1, 1), uniform(generator, -0.6, 0.6)
    a = uniform(generator, 0.2, 0.7)
    actions = ((("eyeLookOutLeft", a * h), ("eyeLookInRight", a * h)) if h > 0 else
               (("eyeLookInLeft", -a * h), ("eyeLookOutRight", -a * h)))
    actions += _both("eyeLookUp{side}", a * v) if v > 0 else _both("eyeLookDown{side}", -a * v)
    return FaceEvent(*_pulse(generator, t0, t1, (0.3, 1.5), (0.05, 0.15)), actions)


def sample_script(generator: torch.Generator, t0: float, t1: float) -> ExpressionScript:
    """A random face over ``[t0, t1]`` seconds (see the module docstring)."""
    duration = max(t1 - t0, 0.1)
    scale = uniform(generator, 0.5, 1.0)  # how expressive this person is
    events: list[FaceEvent] = []
    if uniform(generator, 0, 1) < 0.6:
        events += _talking(generator, t0, t1, scale)
    events += [_smile(generator, t0, t1, scale) for _ in range(_count(generator, 0.3, duration + 1))]
    events += [_blink(generator, t0, t1) for _ in range(_count(generator, uniform(generator, 0.2, 0.6), duration))]
    events += [_brows(generator, t0, t1, scale) for _ in range(_count(generator, 0.35, duration + 1))]
    events += [_other(generator, t0, t1, scale) for _ in range(_count(generator, 0.2, duration + 1))]
    events += [_gaze(generator, t0, t1) for _ in range(_count(generator, 0.5, duration))]
    neutral = []
    draw = uniform(generator, 0, 1)
    if draw < 0.1:  # a calm face throughout (blinks only)
        neutral.append(FaceEvent(t0 - 10, t1 + 10, 0.1, ()))
    elif draw < 0.45:
        neutral += [FaceEvent(*_pulse(generator, t0, t1, (0.4, 2.0), (0.1, 0.2)), ())
                    for _ in range(1 + choice(generator, 2))]
    return ExpressionScript(tuple(events), tuple(neutral))


def expression_curves(generator: torch.Generator, frames: int, fps: float = 15.0) -> torch.Tensor:
    """ARKit-52 weights ``[frames, 52]`` (float32, in [0, 1]) of a random script at
    ``fps``: the one-call form of :func:`sample_script` and :meth:`ExpressionScript.evaluate`."""
    times = torch.arange(frames, dtype=torch.float64) / fps
    return sample_script(generator, 0.0, float(times[-1])).evaluate(times)
