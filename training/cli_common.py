"""What the command-line scripts of this folder share: importing the checkout as the
package ``factorportrait`` (the repository root is a ComfyUI node pack, not an installed
package), the default anny cache, and argument checks made before that (slow) import."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ANNY_CACHE = ROOT / ".host" / "ComfyUI" / "models" / "anny"  # the dev host's anny model folder


def import_pack():
    """Import this checkout as ``factorportrait`` (scripts/devpack.py)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import devpack

    return devpack.import_pack()


def check_clip_size(parser: argparse.ArgumentParser, frames: int, width: int, height: int, min_size: int = 16) -> None:
    """``--frames`` must be 4k+1 (Wan), ``--width`` / ``--height`` multiples of 16 (latent patches)."""
    if frames < 1 or (frames - 1) % 4:
        parser.error(f"--frames must be 4k+1 (5, 9, 13, 17, ..., 81) for Wan, got {frames}")
    for name, value in (("width", width), ("height", height)):
        if value < min_size or value % 16:
            parser.error(f"--{name} must be a multiple of 16 and at least {min_size}, got {value}")


def check_shard(parser: argparse.ArgumentParser, shard: int, num_shards: int) -> None:
    if num_shards < 1 or not 0 <= shard < num_shards:
        parser.error(f"--shard must be in 0..{num_shards - 1} for --num-shards {num_shards}, got {shard}")


def anny_cache(parser: argparse.ArgumentParser, given: Path | None) -> Path:
    """``--anny-cache``, or the dev host's model folder when it exists."""
    if given is not None:
        return Path(given)
    if not DEFAULT_ANNY_CACHE.is_dir():
        parser.error(f"--anny-cache is required: no anny cache at {DEFAULT_ANNY_CACHE} (the folder the ComfyUI "
                     "nodes build it in, models/anny); any folder works, anny's assets are built there on first use")
    return DEFAULT_ANNY_CACHE
