"""Temporal filters for per-frame codes ``[F, D]`` (hand-written: scipy is not a dependency).

- Savitzky-Golay: a least-squares polynomial of ``order`` fitted in a sliding ``window``,
  evaluated at its centre: smooths jitter and keeps peaks (a blink) better than a moving
  average of the same width. The ends use the same polynomial fitted to the first/last
  window (scipy's ``mode="interp"``), so there is no lag and no edge padding.
- One-euro (Casiez et al., CHI 2012): an adaptive low-pass whose cutoff rises with speed:
  steady when still, little lag in fast motion; causal (uses only past frames).
"""
from __future__ import annotations

import math

import torch

from ..errors import InputError


def savgol_coefficients(window: int, order: int) -> torch.Tensor:
    """``[window, window]`` matrix ``C``: row ``i`` gives the fitted value at position ``i``
    of a window from its samples (``C @ y``), for a polynomial of ``order``."""
    x = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    vander = x[:, None] ** torch.arange(order + 1, dtype=torch.float64)  # [W, order+1]
    return vander @ torch.linalg.pinv(vander)


def savitzky_golay(codes: torch.Tensor, window: int, order: int = 2) -> torch.Tensor:
    """Savitzky-Golay smoothing of ``[F, D]`` along frames; same shape and dtype.

    ``window`` must be odd and larger than ``order``; a window longer than the sequence is
    shortened to it (the largest odd length that fits).
    """
    if window % 2 == 0 or window < 3:
        raise InputError("window", f"Savitzky-Golay needs an odd window of 3 or more frames, got {window}.")
    f = codes.shape[0]
    window = min(window, f if f % 2 else f - 1)
    if window <= order:  # too few frames to fit the polynomial: nothing to smooth
        return codes.clone()
    c = savgol_coefficients(window, order)
    y = codes.double()
    half = window // 2
    windows = y.unfold(0, window, 1)  # [F - W + 1, D, W]
    out = y.clone()
    out[half: f - half] = windows @ c[half]  # window centres
    out[:half] = (c[:half] @ y[:window])  # first window's polynomial at its first positions
    out[f - half:] = (c[half + 1:] @ y[f - window:])  # last window's at its last positions
    return out.to(codes.dtype)


def one_euro(codes: torch.Tensor, fps: float, min_cutoff: float = 1.0, beta: float = 0.5,
             derivative_cutoff: float = 1.0) -> torch.Tensor:
    """One-euro filter of ``[F, D]`` along frames (each channel independently).

    Args:
        fps: frame rate (Hz) of the codes.
        min_cutoff: cutoff (Hz) when still: lower is steadier.
        beta: how fast the cutoff rises with the signal's speed: higher lags less.
        derivative_cutoff: cutoff (Hz) of the speed estimate.
    """
    if fps <= 0 or min_cutoff <= 0 or derivative_cutoff <= 0 or beta < 0:
        raise InputError("smoothing", "one-euro needs fps, min_cutoff and derivative_cutoff > 0 and beta >= 0.")

    def alpha(cutoff: torch.Tensor | float) -> torch.Tensor | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * fps)

    y = codes.double()
    out = torch.empty_like(y)
    out[0] = y[0]
    speed = torch.zeros_like(y[0])
    a_d = alpha(derivative_cutoff)
    for i in range(1, y.shape[0]):
        speed = a_d * (y[i] - out[i - 1]) * fps + (1 - a_d) * speed
        a = alpha(min_cutoff + beta * speed.abs())
        out[i] = a * y[i] + (1 - a) * out[i - 1]
    return out.to(codes.dtype)
