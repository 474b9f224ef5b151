"""Expression codes written by hand: keyframes of named ARKit face actions, interpolated.

    {"interpolation": "smooth",
     "keyframes": [{"frame": 0},
                   {"frame": 12, "jawOpen": 0.6, "eyeBlink": 1.0},
                   {"frame": 20, "jawOpen": 0.0, "eyeBlink": 0.0, "mouthSmile": 0.8}]}

or just the list. Values are weights in 0..1; an action a keyframe does not name keeps its
previous keyframe's value (0 before the first); a name without its ``Left``/``Right`` side
(``eyeBlink``, ``mouthSmile``) sets both sides. ``smooth`` is the monotone cubic of the camera
keyframes (exact at keys, no overshoot), ``linear`` straight segments.
"""
from __future__ import annotations

import difflib
import json

import torch

from ..body.anny_model import ARKIT_FACE_ACTIONS
from ..errors import InputError
from .codes import ExpressionCodes
from ..camera.interpolation import interpolate_keys
from .arkit_codes import arkit_codes

INPUT = "keyframes"
INTERPOLATIONS = ("smooth", "linear")


def _actions(name: str) -> list[int]:
    """Channel indices a keyframe name sets (both sides for a side-less name)."""
    if name in ARKIT_FACE_ACTIONS:
        return [ARKIT_FACE_ACTIONS.index(name)]
    sides = [ARKIT_FACE_ACTIONS.index(name + s) for s in ("Left", "Right") if name + s in ARKIT_FACE_ACTIONS]
    if sides:
        return sides
    close = difflib.get_close_matches(name, ARKIT_FACE_ACTIONS, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else " The 52 ARKit face-action names are listed in docs/nodes.md (Expression Keyframes)."
    raise InputError(INPUT, f"unknown face action {name!r}.{hint}")


def parse_expression_keyframes(text: str, frames: int) -> tuple[list[int], torch.Tensor, str]:
    """Keyframe positions, their full weight vectors ``[K, 52]`` and the interpolation."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(INPUT, f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.") from None
    interpolation = "smooth"
    if isinstance(data, dict):
        interpolation = data.get("interpolation", "smooth")
        data = data.get("keyframes")
    if interpolation not in INTERPOLATIONS:
        raise InputError(INPUT, f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}.")
    if not isinstance(data, list) or not data:
        raise InputError(INPUT, 'expected a non-empty list of keyframes, e.g. [{"frame": 0, "jawOpen": 0.5}].')
    positions, rows = [], []
    current = torch.zeros(len(ARKIT_FACE_ACTIONS), dtype=torch.float64)
    for i, key in enumerate(data):
        if not isinstance(key, dict) or not isinstance(key.get("frame"), int) or isinstance(key.get("frame"), bool):
            raise InputError(INPUT, f"keyframe {i} needs an integer 'frame'.")
        frame = key["frame"]
        if not 0 <= frame < frames:
            raise InputError(INPUT, f"keyframe {i}: frame {frame} is outside 0..{frames - 1}.")
        if positions and frame <= positions[-1]:
            raise InputError(INPUT, f"keyframe {i}: frames must strictly increase ({positions[-1]} then {frame}).")
        current = current.clone()
        for name, value in key.items():
            if name == "frame":
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise InputError(INPUT, f"keyframe {i}: {name} must be a weight in 0..1, got {value!r}.")
            current[_actions(name)] = float(value)
        positions.append(frame)
        rows.append(current)
    return positions, torch.stack(rows), interpolation


def expression_from_keyframes(text: str, frames: int) -> ExpressionCodes:
    """ARKit codes ``[frames, 52]`` interpolated from keyframes (module docstring)."""
    if frames < 1:
        raise InputError("frames", f"must be at least 1, got {frames}.")
    positions, values, interpolation = parse_expression_keyframes(text, frames)
    weights = interpolate_keys(torch.tensor(positions, dtype=torch.float64), values,
                               torch.arange(frames, dtype=torch.float64), interpolation)
    return arkit_codes(weights.clamp(0, 1))
