"""The training dataset: a data folder's samples as the DiT's inputs.

Item ``i`` of :class:`ClipDataset` is a dict of float32 tensors, the inputs of
``FactorPortraitDiT.forward`` for one clip (without the batch axis):

    latents     [16, T, h, w]   normalised VAE latents of the frames (the flow's x0)
    reference   [16, 1, h, w]   normalised latent of the reference image
    normals     [16, T, h, w]   normalised latents of the normal maps
    rays        [24, T, h, w]   Plücker rays on the latent grid (``models.camera.plucker``)
    expression  [F, D]          per-frame expression codes, F = 4T - 3

Latents come from the cache (:mod:`.latent_cache`) or, without one, from a VAE given to the
dataset. Clips longer than ``frames`` use their first ``frames`` frames: the Wan VAE is
causal in time, so those are exactly the first latent frames.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ...models.wan.latent_frames import check_frame_count, latent_frame_count
from ...models.camera.plucker import latent_plucker_rays
from .latent_cache import VideoVAE, encode_sample, latent_path, normalized, read_latents
from .manifest import read_manifests
from .sample import SampleError, file_sha256, read_camera_and_expression, read_sample

log = logging.getLogger("factorportrait.training")
ON_ERROR = ("raise", "skip")


class ClipDataset(Dataset):
    """Samples of ``root`` at ``frames`` x ``width`` x ``height`` with ``expression_dim`` codes.

    Args:
        latents_tag: folder under ``latents/`` with cached latents (None: encode with ``vae``).
        vae: encodes on the fly where no cached latent file is up to date (ComfyUI's VAE).
        on_error: ``"raise"`` (a :class:`SampleError` naming the file) or ``"skip"`` (log it
            and use the next usable sample, so batches keep their size).
        verify: check each file's sha256 against the manifest when it is read.
    """

    def __init__(self, root: str | os.PathLike, *, frames: int, width: int, height: int, expression_dim: int,
                 latents_tag: str | None = None, vae: VideoVAE | None = None, on_error: str = "raise",
                 verify: bool = False):
        check_frame_count(frames, "data.frames")
        if on_error not in ON_ERROR:
            raise ValueError(f"data.on_error must be one of {ON_ERROR}, got {on_error!r}")
        if latents_tag is None and vae is None:
            raise ValueError("the dataset needs cached latents (data.latents) or a VAE (data.vae) to encode with")
        self.root = Path(root)
        self.entries = read_manifests(root)
        self.frames, self.width, self.height, self.expression_dim = frames, width, height, expression_dim
        self.latents_tag, self.vae, self.on_error, self.verify = latents_tag, vae, on_error, verify
        self.skipped: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        for attempt in range(len(self.entries)):
            entry = self.entries[(index + attempt) % len(self.entries)]
            if entry["file"] in self.skipped:
                continue
            try:
                return self.load(entry)
            except SampleError as e:
                if self.on_error == "raise":
                    raise
                self.skipped[entry["file"]] = e.message
                log.warning("skipping %s", e)
        raise SampleError(self.root, "no usable sample left: " + "; ".join(f"{k}: {v}" for k, v in self.skipped.items()))

    def check_entry(self, entry: dict) -> None:
        """Raise :class:`SampleError` if the manifest says the sample cannot serve this config."""
        path = self.root / entry["file"]
        if (entry["width"], entry["height"]) != (self.width, self.height):
            raise SampleError(path, f"is {entry['width']}x{entry['height']}, the config's data.width x "
                                    f"data.height is {self.width}x{self.height}; prepare the data at that size "
                                    "or change the config")
        if entry["frames"] < self.frames:
            raise SampleError(path, f"has {entry['frames']} frames, fewer than data.frames = {self.frames}")
        if entry["expression_dim"] != self.expression_dim:
            raise SampleError(path, f"has expression codes of dimension {entry['expression_dim']}, the model "
                                    f"takes {self.expression_dim} (model.expression_dim)")

    def load(self, entry: dict) -> dict[str, torch.Tensor]:
        self.check_entry(entry)
        path = self.root / entry["file"]
        if self.verify and file_sha256(path) != entry["sha256"]:
            raise SampleError(path, "its sha256 differs from the manifest: the file changed or is damaged")
        t_lat = latent_frame_count(self.frames)
        latents = None
        if self.latents_tag is not None:
            latents = read_latents(latent_path(self.root, self.latents_tag, entry["file"]), entry["sha256"])
            if latents is None and self.vae is None:
                raise SampleError(path, f"has no up-to-date cached latents under latents/{self.latents_tag}; run "
                                        "training/cache_latents.py or set data.vae to encode on the fly")
        if latents is None:
            sample = read_sample(path)
            latents = encode_sample(self.vae, sample)
            camera, expression = sample.camera, sample.expression
        else:  # the images are not needed: read the camera and the codes only
            camera, expression = read_camera_and_expression(path)
        lat = normalized(latents)
        h, w = self.height // 8, self.width // 8
        expect = {"frames": (16, None, h, w), "reference": (16, 1, h, w), "normal_maps": (16, None, h, w)}
        for key, shape in expect.items():
            got = tuple(lat[key].shape)
            if len(got) != 4 or got[0] != 16 or got[2:] != shape[2:] or (shape[1] and got[1] != 1) \
                    or (not shape[1] and got[1] < t_lat):
                raise SampleError(path, f"its '{key}' latents are {list(got)}, expected [16, {t_lat}+, {h}, {w}]")
        camera = camera.frames(list(range(self.frames)))
        return {
            "latents": lat["frames"][:, :t_lat],
            "reference": lat["reference"],
            "normals": lat["normal_maps"][:, :t_lat],
            "rays": latent_plucker_rays(camera, self.width, self.height)[0],
            "expression": expression[:self.frames],
        }


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack items into a batch (every tensor gains a leading batch axis)."""
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}
