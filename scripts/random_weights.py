"""Random weights for a network whose real weights are not at hand, so that parity checks
and benchmarks see outputs of a realistic scale (Wan's own init zeroes the head, which
would make every output 0). Shared by the DiT benchmark and the tests."""
from __future__ import annotations

import torch


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights ~ N(0, 1/fan_in), norm weights ~ 1 + N(0, 0.1), biases and modulation
    ~ N(0, 0.1), drawn in parameter order from one generator on the model's device.
    Returns the model in eval mode."""
    gen = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)
        if "norm" in name and name.endswith("weight"):
            p.copy_(1 + 0.1 * noise)
        elif p.ndim >= 2 and "modulation" not in name:
            p.copy_(noise / p[0].numel() ** 0.5)
        else:
            p.copy_(0.1 * noise)
    return model.eval()
