"""Applying LoRAs to a model for the length of a run, and taking them off again.

Two ways, the same result (tests check both against ComfyUI's LoraLoaderModelOnly):

- :func:`merged`: each changed parameter is replaced by ``W + sum(strength * delta)``
  computed in float32 and stored in the parameter's dtype; the original tensors are put
  back on exit, bit for bit. The fastest at run time.
- :func:`unmerged`: forward hooks add ``strength * scale * up(down(x))`` (a LoRA) or the
  input through the full change (other kinds) to a layer's output. For weights stored in
  fp8, where merging would round the small change away, and for streamed blocks, whose
  weights would need a second copy in CPU memory to be restored.

:func:`applied` uses each where it belongs. Several files stack: their changes add up, as
ComfyUI's patches do.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from .adapters import LayerAdapter
from .lora_file import LoraFile
from .targets import target_parameters

Stack = list[tuple[LoraFile, float]]  # files and their strengths, in the order applied
LINEAR_MAPS = (nn.Linear, nn.Conv3d)  # layers whose change can be added to their output
Parts = list[tuple[LayerAdapter, float]]  # one target's adapters and their strengths


def _by_target(loras: Stack) -> dict[str, Parts]:
    out = defaultdict(list)
    for lora, strength in loras:
        if strength != 0:
            for target, adapter in lora.adapters.items():
                out[target].append((adapter, strength))
    return out


def _stored_in_fp8(model: nn.Module, target: str) -> bool:
    return target_parameters(model, target)[0].dtype.itemsize < 2


def _summed(parts: list[tuple[LayerAdapter, float]], attr: str, like: torch.Tensor) -> torch.Tensor | None:
    deltas = [s * getattr(a, attr) for a, s in parts if getattr(a, attr) is not None]
    if not deltas:
        return None
    return sum(d.to(like.device) for d in deltas) + like.float()


@contextlib.contextmanager
def merged(model: nn.Module, loras: Stack, targets=None):
    """Merge the stacked LoRAs (those of ``targets`` only, when given) into ``model``'s
    parameters inside the block."""
    originals: list[tuple[nn.Parameter, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for target, parts in _by_target(loras).items():
                if targets is not None and target not in targets:
                    continue
                weight, bias = target_parameters(model, target)
                for attr, param in (("delta_weight", weight), ("delta_bias", bias)):
                    new = None if param is None else _summed(parts, attr, param)
                    if new is not None:
                        originals.append((param, param.data))
                        param.data = new.to(param.dtype)
        yield model
    finally:
        for param, data in reversed(originals):
            param.data = data


class _AddChange:
    """Forward hook: output + the stacked changes of one layer, applied to its input."""

    def __init__(self, module: nn.Module, parts: Parts):
        self.linear = isinstance(module, nn.Linear)
        self.parts = parts
        self._on_device: dict[tuple, list] = {}

    def _parts_like(self, x: torch.Tensor) -> list[tuple[float, LayerAdapter]]:
        """The adapters' tensors in ``x``'s dtype and on its device (cast once per pair)."""
        key = (x.device, x.dtype)
        if key not in self._on_device:
            cast = lambda t: None if t is None else t.to(device=x.device, dtype=x.dtype)  # noqa: E731
            self._on_device[key] = [
                (strength, LayerAdapter(a.kind, None if a.factors else cast(a.delta_weight), cast(a.delta_bias),
                                        (cast(a.factors[0]), cast(a.factors[1]), a.factors[2]) if a.factors else None))
                for a, strength in self.parts]
        return self._on_device[key]

    def __call__(self, module, inputs, output):
        x = inputs[0]
        for strength, a in self._parts_like(x):
            if a.factors is not None and self.linear:  # low rank: never form the full matrix
                down, up, scale = a.factors
                output = output + (strength * scale) * F.linear(F.linear(x, down), up)
            elif a.factors is not None or a.delta_weight is not None:
                w = a.delta_weight
                if w is None:  # a LoRA on a convolution (the patch embedding)
                    down, up, scale = a.factors
                    w = (scale * up @ down).reshape(module.weight.shape)
                output = output + strength * (F.linear(x, w) if self.linear else module._conv_forward(x, w, None))
            if a.delta_bias is not None:
                bias = a.delta_bias if self.linear else a.delta_bias.view(1, -1, *([1] * (output.ndim - 2)))
                output = output + strength * bias
        return output


@contextlib.contextmanager
def unmerged(model: nn.Module, loras: Stack, targets=None):
    """Add the stacked LoRAs' changes (those of ``targets`` only, when given) to their
    layers' outputs by hooks inside the block. Only linear maps can: norms and bare
    parameters (modulation) change non-linearly or have no layer, and are merged."""
    modules = dict(model.named_modules())
    chosen = {t: parts for t, parts in _by_target(loras).items() if targets is None or t in targets}
    hooked = {t: parts for t, parts in chosen.items() if isinstance(modules.get(t), LINEAR_MAPS)}
    hooks = [modules[t].register_forward_hook(_AddChange(modules[t], parts)) for t, parts in hooked.items()]
    try:
        with merged(model, loras, set(chosen) - set(hooked)):
            yield model
    finally:
        for h in hooks:
            h.remove()


@contextlib.contextmanager
def applied(model: nn.Module, loras: Stack, *, hooks: bool = False):
    """The stacked LoRAs on ``model`` inside the block: merged, except on layers whose
    weights are stored in fp8, which get hooks, and with ``hooks`` (block streaming, where
    merging would need a second copy of every changed weight in CPU memory) every linear
    layer gets hooks."""
    targets = set(_by_target(loras))
    hooked = targets if hooks else {t for t in targets if _stored_in_fp8(model, t)}
    with merged(model, loras, targets - hooked), unmerged(model, loras, hooked):
        yield model
