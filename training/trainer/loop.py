"""The training loop: data -> rectified-flow loss on the FactorPortrait DiT -> checkpoints.

One optimizer step consumes one global batch of ``train.batch_size`` samples: rank ``r`` of
``W`` takes positions ``r * B/W ... (r+1) * B/W - 1`` of it, in micro-batches of
``train.micro_batch_size``, accumulating gradients (reduced across ranks on the last one).
The loss of every micro-batch is scaled so the gradient is that of the mean loss over the
global batch, whatever ``W`` and the micro-batch size: a 2-process run takes the same
steps as a 1-process run (``randomness`` makes the draws equal too).

The model is what FactorPortrait Load Model builds (``models.portrait.dit``): the
condition fusion, the expression controller and the velocity it predicts are the
sampler's (DESIGN: one home), so what is trained is exactly what is sampled.
"""
from __future__ import annotations

import json
import logging
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ...models.portrait.checkpoint import load_model
from ...models.portrait.dit import FactorPortraitDiT
from ...models.wan.config import WanConfig
from ..data.dataset import ClipDataset, collate
from . import distributed as D
from .config import Config
from .control_dropout import apply_dropout, dropout_masks
from .ema import EMA
from .exports import export_checkpoints
from .flow_loss import flow_loss, noised, timesteps, training_noise, training_sigmas
from .lora import LoraAdapters, target_layers
from .lr_schedule import learning_rate
from .randomness import batch_indices
from .param_groups import select_trainable, weight_decay_groups
from .state import full_model_state, load_state, save_state, state_dirs
from .validation import validation_clips, validation_loss

log = logging.getLogger("factorportrait.training")


class TrainModule(nn.Module):
    """The DiT and its optional LoRA adapters as one module (what DDP / FSDP2 wrap)."""

    def __init__(self, dit: FactorPortraitDiT, lora: LoraAdapters | None = None):
        super().__init__()
        self.dit, self.lora = dit, lora

    def forward(self, noisy, timestep, reference, rays, normals, expression):
        return self.dit(noisy, timestep, reference, rays, normals, expression)


@dataclass
class TrainResult:
    step: int
    losses: list[float] = field(default_factory=list)  # per optimizer step of this run
    exports: dict[str, Path] = field(default_factory=dict)  # the last export, by kind
    stopped_early: bool = False


def build_dit(cfg: Config, device: torch.device) -> FactorPortraitDiT:
    """The network the run starts from (float32 parameters: the trainer's master weights)."""
    m = cfg.model
    if m.wan is not None:
        try:
            config = WanConfig.from_dict(m.wan)
        except (TypeError, ValueError) as e:
            raise ValueError(f"config key 'model.wan': {e}") from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(m.init_seed)
            dit = FactorPortraitDiT(config, m.expression_dim)
            # Random control layers would make step 0 differ from the base by chance; Wan's own
            # init leaves the head at zero, so start it small instead for a model from scratch.
            nn.init.normal_(dit.head.head.weight, std=1e-3)
        return dit.to(device)
    # Frozen base weights may stay in bf16 on GPUs (half the memory); trained ones are float32.
    frozen_bf16 = cfg.train.params != "full" and device.type == "cuda"
    loaded = load_model(checkpoint=m.checkpoint, base=m.base, controls=m.controls,
                        expression_dim=m.expression_dim, dtype=torch.float32, device=str(device),
                        storage_dtype=torch.bfloat16 if frozen_bf16 else None)
    return loaded.model


def _autocast(cfg: Config, device: torch.device):
    use_bf16 = cfg.train.precision == "bf16" or (cfg.train.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)


def _to(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def make_dataset(cfg: Config, root: str) -> ClipDataset:
    vae = None
    if cfg.data.vae:
        from ..data.latent_cache import load_comfy_vae

        vae = load_comfy_vae(cfg.data.vae, cfg.data.comfyui)
    return ClipDataset(root, frames=cfg.data.frames, width=cfg.data.width, height=cfg.data.height,
                       expression_dim=cfg.model.expression_dim, latents_tag=cfg.data.latents, vae=vae,
                       on_error=cfg.data.on_error, verify=cfg.data.verify_checksums)


def micro_batches(cfg: Config, env: D.DistEnv) -> list[list[int]]:
    """This rank's positions in the global batch, cut into micro-batches."""
    B, W, mb = cfg.train.batch_size, env.world_size, cfg.train.micro_batch_size
    if B % W or (B // W) % mb:
        raise ValueError(f"config key 'train.batch_size' = {B} must be a multiple of the number of processes "
                         f"({W}) times 'train.micro_batch_size' ({mb})")
    mine = list(range(env.rank * (B // W), (env.rank + 1) * (B // W)))
    return [mine[i:i + mb] for i in range(0, len(mine), mb)]


def step_loss(module: nn.Module, dataset: ClipDataset, cfg: Config, step: int, positions: list[int],
              indices: list[int], device: torch.device) -> torch.Tensor:
    """The mean flow loss of the samples at ``positions`` of step ``step``'s global batch."""
    seed = cfg.train.seed
    batch = _to(collate([dataset[indices[p]] for p in positions]), device)
    batch = apply_dropout(batch, {k: v.to(device) for k, v in dropout_masks(cfg.dropout, seed, step, positions).items()})
    x0 = batch["latents"]
    sigma = training_sigmas(seed, step, positions, shift=cfg.train.timestep_shift, mean=cfg.train.logit_mean,
                            std=cfg.train.logit_std).to(device)
    noise = training_noise(seed, step, positions, tuple(x0.shape[1:])).to(device)
    x_t, target = noised(x0, noise, sigma)
    with _autocast(cfg, device):
        prediction = module(x_t, timesteps(sigma), batch["reference"], batch["rays"], batch["normals"],
                            batch["expression"])
    return flow_loss(prediction, target)


class _StopSignal:
    """SIGTERM / SIGINT (a SLURM preemption, Ctrl-C) end the run after the current step,
    with a resume state saved."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(cfg: Config, *, stop_after: int | None = None, device: str | None = None,
          progress: bool = True) -> TrainResult:
    """Run (or resume) the training of ``cfg``. ``stop_after``: leave after this many optimizer
    steps of this call, saving a resume state (as a preemption would)."""
    env = D.init_distributed(device)
    out = Path(cfg.output.dir)
    export_dir = Path(cfg.output.export_dir) if cfg.output.export_dir else out / "checkpoints"
    dit = build_dit(cfg, env.device)
    lora = None
    if cfg.train.params == "controls+lora":
        lora = LoraAdapters(target_layers(dit, cfg.lora.targets), cfg.lora.rank, cfg.lora.alpha, seed=cfg.train.seed)
    module = TrainModule(dit, lora).to(env.device)
    trained_dit = select_trainable(dit, "full" if cfg.train.params == "full" else "controls")
    trainable = {f"dit.{n}" for n in trained_dit} | ({f"lora.{n}" for n, _ in lora.named_parameters()} if lora else set())
    module.train()
    dit.gradient_checkpointing = cfg.train.gradient_checkpointing
    wrapped = D.wrap(module, dit.blocks, cfg.train.strategy, env)
    named = [(n, p) for n, p in D.unwrap(wrapped).named_parameters() if n in trainable]
    optimizer = torch.optim.AdamW(weight_decay_groups(named, cfg.train.weight_decay), lr=cfg.train.lr,
                                  betas=tuple(cfg.train.betas), eps=cfg.train.eps)
    ema = EMA({n: p for n, p in named}, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
    start = 0
    states = state_dirs(out)
    if states:
        start = load_state(states[-1], wrapped, optimizer, trainable, ema)
        if env.is_main:
            log.info("resumed from %s (step %d)", states[-1], start)
    forward = torch.compile(wrapped) if cfg.train.compile else wrapped

    dataset = make_dataset(cfg, cfg.data.root)
    validation = make_dataset(cfg, cfg.data.validation_root) if cfg.data.validation_root else None
    micro = micro_batches(cfg, env)
    t_lat = (cfg.data.frames - 1) // 4 + 1
    p = dit.config.patch_size
    tokens_per_sample = (t_lat + 1) // p[0] * (cfg.data.height // 8 // p[1]) * (cfg.data.width // 8 // p[2])
    run_meta = {"config": cfg.to_dict()}
    log_file = out / "log.jsonl"
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    result = TrainResult(step=start)
    bar = None
    if progress and env.is_main:
        try:
            from tqdm import tqdm

            bar = tqdm(total=cfg.train.steps, initial=start, desc="training", unit="step")
        except ImportError:
            bar = None

    def export(step: int) -> dict[str, Path]:
        state = full_model_state(wrapped)  # gathered on rank 0 only
        ema_state = ema.state_dict() if ema is not None else {}  # collective under FSDP2
        paths = {}
        if env.is_main:
            state = {**state, **{k: v.to(state[k].dtype) for k, v in ema_state.items()}}
            paths = export_checkpoints(export_dir, cfg.output.name, step, state, dit.config_dict, cfg.output.export,
                                       lora=lora, expression_encoder=cfg.model.expression_encoder, run=run_meta)
        D.barrier(env)
        return paths

    if cfg.train.steps == 0:  # the starting point itself, e.g. a base model with untrained controls
        result.exports = export(0)

    with _StopSignal() as stop:
        step = start
        window_t, window_n = time.perf_counter(), 0
        while step < cfg.train.steps:
            lr = learning_rate(step, lr=cfg.train.lr, warmup_steps=cfg.train.warmup_steps, total_steps=cfg.train.steps,
                               schedule=cfg.train.lr_schedule, min_lr_ratio=cfg.train.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            indices = batch_indices(cfg.train.seed, step, cfg.train.batch_size, len(dataset))
            local_loss = torch.zeros((), device=env.device)
            for k, positions in enumerate(micro):
                with D.no_gradient_sync(wrapped, sync=k == len(micro) - 1):
                    loss = step_loss(forward, dataset, cfg, step, positions, indices, env.device)
                    (loss * len(positions) / (cfg.train.batch_size // env.world_size)).backward()
                local_loss += loss.detach() * len(positions) / (cfg.train.batch_size // env.world_size)
            params = [p for _, p in named]
            if cfg.train.grad_clip > 0:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
            else:
                grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
            grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update({n: p for n, p in named}, step)
            step += 1
            loss_value = float(D.mean_across_ranks(local_loss, env).cpu())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"the loss became {loss_value} at step {step}: lower train.lr, set "
                                         "train.grad_clip, or use train.precision = 'fp32'")
            result.losses.append(loss_value)
            window_n += 1
            if env.is_main and (step % cfg.output.log_every == 0 or step == cfg.train.steps):
                elapsed = time.perf_counter() - window_t
                record = {"step": step, "loss": loss_value, "lr": lr, "grad_norm": grad_norm,
                          "samples_per_s": window_n * cfg.train.batch_size / elapsed,
                          "tokens_per_s": window_n * cfg.train.batch_size * tokens_per_sample / elapsed,
                          "time": time.time()}
                with open(log_file, "a") as f:
                    f.write(json.dumps(record) + "\n")
                window_t, window_n = time.perf_counter(), 0
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
            if validation is not None and cfg.output.validate_every and step % cfg.output.validate_every == 0:
                module.eval()
                value = validation_loss(forward, validation, cfg, env.device, env, _autocast(cfg, env.device))
                clips = validation_clips(D.unwrap(wrapped).dit, validation, cfg, step, out / "validation", env)
                module.train()
                if env.is_main:
                    with open(log_file, "a") as f:
                        f.write(json.dumps({"step": step, "validation_loss": value, "validation_clips": clips,
                                            "time": time.time()}) + "\n")
            stopping = D.broadcast_flag(stop.requested or (stop_after is not None and step - start >= stop_after), env)
            periodic = cfg.output.save_every > 0 and step % cfg.output.save_every == 0
            final = step == cfg.train.steps
            if periodic or final or stopping:
                save_state(out, step, wrapped, optimizer, trainable, ema, cfg.to_dict(), env, cfg.output.keep_state)
            if periodic or final:
                result.exports = export(step)
            if stopping:
                result.stopped_early = step < cfg.train.steps
                break
    if bar is not None:
        bar.close()
    result.step = step if cfg.train.steps else start
    return result
