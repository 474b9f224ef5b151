"""Reading weight files safely: safetensors only, with errors a user can act on.

Pickled checkpoints (.ckpt, .pt, .pth, .bin) are refused: loading them can run arbitrary
code. Truncated or corrupt files, and files of another model family, get an error that
says what the file looks like and what to use instead.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch
from safetensors import SafetensorError, safe_open

from .errors import InputError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")

# Substrings that identify other model families, for a helpful error.
FAMILY_MARKERS = (
    ("input_blocks.", "a Stable Diffusion UNet (SD 1.x/2.x/SDXL)"),
    ("conditioner.embedders", "an SDXL checkpoint"),
    ("double_blocks.", "a Flux / HunyuanVideo transformer"),
    ("transformer_blocks.0.attn1", "a diffusers-format transformer"),
    ("decoder.conv_in", "a VAE"),
    ("encoder.conv1", "a Wan VAE"),
    ("shared.weight", "a T5 text encoder"),
    ("visual.transformer", "a CLIP vision encoder"),
    ("lora_", "a LoRA"),
)


@dataclass(frozen=True)
class WeightFile:
    """Tensors and string metadata of one safetensors file."""

    path: str
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]

    def json_metadata(self, key: str) -> dict | None:
        """A JSON object stored under ``key`` in the metadata, or None."""
        raw = self.metadata.get(key)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise InputError("file", f"{os.path.basename(self.path)} has unreadable '{key}' "
                             "metadata (not JSON); the file was not written by this pack.") from None
        return value if isinstance(value, dict) else None


def read_weights(path: str, input_name: str, device: str = "cpu") -> WeightFile:
    """Read every tensor and the metadata of a ``.safetensors`` file.

    Raises an :class:`InputError` naming ``input_name`` for missing, pickled, truncated or
    corrupt files.
    """
    name = os.path.basename(path)
    if path.lower().endswith(PICKLE_SUFFIXES):
        raise InputError(input_name, f"{name} is a pickled checkpoint, which can run code when "
                         "loaded and is refused; use a .safetensors file (convert it once with "
                         "a trusted tool).")
    if not os.path.isfile(path):
        raise InputError(input_name, f"{path} does not exist.")
    try:
        with safe_open(path, framework="pt", device=device) as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise InputError(input_name, f"{name} is truncated or corrupt and cannot be read "
                         f"({e}); download or copy it again.") from None
    if not tensors:
        raise InputError(input_name, f"{name} holds no tensors.")
    return WeightFile(path, tensors, metadata)


def describe_family(keys) -> str:
    """A short guess of what a state dict is, for error messages."""
    joined = "\n".join(keys)
    for marker, family in FAMILY_MARKERS:
        if marker in joined:
            return family
    return "an unknown model"
