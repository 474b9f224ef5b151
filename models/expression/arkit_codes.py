"""The default expression code: anny's 52 ARKit face-action weights (D = 52, each in 0..1)."""
from __future__ import annotations

import torch

from ..body.anny_model import ARKIT_FACE_ACTIONS
from .codes import ExpressionCodes

ARKIT_ENCODER = "anny-arkit52"
ARKIT_RANGE = (0.0, 1.0)


def arkit_codes(weights: torch.Tensor) -> ExpressionCodes:
    """``ExpressionCodes`` of ARKit weights ``[F, 52]`` (in ``ARKIT_FACE_ACTIONS`` order)."""
    return ExpressionCodes(weights.float(), ARKIT_ENCODER, ARKIT_FACE_ACTIONS, ARKIT_RANGE)
