"""Parity of our Wan 2.1 DiT with ComfyUI's own ``comfy.ldm.wan.model.WanModel``.

Both are built at a small width, ComfyUI's gets random weights (nonzero modulation, nonzero
output head), ours loads its state dict with ``strict=True`` (identical keys), and both run
on the same inputs in float32.
"""
import pytest
import torch
from devpack import import_comfyui

import_comfyui()

import comfy.ops  # noqa: E402
from comfy.ldm.wan.model import WanModel, sinusoidal_embedding_1d  # noqa: E402

from factorportrait.models.wan import WanConfig, WanDiT  # noqa: E402
from random_weights import randomize  # noqa: E402

TOL = 1e-4
SMALL = dict(dim=64, ffn_dim=128, num_layers=2, num_heads=2, text_dim=32)  # head_dim 32: rope 12/10/10


def comfy_wan(config: WanConfig, operations=comfy.ops.disable_weight_init, seed=0) -> WanModel:
    model = WanModel(model_type=config.model_type, patch_size=config.patch_size, in_dim=config.in_dim,
                     dim=config.dim, ffn_dim=config.ffn_dim, freq_dim=config.freq_dim,
                     text_dim=config.text_dim, out_dim=config.out_dim, num_heads=config.num_heads,
                     num_layers=config.num_layers, qk_norm=config.qk_norm,
                     cross_attn_norm=config.cross_attn_norm, eps=config.eps,
                     device="cpu", dtype=torch.float32, operations=operations)
    randomize(model, seed)
    return model.eval()


def ours_from(comfy_model: WanModel, config: WanConfig, **kwargs) -> WanDiT:
    ours = WanDiT(config, **kwargs)
    ours.load_state_dict(comfy_model.state_dict(), strict=True)
    return ours.eval()


def inputs(config: WanConfig, batch=2, frames=3, height=8, width=8, text_len=7, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.in_dim, frames, height, width, generator=gen)
    context = torch.randn(batch, text_len, config.text_dim, generator=gen)
    timestep = torch.tensor([500.0, 937.5, 12.25, 0.0][:batch])
    return x, timestep, context


def max_diff(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def test_state_dict_keys_identical():
    config = WanConfig(**SMALL)
    theirs = comfy_wan(config).state_dict()
    ours = WanDiT(config).state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


@pytest.mark.parametrize("batch,frames,height,width", [(1, 1, 8, 8), (2, 3, 8, 8), (1, 3, 6, 10)])
def test_t2v_matches_comfyui(batch, frames, height, width):
    config = WanConfig(**SMALL)
    theirs = comfy_wan(config)
    ours = ours_from(theirs, config)
    x, timestep, context = inputs(config, batch, frames, height, width)
    with torch.no_grad():
        ref = theirs(x, timestep, context)
        out = ours(x, timestep, context)
    assert ref.abs().max() > 0.1  # a real signal, not a zero head
    diff = max_diff(out, ref)
    print(f"t2v B={batch} T={frames} {height}x{width}: max |ours - ComfyUI| = {diff:.2e}")
    assert diff <= TOL


def test_i2v_matches_comfyui():
    config = WanConfig(**SMALL, in_dim=36, model_type="i2v")
    theirs = comfy_wan(config)
    ours = ours_from(theirs, config)
    x, timestep, context = inputs(config)
    clip_fea = torch.randn(2, 257, 1280, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = theirs(x, timestep, context, clip_fea=clip_fea)
        out = ours(x, timestep, context, clip_fea=clip_fea)
    diff = max_diff(out, ref)
    print(f"i2v: max |ours - ComfyUI| = {diff:.2e}")
    assert diff <= TOL


def test_fp8_storage_matches_comfyui_manual_cast():
    """Linear weights stored as float8_e4m3fn, computed in float32: ComfyUI's manual_cast
    ops do the same cast, so both see identical (fp8-representable) weights."""
    config = WanConfig(**SMALL)
    theirs = comfy_wan(config, operations=comfy.ops.manual_cast)
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(m.weight.to(torch.float8_e4m3fn).float())
    ours = ours_from(theirs, config, storage_dtype=torch.float8_e4m3fn)
    assert ours.blocks[0].ffn[0].weight.dtype == torch.float8_e4m3fn
    assert ours.blocks[0].modulation.dtype == torch.float32
    x, timestep, context = inputs(config)
    with torch.no_grad():
        diff = max_diff(ours(x, timestep, context), theirs(x, timestep, context))
    print(f"fp8 storage: max |ours - ComfyUI| = {diff:.2e}")
    assert diff <= TOL


def test_modulation_offset_matches_comfyui_per_frame_timesteps():
    """ComfyUI's Wan 2.2-style per-frame timestep ``[B, T]`` modulates each latent frame's
    tokens with its own e0. With the head held frame-agnostic (at the base timestep, as
    ours is), that equals our base timestep plus ``modulation_offset = e0(t_f) - e0(t)``."""
    config = WanConfig(**SMALL)
    theirs = comfy_wan(config)
    ours = ours_from(theirs, config)
    x, _, context = inputs(config, batch=2, frames=3)
    base_t = torch.tensor([500.0, 300.0])
    frame_t = torch.tensor([[500.0, 420.0, 610.0], [300.0, 20.0, 999.0]])

    with torch.no_grad():
        e_base = theirs.time_embedding(sinusoidal_embedding_1d(config.freq_dim, base_t)).unsqueeze(1)
        hook = theirs.head.register_forward_pre_hook(lambda mod, args: (args[0], e_base))
        try:
            ref = theirs(x, frame_t, context)
        finally:
            hook.remove()
        _, e0_frames = ours.time_embed(frame_t.flatten())
        _, e0_base = ours.time_embed(base_t)
        offset = e0_frames.view(2, 3, 6, config.dim) - e0_base[:, None]
        out = ours(x, base_t, context, modulation_offset=offset)
        plain = ours(x, base_t, context)
    diff = max_diff(out, ref)
    print(f"per-frame modulation: max |ours - ComfyUI| = {diff:.2e}")
    assert diff <= TOL
    assert max_diff(out, plain) > 1e-2  # the offsets really changed the result


def test_constant_offset_equals_shifted_e0():
    """An offset equal for all frames is the same as adding it to e0, i.e. to the bias of
    the time projection (checked against ComfyUI with that bias shifted)."""
    config = WanConfig(**SMALL)
    theirs = comfy_wan(config)
    ours = ours_from(theirs, config)
    x, timestep, context = inputs(config, batch=1)
    delta = 0.05 * torch.randn(6, config.dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = ours(x, timestep, context, modulation_offset=delta.expand(1, 3, 6, config.dim))
        theirs.time_projection[1].bias += delta.flatten()
        ref = theirs(x, timestep, context)
    assert max_diff(out, ref) <= TOL


def test_bf16_compute_error_no_worse_than_comfyui():
    """In bf16 neither matches fp32 exactly; ours (norms in float32, as the original Wan)
    must be at least as close to the fp32 result as ComfyUI's own bf16 run."""
    config = WanConfig(**SMALL)
    theirs = comfy_wan(config)
    ours = ours_from(theirs, config, dtype=torch.bfloat16)
    x, timestep, context = inputs(config)
    with torch.no_grad():
        ref = theirs(x, timestep, context)
        theirs_bf16 = theirs.to(torch.bfloat16)
        theirs_bf16.patch_embedding.float()  # ComfyUI keeps this one layer in float32
        comfy_err = max_diff(theirs_bf16(x.bfloat16(), timestep, context.bfloat16()).float(), ref)
        out = ours(x, timestep, context)
    assert out.dtype == torch.float32  # x's dtype
    our_err = max_diff(out, ref)
    print(f"bf16: max error vs fp32: ours {our_err:.3e}, ComfyUI {comfy_err:.3e}")
    assert our_err <= 1.25 * comfy_err
