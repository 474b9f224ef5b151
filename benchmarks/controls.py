"""Benchmark: does the default model follow each control? (the paper's evaluation, small)

On a fixed held-out synthetic test set (``training/evaluation/held_out.py``: seed 1000,
identities, rooms, expressions and cameras the training set (seed 0) never had), every
clip is generated again from its controls and measured with the pack's own tools:

- self-reenactment PSNR and SSIM (kornia) against the clip's frames;
- expression: the built-in ARKit encoder on the generated frames against the driving codes
  (MAE, Pearson per channel: jawOpen, mouthSmile L/R, eyeBlink L/R, browInnerUp; frames of
  all clips pooled);
- head pose: Track Body Mesh's fit on the generated frames against the true camera-space
  head rotation (median degrees over all frames);
- camera: PSNR of the background (off the body mask), which only the ray maps explain;
- cross-identity: the reference of the next clip driven by this clip's controls;
- ablations: normal maps, expression or rays zeroed, and the untrained network;
- ``ground_truth``: the measuring tools on the true frames (their ceiling at this size);
- ``vae_round_trip``: the true frames through the VAE (the ceiling of a DiT drawing through it).

Prints a Markdown table; the last line is one JSON object (``head_pose_error_deg_median``,
``expression_pearson``, ``psnr_db``, ``ssim``, ``background_psnr_db``, ``ablations``...).

Run: ``.venv/bin/python benchmarks/controls.py [--clips 12] [--steps 20]`` (needs the
ComfyUI host of scripts/setup_env.sh and the anny cache of ``devpack.anny_cache_dir``: ``$FACTORPORTRAIT_ANNY_CACHE``,
else the tests' ``.pytest_cache`` folder).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import devpack  # noqa: E402

devpack.import_pack()
from factorportrait.training.evaluation import suite as defaults  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=12, help="held-out clips (default 12)")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps")
    parser.add_argument("--model", type=Path, default=defaults.DEFAULT_MODEL)
    parser.add_argument("--vae", type=Path, default=defaults.DEFAULT_VAE)
    parser.add_argument("--variants", default=",".join(defaults.ALL_VARIANTS),
                        help="comma-separated subset of: " + ", ".join(defaults.ALL_VARIANTS))
    parser.add_argument("--strip", type=Path, default=None, help="write a PNG strip (reference, driving, generated)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = tuple(v for v in args.variants.split(",") if v)
    unknown = set(variants) - set(defaults.ALL_VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    started = time.perf_counter()
    load = os.getloadavg()[0]
    tools = defaults.load_tools(devpack.anny_cache_dir(), args.model, args.vae, need_untrained="untrained" in variants,
                              need_model=set(variants) != {"ground_truth"})
    clips = defaults.held_out(tools, args.clips)
    print(f"{len(clips)} held-out clips (seed {defaults.HELD_OUT_SEED}), {args.steps} steps, "
          f"variants {', '.join(variants)}; load {load:.1f}", flush=True)
    results, videos = defaults.evaluate(tools, clips, variants, steps=args.steps, keep_frames=2 if args.strip else 0,
                                        log=lambda m: print(m, flush=True))
    print(defaults.format_table(results))
    if args.strip:
        defaults.write_strip(args.strip, clips, videos)
        print(f"strip: {args.strip}")
    full = results.get("full", {})
    figures = {**full, "cross_identity": results.get("cross_identity"), "ground_truth": results.get("ground_truth"),
               "vae_round_trip": results.get("vae_round_trip"),
               "ablations": {v: results[v] for v in ("no_normals", "no_expression", "no_rays", "untrained")
                             if v in results},
               "targets": defaults.check_targets(results), "clips": len(clips), "steps": args.steps,
               "seconds": round(time.perf_counter() - started, 1), "load_average": load}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
