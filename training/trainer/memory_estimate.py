"""Back-of-the-envelope GPU memory of a training step, for planning (docs/training.md, benchmark).

Per device: weights (frozen ones in bf16, trained ones as float32 master copies), their
gradients and AdamW's two moments (float32), all divided by the ranks under FSDP2; plus
bf16 activations kept for the backward pass. A Wan block keeps about ``14 * dim + 2 * ffn``
values per token (norm outputs, q, k, v, attention and cross-attention inputs and outputs,
the MLP's input and its GELU's input and output); with gradient checkpointing only each
block's input is kept, plus one block's activations while it is recomputed. Attention
itself is flash/SDPA (no L x L matrix). The estimate leaves out the CUDA context and
allocator slack (add 2-4 GB) and the text encoder and VAE (not loaded: latents are cached).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...models.portrait.dit import CONTROL_CHANNELS
from ...models.wan.latent_frames import TEMPORAL_STRIDE
from ...models.wan.config import WanConfig

GIB = 1024**3


@dataclass(frozen=True)
class MemoryEstimate:
    tokens: int
    weights_gib: float
    optimizer_gib: float  # gradients + AdamW moments (+ float32 master copies of bf16 weights)
    activations_gib: float

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.optimizer_gib + self.activations_gib


def base_parameters(c: WanConfig) -> int:
    """Parameters of the Wan DiT (within ~0.1% of the released files)."""
    d, f = c.dim, c.ffn_dim
    block = 4 * d * d + 4 * d * d + 2 * d * f + f + 9 * d + 6 * d + 4 * d  # self, cross, MLP, biases, norms, modulation
    embed = c.in_dim * d * 4 + c.text_dim * d + d * d + c.freq_dim * d + d * d + 6 * d * d
    return c.num_layers * block + embed + d * c.out_dim * 4


def control_parameters(c: WanConfig, expression_dim: int) -> int:
    d = c.dim
    return CONTROL_CHANNELS * d * 4 + (TEMPORAL_STRIDE * expression_dim + 1) * d + (d + 1) * 6 * d


def estimate(c: WanConfig, frames: int, width: int, height: int, *, params: str, checkpointing: bool,
             ranks: int = 1, fsdp: bool = False, expression_dim: int = 52, micro_batch: int = 1) -> MemoryEstimate:
    t_lat = (frames - 1) // TEMPORAL_STRIDE + 1
    tokens = (t_lat + 1) * (height // 16) * (width // 16)  # + the reference slot; patch 1x2x2 on 8x latents
    base, controls = base_parameters(c), control_parameters(c, expression_dim)
    trained = base + controls if params == "full" else controls
    frozen = 0 if params == "full" else base
    shard = ranks if fsdp else 1
    weights = (frozen * 2 + trained * 4) / shard
    optimizer = trained * 4 * 3 / shard  # gradient + two moments
    per_token_block = 14 * c.dim + 2 * c.ffn_dim
    if checkpointing:
        acts = tokens * (c.num_layers * c.dim + per_token_block) * 2
    else:
        acts = tokens * c.num_layers * per_token_block * 2
    return MemoryEstimate(tokens, weights / GIB, optimizer / GIB, acts * micro_batch / GIB)
