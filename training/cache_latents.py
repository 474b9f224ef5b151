#!/usr/bin/env python
"""Encode a data folder's samples once with a Wan 2.1 VAE (ComfyUI's VAE class) and cache
the bf16 latents under ``<data>/latents/<tag>/`` (resumable; shard it like the generator).

    python training/cache_latents.py --data data/synth --vae ComfyUI/models/vae/wan_2.1_vae.safetensors
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cli_common, also when imported as a module
import cli_common  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the data folder (samples/ and manifests/)")
    parser.add_argument("--vae", required=True, help="Wan 2.1 VAE .safetensors file")
    parser.add_argument("--tag", default=None, help="latents/<tag>/ (default: the VAE file's stem); "
                                                    "the trainer's data.latents")
    parser.add_argument("--comfyui", default=None, help="ComfyUI folder to import the VAE class from")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="samples per VAE call (1: ComfyUI's VAE.encode per video; more is faster on a CPU)")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--num-shards", type=int, default=1)
    args = parser.parse_args(argv)
    cli_common.check_shard(parser, args.shard, args.num_shards)
    cli_common.import_pack()

    from factorportrait.training.data.latent_cache import cache_latents, load_comfy_vae

    vae = load_comfy_vae(args.vae, args.comfyui)

    def progress(done, total, name):
        print(f"[{done}/{total}] {name}", flush=True)

    counts = cache_latents(args.data, vae, args.vae, tag=args.tag, shard=args.shard, num_shards=args.num_shards,
                           batch_size=args.batch_size, progress=progress)
    print(f"encoded {counts['encoded']}, already cached {counts['cached']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
