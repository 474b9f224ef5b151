"""The shape of a Wan 2.1 DiT: the released presets, and inference from a state dict.

A state dict in the original Wan 2.1 key layout (which ComfyUI's repackaged files share,
there under the prefix ``model.diffusion_model.``) determines every size, so users' files
load without a separate config file.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Mapping

import torch

TEXT_LEN = 512  # Wan's text encoder output is zero-padded to 512 tokens
# No text at all: every context token is the same zero vector, so the cross-attention's
# softmax is uniform over equal values and one token gives exactly the 512-token result,
# at a fraction of the cost (the K/V projections of 512 tokens per block).
NO_TEXT_LEN = 1
CLIP_TOKENS = 257  # CLIP ViT-H/14 penultimate tokens fed to the I2V image cross-attention
COMFY_PREFIX = "model.diffusion_model."
RELEASED_HEAD_DIM = 128  # every released Wan 2.1 model uses 128-wide heads


@dataclass(frozen=True)
class WanConfig:
    dim: int
    ffn_dim: int
    num_layers: int
    num_heads: int
    in_dim: int = 16
    out_dim: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    cross_attn_norm: bool = True
    qk_norm: bool = True
    model_type: str = "t2v"  # 't2v' or 'i2v' (adds CLIP image cross-attention)
    image_dim: int = 1280  # CLIP feature width of the i2v image embedding

    def __post_init__(self):
        object.__setattr__(self, "patch_size", tuple(int(p) for p in self.patch_size))
        if self.model_type not in ("t2v", "i2v"):
            raise ValueError(f"model_type must be 't2v' or 'i2v', not {self.model_type!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for the rotary embedding")
        if len(self.patch_size) != 3:
            raise ValueError(f"patch_size must have 3 entries (t, h, w), got {self.patch_size}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    def to_dict(self) -> dict:
        """JSON-able dict, e.g. for safetensors metadata."""
        d = dataclasses.asdict(self)
        d["patch_size"] = list(self.patch_size)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "WanConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown Wan config keys {unknown}; known keys: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor]) -> "WanConfig":
        """Infer the config from tensor shapes of a Wan 2.1 state dict (keys without prefix,
        see :func:`strip_prefix`). Only shapes are read, so meta tensors work."""
        if "patch_embedding.weight" not in sd or "head.head.weight" not in sd:
            found = ", ".join(sorted(sd)[:5]) or "no keys"
            raise ValueError(
                "not a Wan 2.1 DiT state dict: it has no 'patch_embedding.weight' / "
                f"'head.head.weight' (first keys: {found})")
        if "img_emb.emb_pos" in sd:
            raise ValueError("Wan first-last-frame (FLF2V) models are not supported")
        dim, in_dim, *patch = sd["patch_embedding.weight"].shape
        if dim % RELEASED_HEAD_DIM:
            raise ValueError(f"model width {dim} is not a multiple of {RELEASED_HEAD_DIM}, the head "
                             "width of every released Wan 2.1 model, so its head count is unknown")
        blocks = {int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))}
        i2v = any(k.startswith("img_emb.") for k in sd)
        return cls(
            dim=dim,
            ffn_dim=sd["blocks.0.ffn.0.weight"].shape[0],
            num_layers=max(blocks) + 1,
            num_heads=dim // RELEASED_HEAD_DIM,
            in_dim=in_dim,
            out_dim=sd["head.head.weight"].shape[0] // (patch[0] * patch[1] * patch[2]),
            text_dim=sd["text_embedding.0.weight"].shape[1],
            freq_dim=sd["time_embedding.0.weight"].shape[1],
            patch_size=tuple(patch),
            cross_attn_norm="blocks.0.norm3.weight" in sd,
            qk_norm="blocks.0.self_attn.norm_q.weight" in sd,
            model_type="i2v" if i2v else "t2v",
            image_dim=sd["img_emb.proj.0.weight"].shape[0] if i2v else 1280,
        )


def strip_prefix(sd: Mapping[str, torch.Tensor], prefix: str = COMFY_PREFIX) -> dict:
    """The keys under ``prefix`` with it removed (ComfyUI files, which may also hold a VAE
    or text encoder); a state dict without any such key is returned as it is."""
    if not any(k.startswith(prefix) for k in sd):
        return dict(sd)
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


T2V_1_3B = WanConfig(dim=1536, ffn_dim=8960, num_layers=30, num_heads=12)
T2V_14B = WanConfig(dim=5120, ffn_dim=13824, num_layers=40, num_heads=40)
I2V_14B = WanConfig(dim=5120, ffn_dim=13824, num_layers=40, num_heads=40, in_dim=36, model_type="i2v")
PRESETS = {"t2v-1.3B": T2V_1_3B, "t2v-14B": T2V_14B, "i2v-14B": I2V_14B}
