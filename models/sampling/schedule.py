"""Wan's shifted rectified-flow noise schedule, as ComfyUI builds it.

Rectified flow: ``x_sigma = (1 - sigma) * x0 + sigma * noise`` with ``sigma`` running from 1
(pure noise) to 0 (data). Wan 2.1 is trained on 1000 discrete timesteps ``t = k / 1000``
(k = 1..1000) and sampled on a *shifted* schedule that spends more steps at high noise:

    sigma' = shift * t / (1 + (shift - 1) * t)

ComfyUI's ``ModelSamplingDiscreteFlow`` stores those 1000 shifted sigmas and its 'simple'
scheduler picks ``steps`` of them, evenly spaced from the top, then appends 0. We compute
the same sigmas in float64 (ComfyUI holds them in float32, so values differ by <= 1e-7),
reproducing ComfyUI's float rounding of indices so every setting picks the same timesteps.
"""
from __future__ import annotations

import math
import operator

import torch

from ..errors import InputError

NUM_TIMESTEPS = 1000  # Wan's discrete training timesteps; also the model's timestep scale
SOLVERS = ("euler", "unipc")
# ComfyUI's KSampler drops the penultimate sigma for these samplers (it computes one step
# more and removes the second-to-last sigma), so the last jump to 0 is bigger.
_DISCARD_PENULTIMATE = {"unipc"}


def shift_sigma(sigma: float | torch.Tensor, shift: float) -> float | torch.Tensor:
    """Wan's timestep shift ``shift * s / (1 + (shift - 1) * s)``; shift=1 is the identity."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def model_timestep(sigma: float | torch.Tensor) -> float | torch.Tensor:
    """The timestep Wan's network is conditioned on: ``sigma * 1000``."""
    return sigma * NUM_TIMESTEPS


def flow_sigmas(steps: int, shift: float, denoise: float = 1.0) -> torch.Tensor:
    """Sigmas for ``steps`` sampling steps: ``[steps + 1]`` float64, descending, last exactly 0.

    ``denoise = 1`` is ComfyUI's 'simple' scheduler on ``ModelSamplingDiscreteFlow(shift)``.
    ``denoise < 1`` follows ComfyUI: build the schedule for ``int(steps / denoise)`` steps
    and keep its last ``steps + 1`` sigmas, so sampling starts at a lower noise level (the
    caller noises the input latent to ``sigmas[0]``, see ``noise.noise_latent``).
    """
    return _ksampler_sigmas(steps, shift, denoise, discard_penultimate=False)


def solver_sigmas(steps: int, shift: float, denoise: float = 1.0, solver: str = "euler") -> torch.Tensor:
    """The sigmas ComfyUI's KSampler uses for ``solver`` with the 'simple' scheduler.

    Identical to :func:`flow_sigmas` for Euler. For UniPC, ComfyUI's KSampler (sampler
    'uni_pc_bh2') builds the schedule for one step more and discards its penultimate sigma,
    so the last jump to 0 is bigger; doing the same keeps a seed and settings giving
    ComfyUI's result. Still ``[steps + 1]`` float64 ending at 0.
    """
    check_solver(solver)
    return _ksampler_sigmas(steps, shift, denoise, discard_penultimate=solver in _DISCARD_PENULTIMATE)


def check_solver(solver: str) -> None:
    """Raise an :class:`InputError` naming 'solver' unless it is one we implement."""
    if solver not in SOLVERS:
        raise InputError("solver", f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}.")


def _ksampler_sigmas(steps: int, shift: float, denoise: float, discard_penultimate: bool) -> torch.Tensor:
    steps, shift, denoise = _check_schedule_inputs(steps, shift, denoise)
    # ComfyUI treats denoise above 0.9999 as a full run; int() of a float division as ComfyUI
    # (7 / 0.07 = 99.99... gives 99 steps there, and so here).
    total = steps if denoise > 0.9999 else int(steps / denoise)
    total += discard_penultimate
    if total > NUM_TIMESTEPS:
        raise InputError(
            "steps",
            f"{steps} steps at denoise {denoise:g} need a schedule of {total} steps, but Wan's "
            f"flow schedule has only {NUM_TIMESTEPS} distinct noise levels; use fewer steps "
            f"or a higher denoise.",
        )
    sigmas = _simple_schedule(total, shift)
    if discard_penultimate:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas[-(steps + 1):]


def _simple_schedule(steps: int, shift: float) -> torch.Tensor:
    """ComfyUI's 'simple' scheduler on the 1000 shifted flow sigmas: ``[steps + 1]`` float64."""
    stride = NUM_TIMESTEPS / steps
    # Step k uses timestep t = (1000 - int(k * stride)) / 1000 with ComfyUI's float product:
    # exact arithmetic would pick another timestep for e.g. steps=38, k=19.
    t = torch.tensor([(NUM_TIMESTEPS - int(k * stride)) / NUM_TIMESTEPS for k in range(steps)],
                     dtype=torch.float64)
    return torch.cat([shift_sigma(t, shift), t.new_zeros(1)])


def _check_schedule_inputs(steps: int, shift: float, denoise: float) -> tuple[int, float, float]:
    try:
        if isinstance(steps, bool):
            raise TypeError
        steps = operator.index(steps)
    except TypeError:
        raise InputError("steps", f"steps must be a whole number, got {steps!r}.") from None
    if not 1 <= steps <= NUM_TIMESTEPS:
        raise InputError("steps", f"steps must be between 1 and {NUM_TIMESTEPS}, got {steps}.")
    if not _is_real(shift) or not (math.isfinite(shift) and shift > 0):
        raise InputError("shift", f"shift must be a positive number (Wan uses 3 to 8, "
                                  f"5 at 480p), got {shift!r}.")
    if not _is_real(denoise) or not (math.isfinite(denoise) and 0 < denoise <= 1):
        raise InputError("denoise", f"denoise must be in (0, 1] (1 = start from pure noise), "
                                    f"got {denoise!r}.")
    return steps, float(shift), float(denoise)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fixed_timestep_sigmas(timesteps, shift: float) -> torch.Tensor:
    """Sigmas of a fixed list of Wan timesteps, as step-distilled models are sampled
    (lightx2v's ``denoising_step_list``): timestep ``t`` of 1000 -> ``shift_sigma(t / 1000)``,
    then 0. ``[len(timesteps) + 1]`` float64. For 1000/750/500/250 at any shift these are
    also ComfyUI's 'simple' 4-step sigmas."""
    steps = list(timesteps)
    if not steps or any(not (0 < t <= NUM_TIMESTEPS) for t in steps) or any(a <= b for a, b in zip(steps, steps[1:])):
        raise InputError("timesteps", f"timesteps must fall from at most {NUM_TIMESTEPS} to above 0, "
                                      f"got {steps}.")
    _check_schedule_inputs(1, shift, 1.0)
    t = torch.tensor(steps, dtype=torch.float64) / NUM_TIMESTEPS
    return torch.cat([shift_sigma(t, float(shift)), t.new_zeros(1)])
