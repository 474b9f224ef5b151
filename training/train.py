#!/usr/bin/env python
"""Train FactorPortrait weights from one config file.

    python training/train.py --config training/configs/controls_1.3B.toml
    torchrun --nproc-per-node 8 training/train.py --config c.toml          # 8 GPUs, DDP
    python training/train.py --config c.toml --set train.steps=10 --set train.lr=3e-5

Resumes from the newest state in ``output.dir`` when there is one. See docs/training.md.
"""
import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cli_common, also when imported as a module
import cli_common  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a .toml or .json trainer config")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config key (value as JSON, else a string); repeatable")
    parser.add_argument("--device", default=None, help="cpu, or leave unset for the GPU of this rank")
    parser.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                        help="leave after this optimizer step, saving a resume state: a run ended early on "
                             "the schedule of train.steps (exported when STEP is a multiple of "
                             "output.save_every)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (the JSONL log stays)")
    args = parser.parse_args(argv)
    cli_common.import_pack()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from factorportrait.training.trainer import distributed
    from factorportrait.training.trainer.config import ConfigError, load_config
    from factorportrait.training.trainer.loop import train

    try:
        cfg = load_config(args.config, args.set)
    except (ConfigError, OSError) as e:
        print(f"train.py: {e}", file=sys.stderr)
        return 2
    stop_after = None
    if args.stop_at is not None:
        from factorportrait.training.trainer.state import state_dirs

        states = state_dirs(cfg.output.dir)
        done = int(states[-1].name.split("-")[1]) if states else 0
        if done >= args.stop_at:
            print(f"train.py: the run in {cfg.output.dir} is at step {done}, not before --stop-at {args.stop_at}")
            return 0
        stop_after = args.stop_at - done
    try:
        result = train(cfg, stop_after=stop_after, device=args.device, progress=not args.no_progress)
    finally:
        distributed.shutdown()
    for kind, path in result.exports.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
