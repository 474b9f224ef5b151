"""FactorPortrait's DiT: Wan 2.1 plus condition fusion and the expression controller.

Condition fusion. Per latent time slot, DESIGN.md concatenates noise | reference latent |
Plücker rays | normal-map latent and patch-embeds the lot. We split that one patch embedding
in two: the base ``patch_embedding`` sees the noise channels (so Wan files load as they
are) and a zero-initialised ``control_embedding`` (no bias) sees the 56 control channels;
their sum is the same linear map. The reference occupies slot 0, prepended in time:

    slot:          0 (reference)    1 .. T (video)
    noise   16     0                noisy latents
    ref     16     reference        0
    rays    24     0                Plücker rays at latent resolution (Wan 4-frame packing)
    normals 16     0                VAE latents of the rendered normal maps

Expression controller. Per-frame expression codes ``[B, F, D]`` (F = 4T-3 video frames) are
grouped per latent frame with Wan's 1+4k packing (``latent_frame_groups``), concatenated to
``[B, T, 4D]`` and mapped by an MLP to per-frame offsets ``[B, T, 6, dim]`` of the blocks'
AdaLN modulation; the reference slot gets none. The MLP's last layer starts at zero, so a
model built from base weights reproduces the base model until the new layers are trained.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import InputError
from ..wan.latent_frames import TEMPORAL_STRIDE, latent_frame_groups, video_frame_count
from ..wan.config import NO_TEXT_LEN, WanConfig
from ..wan.dit import WanDiT
from ..wan.layers import CastConv3d, CastLinear

LATENT_CHANNELS = 16
RAY_CHANNELS = 24  # 6 Plücker channels x 4 frames per latent frame
CONTROL_CHANNELS = LATENT_CHANNELS + RAY_CHANNELS + LATENT_CHANNELS  # reference | rays | normals


def fuse_conditions(noisy: torch.Tensor, reference: torch.Tensor, rays: torch.Tensor | None = None,
                    normals: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused input sequence, with the reference prepended as slot 0 (layout above).

    noisy ``[B, 16, T, h, w]``, reference ``[B, 16, 1, h, w]``, rays ``[B, 24, T, h, w]``,
    normals ``[B, 16, T, h, w]`` (None: zeros; a batch of 1 is broadcast to B)
    -> noise part ``[B, 16, T+1, h, w]`` and control part ``[B, 56, T+1, h, w]``.
    """
    if noisy.ndim != 5 or noisy.shape[1] != LATENT_CHANNELS:
        raise InputError("latent", f"expected a video latent [B, 16, T, h, w], got {list(noisy.shape)}")
    B, _, T, h, w = noisy.shape

    def check(name: str, x: torch.Tensor | None, channels: int, frames: int) -> torch.Tensor:
        if x is None:
            return noisy.new_zeros(B, channels, frames, h, w)
        if x.ndim != 5 or x.shape[1:] != (channels, frames, h, w) or x.shape[0] not in (1, B):
            raise InputError(name, f"expected [{B}, {channels}, {frames}, {h}, {w}] to match the "
                                   f"latent {list(noisy.shape)}, got {list(x.shape)}")
        return x.to(noisy).expand(B, -1, -1, -1, -1)

    reference = check("reference", reference, LATENT_CHANNELS, 1)
    rays = check("rays", rays, RAY_CHANNELS, T)
    normals = check("normals", normals, LATENT_CHANNELS, T)
    zeros = lambda channels, frames: noisy.new_zeros(B, channels, frames, h, w)  # noqa: E731
    noise_part = torch.cat([zeros(LATENT_CHANNELS, 1), noisy], dim=2)
    control_part = torch.cat([
        torch.cat([reference, zeros(RAY_CHANNELS + LATENT_CHANNELS, 1)], dim=1),  # slot 0
        torch.cat([zeros(LATENT_CHANNELS, T), rays, normals], dim=1),  # slots 1..T
    ], dim=2)
    return noise_part, control_part


class ExpressionController(nn.Sequential):
    """Expression codes ``[B, F, D]`` -> AdaLN offsets ``[B, T, 6, dim]`` per latent frame."""

    def __init__(self, expression_dim: int, dim: int, **dd):
        super().__init__(CastLinear(TEMPORAL_STRIDE * expression_dim, dim, **dd), nn.SiLU(),
                         CastLinear(dim, 6 * dim, **dd))
        self.expression_dim, self.dim = expression_dim, dim

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        grouped = codes[:, latent_frame_groups(codes.shape[1]).to(codes.device)]  # [B, T, 4, D]
        return super().forward(grouped.flatten(2)).unflatten(-1, (6, self.dim))


class FactorPortraitDiT(WanDiT):
    """Wan 2.1 DiT + ``control_embedding`` + ``expression_controller``. Its state dict is the
    base's (same keys) plus ``control_embedding.weight`` and ``expression_controller.*``.
    ``storage_dtype`` applies to the base's Linear weights; the new layers stay in ``dtype``."""

    def __init__(self, config: WanConfig, expression_dim: int, *, dtype: torch.dtype = torch.float32,
                 device=None, storage_dtype: torch.dtype | None = None):
        super().__init__(config, dtype=dtype, device=device, storage_dtype=storage_dtype)
        dd = {"device": device, "dtype": dtype}
        self.expression_dim = expression_dim
        self.control_embedding = CastConv3d(CONTROL_CHANNELS, config.dim, config.patch_size,
                                            stride=config.patch_size, bias=False, **dd)
        self.expression_controller = ExpressionController(expression_dim, config.dim, **dd)
        self.zero_init_controls()

    @torch.no_grad()
    def zero_init_controls(self):
        nn.init.zeros_(self.control_embedding.weight)
        nn.init.zeros_(self.expression_controller[2].weight)
        nn.init.zeros_(self.expression_controller[2].bias)

    @classmethod
    def from_wan(cls, wan: WanDiT, expression_dim: int) -> "FactorPortraitDiT":
        """A FactorPortrait model holding a copy of ``wan``'s weights (their dtypes and device
        kept) and zero-initialised control layers. Built on the meta device first, so the
        base weights are never allocated twice."""
        device = wan.patch_embedding.weight.device
        model = cls(wan.config, expression_dim, dtype=wan.compute_dtype, device="meta")
        base = {k: v.detach().clone() for k, v in wan.state_dict().items()}
        missing, unexpected = model.load_state_dict(base, strict=False, assign=True)
        if unexpected or set(missing) != set(model.state_dict()) - set(base):
            raise ValueError(f"base model does not match its config: missing {missing}, "
                             f"unexpected {unexpected}")
        model.reset_controls(device)
        return model

    def reset_controls(self, device) -> None:
        """(Re)create the control layers on ``device`` in their initial state: untrained, so
        the model equals its base (e.g. after building on the meta device)."""
        for new in (self.control_embedding, self.expression_controller):
            new.to_empty(device=device)
        self.expression_controller[0].reset_parameters()
        self.zero_init_controls()

    @property
    def config_dict(self) -> dict:
        return {"architecture": "factorportrait", "wan": self.config.to_dict(),
                "expression_dim": self.expression_dim}

    @classmethod
    def from_config_dict(cls, d: dict, **kwargs) -> "FactorPortraitDiT":
        return cls(WanConfig.from_dict(d["wan"]), int(d["expression_dim"]), **kwargs)

    def expression_offsets(self, expression: torch.Tensor, frames: int) -> torch.Tensor:
        """``expression [B, 4T-3, D]`` -> modulation offsets ``[B, T+1, 6, dim]`` for the fused
        sequence (zero for the reference slot 0)."""
        if expression.ndim != 3:
            raise InputError("expression", f"expected codes [B, frames, {self.expression_dim}], "
                                           f"got shape {list(expression.shape)}")
        if expression.shape[2] != self.expression_dim:
            raise InputError("expression", f"the model expects expression codes of dimension "
                                           f"{self.expression_dim}, got dimension "
                                           f"{expression.shape[2]}; use the expression encoder "
                                           f"the checkpoint was trained with")
        expected = video_frame_count(frames)
        if expression.shape[1] != expected:
            raise InputError("expression", f"{expression.shape[1]} expression frames for {frames} "
                                           f"latent frames; expected {expected} (resample the codes "
                                           f"to the video length first)")
        offsets = self.expression_controller(expression.to(self.compute_dtype))  # [B, T, 6, dim]
        return torch.cat([torch.zeros_like(offsets[:, :1]), offsets], dim=1)

    def forward(self, noisy: torch.Tensor, timestep: torch.Tensor, reference: torch.Tensor,
                rays: torch.Tensor | None = None, normals: torch.Tensor | None = None,
                expression: torch.Tensor | None = None, context: torch.Tensor | None = None,
                clip_fea: torch.Tensor | None = None) -> torch.Tensor:
        """Flow velocity of the video slots.

        noisy ``[B, 16, T, h, w]``, timestep ``[B]`` (t in [0, 1000]), reference
        ``[B, 16, 1, h, w]``, rays ``[B, 24, T, h, w]``, normals ``[B, 16, T, h, w]``,
        expression ``[B, 4T-3, expression_dim]``, context ``[B, L, text_dim]`` (None: no text;
        one zero token, the same as Wan's 512 zero-padding tokens: ``NO_TEXT_LEN``), clip_fea
        (i2v bases only) -> ``[B, 16, T, h, w]``.
        """
        noise_part, control_part = fuse_conditions(noisy, reference, rays, normals)
        B, _, slots, h, w = noise_part.shape
        extra = self.config.in_dim - LATENT_CHANNELS  # i2v bases: mask + image latent, left zero
        if extra > 0:
            noise_part = torch.cat([noise_part, noise_part.new_zeros(B, extra, slots, h, w)], dim=1)
        x = self.embed_patches(noise_part) + self.control_embedding(control_part.float())
        if context is None:  # no text: Wan's 512 zero tokens give the same cross-attention as one
            context = noisy.new_zeros(B, NO_TEXT_LEN, self.config.text_dim)
        offsets = None
        if expression is not None:
            offsets = self.expression_offsets(expression, slots - 1)
            if offsets.shape[0] not in (1, B):
                raise InputError("expression", f"batch of {offsets.shape[0]} expression sequences "
                                               f"for a batch of {B} latents")
            offsets = offsets.expand(B, -1, -1, -1)
        out = self.forward_embedded(x, timestep, context, clip_fea, offsets)
        return out[:, :, 1:].to(noisy.dtype)  # drop the reference slot
