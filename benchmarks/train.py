"""Benchmark: training data and the trainer, with the checks the training issue asks for.

Sections, each a function returning its figures (see SECTIONS):

- synthetic data: clips per second of ``training/synthetic`` at 128x128, 17 frames (anny
  avatar, room background, normal maps, one process), median over clips after a warm-up;
- trainer throughput: a tiny FactorPortrait DiT (2 Wan blocks of width 128) trained on
  cached latents of 32x32, 9-frame samples on this CPU; tokens per second (the DiT's
  sequence length times samples) from the trainer's own JSONL log, median over steps;
- distributed: the same 3 steps on 1 process and on 2 gloo processes (torchrun, same
  global batch): equal losses and parameters (``ddp_matches_single``);
- resume: 6 steps straight against 3 + stop + resume (``resume_matches``);
- overfit: one sample, 150 steps: mean loss of the first 5 steps over the last 5
  (``overfit_loss_ratio``);
- memory estimates for Wan 2.1 1.3B and 14B at 480x832, 81 frames (``memory_estimate``);
- on a CUDA GPU only: the 1.3B FactorPortrait step time (forward + backward, bf16 autocast,
  gradient checkpointing) at 480x832x81 and its model-FLOP utilisation.

Prints figures; the last line is one JSON object. The machine may be shared: the load
average is printed and recorded.

Run: ``.venv/bin/python benchmarks/train.py [--clips N] [--steps N]`` (needs the ComfyUI
host of scripts/setup_env.sh for the tiny VAE class; the anny cache:
``$FACTORPORTRAIT_ANNY_CACHE``, else the tests' ``.pytest_cache`` folder).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from devpack import anny_cache_dir, import_comfyui, import_pack  # noqa: E402

import_pack()
import _training_data as td  # noqa: E402


def synthetic_section(args, work: Path) -> dict:
    from factorportrait.models.body import load_anny
    from factorportrait.training.synthetic.generate import generate_clip

    model = load_anny(anny_cache_dir())
    generate_clip(model, 0, 0, frames=17, width=128, height=128)  # warm-up
    times = []
    for i in range(1, args.clips + 1):
        t = time.perf_counter()
        generate_clip(model, 0, i, frames=17, width=128, height=128)
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    print(f"synthetic clips (128x128, 17 frames): median {median * 1000:.0f} ms/clip "
          f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}) -> {1 / median:.2f} clips/s")
    return {"synth_clips_per_s": round(1 / median, 3), "synth_ms_per_clip_median": round(median * 1000, 1)}


def _data(work: Path) -> Path:
    from factorportrait.training.data.latent_cache import cache_latents, load_comfy_vae

    import_comfyui()
    root = td.write_folder(work / "data", 4)
    vae = td.write_tiny_vae(work / "tiny_vae.safetensors")
    cache_latents(root, load_comfy_vae(vae), str(vae), tag="tiny")
    return root


def _train(cfg: dict, **kw):
    from factorportrait.training.trainer.config import config_from_dict
    from factorportrait.training.trainer.loop import train

    return train(config_from_dict(cfg), progress=False, device="cpu", **kw)


def _log(out: Path, key: str) -> list[float]:
    return [json.loads(line)[key] for line in (out / "log.jsonl").read_text().splitlines() if f'"{key}"' in line]


def throughput_section(args, work: Path) -> dict:
    data = _data(work)
    out = work / "throughput"
    _train(td.tiny_config(data, out, train={"steps": args.steps, "batch_size": 2, "micro_batch_size": 2}))
    tokens = _log(out, "tokens_per_s")[1:]  # the first step includes warm-up
    samples = _log(out, "samples_per_s")[1:]
    print(f"trainer, tiny DiT (2 blocks, width 128) on 32x32x9 clips, batch 2: median "
          f"{statistics.median(tokens):.0f} tokens/s, {statistics.median(samples):.1f} samples/s "
          f"over {len(tokens)} steps")
    return {"train_tokens_per_s": round(statistics.median(tokens), 1),
            "train_samples_per_s": round(statistics.median(samples), 2)}


def distributed_section(args, work: Path) -> dict:
    from safetensors.torch import load_file

    data = _data(work) if not (work / "data").exists() else work / "data"
    results = {}
    for strategy in ("ddp", "fsdp2"):
        runs = {}
        for procs in (1, 2):
            out = work / f"{strategy}{procs}"
            cfg = td.tiny_config(data, out, train={"steps": 3, "batch_size": 4, "ema_decay": 0.9,
                                                   "strategy": strategy if procs == 2 else "ddp"})
            path = work / f"{strategy}{procs}.json"
            path.write_text(json.dumps(cfg))
            launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"] if procs == 2 \
                else [sys.executable]
            t = time.perf_counter()
            done = subprocess.run([*launcher, str(ROOT / "training" / "train.py"), "--config", str(path), "--device",
                                   "cpu", "--no-progress"], capture_output=True, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
            if done.returncode:
                raise RuntimeError(done.stderr[-2000:])
            runs[procs] = (out, time.perf_counter() - t)
        a = load_file(runs[1][0] / "checkpoints" / "tiny-step000003.safetensors")
        b = load_file(runs[2][0] / "checkpoints" / "tiny-step000003.safetensors")
        diff = max((a[k] - b[k]).abs().max().item() for k in a)
        loss_diff = max(abs(x - y) for x, y in zip(_log(runs[1][0], "loss"), _log(runs[2][0], "loss")))
        ok = diff < 1e-4 and loss_diff < 1e-5
        print(f"{strategy}: 2 gloo processes vs 1 process, 3 steps of batch 4: max parameter difference "
              f"{diff:.2e}, max loss difference {loss_diff:.2e} -> {'match' if ok else 'DIFFER'} "
              f"(wall {runs[1][1]:.1f} s vs {runs[2][1]:.1f} s incl. start-up)")
        results[f"{strategy}_max_param_diff"] = float(f"{diff:.3g}")
        results[f"{strategy}_matches_single"] = ok
    return results


def resume_section(args, work: Path) -> dict:
    from safetensors.torch import load_file

    data = work / "data"
    sections = {"train": {"steps": 6, "ema_decay": 0.8, "warmup_steps": 2, "lr_schedule": "cosine"}}
    straight = _train(td.tiny_config(data, work / "straight", **sections))
    first = _train(td.tiny_config(data, work / "resumed", **sections), stop_after=3)
    second = _train(td.tiny_config(data, work / "resumed", **sections))
    losses = first.losses + second.losses
    diff = max(abs(x - y) for x, y in zip(losses, straight.losses))
    a, b = load_file(straight.exports["full"]), load_file(second.exports["full"])
    pdiff = max((a[k] - b[k]).abs().max().item() for k in a)
    ok = len(losses) == len(straight.losses) and diff < 1e-6 and pdiff < 1e-6
    print(f"resume: 3 steps + stop + 3 resumed vs 6 straight: max loss difference {diff:.2e}, parameters "
          f"{pdiff:.2e} -> {'match' if ok else 'DIFFER'}")
    return {"resume_matches": ok}


def overfit_section(args, work: Path) -> dict:
    import shutil

    root = td.write_folder(work / "one", 1)
    (root / "latents" / "tiny").mkdir(parents=True, exist_ok=True)
    shutil.copy(work / "data" / "latents" / "tiny" / "test-0000.safetensors", root / "latents" / "tiny")
    result = _train(td.tiny_config(root, work / "overfit", train={"steps": 150, "batch_size": 1, "lr": 3e-3,
                                                                  "weight_decay": 0.0},
                                   dropout={"uncond": 0.0, "expression": 0.0}))
    first, last = statistics.mean(result.losses[:5]), statistics.mean(result.losses[-5:])
    print(f"overfit one sample, 150 steps: loss {first:.4f} -> {last:.4f}, ratio {first / last:.1f} (target >= 10)")
    return {"overfit_loss_ratio": round(first / last, 2)}


def memory_section(args, work: Path) -> dict:
    from factorportrait.models.wan.config import T2V_1_3B, T2V_14B
    from factorportrait.training.trainer.memory_estimate import estimate

    table = {}
    print("memory estimates per GPU, 480x832, 81 frames, micro-batch 1 (weights + optimizer + activations, GiB):")
    for name, config in (("1.3B", T2V_1_3B), ("14B", T2V_14B)):
        for params in ("controls", "full"):
            fsdp = name == "14B" and params == "full"
            for ckpt in (False, True):
                e = estimate(config, 81, 832, 480, params=params, checkpointing=ckpt, ranks=8, fsdp=fsdp)
                key = f"{name}_{params}{'_fsdp8' if fsdp else ''}_{'ckpt' if ckpt else 'no_ckpt'}"
                table[key] = round(e.total_gib, 1)
                print(f"  {key:28s} {e.weights_gib:6.1f} + {e.optimizer_gib:5.1f} + {e.activations_gib:6.1f} "
                      f"= {e.total_gib:6.1f}  ({e.tokens} tokens)")
    return {"memory_estimate_gib": table}


def gpu_section(args, work: Path) -> dict:
    if not torch.cuda.is_available():
        print("GPU step time and MFU: no CUDA GPU here (run this benchmark on one)")
        return {}
    from factorportrait.models.portrait.dit import FactorPortraitDiT
    from factorportrait.models.wan.config import T2V_1_3B
    from factorportrait.training.trainer.memory_estimate import base_parameters

    dev = torch.device("cuda")
    model = FactorPortraitDiT(T2V_1_3B, 52, device=dev, storage_dtype=torch.bfloat16)
    model.gradient_checkpointing = True
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(("control_embedding", "expression_controller")))
    t_lat, h, w = 21, 60, 104
    x = torch.randn(1, 16, t_lat, h, w, device=dev)
    args_ = (x, torch.tensor([500.0], device=dev), torch.randn(1, 16, 1, h, w, device=dev),
             torch.randn(1, 24, t_lat, h, w, device=dev), torch.randn(1, 16, t_lat, h, w, device=dev),
             torch.rand(1, 81, 52, device=dev))
    times = []
    for i in range(4):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(*args_)
        out.float().square().mean().backward()
        torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    tokens = (t_lat + 1) * (h // 2) * (w // 2)
    c = T2V_1_3B
    # Model FLOPs (recomputation not counted, as MFU is defined): matmuls 2 per parameter per
    # token and attention 4 * L^2 * dim per block, forward; backward of a frozen base computes
    # only activation gradients, about one forward more.
    forward = 2 * base_parameters(c) * tokens + c.num_layers * 4 * tokens**2 * c.dim
    flops = forward * 2
    peak = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
    name = torch.cuda.get_device_name()
    peak_flops = next((v for k, v in peak.items() if k in name), 989e12)
    mfu = flops / step / peak_flops
    print(f"GPU {name}: 1.3B controls step at 480x832x81 ({tokens} tokens): {step:.2f} s, MFU {mfu:.1%}, "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    return {"gpu_step_s_1_3B": round(step, 3), "gpu_mfu_1_3B": round(mfu, 3),
            "gpu_peak_gib_1_3B": round(torch.cuda.max_memory_allocated() / 2**30, 1)}


SECTIONS = (synthetic_section, throughput_section, distributed_section, resume_section, overfit_section,
            memory_section, gpu_section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=5, help="synthetic clips timed")
    parser.add_argument("--steps", type=int, default=12, help="trainer steps timed")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} (other processes slow every figure down)")
    figures = {"threads": torch.get_num_threads(), "load_average": round(load[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        for section in SECTIONS:
            figures |= section(args, Path(tmp))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
