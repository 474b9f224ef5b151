"""Wan 2.1 in plain PyTorch: the video diffusion transformer and the VAE's latent frames.

The DiT is state-dict compatible with the original release and ComfyUI's repackaged files.
"""
from .config import I2V_14B, PRESETS, T2V_14B, T2V_1_3B, WanConfig, strip_prefix
from .dit import WanDiT

__all__ = ["WanConfig", "WanDiT", "strip_prefix", "PRESETS", "T2V_1_3B", "T2V_14B", "I2V_14B"]
