"""A Wan 2.1 VAE of any width, built from ComfyUI's own ``WanVAE`` class.

ComfyUI's stock Load VAE recognises a Wan 2.1 VAE by its keys and reads the width ``dim``
from ``decoder.head.0.gamma`` (``comfy/sd.py``), so a VAE trained here at a small width
loads and decodes there unchanged, and a workflow built on it runs with the real
``wan_2.1_vae.safetensors`` too. The architecture is ComfyUI's: training code imports it
rather than re-implementing it, so the key layout cannot drift.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..comfyui_import import import_comfy

# ComfyUI's Wan 2.1 settings (comfy/sd.py, "Wan 2.1 VAE"): only ``dim`` is free.
WAN21_VAE = {"z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_scales": [],
             "temperal_downsample": [False, True, True], "dropout": 0.0}


def build_wan_vae(dim: int, *, seed: int = 0, comfyui_dir=None) -> nn.Module:
    """A freshly initialised Wan 2.1 VAE of width ``dim`` (the release: 96).

    ComfyUI's ops skip parameter initialisation (its weights always come from files), so
    convolutions and linears get PyTorch's default init here and RMS-norm scales 1."""
    import_comfy(comfyui_dir)
    import comfy.ldm.wan.vae as wan_vae

    torch.manual_seed(seed)
    model = wan_vae.WanVAE(dim=dim, **WAN21_VAE)
    with torch.no_grad():
        for module in model.modules():
            for base in (nn.Conv2d, nn.Conv3d, nn.Linear):
                if isinstance(module, base):
                    base.reset_parameters(module)
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)
    return model
