"""Rectified-flow sampling for Wan-based video models, in pure PyTorch.

- :mod:`.schedule`: Wan's shifted flow sigmas, as ComfyUI's 'simple' scheduler builds them.
- :mod:`.noise`: starting noise seeded as ComfyUI seeds it; noising an input latent.
- :mod:`.solvers`: Euler and UniPC (bh2) on the flow ODE, with a per-step callback.
- :mod:`.guidance`: classifier-free guidance with a separate expression scale.
- :mod:`.windows`: overlapping latent-frame windows with blended velocities.

Typical use (``model_fn`` conditions each batch chunk as its guidance branch)::

    sigmas = solver_sigmas(steps, shift, denoise, solver)
    x = noise_latent(x0, initial_noise(x0.shape, seed).to(x0), sigmas[0])
    velocity = guided_velocity_fn(model_fn, cfg, expression_cfg)
    latent = sample(velocity, x, sigmas, solver, callback=progress)
"""
from .guidance import (
    BRANCHES,
    batched_guided_velocity,
    branches_needed,
    guidance_weights,
    guided_velocity,
    guided_velocity_fn,
)
from .noise import initial_noise, noise_latent
from .schedule import SOLVERS, flow_sigmas, model_timestep, shift_sigma, solver_sigmas
from .solvers import sample
from .windows import (
    blend_weights,
    plan_windows,
    window_video_frames,
    windowed_velocity,
    windowed_velocity_fn,
)

__all__ = [
    "BRANCHES", "SOLVERS", "batched_guided_velocity", "blend_weights", "branches_needed",
    "flow_sigmas", "guidance_weights", "guided_velocity", "guided_velocity_fn", "initial_noise",
    "model_timestep", "noise_latent", "plan_windows", "sample", "shift_sigma", "solver_sigmas",
    "window_video_frames", "windowed_velocity", "windowed_velocity_fn",
]
