"""Importing ComfyUI's own modules (its VAE classes) into a training process.

Training code uses ComfyUI's ``comfy.sd.VAE`` and ``comfy.ldm.wan.vae.WanVAE`` rather than
copies, so latents and key layouts are exactly what the nodes see.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DEV_HOST = Path(__file__).resolve().parents[1] / ".host" / "ComfyUI"


def import_comfy(comfyui_dir: str | os.PathLike | None = None) -> Path:
    """Put a ComfyUI checkout (default ``$FACTORPORTRAIT_COMFYUI`` or the dev host
    ``.host/ComfyUI``) on ``sys.path``, without parsing our command line, on the CPU when
    there is no GPU (ComfyUI otherwise insists on CUDA). Returns its folder."""
    import torch

    root = Path(comfyui_dir or os.environ.get("FACTORPORTRAIT_COMFYUI") or DEV_HOST)
    if not (root / "comfy" / "sd.py").is_file():
        raise FileNotFoundError(f"no ComfyUI at {root}: give a ComfyUI folder (--comfyui)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True
    return root
