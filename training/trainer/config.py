"""The trainer's one config file (TOML or JSON), checked key by key.

Sections and their keys are the fields of the dataclasses below; every key is optional
except ``data.root`` and a model source. Unknown keys and wrong types are errors that name
the key (``train.lr``) and list the known ones, so a typo never trains silently with a
default. See ``training/configs/*.toml`` for annotated examples.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

PARAM_GROUPS = ("controls", "controls+lora", "full")
STRATEGIES = ("ddp", "fsdp2")
PRECISIONS = ("auto", "fp32", "bf16")
LORA_TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")


class ConfigError(ValueError):
    """A bad config key or value; the message names the key."""


@dataclass
class ModelConfig:
    """Where the network starts. Exactly one of ``base`` (a Wan 2.1 DiT file: controls start
    at zero), ``checkpoint`` (a full FactorPortrait checkpoint: fine-tune it) and ``wan`` (a
    Wan config dict, e.g. ``{dim = 256, ffn_dim = 1024, num_layers = 4, num_heads = 2}``:
    random initialisation, for small models trained from scratch)."""

    base: str | None = None
    controls: str | None = None  # with base: start the controls from this control-weights file
    checkpoint: str | None = None
    wan: dict | None = None
    expression_dim: int = 52
    expression_encoder: str = "anny-arkit52"
    init_seed: int = 0  # random initialisation of a model built from ``wan``


@dataclass
class DataConfig:
    root: str = ""
    frames: int = 17
    width: int = 128
    height: int = 128
    latents: str | None = None  # tag of the cached latents (training/cache_latents.py)
    vae: str | None = None  # Wan 2.1 VAE file: encode on the fly where no latents are cached
    comfyui: str | None = None  # ComfyUI folder whose VAE class encodes (default: the dev host)
    on_error: str = "raise"  # or "skip": log a bad sample and use the next one
    verify_checksums: bool = False
    validation_root: str | None = None  # held-out samples for the validation loss
    num_workers: int = 0


@dataclass
class DropoutConfig:
    """Per-sample probabilities of training without a control, so guidance works: the
    sampler's unconditional branch drops pose, expression and text together (``uncond``),
    its pose branch drops the expression (``expression``). ``rays``: camera dropout."""

    uncond: float = 0.1
    expression: float = 0.1
    normals: float = 0.0
    rays: float = 0.0


@dataclass
class LoraConfig:
    rank: int = 16
    alpha: float = 16.0
    targets: list[str] = field(default_factory=lambda: ["self_attn.q", "self_attn.k", "self_attn.v",
                                                        "self_attn.o", "ffn.0", "ffn.2"])


@dataclass
class TrainConfig:
    params: str = "controls"  # controls | controls+lora | full
    steps: int = 1000
    batch_size: int = 1  # global batch (all ranks, all accumulation steps)
    micro_batch_size: int = 1  # per rank and forward pass
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # or "cosine"
    min_lr_ratio: float = 0.1  # cosine: final lr / lr
    grad_clip: float = 1.0  # 0 disables
    ema_decay: float = 0.0  # 0 disables; e.g. 0.999
    timestep_shift: float = 5.0  # the sampler's default shift
    logit_mean: float = 0.0
    logit_std: float = 1.0
    precision: str = "auto"  # bf16 autocast on GPUs, fp32 on the CPU
    gradient_checkpointing: bool = False
    compile: bool = False
    strategy: str = "ddp"  # ddp | fsdp2
    seed: int = 0


@dataclass
class OutputConfig:
    dir: str = "runs/factorportrait"  # log, config, resume states
    export_dir: str | None = None  # checkpoints for Load Model (default <dir>/checkpoints), e.g.
    # ComfyUI/models/factorportrait/<run> so Load Model lists them
    name: str = "factorportrait"
    save_every: int = 500
    keep_state: int = 2  # resume states kept (older ones are deleted)
    export: list[str] = field(default_factory=lambda: ["controls", "full"])  # + "lora" with LoRA
    log_every: int = 10
    validate_every: int = 0  # validation loss (and clips with validation_clips > 0); 0: off
    validation_clips: int = 0  # sampled clips saved at each validation
    validation_steps: int = 10


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    dropout: DropoutConfig = field(default_factory=DropoutConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(key: str, value, annotation):
    """``value`` checked against a field's annotation (int, float, str, bool, lists, dicts, Optional)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner)
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, list):
            return [_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value)]
    elif annotation is dict or origin is dict:
        if isinstance(value, dict):
            return value
    name = getattr(annotation, "__name__", str(annotation))
    raise ConfigError(f"config key '{key}': expected {name}, got {value!r}")


def _section(cls, name: str, values: dict):
    if not isinstance(values, dict):
        raise ConfigError(f"config section [{name}] must be a table, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key '{name}.{unknown[0]}'; known keys of [{name}]: {', '.join(known)}")
    return cls(**{k: _coerce(f"{name}.{k}", v, hints[k]) for k, v in values.items()})


def config_from_dict(d: dict) -> Config:
    """A checked :class:`Config` from nested dicts."""
    hints = typing.get_type_hints(Config)
    unknown = sorted(set(d) - set(hints))
    if unknown:
        raise ConfigError(f"unknown config section [{unknown[0]}]; known sections: {', '.join(hints)}")
    cfg = Config(**{k: _section(hints[k], k, v) for k, v in d.items()})
    check(cfg)
    return cfg


def load_config(path: str | os.PathLike, overrides: list[str] = ()) -> Config:
    """Read a ``.toml`` or ``.json`` config; ``overrides`` are ``section.key=value`` strings
    (value parsed as JSON, else kept as a string), e.g. ``train.steps=10``."""
    path = Path(path)
    text = path.read_text()
    d = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        d.setdefault(section, {})[name] = value
    cfg = config_from_dict(d)
    # Relative paths in a config file are relative to the file.
    for section, key in (("data", "root"), ("data", "vae"), ("data", "validation_root"), ("data", "comfyui"),
                         ("model", "base"), ("model", "controls"), ("model", "checkpoint"), ("output", "dir"),
                         ("output", "export_dir")):
        obj = getattr(cfg, section)
        value = getattr(obj, key)
        if value and not os.path.isabs(value):
            setattr(obj, key, str((path.parent / value).resolve()))
    return cfg


def check(cfg: Config) -> None:
    """Cross-key rules, each error naming its key."""
    m, t, d = cfg.model, cfg.train, cfg.data
    sources = [k for k in ("base", "checkpoint", "wan") if getattr(m, k)]
    if len(sources) != 1:
        raise ConfigError(f"config [model] needs exactly one of 'model.base', 'model.checkpoint', 'model.wan'; "
                          f"got {sources or 'none'}")
    if m.controls and not m.base:
        raise ConfigError("config key 'model.controls' needs 'model.base' (the Wan model they were trained on)")
    if not d.root:
        raise ConfigError("config key 'data.root' is required: the data folder to train on")
    if (d.frames - 1) % 4 or d.frames < 1:
        raise ConfigError(f"config key 'data.frames': {d.frames} is not 4k+1 (5, 9, 13, 17, ...)")
    for key in ("width", "height"):
        if getattr(d, key) % 16 or getattr(d, key) <= 0:
            raise ConfigError(f"config key 'data.{key}': {getattr(d, key)} is not a positive multiple of 16")
    choices = {("train", "params"): PARAM_GROUPS, ("train", "strategy"): STRATEGIES,
               ("train", "precision"): PRECISIONS, ("train", "lr_schedule"): ("constant", "cosine"),
               ("data", "on_error"): ("raise", "skip")}
    for (section, key), allowed in choices.items():
        value = getattr(getattr(cfg, section), key)
        if value not in allowed:
            raise ConfigError(f"config key '{section}.{key}': {value!r} is not one of {', '.join(allowed)}")
    for target in cfg.lora.targets:
        if target not in LORA_TARGETS:
            raise ConfigError(f"config key 'lora.targets': {target!r} is not one of {', '.join(LORA_TARGETS)}")
    for key in ("uncond", "expression", "normals", "rays"):
        if not 0.0 <= getattr(cfg.dropout, key) <= 1.0:
            raise ConfigError(f"config key 'dropout.{key}' must be in [0, 1]")
    for kind in cfg.output.export:
        if kind not in ("controls", "full", "lora"):
            raise ConfigError(f"config key 'output.export': {kind!r} is not one of controls, full, lora")
    if t.steps < 0 or t.batch_size < 1 or t.micro_batch_size < 1 or t.lr <= 0:
        raise ConfigError("config keys 'train.steps' >= 0, 'train.batch_size' >= 1, "
                          "'train.micro_batch_size' >= 1 and 'train.lr' > 0 are required")
