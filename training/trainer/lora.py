"""LoRA adapters on the DiT's Linear layers, kept outside the DiT.

An adapter adds ``(alpha / rank) * up(down(x))`` to a Linear layer's output (``down``
Gaussian-initialised, ``up`` zero, so training starts from the base). Adapters live in
their own module (:class:`LoraAdapters`) and act through forward hooks, so the DiT's state
dict, and with it every checkpoint format, stays as it is. Exports:

- merged into the base weights (a full FactorPortrait checkpoint), :meth:`merged_state`;
- a ComfyUI-format LoRA file: ``diffusion_model.<layer>.lora_down.weight [r, in]``,
  ``.lora_up.weight [out, r]`` and ``.alpha`` (ComfyUI's generic key format, which its
  LoraLoader maps onto ``diffusion_model.<layer>.weight`` of a Wan model).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from safetensors.torch import save

COMFY_PREFIX = "diffusion_model."


def target_layers(model: nn.Module, targets: list[str]) -> dict[str, nn.Linear]:
    """Linear layers ``blocks.<i>.<target>`` of the DiT, by name."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name.startswith("blocks.") and name.split(".", 2)[2] in targets:
            out[name] = module
    if not out:
        raise ValueError(f"no Linear layer matches the LoRA targets {targets}")
    return out


class LoraAdapters(nn.Module):
    """``rank``-``r`` adapters for the given layers (``name -> nn.Linear``)."""

    def __init__(self, layers: dict[str, nn.Linear], rank: int, alpha: float, seed: int = 0):
        super().__init__()
        self.rank, self.alpha = rank, alpha
        self.scale = alpha / rank
        self.names = sorted(layers)
        gen = torch.Generator().manual_seed(seed)
        self.down = nn.ParameterList()
        self.up = nn.ParameterList()
        for name in self.names:
            layer = layers[name]
            down = torch.randn(rank, layer.in_features, generator=gen) / math.sqrt(layer.in_features)
            self.down.append(nn.Parameter(down.to(layer.weight.device)))
            self.up.append(nn.Parameter(torch.zeros(layer.out_features, rank, device=layer.weight.device)))
        self._hooks = [layers[name].register_forward_hook(self._hook(i)) for i, name in enumerate(self.names)]

    def _hook(self, i: int):
        def add_adapter(module, inputs, output):
            x = inputs[0]
            delta = (x @ self.down[i].to(x.dtype).t()) @ self.up[i].to(x.dtype).t()
            return output + self.scale * delta
        return add_adapter

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()

    def factors(self, state: dict[str, torch.Tensor] | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(down, up)`` per layer, float32 on the CPU: the live parameters, or those of
        ``state`` (this module's state dict, e.g. gathered or averaged by EMA)."""
        if state is None:
            state = {k: v.detach() for k, v in self.state_dict().items()}
        return [(state[f"down.{i}"].float().cpu(), state[f"up.{i}"].float().cpu()) for i in range(len(self.names))]

    def deltas(self, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """``<layer>.weight -> scale * up @ down`` (float32)."""
        return {f"{n}.weight": self.scale * (up @ down) for n, (down, up) in zip(self.names, self.factors(state))}

    def merged_state(self, dit_state: dict[str, torch.Tensor],
                     state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """A copy of the DiT's ``dit_state`` with the adapters merged into their weights."""
        out = dict(dit_state)
        for key, delta in self.deltas(state).items():
            out[key] = (dit_state[key].float().cpu() + delta).to(dit_state[key].dtype)
        return out

    def comfy_lora_bytes(self, state: dict[str, torch.Tensor] | None = None,
                         metadata: dict[str, str] | None = None) -> bytes:
        """The adapters as a ComfyUI-format LoRA safetensors file."""
        tensors = {}
        for name, (down, up) in zip(self.names, self.factors(state)):
            key = COMFY_PREFIX + name
            tensors[f"{key}.lora_down.weight"] = down.contiguous()
            tensors[f"{key}.lora_up.weight"] = up.contiguous()
            tensors[f"{key}.alpha"] = torch.tensor(float(self.alpha))
        return save(tensors, metadata=metadata)
