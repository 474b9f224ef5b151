"""Benchmark: the sampler's Wan-ecosystem options, each measured.

- **LoRA formats**: one random change written in every format (scripts/lora_parity.py) on
  a tiny Wan DiT, loaded by the pack and by ComfyUI's LoraLoaderModelOnly (its twin in a
  format ComfyUI reads for Wan): formats that loaded and matched, and the largest
  difference of the outputs.
- **Step cache** on the trained default model: held-out clips sampled as the evaluation
  does (20 UniPC steps), without and with the cache at several thresholds; network
  evaluations saved (uncached / cached), wall time, and PSNR of the decoded frames
  against the uncached ones. ``cache_speedup``/``cache_psnr_db`` are the fastest setting
  at >= 35 dB (else the most accurate one that saves anything), beside the whole curve.
- **Step-distill preset**: its sigmas (lightx2v's 4-step schedule).
- **torch.compile** of the default model's blocks (inductor): output against eager
  (``compile_matches``) and the forward time of each.
- **GPU** (only with CUDA): seconds per step of the 1.3B model (random weights, bf16) at
  480x832, 81 frames, with sdpa, sage (when installed) and compiled blocks.

Run: ``.venv/bin/python benchmarks/sampling.py [--clips 2] [--steps 20]``; the last line is
one JSON object with all the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import devpack  # noqa: E402

devpack.import_comfyui()
devpack.import_pack()

import lora_parity  # noqa: E402
from common import timed  # noqa: E402

from factorportrait.models.evaluation.image_metrics import psnr  # noqa: E402
from factorportrait.models.wan.latent_frames import latent_frame_count  # noqa: E402
from factorportrait.models.portrait.sampler import generate  # noqa: E402
from factorportrait.models.sampling.presets import PRESETS  # noqa: E402
from factorportrait.models.sampling.schedule import fixed_timestep_sigmas  # noqa: E402
from factorportrait.models.sampling.step_cache import StepCache, StepCacheSettings  # noqa: E402
from factorportrait.models.wan.compile import CompileSettings, set_block_compile  # noqa: E402
from factorportrait.training.evaluation import suite  # noqa: E402
from factorportrait.training.evaluation.variants import clip_conditions, decode  # noqa: E402

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.6)
CACHE_START = 0.2
PSNR_GOAL, SPEEDUP_GOAL = 35.0, 1.6


def lora_figures() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        lora_parity.use_lora_folder(Path(folder))
        base = lora_parity.random_wan_state()
        factors, inputs = lora_parity.random_factors(base), lora_parity.model_inputs()
        results = [lora_parity.check_format(f, Path(folder), base, factors, inputs) for f in lora_parity.FORMATS]
    for r in results:
        print(f"LoRA {r.fmt:10s} change {r.change:.3f}  |pack - ComfyUI| merged {r.merged_diff:.1e} "
              f"hooked {r.hooked_diff:.1e}  {'ok' if r.matches else 'MISMATCH ' + str(r.not_applied[:3])}")
    return {"lora_formats": [r.fmt for r in results if r.matches],
            "lora_parity_max_abs_diff": max(max(r.merged_diff, r.hooked_diff) for r in results)}


def cache_figures(tools, clips, steps: int) -> dict:
    s = suite.SAMPLER
    curve = {t: {"psnr": [], "speedup": [], "seconds": []} for t in (0.0, *THRESHOLDS)}
    for i, clip in enumerate(clips):
        conditions = clip_conditions(tools.vae, clip.sample)
        frames = clip.sample.num_frames
        baseline = None
        for threshold in curve:
            cache = StepCache(StepCacheSettings(threshold, start=CACHE_START))
            started = time.perf_counter()
            latent = generate(tools.model, conditions, num_latent_frames=latent_frame_count(frames), seed=s.seed,
                              steps=steps, cfg=s.cfg, expression_cfg=s.expression_cfg, shift=s.shift,
                              solver=s.solver, step_cache=cache)
            seconds = time.perf_counter() - started
            video = decode(tools.vae, latent)[:frames]
            baseline = video if baseline is None else baseline
            row = curve[threshold]
            row["psnr"].append(psnr(video, baseline))
            row["speedup"].append(cache.speedup)
            row["seconds"].append(seconds)
            print(f"clip {i + 1} threshold {threshold:.2f}: {cache.computed} of {cache.computed + cache.skipped} "
                  f"evaluations, {seconds:.1f} s, PSNR vs uncached {row['psnr'][-1]:.1f} dB", flush=True)
    # PSNR of the worst clip (identical frames, nothing skipped: 100 dB)
    table = [{"threshold": t, "speedup": round(statistics.mean(r["speedup"]), 3),
              "psnr_db": round(min(r["psnr"]), 2) if t else None,
              "seconds": round(statistics.median(r["seconds"]), 2)} for t, r in curve.items()]
    cached = [row for row in table if row["threshold"]]
    good = [row for row in cached if row["psnr_db"] >= PSNR_GOAL]
    saving = [row for row in cached if row["speedup"] > 1]
    pick = (max(good, key=lambda r: r["speedup"]) if good
            else max(saving, key=lambda r: r["psnr_db"]) if saving else cached[0])
    print("threshold  speedup  PSNR (worst clip)  s/clip")
    for row in table:
        print(f"{row['threshold']:9.2f}  {row['speedup']:7.2f}  {row['psnr_db'] if row['psnr_db'] else '-':>17}  "
              f"{row['seconds']:6.1f}")
    return {"cache_speedup": pick["speedup"], "cache_psnr_db": pick["psnr_db"], "cache_threshold": pick["threshold"],
            "cache_start": CACHE_START, "cache_curve": table,
            "cache_target_met": pick["speedup"] >= SPEEDUP_GOAL and pick["psnr_db"] >= PSNR_GOAL}


def compile_figures(model, conditions, frames: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    noisy = torch.randn(1, 16, latent_frame_count(frames), *conditions.reference.shape[-2:], generator=gen)
    args = (noisy, torch.tensor([500.0]), conditions.reference, conditions.rays, conditions.normals,
            conditions.expression)

    def forward():
        with torch.inference_mode():
            return model(*args)

    eager_out, eager_s = forward(), timed(forward, 5)[0]
    started = time.perf_counter()
    set_block_compile(model.blocks, CompileSettings())
    try:
        compiled_out = forward()
        compile_s = time.perf_counter() - started
        compiled_s = timed(forward, 5)[0]
    finally:
        set_block_compile(model.blocks, None)
    diff = float((compiled_out - eager_out).abs().max())
    print(f"torch.compile (inductor) of the blocks: first call {compile_s:.1f} s, forward {compiled_s * 1e3:.1f} ms "
          f"vs eager {eager_s * 1e3:.1f} ms, max |compiled - eager| {diff:.1e}")
    return {"compile_matches": diff <= 1e-4, "compile_max_abs_diff": diff, "compile_first_call_s": round(compile_s, 1),
            "forward_ms_eager": round(eager_s * 1e3, 2), "forward_ms_compiled": round(compiled_s * 1e3, 2)}


def gpu_figures() -> dict:
    """Seconds per step of Wan 2.1 1.3B (random weights) at 480x832x81 on CUDA."""
    if not torch.cuda.is_available():
        print("GPU figures: no CUDA device here")
        return {"gpu": None}
    from factorportrait.models.portrait.dit import FactorPortraitDiT
    from factorportrait.models.wan import T2V_1_3B
    from factorportrait.models.wan.attention import use_attention

    device = torch.device("cuda")
    model = FactorPortraitDiT(T2V_1_3B, 52, dtype=torch.bfloat16, device=device).eval()
    T, h, w = 21, 60, 104
    noisy = torch.randn(1, 16, T, h, w, device=device, dtype=torch.bfloat16)
    reference = torch.randn(1, 16, 1, h, w, device=device, dtype=torch.bfloat16)
    rays = torch.randn(1, 24, T, h, w, device=device, dtype=torch.bfloat16)

    def step():
        with torch.inference_mode():
            model(noisy, torch.tensor([500.0], device=device), reference, rays)
        torch.cuda.synchronize()

    out = {"gpu": torch.cuda.get_device_name(device)}
    for backend in ("sdpa", "sage", "flash"):
        try:
            with use_attention(backend):
                out[f"seconds_per_step_{backend}"] = round(timed(step, 3)[0], 3)
        except Exception as e:  # noqa: BLE001 (an optional kernel missing: reported, not fatal)
            out[f"seconds_per_step_{backend}"] = None
            print(f"{backend}: {e}")
    set_block_compile(model.blocks, CompileSettings())
    try:
        out["seconds_per_step_compiled"] = round(timed(step, 3)[0], 3)
    finally:
        set_block_compile(model.blocks, None)
    print(out)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2, help="held-out clips for the step cache (default 2)")
    parser.add_argument("--steps", type=int, default=suite.SAMPLER.steps)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started, load = time.perf_counter(), os.getloadavg()[0]
    figures = lora_figures()
    tools = suite.load_tools(devpack.anny_cache_dir(), need_untrained=False)
    clips = suite.held_out(tools, args.clips)
    figures.update(cache_figures(tools, clips, args.steps))
    preset = PRESETS["step_distill_4"]
    figures["step_distill_sigmas"] = [round(float(s), 6) for s in fixed_timestep_sigmas(preset.timesteps, preset.shift)]
    figures.update(compile_figures(tools.model, clip_conditions(tools.vae, clips[0].sample), clips[0].sample.num_frames))
    figures.update(gpu_figures())
    figures.update({"clips": len(clips), "steps": args.steps, "seconds": round(time.perf_counter() - started, 1),
                    "load_average": load})
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
