"""Which parameters train: ``controls`` (the new layers only: ``control_embedding`` and
``expression_controller``), ``controls+lora`` (plus LoRA adapters on attention and MLP
layers), or ``full`` (everything)."""
from __future__ import annotations

import torch.nn as nn

from ...models.portrait.checkpoint import is_control_key


def select_trainable(model: nn.Module, params: str) -> list[str]:
    """Set ``requires_grad`` on ``model``'s parameters for the group; returns the trained names."""
    names = []
    for name, p in model.named_parameters():
        train = params == "full" or is_control_key(name)
        p.requires_grad_(train)
        if train:
            names.append(name)
    return names


def weight_decay_groups(named: list[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """AdamW groups: no decay on biases, norms and the modulation vectors (1-D tensors)."""
    decay = [p for n, p in named if p.ndim >= 2 and "modulation" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "modulation" not in n)]
    return [g for g in ({"params": decay, "weight_decay": weight_decay},
                        {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
