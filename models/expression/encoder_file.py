"""Expression image encoder files: one safetensors file, the config in its metadata.

Metadata (all strings, as safetensors requires):

- ``format``: ``"factorportrait-expression-encoder"``, ``format_version``: ``"1"``;
- ``config``: ``ImageEncoderConfig`` as JSON; ``encoder_name``: the name the codes carry;
  ``code_dim``: D, readable without parsing the config.

The header is checked before any tensor is read, so a multi-gigabyte file of another model
dropped into the folder is named and refused without being loaded. Pickles are refused by
suffix and by content, and never unpickled.
"""
from __future__ import annotations

import json
import os

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import InputError
from ..safetensors_io import PICKLE_SUFFIXES, describe_family
from .image_encoder import ExpressionImageEncoder, ImageEncoderConfig

FORMAT = "factorportrait-expression-encoder"
FORMAT_VERSION = 1

# Other files that end up in an encoder folder, for the error message (first match wins).
OTHER_MODELS = (
    ("blocks.0.self_attn.q.weight", "a Wan 2.1 diffusion model"),
    ("prelu.weight", "a face-recognition network (ArcFace / InsightFace iresnet)"),
    ("layer1.0.conv1.weight", "a ResNet image classifier or face-recognition backbone"),
    ("E_flame.", "a DECA/EMOCA face-reconstruction encoder"),
)


def save_image_encoder(model: ExpressionImageEncoder, path: str, name: str) -> None:
    """Write ``model``'s weights (in their dtype) and config to a ``.safetensors`` file."""
    if not path.lower().endswith(".safetensors"):
        raise ValueError(f"encoder files are .safetensors, got {os.path.basename(path)}")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("the encoder needs a non-empty name; it identifies the codes it makes")
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, path, metadata={
        "format": FORMAT, "format_version": str(FORMAT_VERSION),
        "config": json.dumps(model.config.to_dict()), "encoder_name": name.strip(),
        "code_dim": str(model.config.code_dim)})


def _sniff(path: str) -> str | None:
    """What a non-safetensors file is, from its first bytes, or None."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04"):
        return "a PyTorch checkpoint (torch.save zip archive)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle"
    return None


def _describe(keys, metadata: dict[str, str]) -> str:
    if "factorportrait" in metadata:
        return "a FactorPortrait video model checkpoint"
    joined = "\n".join(keys)
    for marker, family in OTHER_MODELS:
        if marker in joined:
            return family
    return describe_family(keys)


def _read_header(path: str, input_name: str) -> tuple[dict[str, str], dict[str, list[int]]]:
    """Metadata and tensor shapes of a safetensors file, with clear errors for anything else."""
    name = os.path.basename(path)
    fix = "choose a FactorPortrait expression encoder (.safetensors)"
    if path.lower().endswith(PICKLE_SUFFIXES):
        raise InputError(input_name, f"{name} is a pickled checkpoint, which can run code when "
                         f"loaded and is refused; {fix}.")
    if not os.path.isfile(path):
        raise InputError(input_name, f"{path} does not exist; check the path, or {fix}.")
    kind = _sniff(path)
    if kind:
        raise InputError(input_name, f"{name} is {kind}, not a safetensors file; pickled files "
                         f"can run code when loaded and are refused; {fix}.")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = dict(f.metadata() or {})
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise InputError(input_name, f"{name} is not a readable safetensors file (truncated, "
                         f"corrupt or another format: {e}); copy it again, or {fix}.") from None
    return metadata, shapes


def _config(metadata: dict[str, str], shapes: dict, name: str, input_name: str) -> ImageEncoderConfig:
    if metadata.get("format") != FORMAT:
        raise InputError(input_name, f"{name} is not a FactorPortrait expression encoder (no "
                         f"'{FORMAT}' metadata); it looks like {_describe(shapes, metadata)}. "
                         "Choose an expression encoder file.")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise InputError(input_name, f"{name} has encoder format version "
                         f"{metadata.get('format_version')!r}; this pack reads version "
                         f"{FORMAT_VERSION}. Update the node pack.")
    try:
        config = ImageEncoderConfig.from_dict(json.loads(metadata["config"]))
        if int(metadata["code_dim"]) != config.code_dim:
            raise ValueError(f"code_dim {metadata['code_dim']} differs from the config's {config.code_dim}")
        if not metadata["encoder_name"].strip():
            raise ValueError("the encoder name is empty")
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(input_name, f"{name} has damaged encoder metadata ({type(e).__name__}: "
                         f"{e}); copy the file again or re-export it.") from None
    return config


def load_image_encoder(path: str, input_name: str = "encoder", device: str | torch.device = "cpu",
                       dtype: torch.dtype = torch.float32) -> tuple[ExpressionImageEncoder, str]:
    """An encoder in eval mode on ``device`` in ``dtype``, and its name.

    Every problem with the file is an :class:`InputError` naming ``input_name``.
    """
    name = os.path.basename(path)
    metadata, shapes = _read_header(path, input_name)
    config = _config(metadata, shapes, name, input_name)
    encoder_name = metadata["encoder_name"].strip()
    with torch.device("meta"):  # shapes only: the weights come from the file
        model = ExpressionImageEncoder(config, encoder_name)
    expected = {k: list(v.shape) for k, v in model.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
    if missing or unexpected:
        parts = [f"{label} tensors {keys[:4]}{' ...' if len(keys) > 4 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise InputError(input_name, f"{name} does not match its own config ({', '.join(parts)}); "
                         "the file is damaged or was written by another version.")
    for key, shape in expected.items():
        if shapes[key] != shape:
            raise InputError(input_name, f"{name}: tensor '{key}' has shape {shapes[key]}, but the "
                             f"config needs {shape}; the file is damaged or was edited.")
    state = {}
    try:
        with safe_open(path, framework="pt") as f:
            for key in expected:
                t = f.get_tensor(key)
                if not t.is_floating_point() or not torch.isfinite(t).all():
                    raise InputError(input_name, f"{name}: tensor '{key}' holds NaN, infinite or "
                                     "non-float values; the training run diverged or the file is "
                                     "damaged. Use another checkpoint.")
                state[key] = t.to(device=device, dtype=dtype)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise InputError(input_name, f"{name} is truncated or corrupt ({e}); copy it again.") from None
    model.load_state_dict(state, assign=True)
    return model.eval().requires_grad_(False), encoder_name


__all__ = ["FORMAT", "FORMAT_VERSION", "load_image_encoder", "save_image_encoder"]
