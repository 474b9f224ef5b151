"""ODE solvers for rectified-flow sampling: Euler and UniPC (bh2), in sigma space.

The network predicts the velocity ``v = noise - x0``; along the flow ODE ``dx/dsigma = v``.
Its data prediction is ``x0_hat = x - sigma * v``, so ``dx/dsigma = (x - x0_hat) / sigma``:
the same ODE k-diffusion solves for EDM-style models, which is why ComfyUI's samplers
run unchanged on flow models.

UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework") integrates
that ODE exactly in its linear part. With ``lambda = -log(sigma)`` and ``h = lambda_t -
lambda_s`` the step from sigma ``s`` to ``t`` is

    x_t = r * x_s + (1 - r) * x0_s + (1 - r) * sum_k rho_k * D_k,     r = t / s = exp(-h)

where ``D_k`` are divided differences of earlier (predictor) or the new (corrector)
x0-predictions and ``rho`` solves UniPC's small linear system; the corrector reuses the
network call that the next step needs, so UniPC costs one call per step like Euler.
This matches ComfyUI's ``uni_pc_bh2`` sampler step for step (ComfyUI runs the same
algorithm through a variance-preserving change of variables with ``lambda = -log(sigma)``),
except at a final sigma of 0: ComfyUI stops at sigma = 0.001 instead and divides by
0.999, leaving 0.1 % of the noise in; we step to 0, which lands on the x0-prediction.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import InputError
from .schedule import check_solver

VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]
"""``velocity_fn(x, sigma) -> v``: x ``[B, ...]``, sigma a python float, v like x."""
Callback = Callable[[int, int, torch.Tensor, torch.Tensor], None]
"""``callback(step_index, total_steps, x, denoised)`` after each step (x at the new sigma)."""

MAX_UNIPC_ORDER = 3  # ComfyUI's choice: order min(3, steps - 1), lowered near the ends


@torch.no_grad()
def sample(velocity_fn: VelocityFn, x: torch.Tensor, sigmas: torch.Tensor, solver: str = "euler",
           callback: Callback | None = None) -> torch.Tensor:
    """Integrate the flow ODE from ``sigmas[0]`` to ``sigmas[-1]``.

    x: ``[B, ...]`` the state at ``sigmas[0]`` (pure noise when ``sigmas[0] = 1``; see
    ``noise.noise_latent`` for denoise < 1). sigmas: ``[steps + 1]`` strictly decreasing,
    >= 0 (``schedule.flow_sigmas``). One ``velocity_fn`` call per step. ``callback`` is
    called after every step with the new state and the latest x0-prediction; an exception
    raised there (Cancel) propagates at once, before any further network call.
    """
    check_solver(solver)
    sigma_list = _check_sigmas(sigmas)
    step = _euler if solver == "euler" else _unipc_bh2
    return step(velocity_fn, x, sigma_list, callback)


def _euler(velocity_fn: VelocityFn, x: torch.Tensor, sigmas: list[float],
           callback: Callback | None) -> torch.Tensor:
    total = len(sigmas) - 1
    for i in range(total):
        v = velocity_fn(x, sigmas[i])
        denoised = x - sigmas[i] * v
        x = x + (sigmas[i + 1] - sigmas[i]) * v
        if callback is not None:
            callback(i, total, x, denoised)
    return x


def _unipc_bh2(velocity_fn: VelocityFn, x: torch.Tensor, sigmas: list[float],
               callback: Callback | None) -> torch.Tensor:
    """Multistep UniPC on x0-predictions with UniPC's B(h) = e^h - 1 ("bh2"), scheduled as
    ComfyUI does: orders 1, 2, 3, ..., 3, 2, 1 (at most steps - 1), corrector on every
    step but the last, whose network call would only serve a step that never comes."""
    total = len(sigmas) - 1
    max_order = max(1, min(MAX_UNIPC_ORDER, total - 1))

    def predict_x0(x: torch.Tensor, sigma: float) -> torch.Tensor:
        return x - sigma * velocity_fn(x, sigma)

    # (lambda, x0-prediction) of the last max_order network calls, newest last.
    history = [(_log_snr(sigmas[0]), predict_x0(x, sigmas[0]))]
    for i in range(total):
        t, is_last = sigmas[i + 1], i == total - 1
        if t == 0:
            # Only the last step reaches 0, at order 1, where the exponential integrator's
            # limit (r = 0) is the newest x0-prediction itself.
            x = history[-1][1]
        else:
            order = min(i + 1, max_order, total - i)
            lambdas, x0s = zip(*history[-order:])
            corrector = None if is_last else (lambda x_t: predict_x0(x_t, t))
            x, x0_t = _unipc_step(x, list(lambdas), list(x0s), _log_snr(t), corrector)
            if x0_t is not None:
                history = (history + [(_log_snr(t), x0_t)])[-max_order:]
        if callback is not None:
            callback(i, total, x, history[-1][1])
    return x


def _unipc_step(x: torch.Tensor, lambdas: list[float], x0s: list[torch.Tensor], lambda_t: float,
                predict_x0: Callable[[torch.Tensor], torch.Tensor] | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One UniPC step of order ``len(x0s)`` from ``lambdas[-1]`` to ``lambda_t``.

    x: the state at ``lambdas[-1]``; x0s: x0-predictions at ``lambdas`` (oldest first).
    With ``predict_x0`` (the network at ``lambda_t``), the predictor's result is evaluated
    and corrected; returns ``(x_t, x0-prediction at the predictor's x_t or None)``.
    """
    h = lambda_t - lambdas[-1]
    r = math.exp(-h)  # sigma_t / sigma_s
    # Divided differences of the older predictions relative to the newest one.
    rks = [(lam - lambdas[-1]) / h for lam in reversed(lambdas[:-1])]
    diffs = [(x0 - x0s[-1]) / rk for x0, rk in zip(reversed(x0s[:-1]), rks)]
    rho_p, rho_c = _unipc_coefficients(rks, h)

    base = r * x + (1 - r) * x0s[-1]  # the order-1 (DDIM) step
    x_t = base + (1 - r) * _combine(rho_p, diffs) if diffs else base
    if predict_x0 is None:
        return x_t, None
    x0_t = predict_x0(x_t)
    # The corrector adds the new point (at relative position 1) to the differences.
    correction = _combine(rho_c, diffs + [x0_t - x0s[-1]])
    return base + (1 - r) * correction, x0_t


def _unipc_coefficients(rks: list[float], h: float) -> tuple[list[float], list[float]]:
    """Predictor and corrector weights (rho_p, rho_c) of UniPC-bh2 for order ``len(rks) + 1``.

    rks: relative positions ``(lambda_k - lambda_s) / h`` of the older points (negative).
    Solves ``R rho = b`` with ``R[i, k] = r_k**i`` (r = rks + [1]) and, for B(h) = expm1(-h),
    ``b_i = i! * phi_{i+1}(-h) / phi_1(-h)``. Orders 1 (corrector) and 2 (predictor) use the
    fixed weight 1/2, the small-h limit of b_1, as UniPC does.
    """
    order = len(rks) + 1
    nodes = torch.tensor(rks + [1.0], dtype=torch.float64)
    vander = torch.stack([nodes ** i for i in range(order)])  # [order, order]
    phi_1 = _phi(1, -h)
    b = torch.tensor([math.factorial(i) * _phi(i + 1, -h) / phi_1 for i in range(1, order + 1)],
                     dtype=torch.float64)
    if order == 1:
        rho_p = []
    elif order == 2:
        rho_p = [0.5]
    else:
        rho_p = torch.linalg.solve(vander[:-1, :-1], b[:-1]).tolist()
    rho_c = [0.5] if order == 1 else torch.linalg.solve(vander, b).tolist()
    return rho_p, rho_c


def _phi(k: int, z: float) -> float:
    """``phi_k(z) = sum_j z**j / (j + k)!`` (phi_0 = exp, phi_{k+1} = (phi_k - 1/k!) / z)."""
    if abs(z) < 1:  # the recursion cancels catastrophically for small z: use the series
        return sum(z ** j / math.factorial(j + k) for j in range(30))
    phi = math.exp(z)
    for i in range(k):
        phi = (phi - 1 / math.factorial(i)) / z
    return phi


def _combine(weights: list[float], tensors: list[torch.Tensor]) -> torch.Tensor:
    out = weights[0] * tensors[0]
    for w, t in zip(weights[1:], tensors[1:]):
        out = out + w * t
    return out


def _log_snr(sigma: float) -> float:
    """UniPC's time variable ``lambda = -log(sigma)``, as ComfyUI's uni_pc uses for sigmas."""
    return -math.log(sigma)


def _check_sigmas(sigmas: torch.Tensor | list[float]) -> list[float]:
    values = [float(s) for s in (sigmas.tolist() if torch.is_tensor(sigmas) else sigmas)]
    if len(values) < 2:
        raise InputError("sigmas", f"need at least 2 sigmas (one step), got {len(values)}.")
    if not all(math.isfinite(s) for s in values) or values[-1] < 0 or values[0] > 1:
        raise InputError("sigmas", f"sigmas must lie in [0, 1], got {values}.")
    if any(b >= a for a, b in zip(values, values[1:])):
        raise InputError("sigmas", f"sigmas must be strictly decreasing, got {values}.")
    return values
