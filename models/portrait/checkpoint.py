"""FactorPortrait checkpoints: one safetensors file with its config in the metadata.

A model comes from one of:

- a **full** checkpoint: Wan keys + control keys, metadata ``factorportrait`` (JSON with
  ``kind: "full"``, the Wan config, ``expression_dim`` and the expression encoder's name);
- a **Wan 2.1 base** file (original or ComfyUI layout) plus a **controls** file holding only
  the new layers (``control_embedding.*``, ``expression_controller.*``, ``kind: "controls"``);
- a **base** file alone: the controls start at zero (untrained) and a warning says so.

Weights are stored in ``storage_dtype`` for the Linear layers (bf16, fp16 or fp8 e4m3fn;
``None`` keeps the file's dtype) and in the compute ``dtype`` for everything else.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch
from safetensors.torch import save

from ..errors import InputError
from .dit import FactorPortraitDiT
from ..safetensors_io import WeightFile, describe_family, read_weights
from ..wan.config import WanConfig, strip_prefix
from ..wan.layers import CastLinear

METADATA_KEY = "factorportrait"
FORMAT_VERSION = 1
CONTROL_PREFIXES = ("control_embedding.", "expression_controller.")
DEFAULT_EXPRESSION_DIM = 52  # the 52 ARKit face actions of the default (anny) encoder
STORAGE_DTYPES = {
    "default": None, "bf16": torch.bfloat16, "fp16": torch.float16,
    "fp8_e4m3fn": torch.float8_e4m3fn, "fp32": torch.float32,
}


@dataclass
class LoadedModel:
    """A ready model plus what the user should know about it."""

    model: FactorPortraitDiT
    expression_encoder: str | None = None
    warnings: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def expression_dim(self) -> int:
        return self.model.expression_dim


def is_control_key(key: str) -> bool:
    return key.startswith(CONTROL_PREFIXES)


def save_checkpoint(model: FactorPortraitDiT, path: str, *, controls_only: bool = False,
                    expression_encoder: str | None = None) -> None:
    """Write a full checkpoint, or with ``controls_only`` just the new layers."""
    with open(path, "wb") as f:
        f.write(checkpoint_bytes(model.state_dict(), model.config_dict, controls_only=controls_only,
                                 expression_encoder=expression_encoder))


def checkpoint_bytes(state: dict[str, torch.Tensor], config_dict: dict, *, controls_only: bool = False,
                     expression_encoder: str | None = None, extra_metadata: dict[str, str] | None = None) -> bytes:
    """The bytes of a full (or ``controls_only``) checkpoint file of a model's ``state``
    (``FactorPortraitDiT.state_dict()``) and ``config_dict`` (``FactorPortraitDiT.config_dict``);
    ``extra_metadata``: more string entries (e.g. the trainer's run description)."""
    meta = {"format_version": FORMAT_VERSION, "kind": "controls" if controls_only else "full",
            **config_dict, "expression_encoder": expression_encoder}
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items() if is_control_key(k) or not controls_only}
    return save(tensors, metadata={**(extra_metadata or {}), METADATA_KEY: json.dumps(meta)})


def _wan_tensors(weights: WeightFile, input_name: str) -> dict[str, torch.Tensor]:
    """The Wan DiT keys of a file (prefix stripped), or a clear error for other models."""
    tensors = strip_prefix(weights.tensors)
    if "patch_embedding.weight" not in tensors or "blocks.0.self_attn.q.weight" not in tensors:
        name = os.path.basename(weights.path)
        meta = weights.json_metadata(METADATA_KEY)
        family = (f"a FactorPortrait '{meta.get('kind')}' file" if meta
                  else describe_family(weights.tensors))
        raise InputError(input_name, f"{name} is not a Wan 2.1 diffusion model: it looks like "
                         f"{family}. Choose a Wan 2.1 T2V/I2V DiT file (e.g. "
                         "wan2.1_t2v_1.3B_bf16.safetensors) from the diffusion_models folder.")
    return tensors


def _factorportrait_meta(weights: WeightFile, input_name: str, kind: str) -> dict:
    name = os.path.basename(weights.path)
    meta = weights.json_metadata(METADATA_KEY)
    if meta is None:
        hint = (" It is a plain Wan base file: choose it as the base model instead."
                if "patch_embedding.weight" in strip_prefix(weights.tensors) else "")
        raise InputError(input_name, f"{name} has no FactorPortrait metadata, so it is not a "
                         f"FactorPortrait {kind} file.{hint}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(input_name, f"{name} has format version {meta.get('format_version')!r}; "
                         f"this pack reads version {FORMAT_VERSION}. Update the node pack.")
    if meta.get("kind") != kind:
        raise InputError(input_name, f"{name} is a FactorPortrait '{meta.get('kind')}' file, "
                         f"not a '{kind}' file.")
    return meta


def _assemble(config: WanConfig, expression_dim: int, tensors: dict[str, torch.Tensor],
              dtype: torch.dtype, storage_dtype: torch.dtype | None, device) -> FactorPortraitDiT:
    """Build on the meta device and adopt ``tensors`` (cast per the dtype policy)."""
    model = FactorPortraitDiT(config, expression_dim, dtype=dtype, device="meta")
    linear_weights = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, CastLinear)}
    expected = model.state_dict()
    untrained = not any(is_control_key(k) for k in tensors)
    if untrained:  # a base file alone: the controls start in their initial (zero) state
        expected = {k: v for k, v in expected.items() if not is_control_key(k)}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                         f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    state = {}
    for key, ref in expected.items():
        t = tensors[key]
        if t.shape != ref.shape:
            raise ValueError(f"{key} has shape {list(t.shape)}, expected {list(ref.shape)}")
        target = (storage_dtype or t.dtype) if key in linear_weights else dtype
        state[key] = t.to(device=device, dtype=target)
    model.load_state_dict(state, strict=not untrained, assign=True)
    if untrained:
        model.reset_controls(device)
        model.control_embedding.to(dtype)
        model.expression_controller.to(dtype)
    return model.eval().requires_grad_(False)


def load_model(*, checkpoint: str | None = None, base: str | None = None, controls: str | None = None,
               expression_dim: int = DEFAULT_EXPRESSION_DIM, dtype: torch.dtype = torch.bfloat16,
               storage_dtype: torch.dtype | None = None, device="cpu") -> LoadedModel:
    """Load a FactorPortrait model from a full checkpoint, or a base (+ controls) file.

    ``expression_dim`` is used only when a base file is loaded alone. Errors name the input
    (``checkpoint``, ``base_model`` or ``control_weights``) and the file.
    """
    if checkpoint and (base or controls):
        raise InputError("checkpoint", "give either a full FactorPortrait checkpoint or a base "
                         "model (+ control weights), not both.")
    if controls and not base:
        raise InputError("base_model", "control weights need the Wan 2.1 base model they were "
                         "trained on; choose it as base_model.")
    if not (checkpoint or base):
        raise InputError("checkpoint", "choose a FactorPortrait checkpoint or a Wan 2.1 base model.")

    warnings: list[str] = []
    sources: dict[str, str] = {}
    if checkpoint:
        weights = read_weights(checkpoint, "checkpoint")
        meta = _factorportrait_meta(weights, "checkpoint", "full")
        tensors = _wan_tensors(weights, "checkpoint")
        config, exp_dim = WanConfig.from_dict(meta["wan"]), int(meta["expression_dim"])
        encoder, input_name = meta.get("expression_encoder"), "checkpoint"
        sources["checkpoint"] = checkpoint
    else:
        base_weights = read_weights(base, "base_model")
        tensors = {k: v for k, v in _wan_tensors(base_weights, "base_model").items() if not is_control_key(k)}
        try:
            config = WanConfig.from_state_dict(tensors)
        except ValueError as e:
            raise InputError("base_model", f"{os.path.basename(base)}: {e}") from None
        sources["base_model"] = base
        input_name, encoder, exp_dim = "base_model", None, expression_dim
        if controls:
            control_weights = read_weights(controls, "control_weights")
            meta = _factorportrait_meta(control_weights, "control_weights", "controls")
            trained_on = WanConfig.from_dict(meta["wan"])
            if trained_on != config:
                raise InputError("control_weights", f"{os.path.basename(controls)} was trained on a "
                                 f"Wan model with dim {trained_on.dim}, {trained_on.num_layers} layers, "
                                 f"in_dim {trained_on.in_dim}, but the base model "
                                 f"{os.path.basename(base)} has dim {config.dim}, {config.num_layers} "
                                 f"layers, in_dim {config.in_dim}; choose the matching base.")
            tensors.update({k: v for k, v in control_weights.tensors.items() if is_control_key(k)})
            exp_dim, encoder, input_name = int(meta["expression_dim"]), meta.get("expression_encoder"), "control_weights"
            sources["control_weights"] = controls
        else:
            warnings.append("No control weights: the expression, pose and camera controls are "
                            "untrained (zero) and the model behaves like the Wan base model. "
                            "Load a FactorPortrait checkpoint or control-weights file for "
                            "controllable results.")
    try:
        model = _assemble(config, exp_dim, tensors, dtype, storage_dtype, device)
    except ValueError as e:
        files = " + ".join(os.path.basename(p) for p in sources.values())
        raise InputError(input_name, f"the weights of {files} do not fit the model they describe "
                         f"({e}); the file is damaged or of another model variant.") from None
    return LoadedModel(model, encoder, warnings, sources)


def file_kind(path: str, input_name: str) -> str | None:
    """``"full"`` or ``"controls"`` for a FactorPortrait file, None for any other safetensors
    file; reads only the header."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError) as e:
        raise InputError(input_name, f"{os.path.basename(path)} is truncated or corrupt and "
                         f"cannot be read ({e}); download or copy it again.") from None
    try:
        return json.loads(raw).get("kind") if raw else None
    except (json.JSONDecodeError, AttributeError):
        return None
