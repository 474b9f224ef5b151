"""What a LoRA target names in a model: a layer's weight and bias, or a bare parameter."""
from __future__ import annotations

import torch.nn as nn


def target_parameters(model: nn.Module, target: str) -> tuple[nn.Parameter, nn.Parameter | None]:
    """The weight and bias a target names: a layer's (``blocks.0.ffn.0``), or a bare
    parameter (``blocks.0.modulation``, no bias)."""
    try:
        module = model.get_submodule(target)
    except AttributeError:
        return model.get_parameter(target), None
    return module.weight, getattr(module, "bias", None)
