"""What a run hands to users: files that FactorPortrait Load Model (and ComfyUI) load.

Per export (every ``output.save_every`` steps and at the end), into ``output.export_dir``:

    <name>-step<N>_controls.safetensors   control weights (with the Wan base they were trained on)
    <name>-step<N>.safetensors            a full checkpoint (LoRA merged in)
    <name>-step<N>_lora.safetensors       the LoRA alone, ComfyUI format (controls+lora runs)

EMA weights are exported when EMA is on. Each file's metadata also holds
``factorportrait_training`` (step, config) so a checkpoint says how it was made.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ...models.portrait.checkpoint import checkpoint_bytes
from ..data.sample import write_atomic


def split_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The train module's state (``dit.*``, ``lora.*``) -> DiT state and LoRA state."""
    dit = {k[len("dit."):]: v for k, v in state.items() if k.startswith("dit.")}
    lora = {k[len("lora."):]: v for k, v in state.items() if k.startswith("lora.")}
    return dit, lora


def export_checkpoints(export_dir: str | os.PathLike, name: str, step: int, state: dict[str, torch.Tensor],
                       config_dict: dict, kinds: list[str], *, lora=None, expression_encoder: str | None = None,
                       run: dict | None = None) -> dict[str, Path]:
    """Write the asked kinds of files of a full train-module ``state`` (EMA applied by the
    caller); returns their paths by kind."""
    dit_state, lora_state = split_state(state)
    meta = {"factorportrait_training": json.dumps({"step": step, **(run or {})}, default=str)}
    stem = Path(export_dir) / f"{name}-step{step:06d}"
    paths = {}
    if "controls" in kinds:
        paths["controls"] = stem.with_name(stem.name + "_controls.safetensors")
        write_atomic(paths["controls"], checkpoint_bytes(dit_state, config_dict, controls_only=True,
                                                         expression_encoder=expression_encoder, extra_metadata=meta))
    if "full" in kinds:
        merged = lora.merged_state(dit_state, lora_state) if lora is not None else dit_state
        paths["full"] = stem.with_name(stem.name + ".safetensors")
        write_atomic(paths["full"], checkpoint_bytes(merged, config_dict, expression_encoder=expression_encoder,
                                                     extra_metadata=meta))
    if "lora" in kinds and lora is not None:
        paths["lora"] = stem.with_name(stem.name + "_lora.safetensors")
        write_atomic(paths["lora"], lora.comfy_lora_bytes(lora_state, metadata=meta))
    return paths
