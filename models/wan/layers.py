"""Layers whose weights may be stored in another dtype than the one the model computes in.

Wan files ship in bf16, fp16 or fp8 (e4m3fn). Weights stay in their storage dtype (and may
even sit on another device, for block streaming); each call casts them to the input's dtype
and device, which is a no-op when they already match. Norms use PyTorch's fused kernels,
which accumulate in float32 for low-precision inputs.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def cast_like(t: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """``t`` in ``x``'s dtype and on its device (None stays None)."""
    return None if t is None else t.to(device=x.device, dtype=x.dtype, non_blocking=True)


class CastLinear(nn.Linear):
    """nn.Linear that computes in the input's dtype, whatever dtype its weights are stored in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, cast_like(self.weight, x), cast_like(self.bias, x))


class CastConv3d(nn.Conv3d):
    """nn.Conv3d that computes in the input's dtype, whatever dtype its weights are stored in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, cast_like(self.weight, x), cast_like(self.bias, x))


class RMSNorm(nn.RMSNorm):
    """RMS norm over the last dim. PyTorch's fused kernel accumulates in float32 whatever
    the input dtype, so bf16 activations are not upcast in memory first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.normalized_shape, cast_like(self.weight, x), self.eps)


class LayerNorm(nn.LayerNorm):
    """Layer norm over the last dim (accumulated in float32 by PyTorch's kernel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, cast_like(self.weight, x),
                            cast_like(self.bias, x), self.eps)
