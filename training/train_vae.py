"""Train a small Wan 2.1 VAE (ComfyUI's WanVAE class, key layout unchanged) on a data folder.

    python training/train_vae.py --data data/synth_train --out runs/vae16 \
        --export weights/vae/factorportrait_demo_wan2.1_vae_dim16.safetensors --dim 16 --steps 3000

Resumable: a rerun with the same --out continues from its last state; SIGTERM saves one.
The exported file loads in ComfyUI's stock Load VAE.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cli_common
import cli_common  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="data folder with samples/ and manifests/")
    parser.add_argument("--out", required=True, help="run folder: log.jsonl and resume states")
    parser.add_argument("--export", required=True, help="the VAE .safetensors file to write")
    parser.add_argument("--dim", type=int, default=16, help="VAE width (Wan 2.1's release: 96)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=5, help="frames per crop, 1 + 4k")
    parser.add_argument("--crop", type=int, default=32, help="crop size in pixels, a multiple of 8")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", default=None,
                        help="start from this VAE .safetensors file (fine-tune); a resume state in --out "
                             "then restores the trained weights on top of it")
    parser.add_argument("--latent-noise", type=float, default=0.1,
                        help="noise added to the latents before decoding, as a fraction of each channel's "
                             "spread (makes the decoder robust to the DiT's imperfect samples, at some cost "
                             "in sharpness)")
    parser.add_argument("--train", choices=("all", "decoder"), default="all",
                        help="what learns: all, or the decoder only (with --init: the encoder and its "
                             "latents stay exactly as they are, so a DiT trained on them stays valid)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    cli_common.import_pack()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from factorportrait.training.vae import loop

    config = loop.VaeTrainConfig(data=args.data, out_dir=args.out, export=args.export, dim=args.dim,
                                 steps=args.steps, batch_size=args.batch_size, frames=args.frames,
                                 crop=args.crop, lr=args.lr, limit=args.limit, seed=args.seed, init=args.init,
                                 train=args.train, latent_noise=args.latent_noise)
    try:
        step = loop.train_vae(config, log=lambda m: print(m, flush=True))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"done at step {step}; VAE written to {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
