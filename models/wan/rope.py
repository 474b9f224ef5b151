"""Wan's 3-D rotary position embedding over the (t, h, w) patch grid.

Each head's channels form ``head_dim / 2`` pairs that rotate by an angle. The pairs are
split between the axes as in the original Wan: time gets ``d - 4*(d//6)`` channels, height
and width ``2*(d//6)`` each (d = head_dim), and each axis uses its own frequency ladder
``theta^(-2i / d_axis)``. Tokens are ordered t-major, then h, then w (Conv3d + flatten).
"""
from __future__ import annotations

import torch

THETA = 10000.0


def axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels of a head given to the (t, h, w) axes; they sum to ``head_dim``."""
    d6 = head_dim // 6
    return head_dim - 4 * d6, 2 * d6, 2 * d6


def rope_frequencies(grid: tuple[int, int, int], head_dim: int, device=None,
                     theta: float = THETA) -> torch.Tensor:
    """Every token's rotations as unit complex numbers ``[L, 1, head_dim/2]`` (complex64;
    L = t*h*w, the 1 broadcasts over heads). Per-axis tables are built in float64 on the
    CPU (as the original does) and only then expanded to the grid on ``device``."""
    t, h, w = grid
    tables = []
    for axis, (n, d) in enumerate(zip(grid, axis_dims(head_dim))):
        freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # [d/2]
        angles = torch.outer(torch.arange(n, dtype=torch.float64), freqs)  # [n, d/2]
        shape = [1, 1, 1, d // 2]
        shape[axis] = n
        table = torch.polar(torch.ones_like(angles), angles).to(torch.complex64).to(device)
        tables.append(table.view(shape).expand(t, h, w, d // 2))
    return torch.cat(tables, -1).reshape(t * h * w, 1, head_dim // 2)


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs ``(x[2i], x[2i+1])`` of ``x [B, L, heads, head_dim]`` by
    :func:`rope_frequencies` (one complex multiply, in float32); returns ``x``'s shape and
    dtype."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)).contiguous())
    return torch.view_as_real(pairs * freqs).flatten(-2).type_as(x)
