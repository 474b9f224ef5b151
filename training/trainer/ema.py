"""Exponential moving average of the trained weights (float32 copies).

``shadow = decay * shadow + (1 - decay) * weight`` after every optimizer step, with the
usual warm-up ``decay_t = min(decay, (1 + t) / (10 + t))`` so early averages are not
dominated by the initial weights. Exports use the average when EMA is on.
"""
from __future__ import annotations

import torch


class EMA:
    def __init__(self, named: dict[str, torch.Tensor], decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in named.items()}

    @torch.no_grad()
    def update(self, named: dict[str, torch.Tensor], step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in named.items():
            self.shadow[k].lerp_(v.detach().float(), 1 - d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Full tensors (gathered from FSDP2 shards: a collective call there)."""
        return {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise ValueError(f"EMA state lacks {sorted(missing)[:3]}")
        for k, v in self.shadow.items():
            full = state[k].to(device=v.device, dtype=v.dtype)
            if hasattr(v, "device_mesh"):  # an FSDP2 shard: keep this rank's part
                from torch.distributed.tensor import distribute_tensor

                full = distribute_tensor(full, v.device_mesh, v.placements)
            v.copy_(full)
