"""Block streaming: keep the transformer blocks in CPU memory, run them on the GPU.

The 14B Wan DiT holds about 14 GB of block weights even in fp8, 28 GB in bf16: more than a
24 GB card has beside the activations. :func:`stream_blocks` keeps ``model.blocks`` in CPU
memory (pinned, for fast asynchronous copies) and everything else (patch, text and time
embeddings, head, FactorPortrait's control layers) on the GPU. ``run_blocks`` then copies
each block's weights to the GPU just before the block runs, in their storage dtype (fp8
copies half the bytes of bf16; the layers cast on use), and drops the copy afterwards:

    copy stream:     load 0 | load 1     | load 2     | load 3 ...
    compute stream:          | block 0    | block 1    | block 2 ...    (prefetch = 1)

GPU memory for weights is bounded by ``rest + (1 + prefetch) * one block`` (plus the
per-layer casts to the compute dtype): block i's copy is only reused for block
i + 1 + prefetch once block i is known (CPU-side) to have finished. The module's own
parameters are never replaced, only passed in place of the block's for the call
(``torch.func.functional_call``), so ``state_dict()`` keeps the blocks on the CPU, and
:meth:`BlockStreamer.remove` switches streaming off again. Inference only: the weight
copies are detached, so the blocks are frozen (layers outside them may still train).

On a CPU ``device`` the same code path runs without streams (each block is copied into a
fresh CPU tensor first), which is how the tests check it.
"""
from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

import torch
import torch.nn as nn
from torch.func import functional_call

from .config import WanConfig
from .dit import Rope, WanDiT

Weights = dict[str, torch.Tensor]


class BlockStreamer:
    """Streams ``model.blocks`` to ``device`` during ``model.run_blocks``; see the module
    docstring. Made by :func:`stream_blocks`; also a context manager that removes itself."""

    def __init__(self, model: WanDiT, device, prefetch: int = 1, pin: bool | None = None):
        if int(prefetch) != prefetch or prefetch < 0:
            raise ValueError(f"prefetch must be a whole number >= 0, got {prefetch!r}")
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.model, self.device, self.prefetch = model, device, int(prefetch)
        self.cuda = device.type == "cuda"
        self.pin = self.cuda if pin is None else pin
        self.copy_stream = torch.cuda.Stream(device) if self.cuda else None
        # where the weights were, so that remove() can put them back
        self.blocks_home = _device_of(model.blocks)
        self.rest_home = _device_of(*_non_block_modules(model))

    def attach(self) -> "BlockStreamer":
        with torch.no_grad(), torch.inference_mode(False):
            _move(self.model.blocks, torch.device("cpu"), pin=self.pin)
            _move_non_blocks(self.model, self.device)
        self.model.run_blocks = self.run_blocks  # instance attribute: shadows WanDiT.run_blocks
        return self

    def remove(self) -> None:
        """Switch streaming off: the model runs its blocks in place again, with its blocks
        and other weights moved back to the devices they were on before streaming."""
        if self.model.__dict__.get("run_blocks") == self.run_blocks:
            del self.model.run_blocks
        with torch.no_grad(), torch.inference_mode(False):
            _move(self.model.blocks, self.blocks_home)
            _move_non_blocks(self.model, self.rest_home)

    def __enter__(self) -> "BlockStreamer":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def load(self, block: nn.Module) -> tuple[Weights, torch.cuda.Event | None]:
        """Start copying ``block``'s weights to the device -> (copies, event set when done)."""
        def copy(t: torch.Tensor) -> torch.Tensor:
            # empty + copy_: a real copy even when device is the CPU (t.to would alias t)
            return torch.empty_like(t, device=self.device).copy_(t.detach(), non_blocking=True)

        if not self.cuda:
            return {name: copy(t) for name, t in _weights(block)}, None
        with torch.cuda.stream(self.copy_stream):
            weights = {name: copy(t) for name, t in _weights(block)}
            ready = torch.cuda.Event()
            ready.record(self.copy_stream)
        return weights, ready

    @staticmethod
    def wait(done: torch.cuda.Event | None) -> None:
        """Block the CPU until a block that ran has finished on the GPU."""
        if done is not None:
            done.synchronize()

    def run_blocks(self, x: torch.Tensor, e0: torch.Tensor, context: torch.Tensor,
                   context_img: torch.Tensor | None, rope: Rope) -> torch.Tensor:
        """:meth:`WanDiT.run_blocks` with streamed weights; ``x [B, L, dim]`` on ``device``."""
        if x.device != self.device:
            raise ValueError(f"the model streams its blocks to {self.device}, but its input is on "
                             f"{x.device}; pass the latents on {self.device}")
        blocks = self.model.blocks
        compute = torch.cuda.current_stream(self.device) if self.cuda else None
        loaded: deque[tuple[Weights, torch.cuda.Event | None]] = deque()  # blocks next, next+1, ...
        running: deque[torch.cuda.Event | None] = deque()  # ran, weights not known free yet
        next_load = 0

        def load_until(last: int) -> None:
            nonlocal next_load
            while next_load <= min(last, len(blocks) - 1):
                while len(loaded) + len(running) >= 1 + self.prefetch:
                    self.wait(running.popleft())  # the oldest block's copy is free after this
                loaded.append(self.load(blocks[next_load]))
                next_load += 1

        for i, block in enumerate(blocks):
            load_until(i)  # only block 0, or every block when prefetch = 0
            weights, ready = loaded.popleft()
            if ready is not None:
                compute.wait_event(ready)
            x = functional_call(block, weights, (x, e0, context, context_img, rope), tie_weights=False)
            done = None
            if self.cuda:
                # the copies were allocated on the copy stream: don't let the allocator
                # reuse them before this block's kernels have run
                for t in weights.values():
                    t.record_stream(compute)
                done = torch.cuda.Event()
                done.record(compute)
            del weights
            running.append(done)
            load_until(i + self.prefetch)  # overlaps block i, which is queued already
        return x


def stream_blocks(model: WanDiT, device, prefetch: int = 1, pin: bool | None = None) -> BlockStreamer:
    """Keep ``model.blocks`` in CPU memory and stream them to ``device`` block by block while
    the model runs; move all other weights to ``device``. ``prefetch``: blocks copied ahead
    of the running one (GPU memory: ``1 + prefetch`` blocks). ``pin``: page-lock the CPU
    copy for asynchronous transfers (default: when ``device`` is a GPU; it takes the blocks'
    size of unswappable RAM). Returns the streamer: ``.remove()`` (or leaving a ``with``
    block) switches streaming off. Streaming a model that streams already replaces the old
    streamer."""
    old = getattr(model.__dict__.get("run_blocks"), "__self__", None)
    if isinstance(old, BlockStreamer):
        old.remove()
    return BlockStreamer(model, device, prefetch, pin).attach()


def block_streamer(model: WanDiT) -> BlockStreamer | None:
    """The model's active streamer, or None."""
    streamer = getattr(model.__dict__.get("run_blocks"), "__self__", None)
    return streamer if isinstance(streamer, BlockStreamer) else None


class WeightBytes(NamedTuple):
    """Bytes of weights in the transformer blocks and in the rest of the model."""

    blocks: int
    rest: int
    num_layers: int

    @property
    def total(self) -> int:
        return self.blocks + self.rest

    @property
    def per_block(self) -> int:
        return self.blocks // max(self.num_layers, 1)

    def resident(self, prefetch: int | None = None) -> int:
        """Weight bytes on the GPU: everything (None), or streamed with ``prefetch``."""
        if prefetch is None:
            return self.total
        return self.rest + min(1 + prefetch, self.num_layers) * self.per_block


def estimate_weight_bytes(config: WanConfig, storage_dtype: torch.dtype,
                          dtype: torch.dtype | None = None) -> WeightBytes:
    """Weight bytes of a :class:`WanDiT` of ``config``, computed from the shapes alone.

    Linear weights are in ``storage_dtype``; everything else (biases, norms, modulation,
    patch embedding) in the compute ``dtype``, by default ``storage_dtype`` itself, or
    bf16 when that is an 8-bit type. FactorPortrait's extra layers (outside the blocks)
    are not included: :func:`model_weight_bytes` counts a built (or meta) model exactly.
    """
    if dtype is None:
        dtype = storage_dtype if storage_dtype.itemsize >= 2 else torch.bfloat16
    c, w, b = config, storage_dtype.itemsize, dtype.itemsize

    def linear(n_in: int, n_out: int) -> int:
        return n_in * n_out * w + n_out * b

    qk_norm = 2 * c.dim * b if c.qk_norm else 0
    attention = 4 * linear(c.dim, c.dim) + qk_norm
    cross = attention
    if c.model_type == "i2v":  # k_img, v_img and norm_k_img
        cross += 2 * linear(c.dim, c.dim) + (c.dim * b if c.qk_norm else 0)
    block = (attention + cross
             + (2 * c.dim * b if c.cross_attn_norm else 0)  # norm3 weight and bias
             + linear(c.dim, c.ffn_dim) + linear(c.ffn_dim, c.dim)
             + 6 * c.dim * b)  # modulation
    patch = math.prod(c.patch_size)
    rest = (c.in_dim * patch * c.dim * b + c.dim * b  # patch embedding (a Conv3d, not cast)
            + linear(c.text_dim, c.dim) + linear(c.dim, c.dim)  # text embedding
            + linear(c.freq_dim, c.dim) + linear(c.dim, c.dim)  # time embedding
            + linear(c.dim, 6 * c.dim)  # time projection
            + linear(c.dim, patch * c.out_dim) + 2 * c.dim * b)  # head and its modulation
    if c.model_type == "i2v":  # image embedding: LayerNorm, Linear, GELU, Linear, LayerNorm
        rest += (2 * c.image_dim * b + linear(c.image_dim, c.image_dim)
                 + linear(c.image_dim, c.dim) + 2 * c.dim * b)
    return WeightBytes(c.num_layers * block, rest, c.num_layers)


def model_weight_bytes(model: WanDiT) -> WeightBytes:
    """The actual bytes of a model's parameters and buffers, blocks vs the rest (works on
    the meta device too)."""
    def nbytes(tensors) -> int:
        return sum(t.numel() * t.element_size() for t in tensors)

    total = nbytes(model.parameters()) + nbytes(model.buffers())
    blocks = nbytes(model.blocks.parameters()) + nbytes(model.blocks.buffers())
    return WeightBytes(blocks, total - blocks, len(model.blocks))


def _weights(module: nn.Module):
    """(name, tensor) of every parameter and buffer of ``module``."""
    yield from module.named_parameters()
    yield from module.named_buffers()


def _non_block_modules(model: WanDiT) -> list[nn.Module]:
    return [m for m in model.children() if m is not model.blocks]


def _device_of(*modules: nn.Module) -> torch.device:
    for m in modules:
        for _, t in _weights(m):
            return t.device
    return torch.device("cpu")


def _move(module: nn.Module, device: torch.device, pin: bool = False) -> None:
    """Move ``module``'s weights in place (the Parameter objects stay, only their data
    changes), optionally into pinned CPU memory."""
    for _, t in _weights(module):
        data = t.data.to(device)
        if pin and not data.is_pinned():
            data = data.pin_memory()
        t.data = data


def _move_non_blocks(model: WanDiT, device: torch.device) -> None:
    for m in _non_block_modules(model):
        _move(m, device)
    for t in (*model._parameters.values(), *model._buffers.values()):  # the model's own, if any
        if t is not None:
            t.data = t.data.to(device)
