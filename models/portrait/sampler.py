"""Generating a portrait video latent: conditions -> guided, windowed flow sampling.

Everything here is in the DiT's latent space (normalised Wan latents, see
:mod:`models.wan.latent_format`); the ComfyUI node encodes and decodes around it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from .dit import FactorPortraitDiT
from ..wan.latent_frames import latent_frame_groups, video_frame_count
from ..sampling import (
    guided_velocity_fn, initial_noise, model_timestep, noise_latent, sample, solver_sigmas,
    windowed_velocity_fn,
)
from ..sampling.schedule import fixed_timestep_sigmas
from ..sampling.step_cache import StepCache
from ..wan.config import NO_TEXT_LEN, TEXT_LEN


@dataclass(frozen=True)
class PortraitConditions:
    """The controls of one video, batch 1, in the DiT's space.

    reference ``[1, 16, 1, h, w]``; rays ``[1, 24, T, h, w]``; normals ``[1, 16, T, h, w]``
    (VAE latents of the normal maps); expression ``[1, 4T-3, D]``; positive / negative text
    ``[1, L, text_dim]``. None means "not given" (the control's null input).
    """

    reference: torch.Tensor
    rays: torch.Tensor | None = None
    normals: torch.Tensor | None = None
    expression: torch.Tensor | None = None
    positive: torch.Tensor | None = None
    negative: torch.Tensor | None = None

    def window(self, frames: range) -> PortraitConditions:
        """The conditions of latent frames ``frames`` as a video of their own.

        Its first latent frame stands for one video frame (Wan's 1 + 4k packing), so a
        window starting past latent 0 gets the mean expression of that latent's 4 frames.
        """
        cut = lambda x: None if x is None else x[:, :, frames.start:frames.stop]  # noqa: E731
        expression = self.expression
        if expression is not None:
            groups = latent_frame_groups(expression.shape[1])[frames.start:frames.stop]
            first = expression[:, groups[0]].mean(dim=1, keepdim=True)
            expression = torch.cat([first, expression[:, groups[1:].flatten()]], dim=1)
        return replace(self, rays=cut(self.rays), normals=cut(self.normals), expression=expression)


def _pad_text(context: torch.Tensor | None, text_dim: int, length: int, like: torch.Tensor) -> torch.Tensor:
    """``[1, L, text_dim]`` zero-padded to ``length`` tokens (None: all zeros, i.e. no text)."""
    out = like.new_zeros(1, length, text_dim)
    if context is not None:
        out[:, :context.shape[1]] = context.to(out)
    return out


def branch_velocity(model: FactorPortraitDiT, conditions: PortraitConditions, x: torch.Tensor,
                    sigma: float, branches: Sequence[str]) -> torch.Tensor:
    """The network on ``x = [k, 16, T, h, w]`` (one copy per guidance branch); see
    :mod:`models.sampling.guidance` for which controls each branch keeps."""
    k, _, t_lat, h, w = x.shape
    c = conditions
    text_dim = model.config.text_dim
    texts_given = [t.shape[1] for t in (c.positive, c.negative) if t is not None]
    length = max([TEXT_LEN] + texts_given) if texts_given else NO_TEXT_LEN
    texts, normals, expressions = [], [], []
    codes = c.expression if c.expression is not None else x.new_zeros(1, video_frame_count(t_lat), model.expression_dim)
    for branch in branches:
        texts.append(_pad_text(c.negative if branch == "uncond" else c.positive, text_dim, length, x))
        keep_pose = branch != "uncond" and c.normals is not None
        normals.append(c.normals.to(x) if keep_pose else x.new_zeros(1, 16, t_lat, h, w))
        expressions.append(codes.to(x) if branch == "full" else torch.zeros_like(codes, dtype=x.dtype))
    timestep = torch.full((k,), model_timestep(sigma), device=x.device)
    v = model(x, timestep, c.reference.to(x), None if c.rays is None else c.rays.to(x),
              torch.cat(normals), torch.cat(expressions), torch.cat(texts))
    return v.float()


def generate(model: FactorPortraitDiT, conditions: PortraitConditions, *, num_latent_frames: int,
             seed: int, steps: int, cfg: float, expression_cfg: float, shift: float,
             solver: str = "unipc", denoise: float = 1.0, init_latent: torch.Tensor | None = None,
             window: int = 21, overlap: int = 4, device: torch.device | str = "cpu",
             callback: Callable[[int, int], None] | None = None,
             timesteps: Sequence[int] | None = None, step_cache: StepCache | None = None) -> torch.Tensor:
    """Sample a video latent ``[1, 16, T, h, w]`` (DiT space, float32, on the CPU).

    The noise is drawn on the CPU from ``seed`` exactly as ComfyUI draws it. With
    ``denoise < 1`` sampling starts from ``init_latent`` noised to the first sigma.
    Videos longer than ``window`` latent frames are made of windows overlapping by at
    least ``overlap`` latent frames whose velocities are blended at every step.
    ``callback(step, total)`` runs after each step; an exception there stops sampling.
    ``timesteps``: fixed Wan timesteps (e.g. a step-distilled model's 1000/750/500/250)
    instead of ``steps`` of the 'simple' schedule. ``step_cache``: skip the blocks on steps
    where their input barely changed (:mod:`models.sampling.step_cache`); its counters tell
    how many network evaluations ran.
    """
    _, _, _, h, w = conditions.reference.shape
    shape = (1, 16, num_latent_frames, h, w)
    if timesteps is not None:
        sigmas = fixed_timestep_sigmas(timesteps, shift)
    else:
        sigmas = solver_sigmas(steps, shift, denoise, solver)
    step_of_sigma = {float(s): i for i, s in enumerate(sigmas[:-1])}
    noise = initial_noise(shape, seed)
    if denoise < 1.0 and init_latent is not None:
        x = noise_latent(init_latent.float().cpu(), noise, float(sigmas[0]))
    else:
        x = noise * float(sigmas[0])  # sigma 1 at full denoise: pure noise
    conditions_on_device = PortraitConditions(*(None if t is None else t.to(device) for t in (
        conditions.reference, conditions.rays, conditions.normals, conditions.expression,
        conditions.positive, conditions.negative)))

    def window_velocity(x_window: torch.Tensor, sigma: float, frames: range) -> torch.Tensor:
        if step_cache is not None:
            step_cache.key = (frames.start, frames.stop)
            step_cache.progress = step_of_sigma.get(float(sigma), 0) / (len(sigmas) - 1)
        cond = conditions_on_device.window(frames)
        guided = guided_velocity_fn(lambda xb, s, br: branch_velocity(model, cond, xb, s, br),
                                    cfg, expression_cfg)
        return guided(x_window, sigma)

    if num_latent_frames <= window:  # one window: the whole video
        window, overlap = num_latent_frames, 0
    velocity = windowed_velocity_fn(window_velocity, num_latent_frames, window, overlap)

    def on_step(step: int, total: int, x_now: torch.Tensor, denoised: torch.Tensor) -> None:
        if not torch.isfinite(x_now).all():
            raise FloatingPointError(
                f"the model produced NaN or infinite values at step {step + 1} of {total}; "
                "fp16 compute can overflow: load the model with bf16 or fp32 compute")
        if callback is not None:
            callback(step, total)

    cache = step_cache.attached(model) if step_cache is not None else contextlib.nullcontext()
    with torch.inference_mode(), cache:
        out = sample(velocity, x.to(device), sigmas, solver, callback=on_step)
    return out.float().cpu()
