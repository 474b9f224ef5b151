"""FactorPortrait's DiT: condition-fusion layout, expression grouping, and the zero-init
identity with the Wan base model (before, and not after, a training step)."""
import json

import pytest
import torch

from factorportrait.models.errors import InputError
from factorportrait.models.portrait.dit import CONTROL_CHANNELS, FactorPortraitDiT, fuse_conditions
from factorportrait.models.wan.latent_frames import latent_frame_groups
from factorportrait.models.wan import WanConfig, WanDiT
from random_weights import randomize

TINY = WanConfig(dim=32, ffn_dim=64, num_layers=2, num_heads=2, text_dim=16)  # head_dim 16
TINY_I2V = WanConfig(dim=32, ffn_dim=64, num_layers=1, num_heads=2, text_dim=16, in_dim=36,
                     model_type="i2v", image_dim=24)
EXPR_DIM = 8
B, T, H, W = 2, 3, 4, 6  # latent frames 3 <-> 9 video frames
FRAMES = 4 * T - 3


def rand(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def controls(seed=1, zero=False):
    if zero:
        return dict(reference=torch.zeros(B, 16, 1, H, W), rays=None, normals=None,
                    expression=torch.zeros(B, FRAMES, EXPR_DIM))
    return dict(reference=rand(B, 16, 1, H, W, seed=seed), rays=rand(B, 24, T, H, W, seed=seed + 1),
                normals=rand(B, 16, T, H, W, seed=seed + 2), expression=rand(B, FRAMES, EXPR_DIM, seed=seed + 3))


def test_fused_layout_against_hand_built_tensor():
    noisy, reference = rand(B, 16, T, H, W, seed=1), rand(B, 16, 1, H, W, seed=2)
    rays, normals = rand(B, 24, T, H, W, seed=3), rand(B, 16, T, H, W, seed=4)
    noise_part, control_part = fuse_conditions(noisy, reference, rays, normals)

    expected_noise = torch.zeros(B, 16, T + 1, H, W)
    expected_control = torch.zeros(B, 56, T + 1, H, W)
    expected_control[:, 0:16, 0] = reference[:, :, 0]  # slot 0: the reference only
    for t in range(T):  # slots 1..T: noise | 0 | rays | normals
        expected_noise[:, :, t + 1] = noisy[:, :, t]
        expected_control[:, 16:40, t + 1] = rays[:, :, t]
        expected_control[:, 40:56, t + 1] = normals[:, :, t]
    assert torch.equal(noise_part, expected_noise)
    assert torch.equal(control_part, expected_control)

    # Missing rays / normals are zeros; a batch of one reference is broadcast.
    noise_part, control_part = fuse_conditions(noisy, reference[:1])
    assert torch.equal(noise_part, expected_noise)
    assert torch.equal(control_part[:, 0:16, 0], reference[:1, :, 0].expand(B, -1, -1, -1))
    assert control_part[:, 16:].abs().sum() == 0 and control_part[:, :16, 1:].abs().sum() == 0
    assert CONTROL_CHANNELS == 56


@pytest.mark.parametrize("name,kwargs,match", [
    ("rays", dict(rays=torch.zeros(B, 24, T + 1, H, W)), r"\[2, 24, 3, 4, 6\]"),
    ("normals", dict(normals=torch.zeros(B, 16, T, H, W + 2)), "normals"),
    ("reference", dict(reference=torch.zeros(B, 16, H, W)), "reference"),
])
def test_fusion_shape_errors_name_the_input(name, kwargs, match):
    args = dict(noisy=torch.zeros(B, 16, T, H, W), reference=torch.zeros(B, 16, 1, H, W)) | kwargs
    with pytest.raises(InputError, match=match) as err:
        fuse_conditions(**args)
    assert err.value.input_name == name


def base_and_portrait(config=TINY, storage_dtype=None):
    """A random Wan base (Linear weights in ``storage_dtype``) and FactorPortrait built from it."""
    base = WanDiT(config, storage_dtype=storage_dtype)
    base.load_state_dict(randomize(WanDiT(config)).state_dict())
    return base.eval(), FactorPortraitDiT.from_wan(base, EXPR_DIM).eval()


def test_state_dict_is_base_keys_plus_control_keys():
    base, portrait = base_and_portrait()
    new = set(portrait.state_dict()) - set(base.state_dict())
    assert set(base.state_dict()) <= set(portrait.state_dict())
    assert new == {"control_embedding.weight", "expression_controller.0.weight",
                   "expression_controller.0.bias", "expression_controller.2.weight",
                   "expression_controller.2.bias"}
    assert portrait.control_embedding.weight.shape == (32, 56, 1, 2, 2)


@pytest.mark.parametrize("config,storage", [(TINY, None), (TINY, torch.float8_e4m3fn), (TINY_I2V, None)],
                         ids=["t2v", "t2v-fp8-storage", "i2v"])
def test_zero_controls_reproduce_the_base_model_exactly(config, storage):
    base, portrait = base_and_portrait(config, storage)
    if storage is not None:
        assert portrait.blocks[0].ffn[0].weight.dtype == storage  # base storage kept
        assert portrait.expression_controller[0].weight.dtype == torch.float32
    noisy, timestep, context = rand(B, 16, T, H, W), torch.tensor([700.0, 250.0]), rand(B, 5, 16)
    zero = controls(zero=True)
    noise_part, control_part = fuse_conditions(noisy, zero["reference"])
    base_input = torch.cat([noise_part, torch.zeros(B, config.in_dim - 16, T + 1, H, W)], dim=1)
    with torch.no_grad():
        expected = base(base_input, timestep, context)  # [B, 16, T+1, h, w], slot 0 included
        assert expected.abs().max() > 0.1
        # Every slot, through the fused path with zero-initialised control layers.
        x = portrait.embed_patches(base_input) + portrait.control_embedding(control_part)
        offsets = portrait.expression_offsets(zero["expression"], T)
        all_slots = portrait.forward_embedded(x, timestep, context, None, offsets)
        out = portrait(noisy, timestep, context=context, **zero)
        no_expression = portrait(noisy, timestep, zero["reference"], context=context)
    assert (all_slots - expected).abs().max() <= 1e-6
    assert (out - expected[:, :, 1:]).abs().max() <= 1e-6
    assert torch.equal(no_expression, expected[:, :, 1:])


def test_no_context_means_512_zero_text_tokens():
    # No text runs on one zero token (NO_TEXT_LEN): the same cross-attention as Wan's 512
    # zero-padding tokens, up to float rounding of the softmax over equal values.
    base, portrait = base_and_portrait()
    noisy, timestep = rand(B, 16, T, H, W), torch.tensor([500.0, 500.0])
    reference = torch.zeros(B, 16, 1, H, W)
    with torch.no_grad():
        out = portrait(noisy, timestep, reference)
        expected = base(fuse_conditions(noisy, reference)[0], timestep, torch.zeros(B, 512, 16))
    torch.testing.assert_close(out, expected[:, :, 1:], rtol=1e-5, atol=1e-6)


def test_one_training_step_on_the_new_layers_changes_the_output_not_the_base():
    base, portrait = base_and_portrait()
    base_weights = {k: v.clone() for k, v in base.state_dict().items()}
    new_params = [p for n, p in portrait.named_parameters()
                  if n.startswith(("control_embedding.", "expression_controller."))]
    assert len(new_params) == 5
    optimizer = torch.optim.AdamW(new_params, lr=1e-2)
    noisy, timestep, context = rand(B, 16, T, H, W), torch.tensor([600.0, 300.0]), rand(B, 5, 16)
    ctrl = controls(seed=7)
    with torch.no_grad():
        before = portrait(noisy, timestep, context=context, **ctrl)
        base_out = base(fuse_conditions(noisy, ctrl["reference"])[0], timestep, context)[:, :, 1:]
    assert (before - base_out).abs().max() <= 1e-6  # untrained controls do nothing yet

    loss = torch.nn.functional.mse_loss(portrait(noisy, timestep, context=context, **ctrl),
                                        rand(B, 16, T, H, W, seed=99))
    loss.backward()
    assert portrait.control_embedding.weight.grad.abs().max() > 0
    assert portrait.expression_controller[2].weight.grad.abs().max() > 0
    optimizer.step()

    with torch.no_grad():
        after = portrait(noisy, timestep, context=context, **ctrl)
    assert (after - base_out).abs().max() > 1e-3
    for k, v in base_weights.items():
        assert torch.equal(portrait.state_dict()[k], v), k
        assert torch.equal(base.state_dict()[k], v), k


def test_expression_codes_are_grouped_per_latent_frame():
    """Video frame f belongs to latent frame t (latent_frame_groups), i.e. fused slot t+1;
    frame 0 is latent frame 0 (repeated four times)."""
    _, portrait = base_and_portrait()
    randomize(portrait.expression_controller, seed=3)
    groups = latent_frame_groups(FRAMES)
    zeros = torch.zeros(1, FRAMES, EXPR_DIM)
    with torch.no_grad():
        reference = portrait.expression_offsets(zeros, T)
        assert reference.shape == (1, T + 1, 6, 32)
        for frame, slot in [(0, 1), (1, 2), (4, 2), (5, 3), (8, 3)]:
            codes = zeros.clone()
            codes[0, frame] = 1.0
            changed = (portrait.expression_offsets(codes, T) - reference).abs().amax(dim=(0, 2, 3)) > 0
            assert changed.tolist() == [s == slot for s in range(T + 1)], frame
            assert frame in groups[slot - 1]
        assert reference[:, 0].abs().max() == 0  # the reference slot never gets an offset


def test_expression_dimension_mismatch_names_both_dims():
    _, portrait = base_and_portrait()
    with pytest.raises(InputError, match=r"expects expression codes of dimension 8, got dimension 12") as err:
        portrait(rand(1, 16, T, H, W), torch.tensor([500.0]), torch.zeros(1, 16, 1, H, W),
                 expression=torch.zeros(1, FRAMES, 12))
    assert err.value.input_name == "expression"


def test_expression_frame_count_mismatch():
    _, portrait = base_and_portrait()
    with pytest.raises(InputError, match=r"5 expression frames for 3 latent frames; expected 9"):
        portrait.expression_offsets(torch.zeros(1, 5, EXPR_DIM), T)


def test_config_dict_round_trip():
    _, portrait = base_and_portrait()
    d = json.loads(json.dumps(portrait.config_dict))
    assert d["expression_dim"] == EXPR_DIM and d["architecture"] == "factorportrait"
    rebuilt = FactorPortraitDiT.from_config_dict(d)
    rebuilt.load_state_dict(portrait.state_dict(), strict=True)
    assert rebuilt.config == TINY and rebuilt.expression_dim == EXPR_DIM


def test_bf16_compute_with_fp8_storage_is_close_to_fp32():
    base, portrait = base_and_portrait()
    low = FactorPortraitDiT(TINY, EXPR_DIM, dtype=torch.bfloat16, storage_dtype=torch.float8_e4m3fn)
    low.load_state_dict(portrait.state_dict())
    assert low.blocks[0].self_attn.q.weight.dtype == torch.float8_e4m3fn
    assert low.blocks[0].modulation.dtype == torch.bfloat16
    noisy, timestep = rand(1, 16, T, H, W), torch.tensor([500.0])
    ctrl = {k: v[:1] for k, v in controls(seed=2).items()}
    with torch.no_grad():
        ref = portrait(noisy, timestep, **ctrl)
        out = low(noisy, timestep, **ctrl)
    assert out.dtype == torch.float32
    assert (out - ref).norm() / ref.norm() < 0.1
