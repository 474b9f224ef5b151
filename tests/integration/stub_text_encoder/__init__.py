"""Test-only ComfyUI custom node: "Test Text Encode (CI stub)".

Why it exists: the real Wan workflows encode their prompts with ``CLIPLoader`` (type
``wan``, ``umt5_xxl_fp8_e4m3fn_scaled.safetensors``) and ``CLIPTextEncode``. umt5-xxl has
~5.7 B parameters and ComfyUI builds it from a fixed config
(``comfy/text_encoders/umt5_config_xxl.json``), so a tiny random state dict does not load
and the real one does not fit the CPU-only CI. CI therefore swaps only the text
encoding: this node stands in for ``CLIPLoader`` + ``CLIPTextEncode`` and gives a
CONDITIONING of the shape the Wan diffusion models read (``[1, tokens, 4096]``, umt5-xxl's
width), made deterministically from the text: the same text gives the same tensor in
every process (seeded from ``zlib.crc32`` of its UTF-8 bytes, not Python's salted
``hash``), a different text gives a different one. Values are N(0, 0.1).

Only CI loads it (``tests/integration/conftest.py`` links this folder into the test
server's ``custom_nodes``); it is not part of the FactorPortrait pack.
"""
from __future__ import annotations

import zlib

import torch

TEXT_DIM = 4096  # umt5-xxl's d_model, the Wan DiT's text_dim
STD = 0.1


def encode_text(text: str, tokens: int = 16) -> torch.Tensor:
    """``[1, tokens, 4096]`` float32, N(0, 0.1), a function of ``text`` and ``tokens`` only."""
    gen = torch.Generator().manual_seed(zlib.crc32(text.encode("utf-8")))
    return torch.randn(1, tokens, TEXT_DIM, generator=gen) * STD


class FactorPortraitTestTextEncode:
    """CI stand-in for CLIPLoader (type "wan") + CLIPTextEncode: a deterministic
    pseudo-embedding of the text, no text encoder model needed."""

    CATEGORY = "testing"
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING",)
    DESCRIPTION = ("CI only: a deterministic random text conditioning [1, tokens, 4096] "
                   "instead of umt5-xxl (CLIPLoader type wan + CLIPTextEncode).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": ("STRING", {"multiline": True, "dynamicPrompts": False, "default": ""}),
            "tokens": ("INT", {"default": 16, "min": 1, "max": 512,
                               "tooltip": "Sequence length (the real Wan encoder gives up to 512)."}),
        }}

    def encode(self, text: str, tokens: int = 16):
        return ([[encode_text(text, tokens), {}]],)


NODE_CLASS_MAPPINGS = {"FactorPortraitTestTextEncode": FactorPortraitTestTextEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"FactorPortraitTestTextEncode": "Test Text Encode (CI stub)"}
