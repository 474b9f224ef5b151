"""Every random draw of training as a function of ``(seed, step, sample, purpose)``.

A sample's noise, timestep and control dropout at a step do not depend on which rank
draws them or on what was drawn before, so a run on 2 processes draws exactly what a run
on 1 process draws for the same global batch, and a resumed run continues bit for bit
without saving generator states. The data order is an epoch-wise permutation of the
dataset seeded by ``(seed, epoch)``.
"""
from __future__ import annotations

import functools
import hashlib

import torch

PURPOSES = {"noise": 1, "timestep": 2, "dropout": 3, "order": 4, "validation": 5}


def generator(seed: int, *keys: int, purpose: str) -> torch.Generator:
    """A CPU generator seeded by a hash of ``seed``, ``keys`` and ``purpose``."""
    text = ":".join(str(k) for k in (seed, PURPOSES[purpose], *keys)).encode()
    return torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1)


@functools.lru_cache(maxsize=4)
def epoch_order(seed: int, epoch: int, size: int) -> torch.Tensor:
    """The dataset indices of ``epoch`` in training order ``[size]`` (do not modify: cached)."""
    return torch.randperm(size, generator=generator(seed, epoch, purpose="order"))


def batch_indices(seed: int, step: int, batch_size: int, size: int) -> list[int]:
    """Dataset indices of the global batch of ``step``: positions ``step * B ...`` of the
    stream of epochs (each a fresh permutation)."""
    out = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, size)
        out.append(int(epoch_order(seed, epoch, size)[offset]))
    return out
