"""Training loop of the small Wan 2.1 VAE: AdamW on random crops, resumable, logged.

State goes through the trainer's own resume format (``training.trainer.state``:
safetensors + JSON, no pickle) under ``<out_dir>/state``; the exported VAE is a plain
state dict in ComfyUI's key layout, loadable by the stock Load VAE.
"""
from __future__ import annotations

import copy
import json
import math
import random
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..trainer.distributed import DistEnv
from ..trainer.state import load_state, save_state, state_dirs
from .crops import CropSource
from .latent_stats import fold_latent_statistics, measure_latent_statistics, statistics_clips
from .losses import vae_loss
from .wan_vae import build_wan_vae


@dataclass
class VaeTrainConfig:
    data: str
    out_dir: str
    export: str  # the .safetensors file written at the end (and at each save)
    dim: int = 16
    steps: int = 3000
    batch_size: int = 8
    frames: int = 5  # 1 + 4k
    crop: int = 32  # pixels, a multiple of 8
    lr: float = 3e-4
    warmup_steps: int = 100
    latent_noise: float = 0.1
    save_every: int = 250
    seed: int = 0
    limit: int | None = None  # samples to load (None: all)
    init: str | None = None  # start from this VAE file (e.g. the shipped one) when no state exists
    train: str = "all"  # "all", or "decoder": the encoder stays as it is, so cached latents and a
    # DiT trained on them stay valid while the decoder learns to draw them better


TRAINABLE = ("all", "decoder")


def trainable_parameters(model: torch.nn.Module, train: str) -> list[torch.nn.Parameter]:
    """The parameters ``train`` names; with ``"decoder"`` the encoder side (``encoder``,
    ``conv1``) is frozen (``requires_grad`` off), so its latents do not change."""
    if train not in TRAINABLE:
        raise ValueError(f"train must be one of {TRAINABLE}, got {train!r}")
    if train == "decoder":
        model.encoder.requires_grad_(False)
        model.conv1.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def export_vae(model: torch.nn.Module, path: str | Path, config: VaeTrainConfig, step: int,
               source: CropSource) -> None:
    """Write ``model`` with Wan 2.1's latent statistics folded in (``latent_stats``). A
    decoder-only run keeps the encoder (and so its latents) exactly as it started."""
    model = copy.deepcopy(model).eval()
    mean, std = measure_latent_statistics(model, statistics_clips(source))
    if config.train == "all":
        fold_latent_statistics(model, mean, std)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp, metadata={"factorportrait_vae": json.dumps({
        "architecture": "wan2.1-vae", "dim": config.dim, "step": step,
        "trained_on": Path(config.data).name,
        "raw_latent_mean": mean.tolist(), "raw_latent_std": std.tolist()})})
    tmp.replace(path)


def load_init(model: torch.nn.Module, path: str | Path, dim: int) -> None:
    """Load a Wan 2.1 VAE file of width ``dim`` into ``model`` (fine-tuning; safetensors only).
    Its folded latent statistics are an affine reparametrisation: training goes on from them
    and the export folds the statistics anew."""
    path = str(path)
    if not path.endswith(".safetensors"):
        raise ValueError(f"{path}: the initial VAE must be a .safetensors file (pickles are refused)")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: initial VAE file not found")
    state = load_file(path)
    width = state.get("decoder.head.0.gamma")
    if width is None or width.shape[0] != dim:
        got = "not a Wan 2.1 VAE" if width is None else f"width {width.shape[0]}"
        raise ValueError(f"{path}: {got}; --dim is {dim} (give the file's width)")
    model.load_state_dict(state, strict=True)


def train_vae(config: VaeTrainConfig, *, stop_after: int | None = None, log=print) -> int:
    """Train (or resume) to ``config.steps``; returns the final step. ``stop_after``: leave
    after this many steps of this call, saving a resume state (as SIGTERM does)."""
    if (config.frames - 1) % 4 or config.crop % 8:
        raise ValueError("frames must be 1 + 4k and crop a multiple of 8")
    env = DistEnv(0, 1, 0, torch.device("cpu"))
    if config.train == "decoder" and not config.init:
        raise ValueError("train = 'decoder' fine-tunes an existing VAE: give init (--init FILE)")
    model = build_wan_vae(config.dim, seed=config.seed)
    params = trainable_parameters(model, config.train)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0, betas=(0.9, 0.99))
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    step = 0
    if config.init:  # first, so a resume state of trained parameters only lands on the frozen rest
        load_init(model, config.init, config.dim)
        log(f"started from {config.init}")
    if states := state_dirs(config.out_dir):
        step = load_state(states[-1], model, optimizer, names, None)
        log(f"resumed from {states[-1]} at step {step}")
    start = step
    source = CropSource(config.data, limit=config.limit)
    log(f"{len(source)} clips in memory; VAE dim {config.dim}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    stop = {"now": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    log_path = Path(config.out_dir) / "log.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def save():
        save_state(config.out_dir, step, model, optimizer, names, None, asdict(config), env)
        export_vae(model, config.export, config, step, source)

    try:
        while step < config.steps and not stop["now"] and (stop_after is None or step - start < stop_after):
            rng = random.Random(config.seed * 1_000_003 + step)  # draws depend on the step: resumable
            torch.manual_seed(config.seed * 1_000_003 + step)
            lr = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
            lr *= 0.5 * (1 + math.cos(math.pi * step / config.steps)) * 0.9 + 0.1  # cosine to 10 %
            for group in optimizer.param_groups:
                group["lr"] = lr
            started = time.perf_counter()
            x = source.batch(rng, config.batch_size, config.frames, config.crop)
            loss, figures = vae_loss(model, x, latent_noise=config.latent_noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            step += 1
            figures.update(step=step, lr=lr, seconds=time.perf_counter() - started)
            with open(log_path, "a") as f:
                f.write(json.dumps(figures) + "\n")
            if step % 10 == 0:
                log(f"step {step}/{config.steps} loss {figures['loss']:.4f} psnr {figures['psnr_db']:.2f} dB "
                    f"({figures['seconds']:.2f} s)")
            if config.save_every and step % config.save_every == 0:
                save()
    finally:
        signal.signal(signal.SIGTERM, previous)
    save()
    return step
