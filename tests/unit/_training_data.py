"""Small data folders for the trainer's tests: real sample files, cached latents of a tiny
Wan 2.1 VAE built with ComfyUI's own class (tests/integration/tiny_models.py), and tiny
trainer configs.

The clips are simple but consistent with their controls: a portrait image that shifts
with the camera's yaw, a mouth band that darkens with ``jawOpen``, normal maps of a disc
that moves with the head, so a model can learn something from them in a few steps.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

TINY_WAN = {"dim": 128, "ffn_dim": 128, "num_layers": 2, "num_heads": 2, "text_dim": 32, "freq_dim": 32}
SIZE, FRAMES, DIM = 32, 9, 52


def make_sample(index: int, frames: int = FRAMES, size: int = SIZE):
    from factorportrait.models.camera import paths as tr
    from factorportrait.training.data.sample import ClipSample, to_uint8_images

    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from tiny_models import portrait_image

    g = torch.Generator().manual_seed(1000 + index)
    yaw_end = float(torch.empty(1).uniform_(-30, 30, generator=g))
    camera = tr.orbit(frames, tr.View(distance=1.0, fov=30), yaw_end=yaw_end)
    base = portrait_image(size)
    t = torch.linspace(0, 1, frames)
    jaw = (0.5 + 0.5 * torch.sin(2 * math.pi * (t + index / 7))).clamp(0, 1)
    expression = torch.zeros(frames, DIM)
    expression[:, 24] = jaw  # jawOpen
    shifts = (t * yaw_end / 30 * size / 4).round().long()
    imgs, normals = [], []
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    for f in range(frames):
        img = torch.roll(base, int(shifts[f]), dims=1).clone()
        band = (yy - 0.33).abs() < 0.08
        img[band] = img[band] * (1 - 0.6 * jaw[f])
        imgs.append(img)
        disc = ((xx - 0.3 * shifts[f] / size * 4) ** 2 + yy**2) < 0.4
        n = torch.stack([torch.full_like(xx, 0.5), torch.full_like(xx, 0.5), torch.ones_like(xx)], -1)
        n[disc] = torch.tensor([0.5 + 0.3 * float(xx[0, 0]), 0.6, 0.9])
        normals.append(n)
    return ClipSample(frames=to_uint8_images(torch.stack(imgs)), reference=to_uint8_images(base),
                      normal_maps=to_uint8_images(torch.stack(normals)), expression=expression, camera=camera,
                      reference_camera=camera.frames([0]), info={"source": "test", "regime": "test", "index": index})


def write_folder(root: Path, count: int, frames: int = FRAMES, size: int = SIZE) -> Path:
    from factorportrait.training.data.manifest import SAMPLE_DIR, ShardManifest, entry_for
    from factorportrait.training.data.sample import write_sample

    manifest = ShardManifest(root, "test")
    for i in range(count):
        if manifest.is_done(i):
            continue
        file = f"{SAMPLE_DIR}/test-{i:04d}.safetensors"
        sample = make_sample(i, frames, size)
        sha, nbytes = write_sample(root / file, sample)
        manifest.add(entry_for(sample, file, sha, nbytes, i))
    return root


def write_tiny_vae(path: Path) -> Path:
    import sys

    from safetensors.torch import save_file

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from tiny_models import tiny_wan_vae_state_dict

    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        save_file(tiny_wan_vae_state_dict(), path)
    return path


def tiny_config(root_: Path, out: Path, **sections) -> dict:
    """A trainer config dict for the tiny model on ``root`` (cached latents tag ``tiny``)."""
    cfg = {
        "model": {"wan": dict(TINY_WAN), "expression_dim": DIM},
        "data": {"root": str(root_), "frames": FRAMES, "width": SIZE, "height": SIZE, "latents": "tiny"},
        "train": {"params": "full", "steps": 4, "batch_size": 2, "micro_batch_size": 1, "lr": 1e-3,
                  "grad_clip": 1.0, "seed": 3},
        "output": {"dir": str(out), "save_every": 0, "log_every": 1, "name": "tiny"},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg
