"""Starting noise, seeded exactly as ComfyUI seeds it, and noising of an input latent."""
from __future__ import annotations

import operator
from collections.abc import Sequence

import torch

from ..errors import InputError

MAX_SEED = 0xFFFF_FFFF_FFFF_FFFF  # ComfyUI's seed widgets go up to 2**64 - 1


def initial_noise(shape: Sequence[int], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise of ``shape`` (e.g. ``[1, 16, T_lat, H/8, W/8]``) on the CPU.

    The same as ComfyUI's ``comfy.sample.prepare_noise`` for one latent of that shape and
    dtype: one ``randn`` from a CPU generator seeded with ``seed``, so a seed means the
    same noise here and in ComfyUI, on any device. Move it to the device afterwards.
    Unlike ComfyUI we use a private generator and leave torch's global RNG alone.
    """
    try:
        if isinstance(seed, bool):
            raise TypeError
        seed = operator.index(seed)
    except TypeError:
        raise InputError("seed", f"seed must be a whole number, got {seed!r}.") from None
    if not 0 <= seed <= MAX_SEED:
        raise InputError("seed", f"seed must be between 0 and {MAX_SEED}, got {seed}.")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(tuple(shape), generator=generator, dtype=dtype, device="cpu")


def noise_latent(x0: torch.Tensor, noise: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """The rectified-flow state at ``sigma``: ``sigma * noise + (1 - sigma) * x0``.

    ``x0`` and ``noise`` have the same shape; ``sigma`` is a scalar (the first sigma of the
    schedule). This is ComfyUI's flow ``noise_scaling`` (same operation order, so equal
    bit for bit); at sigma = 1 it is the noise itself, whatever ``x0`` holds.
    """
    return sigma * noise + (1.0 - sigma) * x0
