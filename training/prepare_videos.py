"""Prepare a folder of real talking-head / upper-body videos as FactorPortrait training samples.

    .venv/bin/python training/prepare_videos.py --videos DIR --out DIR [--frames 17]
        [--width 128 --height 128 --fps 15 --stride N --max-clips N --shard I --num-shards N]
        [--encoder builtin|PATH.safetensors] [--anny-cache DIR] [--video-fov DEG]

Every video under --videos (mp4, mov, mkv, webm, avi; recursive) is cut into clips; each clip
becomes ``<out>/samples/real-<video>-<clip>.safetensors`` listed in
``<out>/manifests/real-<shard>-of-<n>.jsonl`` (training/prepare/prepare.py says how). Run the
shards as separate jobs (any scheduler: --shard $SLURM_ARRAY_TASK_ID ...); rerunning a job
resumes it. Prints progress and a final report (prepared clips, skipped items with reasons).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cli_common, also when imported as a module
import cli_common  # noqa: E402
from cli_common import DEFAULT_ANNY_CACHE  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="A rerun skips finished and skipped items; unlisted sample files are adopted.")
    p.add_argument("--videos", required=True, help="folder of videos (searched recursively)")
    p.add_argument("--out", required=True, help="output data folder (samples/ and manifests/ are made in it)")
    p.add_argument("--frames", type=int, default=17, help="frames per clip, 4k+1 (default 17)")
    p.add_argument("--width", type=int, default=128, help="sample width in pixels, a multiple of 16 (default 128)")
    p.add_argument("--height", type=int, default=128, help="sample height in pixels, a multiple of 16 (default 128)")
    p.add_argument("--fps", type=float, default=15.0, help="clip frame rate; videos are resampled (default 15)")
    p.add_argument("--stride", type=int, default=None, help="frames between clip starts (default: --frames)")
    p.add_argument("--max-clips", type=int, default=None, help="at most this many clips per video, spread over it")
    p.add_argument("--shard", type=int, default=0, help="this job's shard, 0..num-shards-1 (default 0)")
    p.add_argument("--num-shards", type=int, default=1, help="number of jobs sharing the videos (default 1)")
    p.add_argument("--encoder", default="builtin",
                   help="expression encoder: 'builtin' (anny ARKit-52) or a learned encoder .safetensors file")
    p.add_argument("--anny-cache", default=None,
                   help=f"anny cache folder (default {DEFAULT_ANNY_CACHE} when it exists)")
    p.add_argument("--video-fov", type=float, default=None,
                   help="the videos' vertical field of view in degrees when known (default: fitted per clip)")
    p.add_argument("--reference-offset", type=int, default=None,
                   help="reference frame this many frames from the clip (default: the farthest frame)")
    p.add_argument("--iterations", type=int, default=30, help="body-fit iterations (default 30)")
    p.add_argument("--device", default="cpu", help="torch device for rendering and a learned encoder (default cpu)")
    return p


def _check(args, parser: argparse.ArgumentParser) -> Path:
    """Argument errors the parser cannot see; returns the anny cache folder."""
    cli_common.check_clip_size(parser, args.frames, args.width, args.height, min_size=32)
    if args.fps <= 0:
        parser.error(f"--fps must be positive, got {args.fps:g}")
    if args.reference_offset is not None and args.reference_offset < 1:
        parser.error(f"--reference-offset must be at least 1, got {args.reference_offset}")
    if args.stride is not None and args.stride < 1:
        parser.error(f"--stride must be at least 1, got {args.stride}")
    if args.max_clips is not None and args.max_clips < 1:
        parser.error(f"--max-clips must be at least 1, got {args.max_clips}")
    cli_common.check_shard(parser, args.shard, args.num_shards)
    if args.video_fov is not None and not 1.0 < args.video_fov < 179.0:
        parser.error(f"--video-fov must be between 1 and 179 degrees, got {args.video_fov:g}")
    if not Path(args.videos).is_dir():
        parser.error(f"--videos {args.videos}: no such folder")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        parser.error(f"--out {args.out}: exists and is not a folder")
    if args.encoder != "builtin" and not Path(args.encoder).is_file():
        parser.error(f"--encoder {args.encoder}: no such file (give 'builtin' or a learned encoder .safetensors)")
    cache = cli_common.anny_cache(parser, args.anny_cache)
    if not cache.is_dir():
        parser.error(f"--anny-cache {cache}: no such folder")
    return cache


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    anny_cache = _check(args, parser)
    cli_common.import_pack()
    from factorportrait.training.prepare.prepare import prepare_folder

    began = time.perf_counter()

    def progress(done: int, total: int, message: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f} s] {done}/{total} {message}", flush=True)

    try:
        report = prepare_folder(args.videos, args.out, frames=args.frames, width=args.width, height=args.height,
                                fps=args.fps, stride=args.stride, max_clips_per_video=args.max_clips,
                                encoder=args.encoder, anny_cache=str(anny_cache), video_fov=args.video_fov,
                                reference_offset=args.reference_offset, iterations=args.iterations,
                                device=args.device, shard=args.shard, num_shards=args.num_shards, progress=progress)
    except (ValueError, FileNotFoundError) as e:  # bad settings or files, named in the message
        print(f"prepare_videos.py: error: {e}", file=sys.stderr)
        return 1
    print(report.summary(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
