#!/usr/bin/env python
"""Generate synthetic FactorPortrait training clips (anny avatars) into a data folder.

    python training/generate_synthetic.py --out data/synth --count 10000 --seed 0 \\
        --shard 3 --num-shards 16 --frames 17 --width 128 --height 128 \\
        --regimes view_sweep=1,dynamic_sweep=1,phone=1 [--measure-expression] [--anny-cache DIR]

Clip ``i`` is a function of ``(--seed, i)`` alone, and shard ``k`` of ``n`` makes the indices
``k, k + n, k + 2n, ...`` below ``--count``, each shard appending to its own manifest: run
the shards anywhere (a SLURM array: ``--shard $SLURM_ARRAY_TASK_ID``; torchrun:
``--shard $RANK --num-shards $WORLD_SIZE``) into one folder. A rerun resumes: listed clips
are skipped, clips written but not listed are adopted.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cli_common, also when imported as a module
import cli_common  # noqa: E402
from cli_common import DEFAULT_ANNY_CACHE  # noqa: E402


def parse_regimes(text: str) -> dict[str, float]:
    """``"view_sweep=1,phone=0.5"`` -> ``{"view_sweep": 1.0, "phone": 0.5}``."""
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r} is not NAME=WEIGHT (e.g. view_sweep=1,phone=0.5)")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"the weight of {name.strip()!r} is not a number: {value!r}") from None
    if not weights:
        raise argparse.ArgumentTypeError("give at least one NAME=WEIGHT")
    return weights


def build_parser() -> argparse.ArgumentParser:
    summary, details = __doc__.split("\n\n", 1)
    p = argparse.ArgumentParser(description=summary, epilog=details,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="the data folder (samples/ and manifests/ go there)")
    p.add_argument("--count", required=True, type=int, help="clips in the whole data set (all shards)")
    p.add_argument("--seed", type=int, default=0, help="the data set's seed (default 0)")
    p.add_argument("--shard", type=int, default=0, help="this job's shard, 0..num-shards-1 (default 0)")
    p.add_argument("--num-shards", type=int, default=1, help="how many jobs share the indices (default 1)")
    p.add_argument("--frames", type=int, default=17, help="frames per clip, 4k+1 (default 17; the paper: 81)")
    p.add_argument("--width", type=int, default=128, help="pixels, a multiple of 16 (default 128)")
    p.add_argument("--height", type=int, default=128, help="pixels, a multiple of 16 (default 128)")
    p.add_argument("--regimes", type=parse_regimes, default=None,
                   help="relative weights of the regimes, e.g. view_sweep=1,dynamic_sweep=1,phone=1 (the default)")
    p.add_argument("--measure-expression", action="store_true",
                   help="also store the built-in ARKit encoder's codes measured on the frames (needs MediaPipe; slow)")
    p.add_argument("--anny-cache", type=Path, default=None,
                   help=f"anny's cache folder (built there on first use; default {DEFAULT_ANNY_CACHE} if it exists)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error(f"--count must be >= 0, got {args.count}")
    cli_common.check_shard(parser, args.shard, args.num_shards)
    cli_common.check_clip_size(parser, args.frames, args.width, args.height)
    anny_cache = cli_common.anny_cache(parser, args.anny_cache)

    cli_common.import_pack()
    import torch

    from factorportrait.training.synthetic.generate import check_regime_weights, generate_shard

    try:
        check_regime_weights(args.regimes)
    except ValueError as e:
        parser.error(f"--regimes: {e}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from factorportrait.models.body import load_anny

    print(f"loading anny from {anny_cache} (the first use builds it: 1-2 minutes)", flush=True)
    model = load_anny(anny_cache)
    encoder = None
    if args.measure_expression:
        from factorportrait.models.expression.arkit_encoder import ArkitEncoder
        from factorportrait.models.expression.encoders import ExpressionEncoder
        from factorportrait.models.expression.face_correspondence import load_face_correspondence

        print("loading the ARKit encoder (the first use places MediaPipe's points on anny: about a minute)",
              flush=True)
        encoder = ExpressionEncoder.built_in(ArkitEncoder(model, load_face_correspondence(anny_cache, model)))

    counts = {"generated": 0, "adopted": 0, "listed": 0}
    busy = [0.0]
    tag = f"[shard {args.shard}/{args.num_shards}]"

    def progress(done: int, total: int, index: int, status: str, seconds: float) -> None:
        counts[status] += 1
        if status == "generated":
            busy[0] += seconds
        print(f"{tag} {done}/{total} clip {index}: {status} ({seconds:.2f} s)", flush=True)

    start = time.perf_counter()
    try:
        with torch.inference_mode():
            entries = generate_shard(args.out, args.count, args.seed, args.shard, args.num_shards, model=model,
                                     progress=progress, frames=args.frames, width=args.width, height=args.height,
                                     regime_weights=args.regimes, encoder=encoder)
    except ValueError as e:  # a folder of other settings, a damaged manifest: say so, no traceback
        print(f"{tag} error: {e}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    rate = f", {counts['generated'] / busy[0]:.2f} clips/s" if busy[0] > 0 else ""
    regimes = {}
    for e in entries:
        regimes[e.get("regime")] = regimes.get(e.get("regime"), 0) + 1
    print(f"{tag} done in {elapsed:.1f} s: {len(entries)} clips in this shard ({counts['generated']} generated"
          f"{rate}, {counts['adopted']} adopted, {counts['listed']} already listed); regimes {regimes}; "
          f"folder {args.out.resolve()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
