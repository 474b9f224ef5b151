"""The weight change of one layer from its LoRA tensors: LoRA, LoHa, LoKr and full differences.

Every adapter gives ``delta``, the change of the layer's weight at strength 1 (float32,
the weight's shape), with the scales of ComfyUI and LyCORIS:

    lora    up @ down * alpha / rank                       (rank = down.shape[0])
    loha    (w1_a @ w1_b) * (w2_a @ w2_b) * alpha / rank    (rank = w1_b.shape[0])
    lokr    kron(w1, w2) * alpha / rank                     (w1, w2 given or as a @ b;
                                                             rank of the factored one, else scale 1)
    diff    the difference itself (lightx2v's ``.diff``), and ``.diff_b`` for the bias

A missing ``alpha`` means scale 1. LoRA factors also keep ``(down, up, scale)`` so that an
unmerged layer can add ``scale * up(down(x))`` without forming the full matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

LORA_DOWN = ("lora_down.weight", "lora_A.weight", "lora_A.default.weight", "lora.down.weight")
LORA_UP = ("lora_up.weight", "lora_B.weight", "lora_B.default.weight", "lora.up.weight")
LOHA = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")
LOKR = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b")
# Roles that no adapter here reads: named in the report rather than dropped.
UNSUPPORTED = ("lora_mid.weight", "hada_t1", "hada_t2", "lokr_t2", "dora_scale", "set_weight")


@dataclass
class LayerAdapter:
    """The change of one layer. ``kind``: lora | loha | lokr | diff."""

    kind: str
    delta_weight: torch.Tensor | None  # [out, in, ...] at strength 1, or None (bias only)
    delta_bias: torch.Tensor | None = None  # [out], from ``.diff_b``
    factors: tuple[torch.Tensor, torch.Tensor, float] | None = None  # lora: (down, up, scale)


def _first(roles: dict[str, torch.Tensor], names) -> torch.Tensor | None:
    return next((roles[n] for n in names if n in roles), None)


def _scale(roles: dict[str, torch.Tensor], rank: int | None) -> float:
    alpha = roles.get("alpha")
    return 1.0 if alpha is None or rank is None else float(alpha) / rank


def adapter_of(roles: dict[str, torch.Tensor], weight_shape: torch.Size) -> LayerAdapter:
    """The adapter of one layer from its tensors by role (``split_key``'s roles); raises
    ValueError when they do not describe a change of a ``weight_shape`` weight."""
    f = {k: v.float() for k, v in roles.items()}
    delta, factors, kind = None, None, None
    down, up = _first(f, LORA_DOWN), _first(f, LORA_UP)
    if down is not None or up is not None:
        if down is None or up is None:
            raise ValueError("a LoRA needs both its down (A) and up (B) matrix")
        scale = _scale(f, down.shape[0])
        delta = (up.flatten(1) @ down.flatten(1)) * scale
        kind, factors = "lora", (down.flatten(1), up.flatten(1), scale)
    elif any(n in f for n in LOHA):
        if not all(n in f for n in LOHA):
            raise ValueError(f"a LoHa needs all of {', '.join(LOHA)}")
        delta = (f["hada_w1_a"] @ f["hada_w1_b"]) * (f["hada_w2_a"] @ f["hada_w2_b"])
        delta, kind = delta * _scale(f, f["hada_w1_b"].shape[0]), "loha"
    elif any(n in f for n in LOKR):
        rank = None
        w1 = f.get("lokr_w1")
        if w1 is None:
            w1, rank = f["lokr_w1_a"] @ f["lokr_w1_b"], f["lokr_w1_b"].shape[0]
        w2 = f.get("lokr_w2")
        if w2 is None:
            w2, rank = f["lokr_w2_a"] @ f["lokr_w2_b"], f["lokr_w2_b"].shape[0]
        delta, kind = torch.kron(w1, w2) * _scale(f, rank), "lokr"
    elif "diff" in f:
        delta, kind = f["diff"], "diff"
    bias = f.get("diff_b")
    if delta is None and bias is None:
        raise ValueError("no LoRA, LoHa, LoKr or difference tensors")
    if delta is not None:
        if delta.numel() != torch.Size(weight_shape).numel():
            raise ValueError(f"its change has {list(delta.shape)} values, the layer's weight is "
                             f"{list(weight_shape)}")
        delta = delta.reshape(weight_shape)
    return LayerAdapter(kind or "diff", delta, bias, factors)
