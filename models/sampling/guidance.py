"""Classifier-free guidance with a separate scale for the expression control.

Three branches of the network, all on the same noisy latent and timestep:

======== ========= ============ ========= ================ ==============================
branch   reference camera rays  text      normal maps      expression codes
======== ========= ============ ========= ================ ==============================
uncond   kept      kept         negative  dropped          dropped
pose     kept      kept         positive  kept             dropped
full     kept      kept         positive  kept             kept
======== ========= ============ ========= ================ ==============================

"Dropped" means the control's null input, the one the model was trained with for
condition dropout (zeros in the normal-map latent slot, zero expression codes; the
negative or empty text). The reference image and the camera rays are never dropped: they
define the identity and the viewpoint, not the content guidance steers toward.

    v = v_uncond + cfg * (v_pose - v_uncond) + expression_cfg * (v_full - v_pose)

``cfg`` scales the pose (and text) guidance, ``expression_cfg`` the expression guidance.
The result is ``sum_b w_b * v_b`` with weights ``(1 - cfg, cfg - expression_cfg,
expression_cfg)``; a branch whose weight is exactly 0 is never computed, so
cfg = expression_cfg = 1 costs one network pass per step; cfg = expression_cfg (plain
CFG), cfg = 1 or expression_cfg = 0 cost two (one if both of the last two hold); any
other setting costs three.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..errors import InputError

BRANCHES = ("uncond", "pose", "full")
"""The guidance branches, in the order they are batched and combined."""

BranchModelFn = Callable[[torch.Tensor, float, Sequence[str]], torch.Tensor]
"""``model_fn(x, sigma, branches) -> v``: x is ``[len(branches) * B, ...]``, the latent
repeated once per branch along the batch; the callable conditions batch chunk ``i`` as
``branches[i]`` and returns the velocities in the same layout."""


def guidance_weights(cfg: float, expression_cfg: float) -> dict[str, float]:
    """Weights of the branch velocities in the guided velocity; they sum to 1."""
    _check_scale(cfg, "cfg")
    _check_scale(expression_cfg, "expression_cfg")
    return {"uncond": 1.0 - cfg, "pose": cfg - expression_cfg, "full": expression_cfg}


def branches_needed(cfg: float, expression_cfg: float) -> tuple[str, ...]:
    """The branches with a nonzero weight, in :data:`BRANCHES` order (the fewest passes).

    >>> branches_needed(1.0, 1.0), branches_needed(5.0, 5.0), branches_needed(5.0, 2.0)
    (('full',), ('uncond', 'full'), ('uncond', 'pose', 'full'))
    """
    weights = guidance_weights(cfg, expression_cfg)
    return tuple(b for b in BRANCHES if weights[b] != 0.0)


def guided_velocity(v_uncond: torch.Tensor | None, v_pose: torch.Tensor | None,
                    v_full: torch.Tensor | None, cfg: float, expression_cfg: float) -> torch.Tensor:
    """``v_uncond + cfg * (v_pose - v_uncond) + expression_cfg * (v_full - v_pose)``.

    Branches that :func:`branches_needed` leaves out may be None; they cancel exactly, and
    the formula with them removed is used (e.g. ``v_uncond + cfg * (v_full - v_uncond)``,
    ComfyUI's own CFG, when cfg = expression_cfg; ``v_full`` itself when both are 1).
    """
    given = {"uncond": v_uncond, "pose": v_pose, "full": v_full}
    needed = branches_needed(cfg, expression_cfg)
    missing = [b for b in needed if given[b] is None]
    if missing:
        raise ValueError(f"cfg={cfg}, expression_cfg={expression_cfg} need the {missing} branch(es)")
    return _combine(cfg, expression_cfg, [(b, given[b]) for b in needed])


def batched_guided_velocity(model_fn: BranchModelFn, x: torch.Tensor, sigma: float,
                            cfg: float, expression_cfg: float) -> torch.Tensor:
    """Guided velocity from one batched network call over the needed branches.

    x: ``[B, ...]``. ``model_fn`` gets ``[k * B, ...]`` (x repeated for the k needed
    branches, in :data:`BRANCHES` order) and the branch names; returns ``[B, ...]``.
    """
    needed = branches_needed(cfg, expression_cfg)
    v = model_fn(torch.cat([x] * len(needed)), sigma, needed)
    return _combine(cfg, expression_cfg, list(zip(needed, v.chunk(len(needed)))))


def guided_velocity_fn(model_fn: BranchModelFn, cfg: float,
                       expression_cfg: float) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """``velocity_fn(x, sigma)`` for ``solvers.sample``, guiding with one batched call."""
    branches_needed(cfg, expression_cfg)  # validate now, not at the first step

    def velocity_fn(x: torch.Tensor, sigma: float) -> torch.Tensor:
        return batched_guided_velocity(model_fn, x, sigma, cfg, expression_cfg)

    return velocity_fn


def _combine(cfg: float, expression_cfg: float, velocities: list[tuple[str, torch.Tensor]]) -> torch.Tensor:
    """The guidance formula over the present branches: each step into 'pose' is scaled by
    cfg, each step into 'full' by expression_cfg (absent branches have weight 0)."""
    scale = {"pose": cfg, "full": expression_cfg}
    out = velocities[0][1]
    for (_, prev), (branch, v) in zip(velocities, velocities[1:]):
        out = out + scale[branch] * (v - prev)
    return out


def _check_scale(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(name, f"{name} must be a finite number, got {value!r}.")
