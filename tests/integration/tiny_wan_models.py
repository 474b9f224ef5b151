"""Tiny random Wan diffusion models for CPU runs of ComfyUI's own Wan nodes.

ComfyUI's ``UNETLoader`` reads a diffusion model file's keys and picks the model class
from them (``comfy/model_detection.py``), so each file here is built from ComfyUI's own
model class, in its key layout (the one of the official repackaged file whose name it
carries), at a tiny width (dim 128: ComfyUI derives one attention head, ``dim // 128``):

- :data:`VACE_NAME`: ``VaceWanModel``; ``vace_patch_embedding`` (96 input channels) makes
  ComfyUI pick ``WAN21_Vace`` (model and config);
- :data:`FUN_CONTROL_NAME`: ``WanModel`` i2v; ``img_emb`` (i2v) with a 48-channel
  ``patch_embedding`` makes it pick config ``WAN21_FunControl2V``, model ``WAN21``;
- :data:`FUN_CAMERA_NAME`: ``CameraWanModel``; ``control_adapter`` and ``img_emb`` with a
  32-channel ``patch_embedding`` make it pick ``WAN21_Camera``;
- :data:`ANIMATE_NAME`: ``AnimateWanModel``; ``face_adapter.fuser_blocks.0`` (36-channel
  ``patch_embedding``) makes it pick ``WAN22_Animate``.

Text stays 4096 wide (umt5-xxl's width; CI feeds it through the stub text encoder of
``tests/integration/stub_text_encoder``). Keys carry no ``model.diffusion_model.``
prefix, as in ComfyUI's repackaged ``split_files/diffusion_models`` (``UNETLoader``
accepts both). Each file is stored in the dtype its name says (``bf16`` / ``fp16``);
ComfyUI on the CPU computes in float32 whatever the file holds.

Weights are random and deterministic (:data:`SEED`): ``random_weights.randomize``
(N(0, 1/fan_in) matrices, norm scales 1 + N(0, 0.1), biases and modulation N(0, 0.1)),
so no parameter is zero and every input reaches the output, except the Animate model's
StyleGAN-style ``Equal*`` layers, which scale their weights by 1/sqrt(fan_in) at run time
and so get N(0, 1) weights as in their own initialisation (with N(0, 1/fan_in) the face
signal vanishes in the motion encoder's ~20 layers: two different faces give the same
motion vector).

Sizes: three files are 2-8 MB. The Animate file is ~78 MB: its face path (the
``motion_encoder``, a 512x512 face appearance encoder of 22.7 M parameters, and the
``face_encoder``, 12.7 M) has fixed widths in ComfyUI's class, independent of ``dim``,
and a state dict without them would leave those weights uninitialised. Its model also
needs ``num_layers >= 5``: ComfyUI builds ``num_layers // 5`` face fuser blocks and
detection looks for the first one.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

# Names of ComfyUI's official repackaged files (Comfy-Org/Wan_2.1_ComfyUI_repackaged and
# Comfy-Org/Wan_2.2_ComfyUI_Repackaged, split_files/diffusion_models), as the official
# workflow templates load them.
VACE_NAME = "wan2.1_vace_1.3B_fp16.safetensors"
FUN_CONTROL_NAME = "wan2.1_fun_control_1.3B_bf16.safetensors"
FUN_CAMERA_NAME = "wan2.1_fun_camera_v1.1_1.3B_bf16.safetensors"
ANIMATE_NAME = "wan2.2_animate_14B_bf16.safetensors"

SEED = 20251213
TINY = dict(dim=128, ffn_dim=64, freq_dim=256, text_dim=4096, out_dim=16, num_heads=1,
            patch_size=(1, 2, 2), window_size=(-1, -1), qk_norm=True, cross_attn_norm=True,
            eps=1e-6)
VACE_IN_DIM = 96  # 16 inactive + 16 reactive latent channels + 64 (8x8) mask channels
FUN_CONTROL_IN_DIM = 48  # noise 16 + control video latent 16 + start image latent 16
FUN_CAMERA_IN_DIM = 32  # noise 16 + start image latent 16
CAMERA_ADAPTER_IN_DIM = 24  # Plucker rays: 6 channels x 4 frames per latent frame
ANIMATE_IN_DIM = 36  # noise 16 + mask 4 + reference/background latent 16
ANIMATE_LAYERS = 5  # num_layers // 5 face fuser blocks: at least one

# Upper bounds for the written files (bytes), checked by the tests.
MAX_BYTES = {
    VACE_NAME: 20_000_000,
    FUN_CONTROL_NAME: 20_000_000,
    FUN_CAMERA_NAME: 20_000_000,
    ANIMATE_NAME: 90_000_000,
}


def _comfy_modules():
    from devpack import import_comfyui

    import_comfyui()
    import comfy.ldm.wan.model as wan
    import comfy.ldm.wan.model_animate as wan_animate
    import comfy.ops

    return wan, wan_animate, comfy.ops.disable_weight_init


def _randomized(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    from random_weights import randomize

    _, wan_animate, _ = _comfy_modules()
    randomize(model, SEED + seed)
    gen = torch.Generator().manual_seed(SEED + seed + 1000)
    with torch.no_grad():
        for name, module in sorted(model.named_modules()):
            if isinstance(module, (wan_animate.EqualConv2d, wan_animate.EqualLinear)):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen))
    return model.eval()


def _state_dict(model: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in model.state_dict().items():
        out[key] = value.detach().to(dtype).contiguous()
        if not out[key].float().abs().sum() > 0:
            raise AssertionError(f"{key} is all zeros in {dtype}")
    return out


def tiny_vace_model() -> torch.nn.Module:
    """Wan 2.1 VACE (``VaceWanModel``): one DiT block and one VACE block."""
    wan, _, ops = _comfy_modules()
    model = wan.VaceWanModel(in_dim=16, num_layers=1, vace_layers=1, vace_in_dim=VACE_IN_DIM,
                             operations=ops, device="cpu", dtype=torch.float32, **TINY)
    return _randomized(model, 1)


def tiny_fun_control_model() -> torch.nn.Module:
    """Wan 2.1 Fun Control (``WanModel`` i2v with a 48-channel patch embedding)."""
    wan, _, ops = _comfy_modules()
    model = wan.WanModel(model_type="i2v", in_dim=FUN_CONTROL_IN_DIM, num_layers=1,
                         operations=ops, device="cpu", dtype=torch.float32, **TINY)
    return _randomized(model, 2)


def tiny_fun_camera_model() -> torch.nn.Module:
    """Wan 2.1 Fun Camera v1.1 (``CameraWanModel``, i2v, with the camera ``control_adapter``)."""
    wan, _, ops = _comfy_modules()
    model = wan.CameraWanModel(model_type="camera", in_dim=FUN_CAMERA_IN_DIM, num_layers=1,
                               in_dim_control_adapter=CAMERA_ADAPTER_IN_DIM,
                               operations=ops, device="cpu", dtype=torch.float32, **TINY)
    return _randomized(model, 3)


def tiny_animate_model() -> torch.nn.Module:
    """Wan 2.2 Animate (``AnimateWanModel``): five DiT blocks, one face fuser block, the
    full-size motion and face encoders."""
    _, wan_animate, ops = _comfy_modules()
    model = wan_animate.AnimateWanModel(in_dim=ANIMATE_IN_DIM, num_layers=ANIMATE_LAYERS,
                                        operations=ops, device="cpu", dtype=torch.float32, **TINY)
    return _randomized(model, 4)


def tiny_wan_state_dicts() -> dict[str, dict[str, torch.Tensor]]:
    """``{file name: state dict}`` of the four tiny models, in their files' dtypes."""
    return {
        VACE_NAME: _state_dict(tiny_vace_model(), torch.float16),
        FUN_CONTROL_NAME: _state_dict(tiny_fun_control_model(), torch.bfloat16),
        FUN_CAMERA_NAME: _state_dict(tiny_fun_camera_model(), torch.bfloat16),
        ANIMATE_NAME: _state_dict(tiny_animate_model(), torch.bfloat16),
    }


def write_tiny_wan_models(models_dir: Path) -> dict[str, Path]:
    """Write the four tiny models into ``models_dir/diffusion_models/`` (``models_dir`` is a
    ComfyUI ``models`` folder); returns their paths by file name."""
    folder = Path(models_dir) / "diffusion_models"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, sd in tiny_wan_state_dicts().items():
        paths[name] = folder / name
        save_file(sd, paths[name])
    return paths
