"""Learning rate: linear warm-up, then constant or cosine decay to ``min_lr_ratio * lr``."""
from __future__ import annotations

import math


def learning_rate(step: int, *, lr: float, warmup_steps: int, total_steps: int, schedule: str,
                  min_lr_ratio: float) -> float:
    """The learning rate of optimizer step ``step`` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
