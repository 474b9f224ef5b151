"""Tiny random model files for end-to-end runs of the portrait workflow on a CPU host.

:func:`write_tiny_models` fills a ComfyUI base directory's ``models/`` (and ``input/``) with
files under the names the example workflow uses, so ``workflows/portrait_api.json`` runs
through the real server in a second or two:

- ``models/vae/wan_2.1_vae.safetensors``: a Wan 2.1 VAE built with ComfyUI's own class
  ``comfy.ldm.wan.vae.WanVAE`` at width 8 (the real one has 96; ComfyUI's VAELoader infers
  the width from ``decoder.head.0.gamma``), random weights;
- ``models/factorportrait/factorportrait_wan2.1_t2v_1.3B.safetensors``: a full
  FactorPortrait checkpoint (``models.portrait.checkpoint.save_checkpoint``) of a one-layer Wan DiT
  of width 128 (text_dim 4096 as the real model, expression codes D=52), every parameter
  random, the zero-initialised controls and the head included, so each control changes the
  output;
- ``input/portrait.png``: a synthetic 256x256 face (an ellipse with hair, eyes, brows, a
  nose and a mouth on a gradient background).

Everything is deterministic (fixed seeds): the same bytes on every run. The weights are
random, so the pictures are noise-like; what the tests check is the plumbing, the shapes,
the determinism and the errors, not image quality.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

VAE_NAME = "wan_2.1_vae.safetensors"  # the file name of ComfyUI's Wan 2.1 docs
CHECKPOINT_NAME = "factorportrait_wan2.1_t2v_1.3B.safetensors"
WAN_BASE_NAME = "tiny_wan2.1_t2v_base.safetensors"
PORTRAIT_NAME = "portrait.png"
EXPRESSION_ENCODER = "anny-arkit52"
EXPRESSION_DIM = 52
TINY_WAN = dict(dim=128, ffn_dim=64, num_layers=1, num_heads=1)  # text_dim stays 4096
VAE_WIDTH = 8
SEED = 20251212
COMFY_PREFIX = "model.diffusion_model."


def _generator(offset: int) -> torch.Generator:
    return torch.Generator().manual_seed(SEED + offset)


def tiny_wan_vae_state_dict() -> dict[str, torch.Tensor]:
    """A random Wan 2.1 VAE of width 8, as ComfyUI's WanVAE class lays it out.

    ComfyUI's ops skip parameter initialisation, so every parameter is filled here:
    N(0, 0.05), except the RMS-norm scales (``*.gamma``) which are 1."""
    from devpack import import_comfyui

    import_comfyui()
    import comfy.ldm.wan.vae as wan_vae

    model = wan_vae.WanVAE(dim=VAE_WIDTH, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                           attn_scales=[], temperal_downsample=[False, True, True])
    gen = _generator(1)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("gamma"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}


def tiny_factorportrait_model():
    """A random one-layer FactorPortrait DiT (every parameter, controls and head included)."""
    from factorportrait.models.portrait.dit import FactorPortraitDiT
    from factorportrait.models.wan.config import WanConfig

    model = FactorPortraitDiT(WanConfig(**TINY_WAN), EXPRESSION_DIM)
    gen = _generator(2)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen) * 0.02
            # Norm scales stay near 1 so the network is well conditioned; all else ~N(0, 0.02).
            p.copy_(1.0 + noise if ".norm" in name and name.endswith("weight") else noise)
    return model.eval()


def portrait_image(size: int = 256) -> torch.Tensor:
    """A synthetic frontal face ``[H, W, 3]`` in 0..1: gradient background, shoulders, hair,
    an elliptic face with eyes (white, iris, pupil), brows, a nose and a mouth."""
    s = torch.linspace(-1.0, 1.0, size)
    y, x = torch.meshgrid(s, s, indexing="ij")  # y down, x right, both in -1..1
    img = torch.stack([0.25 + 0.2 * (y + 1) / 2, 0.35 + 0.1 * (x + 1) / 2, 0.55 - 0.15 * (y + 1) / 2], -1)

    def paint(mask, rgb):
        img[mask] = torch.tensor(rgb, dtype=img.dtype)

    def ellipse(cx, cy, rx, ry):
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0

    paint(ellipse(0.0, 1.15, 0.85, 0.45), (0.20, 0.30, 0.55))  # shoulders (shirt)
    paint((x.abs() < 0.17) & (y > 0.45) & (y < 0.85), (0.85, 0.66, 0.55))  # neck
    paint(ellipse(0.0, -0.12, 0.56, 0.7), (0.25, 0.16, 0.10))  # hair behind the face
    face = ellipse(0.0, 0.02, 0.45, 0.6)
    paint(face, (0.93, 0.75, 0.63))
    shade = face & (x > 0.15)
    img[shade] *= (1.0 - 0.25 * (x[shade] - 0.15)).unsqueeze(-1)  # light from the left
    for side in (-1.0, 1.0):
        cx = 0.18 * side
        paint(ellipse(cx, -0.08, 0.11, 0.055), (0.97, 0.97, 0.95))  # eye white
        paint(ellipse(cx, -0.08, 0.05, 0.05), (0.30, 0.45, 0.25))  # iris
        paint(ellipse(cx, -0.08, 0.022, 0.022), (0.05, 0.05, 0.05))  # pupil
        paint(ellipse(cx, -0.2, 0.12, 0.022), (0.25, 0.16, 0.10))  # brow
        paint(ellipse(0.45 * side, 0.02, 0.05, 0.11), (0.88, 0.68, 0.56))  # ear
    paint(ellipse(0.0, 0.1, 0.04, 0.1), (0.82, 0.6, 0.5))  # nose
    paint(ellipse(0.0, 0.33, 0.16, 0.045), (0.7, 0.3, 0.3))  # mouth
    paint(ellipse(0.0, 0.32, 0.14, 0.012), (0.45, 0.15, 0.15))  # lip line
    return img.clamp(0.0, 1.0)


def _save_png(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    pixels = (image * 255.0).round().to(torch.uint8).numpy()
    Image.fromarray(pixels, "RGB").save(path)


def write_tiny_models(models_dir: Path) -> dict[str, Path]:
    """Write the tiny VAE and FactorPortrait checkpoint into ``models_dir`` (a ComfyUI
    ``models`` folder) and the portrait into ``models_dir/../input``; returns their paths
    by name (``vae``, ``checkpoint``, ``portrait``)."""
    from factorportrait.models.portrait.checkpoint import save_checkpoint

    models_dir = Path(models_dir)
    paths = {
        "vae": models_dir / "vae" / VAE_NAME,
        "checkpoint": models_dir / "factorportrait" / CHECKPOINT_NAME,
        "portrait": models_dir.parent / "input" / PORTRAIT_NAME,
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tiny_wan_vae_state_dict(), paths["vae"])
    save_checkpoint(tiny_factorportrait_model(), str(paths["checkpoint"]),
                    expression_encoder=EXPRESSION_ENCODER)
    _save_png(portrait_image(), paths["portrait"])
    return paths


def write_wan_base(checkpoint: Path, path: Path) -> Path:
    """A plain Wan 2.1 base file as ComfyUI repackages them: the Wan keys of a FactorPortrait
    checkpoint under ``model.diffusion_model.``, no control keys, no metadata."""
    from safetensors import safe_open

    from factorportrait.models.portrait.checkpoint import is_control_key

    with safe_open(str(checkpoint), framework="pt") as f:
        tensors = {COMFY_PREFIX + k: f.get_tensor(k) for k in f.keys() if not is_control_key(k)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, path)
    return path


def write_sdxl_like(path: Path) -> Path:
    """A small safetensors file with SDXL's key layout (UNet + conditioner), no metadata."""
    gen = _generator(3)
    tensors = {
        COMFY_PREFIX + "input_blocks.0.0.weight": torch.randn(32, 4, 3, 3, generator=gen),
        COMFY_PREFIX + "input_blocks.0.0.bias": torch.zeros(32),
        "conditioner.embedders.0.transformer.text_model.embeddings.position_ids": torch.arange(77)[None],
        "conditioner.embedders.1.model.ln_final.weight": torch.ones(64),
        "first_stage_model.decoder.conv_in.weight": torch.randn(8, 4, 3, 3, generator=gen),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, path)
    return path


def write_truncated(source: Path, path: Path, keep: float = 0.5) -> Path:
    """The first ``keep`` fraction of ``source``'s bytes (a broken download)."""
    data = source.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: int(len(data) * keep)])
    return path

