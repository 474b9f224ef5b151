"""1-D interpolation of keyframed values (hand-written: scipy is not a dependency).

``pchip`` is the monotone piecewise-cubic Hermite interpolant of Fritsch and Carlson
(the one scipy calls ``PchipInterpolator``): C1, exact at the knots, no overshoot past
neighbouring keyframe values, and exactly linear on evenly moving keys. Outside the knot
range values are held constant.
"""
from __future__ import annotations

import torch


def _pchip_slopes(h: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Knot slopes ``[K, C]`` from interval widths ``h [K-1]`` and secants ``delta [K-1, C]``."""
    k = h.shape[0] + 1
    if k == 2:
        return torch.cat([delta, delta], dim=0)
    m = torch.zeros(k, delta.shape[1], dtype=delta.dtype)
    h0, h1 = h[:-1, None], h[1:, None]
    d0, d1 = delta[:-1], delta[1:]
    w1, w2 = 2 * h1 + h0, h1 + 2 * h0
    same_sign = (d0 * d1) > 0
    harmonic = (w1 + w2) / (w1 / torch.where(same_sign, d0, 1) + w2 / torch.where(same_sign, d1, 1))
    m[1:-1] = torch.where(same_sign, harmonic, torch.zeros_like(d0))

    def end_slope(ha, hb, da, db):
        s = ((2 * ha + hb) * da - ha * db) / (ha + hb)
        s = torch.where(torch.sign(s) != torch.sign(da), torch.zeros_like(s), s)
        too_steep = (torch.sign(da) != torch.sign(db)) & (s.abs() > 3 * da.abs())
        return torch.where(too_steep, 3 * da, s)

    m[0] = end_slope(h[0], h[1], delta[0], delta[1])
    m[-1] = end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return m


def interpolate_keys(
    knots: torch.Tensor, values: torch.Tensor, x: torch.Tensor, method: str = "smooth"
) -> torch.Tensor:
    """Interpolate keyed values at ``x``.

    Args:
        knots: strictly increasing key positions ``[K]``.
        values: values at the keys ``[K, C]``.
        x: query positions ``[N]``.
        method: ``"smooth"`` (monotone cubic, C1) or ``"linear"``.

    Returns:
        ``[N, C]`` float64; constant before the first and after the last key.
    """
    knots = torch.as_tensor(knots, dtype=torch.float64)
    values = torch.as_tensor(values, dtype=torch.float64)
    x = torch.as_tensor(x, dtype=torch.float64)
    if knots.shape[0] == 1:
        return values.expand(x.shape[0], -1).clone()
    xc = x.clamp(knots[0], knots[-1])
    seg = (torch.searchsorted(knots, xc, right=True) - 1).clamp(0, knots.shape[0] - 2)
    h = knots[1:] - knots[:-1]
    delta = (values[1:] - values[:-1]) / h[:, None]
    t = ((xc - knots[seg]) / h[seg])[:, None]
    y0, y1 = values[seg], values[seg + 1]
    if method == "linear":
        return y0 + t * (y1 - y0)
    if method != "smooth":
        raise ValueError(f"unknown interpolation {method!r}")
    m = _pchip_slopes(h, delta)
    hs = h[seg][:, None]
    t2, t3 = t * t, t * t * t
    return (
        (2 * t3 - 3 * t2 + 1) * y0
        + (t3 - 2 * t2 + t) * hs * m[seg]
        + (-2 * t3 + 3 * t2) * y1
        + (t3 - t2) * hs * m[seg + 1]
    )
