"""The Wan 2.1 diffusion transformer (DiT), with the original release's state-dict keys.

    latents [B, C_in, T, H, W] --patch_embedding (Conv3d, stride = patch)--> tokens [B, L, dim]
    timestep [B] -> sinusoid -> time_embedding -> e [B, dim] -> time_projection -> e0 [B, 6, dim]
    text [B, L_text, text_dim] -> text_embedding -> context [B, L_text, dim]
    (i2v) CLIP features [B, 257, 1280] -> img_emb -> context_img [B, 257, dim]
    tokens -> num_layers x WanBlock(e0, context, rope) -> Head(e) -> unpatchify -> [B, C_out, T, H, W]

Each block is self-attention with 3-D RoPE, cross-attention to the text (and, for i2v, the
image tokens), and a GELU MLP; self-attention and MLP are AdaLN-modulated by e0 (shift,
scale, gate for each) and a learnt per-block bias. e0 may also differ per latent frame
(``modulation_offset``), which FactorPortrait's expression controller uses.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.utils.checkpoint
from einops import rearrange

from .attention import attention
from .config import WanConfig
from .layers import CastConv3d, CastLinear, LayerNorm, RMSNorm, cast_like
from .rope import apply_rope, rope_frequencies

Rope = torch.Tensor  # complex rotations [L, 1, head_dim/2] (rope.rope_frequencies)


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Wan's timestep embedding, cos half first: ``t [N]`` -> float32 ``[N, dim]``."""
    half = dim // 2
    freqs = 10000.0 ** (-torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = torch.outer(t.float(), freqs)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class SelfAttention(nn.Module):
    """Attention with RMS-normalised q and k (normalised over all heads at once, as Wan does)."""

    def __init__(self, c: WanConfig, **dd):
        super().__init__()
        self.num_heads = c.num_heads
        self.q, self.k, self.v, self.o = (CastLinear(c.dim, c.dim, **dd) for _ in range(4))
        self.norm_q = RMSNorm(c.dim, eps=c.eps, **dd) if c.qk_norm else nn.Identity()
        self.norm_k = RMSNorm(c.dim, eps=c.eps, **dd) if c.qk_norm else nn.Identity()

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1))  # [B, L, dim] -> [B, L, heads, head_dim]

    def forward(self, x: torch.Tensor, rope: Rope) -> torch.Tensor:
        """``x [B, L, dim]`` -> ``[B, L, dim]``."""
        q = apply_rope(self.heads(self.norm_q(self.q(x))), rope)
        k = apply_rope(self.heads(self.norm_k(self.k(x))), rope)
        return self.o(attention(q, k, self.heads(self.v(x))))


class CrossAttention(SelfAttention):
    """Queries from the video tokens; keys and values from the text, plus (i2v) a second,
    separately projected attention over the CLIP image tokens whose output is summed."""

    def __init__(self, c: WanConfig, **dd):
        super().__init__(c, **dd)
        if c.model_type == "i2v":
            self.k_img = CastLinear(c.dim, c.dim, **dd)
            self.v_img = CastLinear(c.dim, c.dim, **dd)
            self.norm_k_img = RMSNorm(c.dim, eps=c.eps, **dd) if c.qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, context: torch.Tensor,
                context_img: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, L, dim]``, ``context [B, L_text, dim]``, ``context_img [B, 257, dim]``."""
        q = self.heads(self.norm_q(self.q(x)))
        out = attention(q, self.heads(self.norm_k(self.k(context))), self.heads(self.v(context)))
        if context_img is not None:
            k_img = self.heads(self.norm_k_img(self.k_img(context_img)))
            out = out + attention(q, k_img, self.heads(self.v_img(context_img)))
        return self.o(out)


class WanBlock(nn.Module):
    def __init__(self, c: WanConfig, **dd):
        super().__init__()
        self.norm1 = LayerNorm(c.dim, eps=c.eps, elementwise_affine=False, **dd)
        self.self_attn = SelfAttention(c, **dd)
        self.norm3 = LayerNorm(c.dim, eps=c.eps, **dd) if c.cross_attn_norm else nn.Identity()
        self.cross_attn = CrossAttention(c, **dd)
        self.norm2 = LayerNorm(c.dim, eps=c.eps, elementwise_affine=False, **dd)
        self.ffn = nn.Sequential(CastLinear(c.dim, c.ffn_dim, **dd), nn.GELU(approximate="tanh"),
                                 CastLinear(c.ffn_dim, c.dim, **dd))
        self.modulation = nn.Parameter(torch.randn(1, 6, c.dim, **dd) / c.dim**0.5)

    def forward(self, x: torch.Tensor, e0: torch.Tensor, context: torch.Tensor,
                context_img: torch.Tensor | None, rope: Rope) -> torch.Tensor:
        """``x [B, L, dim]`` (tokens frame-major), ``e0 [B, F, 6, dim]`` with F = 1 (one
        modulation for all tokens) or F = latent frames (one per frame) -> ``[B, L, dim]``."""
        B, L, C = x.shape
        frames = e0.shape[1]
        # shift, scale, gate of self-attention and of the MLP: each [B, F, 1, dim]
        shift1, scale1, gate1, shift2, scale2, gate2 = (
            cast_like(self.modulation, e0) + e0).unsqueeze(2).unbind(3)
        x = x.view(B, frames, L // frames, C)  # group the tokens by frame for the modulation
        y = self.self_attn(torch.addcmul(shift1, self.norm1(x), 1 + scale1).flatten(1, 2), rope)
        x = torch.addcmul(x, y.view_as(x), gate1)
        del y  # free the attention output before cross-attention and the MLP (large at 32k tokens)
        x = x + self.cross_attn(self.norm3(x).flatten(1, 2), context, context_img).view_as(x)
        y = self.ffn(torch.addcmul(shift2, self.norm2(x), 1 + scale2).flatten(1, 2))
        x = torch.addcmul(x, y.view_as(x), gate2)
        return x.flatten(1, 2)


class Head(nn.Module):
    """Final AdaLN (shift, scale from the frame-agnostic time embedding) and projection to
    the channels of one patch."""

    def __init__(self, c: WanConfig, **dd):
        super().__init__()
        self.norm = LayerNorm(c.dim, eps=c.eps, elementwise_affine=False, **dd)
        self.head = CastLinear(c.dim, math.prod(c.patch_size) * c.out_dim, **dd)
        self.modulation = nn.Parameter(torch.randn(1, 2, c.dim, **dd) / c.dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """``x [B, L, dim]``, ``e [B, dim]`` -> ``[B, L, prod(patch) * out_dim]``."""
        shift, scale = (cast_like(self.modulation, e) + e.unsqueeze(1)).chunk(2, dim=1)
        return self.head(torch.addcmul(shift, self.norm(x), 1 + scale))


class ImageEmbedding(nn.Module):
    """i2v: CLIP ViT-H penultimate features ``[B, 257, image_dim]`` -> ``[B, 257, dim]``."""

    def __init__(self, image_dim: int, dim: int, **dd):
        super().__init__()
        self.proj = nn.Sequential(
            LayerNorm(image_dim, **dd), CastLinear(image_dim, image_dim, **dd), nn.GELU(),
            CastLinear(image_dim, dim, **dd), LayerNorm(dim, **dd))

    def forward(self, clip_fea: torch.Tensor) -> torch.Tensor:
        return self.proj(clip_fea)


class WanDiT(nn.Module):
    """Wan 2.1 DiT. ``dtype``: the compute dtype and that of all parameters except the
    Linear weights, which are kept in ``storage_dtype`` (default: ``dtype``; bf16, fp16 or
    float8_e4m3fn) and cast on use. Any parameter may also be loaded in another dtype
    (``load_state_dict(..., assign=True)``): every layer casts on use."""

    def __init__(self, config: WanConfig, *, dtype: torch.dtype = torch.float32, device=None,
                 storage_dtype: torch.dtype | None = None):
        super().__init__()
        c = self.config = config
        self.compute_dtype = dtype
        self.gradient_checkpointing = False  # see run_blocks
        dd = {"device": device, "dtype": dtype}
        self.patch_embedding = CastConv3d(c.in_dim, c.dim, c.patch_size, stride=c.patch_size, **dd)
        self.text_embedding = nn.Sequential(
            CastLinear(c.text_dim, c.dim, **dd), nn.GELU(approximate="tanh"), CastLinear(c.dim, c.dim, **dd))
        self.time_embedding = nn.Sequential(
            CastLinear(c.freq_dim, c.dim, **dd), nn.SiLU(), CastLinear(c.dim, c.dim, **dd))
        self.time_projection = nn.Sequential(nn.SiLU(), CastLinear(c.dim, 6 * c.dim, **dd))
        self.blocks = nn.ModuleList(WanBlock(c, **dd) for _ in range(c.num_layers))
        self.head = Head(c, **dd)
        self.img_emb = ImageEmbedding(c.image_dim, c.dim, **dd) if c.model_type == "i2v" else None
        self.init_weights()
        if storage_dtype is not None:  # Linear weights only: biases are small, keep them exact
            for m in self.modules():
                if isinstance(m, CastLinear):
                    m.weight = nn.Parameter(m.weight.detach().to(storage_dtype), m.weight.requires_grad)

    @torch.no_grad()
    def init_weights(self):
        """The original Wan initialisation (the output head starts at zero)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embedding.weight.flatten(1))
        for embedding in (self.text_embedding, self.time_embedding):
            nn.init.normal_(embedding[0].weight, std=0.02)
            nn.init.normal_(embedding[2].weight, std=0.02)
        nn.init.zeros_(self.head.head.weight)

    @property
    def config_dict(self) -> dict:
        """JSON-able description of the architecture (for checkpoint metadata)."""
        return self.config.to_dict()

    @classmethod
    def from_config_dict(cls, d: dict, **kwargs) -> "WanDiT":
        return cls(WanConfig.from_dict(d), **kwargs)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                clip_fea: torch.Tensor | None = None,
                modulation_offset: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted flow velocity.

        x: ``[B, in_dim, T, H, W]`` latents (T, H, W multiples of the patch size).
        timestep: ``[B]`` (or one value), Wan's t in [0, 1000] (= sigma * 1000).
        context: ``[B, L_text, text_dim]`` text encoder states (Wan pads them to 512).
        clip_fea: ``[B, 257, image_dim]`` CLIP features, i2v only (None: no image tokens).
        modulation_offset: ``[B, T/pt, 6, dim]``, added per latent frame to the blocks'
            AdaLN modulation e0 (the head stays frame-agnostic).
        Returns ``[B, out_dim, T, H, W]`` in x's dtype.
        """
        x_embedded = self.embed_patches(x)
        return self.forward_embedded(x_embedded, timestep, context, clip_fea, modulation_offset).to(x.dtype)

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_dim, T, H, W]`` -> float32 ``[B, dim, T/pt, H/ph, W/pw]``. In float32 as in
        ComfyUI: this one small layer sees the raw latents."""
        c = self.config
        if x.ndim != 5 or x.shape[1] != c.in_dim:
            raise ValueError(f"Wan DiT expects latents [B, {c.in_dim}, T, H, W], got {list(x.shape)}")
        if any(n % p for n, p in zip(x.shape[2:], c.patch_size)):
            raise ValueError(f"latent size (T, H, W) = {tuple(x.shape[2:])} is not a multiple of "
                             f"the patch size {c.patch_size}")
        return self.patch_embedding(x.float())

    def forward_embedded(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                         clip_fea: torch.Tensor | None = None,
                         modulation_offset: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`forward` from patch embeddings ``x [B, dim, t, h, w]``; returns the compute dtype."""
        c = self.config
        B, _, *grid = x.shape
        x = x.flatten(2).transpose(1, 2).to(self.compute_dtype).contiguous()  # [B, L, dim], t-major
        timestep = torch.as_tensor(timestep, device=x.device).reshape(-1).expand(B)
        e, e0 = self.time_embed(timestep)
        e0 = e0.unsqueeze(1)  # [B, 1, 6, dim]: the same for all frames
        if modulation_offset is not None:
            if modulation_offset.shape != (B, grid[0], 6, c.dim):
                raise ValueError(f"modulation_offset must be [B, frames, 6, dim] = "
                                 f"{[B, grid[0], 6, c.dim]}, got {list(modulation_offset.shape)}")
            e0 = e0 + modulation_offset.to(e0)
        context = self.text_embedding(context.to(x.device, self.compute_dtype))
        context_img = None
        if clip_fea is not None:
            if self.img_emb is None:
                raise ValueError("clip_fea (CLIP image features) given to a t2v Wan model; only i2v uses them")
            context_img = self.img_emb(clip_fea.to(x.device, self.compute_dtype))  # [B, 257, dim]
        rope = rope_frequencies(tuple(grid), c.head_dim, x.device)
        x = self.run_blocks(x, e0, context, context_img, rope)
        return self.unpatchify(self.head(x, e), grid)

    def time_embed(self, timestep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``timestep [N]`` -> ``e [N, dim]`` (for the head) and ``e0 [N, 6, dim]`` (blocks)."""
        sinusoid = sinusoidal_embedding(timestep, self.config.freq_dim).to(self.compute_dtype)
        e = self.time_embedding(sinusoid)
        return e, self.time_projection(e).unflatten(1, (6, self.config.dim))

    def run_blocks(self, x: torch.Tensor, e0: torch.Tensor, context: torch.Tensor,
                   context_img: torch.Tensor | None, rope: Rope) -> torch.Tensor:
        """The transformer blocks, one after another (override to stream them to the GPU).
        With ``gradient_checkpointing`` set and grad enabled, each block's activations are
        recomputed in the backward pass instead of kept (training memory ~ one block)."""
        recompute = self.gradient_checkpointing and torch.is_grad_enabled()
        for block in self.blocks:
            if recompute:
                x = torch.utils.checkpoint.checkpoint(block, x, e0, context, context_img, rope, use_reentrant=False)
            else:
                x = block(x, e0, context, context_img, rope)
        return x

    def unpatchify(self, x: torch.Tensor, grid) -> torch.Tensor:
        """``[B, t*h*w, pt*ph*pw*out_dim]`` -> ``[B, out_dim, t*pt, h*ph, w*pw]``."""
        (t, h, w), (pt, ph, pw) = grid, self.config.patch_size
        return rearrange(x, "b (t h w) (pt ph pw c) -> b c (t pt) (h ph) (w pw)",
                         t=t, h=h, w=w, pt=pt, ph=ph, pw=pw)
