"""torch.compile for the DiT's transformer blocks.

Each block is compiled in place (``nn.Module.compile``): every block has the same code, so
Dynamo traces it once and reuses the graph for all blocks and steps while shapes stay the
same; the parameters are graph inputs, so LoRAs merged into them take effect without a
recompile. Compiling the blocks rather than the whole model keeps the embeddings, the
condition fusion and any block streaming in eager mode, as WanVideoWrapper and KJNodes'
compile nodes do.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ..errors import InputError

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class CompileSettings:
    mode: str = "default"
    dynamic: bool = False  # trace with symbolic shapes (fewer recompiles across video sizes)
    backend: str = "inductor"

    def __post_init__(self):
        if self.mode not in MODES:
            raise InputError("compile_mode", f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}.")


def set_block_compile(blocks: nn.ModuleList, settings: CompileSettings | None) -> None:
    """Compile each block with ``settings`` (None: run them eagerly again). Idempotent: a
    block already compiled with the same settings keeps its compiled code."""
    for block in blocks:
        if getattr(block, "_factorportrait_compile", None) == settings:
            continue
        block._compiled_call_impl = None  # nn.Module.compile's slot: eager again
        if settings is not None:
            block.compile(mode=settings.mode, dynamic=settings.dynamic, backend=settings.backend)
        block._factorportrait_compile = settings
