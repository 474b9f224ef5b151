"""Resume state: everything a run needs to continue exactly, without pickle.

``<output.dir>/state/step-<N>/`` holds

    trainable.safetensors   the trained parameters (full tensors, float32)
    optimizer.safetensors   AdamW's moments and step counts, ``<param>/<name>``
    ema.safetensors         the EMA weights (when EMA is on)
    state.json              step, the optimizer's param groups, the config, the format

written by rank 0 into a temporary folder renamed into place, so a state folder is
either complete or absent. Gathering and scattering go through
``torch.distributed.checkpoint.state_dict`` (full state dicts), which handles plain, DDP
and FSDP2 models alike. Random draws need no state (``randomness``): they are functions of
(seed, step, sample), and the data position is the step.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions, get_model_state_dict, get_optimizer_state_dict, set_model_state_dict,
    set_optimizer_state_dict,
)

from .distributed import DistEnv, barrier

STATE_DIR = "state"
FORMAT = "factorportrait-train-state"
VERSION = 1
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def trainable_state(module: torch.nn.Module, trainable: set[str]) -> dict[str, torch.Tensor]:
    """Full (gathered) trainable parameters by name; a collective call under FSDP2."""
    state = get_model_state_dict(module, options=_FULL)
    return {k: v.float() for k, v in state.items() if k in trainable}


def full_model_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every full (gathered) tensor of the module by name; a collective call under FSDP2."""
    return get_model_state_dict(module, options=_FULL)


def state_dirs(output_dir: str | os.PathLike) -> list[Path]:
    """Complete state folders, oldest first."""
    root = Path(output_dir) / STATE_DIR
    dirs = [d for d in root.glob("step-*") if (d / "state.json").is_file()] if root.is_dir() else []
    return sorted(dirs, key=lambda d: int(d.name.split("-")[1]))


def save_state(output_dir: str | os.PathLike, step: int, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
               trainable: set[str], ema, config: dict, env: DistEnv, keep: int = 2) -> Path | None:
    """Write the state after ``step`` optimizer steps (all ranks call; rank 0 writes)."""
    params = trainable_state(module, trainable)
    optim = get_optimizer_state_dict(module, optimizer, options=_FULL)
    ema_state = ema.state_dict() if ema is not None else None  # collective under FSDP2
    final = Path(output_dir) / STATE_DIR / f"step-{step:08d}"
    if env.is_main:
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in params.items()}, tmp / "trainable.safetensors")
        flat = {f"{name}/{key}": torch.as_tensor(value).float().contiguous().cpu()
                for name, entry in optim["state"].items() for key, value in entry.items()}
        save_file(flat or {"_empty": torch.zeros(1)}, tmp / "optimizer.safetensors")
        if ema_state is not None:
            save_file({k: v.contiguous().cpu() for k, v in ema_state.items()}, tmp / "ema.safetensors")
        meta = {"format": FORMAT, "version": VERSION, "step": step, "param_groups": optim["param_groups"],
                "config": config}
        (tmp / "state.json").write_text(json.dumps(meta, indent=1, default=str))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in state_dirs(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    barrier(env)
    return final if env.is_main else None


def load_state(path: str | os.PathLike, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
               trainable: set[str], ema) -> int:
    """Restore a state folder into the (wrapped) module, optimizer and EMA; returns the step."""
    path = Path(path)
    meta = json.loads((path / "state.json").read_text())
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{path} is not a {FORMAT} v{VERSION} resume state")
    params = load_file(path / "trainable.safetensors")
    if set(params) != trainable:
        extra, missing = sorted(set(params) - trainable), sorted(trainable - set(params))
        raise ValueError(f"resume state {path} was made for other trained parameters (missing {missing[:3]}, "
                         f"extra {extra[:3]}): train.params or the model changed; use a new output.dir")
    set_model_state_dict(module, params, options=StateDictOptions(full_state_dict=True, strict=False))
    flat = load_file(path / "optimizer.safetensors")
    state: dict[str, dict] = {}
    for key, value in flat.items():
        if key == "_empty":
            continue
        name, _, field = key.rpartition("/")
        state.setdefault(name, {})[field] = value
    set_optimizer_state_dict(module, optimizer, {"state": state, "param_groups": meta["param_groups"]},
                             options=StateDictOptions(full_state_dict=True))
    if ema is not None:
        ema_file = path / "ema.safetensors"
        if not ema_file.is_file():
            raise ValueError(f"resume state {path} has no EMA weights but train.ema_decay is set")
        ema.load_state_dict(load_file(ema_file))
    return int(meta["step"])
