"""A LoRA file read against a model: the adapter of each layer, and a report of the rest.

Nothing is dropped silently: keys that name no layer of the model, roles no adapter reads
(LoCon mid weights, DoRA scales...) and tensors that do not fit their layer are listed by
name in the report; image-conditioning keys (an i2v LoRA on a t2v base) are skipped and
counted apart, since such a LoRA is still usable for its other layers.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

import torch

from ..errors import InputError
from ..safetensors_io import read_weights
from .adapters import UNSUPPORTED, LayerAdapter, adapter_of
from .key_formats import LayerNames, split_key
from .targets import target_parameters


@dataclass
class LoraFile:
    """The adapters of one file for one model, by target: a layer (``blocks.0.self_attn.q``)
    or a bare parameter (``blocks.0.modulation``, changed by ``.diff`` only)."""

    name: str
    adapters: dict[str, LayerAdapter]
    formats: list[str]  # the key formats seen (key_formats.FORMATS)
    unmatched: list[str] = field(default_factory=list)  # keys naming no layer of the model
    unsupported: list[str] = field(default_factory=list)  # keys of roles no adapter reads
    image_skipped: list[str] = field(default_factory=list)  # i2v image-layer keys on a t2v model
    errors: list[str] = field(default_factory=list)  # "layer: why" for tensors that do not fit

    def summary(self) -> str:
        """One paragraph for the user: what was applied and, by name, what was not."""
        kinds = defaultdict(int)
        for a in self.adapters.values():
            kinds[a.kind] += 1
        lines = [f"{self.name}: {len(self.adapters)} layers ("
                 + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + "), format "
                 + "/".join(self.formats)]
        for label, keys in (("keys matching no layer", self.unmatched),
                            ("keys of unsupported kinds", self.unsupported),
                            ("image-conditioning keys skipped (the base is text-to-video)", self.image_skipped),
                            ("tensors not fitting their layer", self.errors)):
            if keys:
                shown = ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "")
                lines.append(f"{label}: {shown}")
        return "\n".join(lines)


def read_lora(path: str, model: torch.nn.Module, input_name: str = "lora_name") -> LoraFile:
    """Read ``path`` (safetensors) and match it to ``model``'s layers (a Wan DiT). Raises an
    :class:`InputError` when no key of the file fits the model."""
    weights = read_weights(path, input_name)
    return match_lora(weights.tensors, model, os.path.basename(path), input_name)


def match_lora(tensors: dict[str, torch.Tensor], model: torch.nn.Module, name: str,
               input_name: str = "lora_name") -> LoraFile:
    modules = dict(model.named_modules())
    layers = {n for n, m in modules.items() if isinstance(getattr(m, "weight", None), torch.Tensor)}
    bare = {n for n, _ in model.named_parameters() if n.rpartition(".")[0] not in layers}  # modulation
    targets = layers | bare
    names = LayerNames(targets)
    grouped: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
    out = LoraFile(name, {}, [])
    for key in sorted(tensors):
        parts = split_key(key)
        found = names.find(parts[0]) if parts else None
        if found is None:
            out.unmatched.append(key)
            continue
        (layer, fmt), role = found, parts[1]
        if fmt not in out.formats:
            out.formats.append(fmt)
        if layer not in targets:  # an image layer of i2v on a t2v model
            out.image_skipped.append(key)
        elif role in UNSUPPORTED:
            out.unsupported.append(key)
        else:
            grouped[layer][role] = tensors[key]
    for layer, roles in grouped.items():
        weight, bias = target_parameters(model, layer)
        try:
            adapter = adapter_of(roles, weight.shape)
            if adapter.delta_bias is not None and (bias is None or adapter.delta_bias.shape != bias.shape):
                raise ValueError(f"its bias change {list(adapter.delta_bias.shape)} does not fit the layer")
        except (ValueError, RuntimeError, KeyError) as e:
            out.errors.append(f"{layer}: {e}")
            continue
        out.adapters[layer] = adapter
    if not out.adapters:
        raise InputError(input_name, f"{name} changes no layer of this model. "
                         + (f"First misfit: {out.errors[0]}. " if out.errors else "")
                         + ("Its keys look like " + ", ".join(out.unmatched[:3]) + "; "
                            if out.unmatched else "")
                         + "choose a Wan 2.1 LoRA made for a model of this size "
                         "(1.3B LoRAs do not fit 14B models, nor the reverse).")
    return out
