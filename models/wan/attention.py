"""Multi-head attention of the Wan DiT, with a choice of kernel.

- ``sdpa`` (default): PyTorch's ``scaled_dot_product_attention``, which picks flash,
  memory-efficient or math kernels itself; runs everywhere.
- ``sage``: SageAttention (``sageattention.sageattn``, INT8 QK / FP8 PV on NVIDIA GPUs).
- ``flash``: FlashAttention 2/3 (``flash_attn.flash_attn_func``, fp16/bf16 on NVIDIA GPUs).

The optional kernels are never required: choosing one that is not installed is an
:class:`InputError` that says how to install it or to pick ``sdpa``. They are CUDA kernels:
on other devices the attention stays ``sdpa``. The choice holds for
a block of code (:func:`use_attention`), so one model can serve graphs with different
choices.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib

import torch
import torch.nn.functional as F

from ..errors import InputError

BACKENDS = ("sdpa", "sage", "flash")
_INSTALL = {"sage": "pip install sageattention", "flash": "pip install flash-attn --no-build-isolation"}
_current: contextvars.ContextVar[str] = contextvars.ContextVar("wan_attention_backend", default="sdpa")


def _kernel(name: str):
    """The attention function of an optional package: ``[B, L, heads, head_dim]`` layout."""
    module, function = {"sage": ("sageattention", "sageattn"), "flash": ("flash_attn", "flash_attn_func")}[name]
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as e:
        raise InputError("attention", f"'{name}' attention needs the {module} package, which is not "
                         f"usable here ({e}); install it ({_INSTALL[name]}) or choose 'sdpa'.") from None


def check_backend(name: str) -> None:
    """Raise an :class:`InputError` unless ``name`` is a backend usable here."""
    if name not in BACKENDS:
        raise InputError("attention", f"unknown attention {name!r}; choose one of {', '.join(BACKENDS)}.")
    if name != "sdpa":
        _kernel(name)


@contextlib.contextmanager
def use_attention(name: str):
    """Run the DiT's attention with backend ``name`` inside the block."""
    check_backend(name)
    token = _current.set(name)
    try:
        yield
    finally:
        _current.reset(token)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``q [B, Lq, heads, head_dim]``, ``k``/``v [B, Lk, heads, head_dim]`` -> ``[B, Lq, dim]``."""
    backend = _current.get()
    if backend == "sdpa" or q.device.type != "cuda":  # the optional kernels are CUDA-only
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2).flatten(2)
    dtype = q.dtype
    if backend == "flash" and dtype not in (torch.float16, torch.bfloat16):  # flash has no fp32 kernel
        q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    if backend == "sage":
        out = _kernel("sage")(q, k, v, tensor_layout="NHD")
    else:
        out = _kernel("flash")(q, k, v)
    return out.to(dtype).flatten(2)
