"""models.lora without a host: key formats, adapter kinds, the report, merging and hooks.
(Parity with ComfyUI's own LoraLoaderModelOnly: tests/integration/test_lora_parity.py.)"""
import pytest
import torch

from factorportrait.models.errors import InputError
from factorportrait.models.lora import applied, match_lora, merged, unmerged
from factorportrait.models.lora.key_formats import LayerNames, split_key
from factorportrait.models.wan import WanConfig, WanDiT
from factorportrait.models.wan.offload import stream_blocks

CONFIG = WanConfig(dim=32, ffn_dim=64, num_layers=2, num_heads=2, text_dim=16)


def model() -> WanDiT:
    torch.manual_seed(0)
    m = WanDiT(CONFIG).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2)
    return m


def inputs():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(1, 16, 2, 4, 4, generator=gen), torch.tensor([400.0]), torch.randn(1, 3, 16, generator=gen)


def lora(m, stem, layer, rank=2, alpha=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out_f, in_f = m.get_submodule(layer).weight.shape
    t = {f"{stem}.lora_down.weight": torch.randn(rank, in_f, generator=gen),
         f"{stem}.lora_up.weight": torch.randn(out_f, rank, generator=gen)}
    if alpha is not None:
        t[f"{stem}.alpha"] = torch.tensor(alpha)
    return t


@pytest.mark.parametrize("stem,layer,fmt", [
    ("diffusion_model.blocks.1.self_attn.o", "blocks.1.self_attn.o", "comfyui"),
    ("model.diffusion_model.blocks.0.ffn.2", "blocks.0.ffn.2", "comfyui"),
    ("lora_unet_blocks_1_cross_attn_k", "blocks.1.cross_attn.k", "kohya"),
    ("lora_unet__blocks_0_cross_attn_k", "blocks.0.cross_attn.k", "kohya"),  # Wan Fun's double underscore
    ("lycoris_blocks_0_ffn_0", "blocks.0.ffn.0", "lycoris"),
    ("transformer.blocks.0.attn1.to_out.0", "blocks.0.self_attn.o", "diffusers"),
    ("transformer.blocks.1.attn2.to_v", "blocks.1.cross_attn.v", "diffusers"),
    ("transformer.blocks.0.ffn.net.0.proj", "blocks.0.ffn.0", "diffusers"),
    ("transformer.blocks.0.norm2", "blocks.0.norm3", "diffusers"),  # the cross-attention norm
    ("transformer.condition_embedder.time_proj", "time_projection.1", "diffusers"),
    ("transformer.proj_out", "head.head", "diffusers"),
    ("base_model.model.blocks.1.self_attn.q", "blocks.1.self_attn.q", "peft"),
    ("base_model.model.blocks.1.attn1.to_q", "blocks.1.self_attn.q", "peft"),
    ("blocks.0.cross_attn.o", "blocks.0.cross_attn.o", "original"),
    ("diffusion_model.blocks.1.modulation", "blocks.1.modulation", "comfyui"),
])
def test_key_formats_find_the_layer(stem, layer, fmt):
    m = model()
    layers = {n for n, mod in m.named_modules() if hasattr(mod, "weight")} | {"blocks.0.modulation", "blocks.1.modulation"}
    assert LayerNames(layers).find(stem) == (layer, fmt)


def test_keys_of_other_models_find_nothing():
    names = LayerNames({n for n, _ in model().named_modules()})
    for stem in ("lora_unet_input_blocks_1_0_proj_in", "transformer.single_blocks.0.linear1",
                 "diffusion_model.blocks.7.self_attn.q", "lora_te_text_model_encoder_layers_0_mlp_fc1"):
        assert names.find(stem) is None
    assert split_key("diffusion_model.blocks.0.ffn.0.lora_A.default.weight") == (
        "diffusion_model.blocks.0.ffn.0", "lora_A.default.weight")


def test_lora_loha_lokr_and_diff_change_the_weights_as_defined():
    """Each kind against its definition: W' = W + strength * delta."""
    m, s = model(), 0.7
    g = torch.Generator().manual_seed(2)
    w_q, w_k = m.blocks[0].self_attn.q.weight.detach().clone(), m.blocks[0].self_attn.k.weight.detach().clone()
    w_f = m.blocks[1].ffn[0].weight.detach().clone()
    t = lora(m, "diffusion_model.blocks.0.self_attn.q", "blocks.0.self_attn.q", rank=4, alpha=2.0)
    a, b, c, d = (torch.randn(32, 3, generator=g), torch.randn(3, 32, generator=g),
                  torch.randn(32, 3, generator=g), torch.randn(3, 32, generator=g))
    t.update({"lycoris_blocks_0_self_attn_k.hada_w1_a": a, "lycoris_blocks_0_self_attn_k.hada_w1_b": b,
              "lycoris_blocks_0_self_attn_k.hada_w2_a": c, "lycoris_blocks_0_self_attn_k.hada_w2_b": d,
              "lycoris_blocks_0_self_attn_k.alpha": torch.tensor(1.5)})
    w1, w2 = torch.randn(4, 2, generator=g), torch.randn(16, 16, generator=g)  # kron: [64, 32]
    t.update({"lycoris_blocks_1_ffn_0.lokr_w1": w1, "lycoris_blocks_1_ffn_0.lokr_w2": w2})
    mod = torch.randn(1, 6, 32, generator=g)
    t["diffusion_model.blocks.1.modulation.diff"] = mod
    t["diffusion_model.blocks.1.ffn.0.diff_b"] = bias = torch.randn(64, generator=g)
    base_mod, base_bias = m.blocks[1].modulation.detach().clone(), m.blocks[1].ffn[0].bias.detach().clone()
    found = match_lora(t, m, "mixed")
    assert sorted(a.kind for a in found.adapters.values()) == ["diff", "loha", "lokr", "lora"]
    up, down = t["diffusion_model.blocks.0.self_attn.q.lora_up.weight"], t["diffusion_model.blocks.0.self_attn.q.lora_down.weight"]
    with merged(m, [(found, s)]):
        torch.testing.assert_close(m.blocks[0].self_attn.q.weight, w_q + s * (2.0 / 4) * up @ down)
        torch.testing.assert_close(m.blocks[0].self_attn.k.weight, w_k + s * (1.5 / 3) * (a @ b) * (c @ d))
        torch.testing.assert_close(m.blocks[1].ffn[0].weight, w_f + s * torch.kron(w1, w2))
        torch.testing.assert_close(m.blocks[1].modulation, base_mod + s * mod)
        torch.testing.assert_close(m.blocks[1].ffn[0].bias, base_bias + s * bias)
    assert torch.equal(m.blocks[0].self_attn.q.weight, w_q) and torch.equal(m.blocks[1].modulation, base_mod)


def test_report_names_every_key_not_applied():
    m = model()
    t = lora(m, "lora_unet_blocks_0_self_attn_q", "blocks.0.self_attn.q")
    t["lora_unet_blocks_0_self_attn_q.dora_scale"] = torch.ones(32, 1)
    t["lora_unet_input_blocks_1_0.lora_down.weight"] = torch.zeros(2, 8)  # an SD UNet key
    t["transformer.blocks.0.attn2.add_k_proj.lora_A.weight"] = torch.zeros(2, 32)  # i2v image key
    t["diffusion_model.img_emb.proj.1.lora_down.weight"] = torch.zeros(2, 1280)
    t["diffusion_model.blocks.1.ffn.2.lora_down.weight"] = torch.zeros(2, 99)  # wrong width
    t["diffusion_model.blocks.1.ffn.2.lora_up.weight"] = torch.zeros(32, 2)
    found = match_lora(t, m, "odd.safetensors")
    assert list(found.adapters) == ["blocks.0.self_attn.q"]
    assert found.unmatched == ["lora_unet_input_blocks_1_0.lora_down.weight"]
    assert found.unsupported == ["lora_unet_blocks_0_self_attn_q.dora_scale"]
    assert sorted(found.image_skipped) == ["diffusion_model.img_emb.proj.1.lora_down.weight",
                                           "transformer.blocks.0.attn2.add_k_proj.lora_A.weight"]
    assert len(found.errors) == 1 and found.errors[0].startswith("blocks.1.ffn.2:")
    summary = found.summary()
    for key in ("lora_unet_input_blocks_1_0.lora_down.weight", "dora_scale", "add_k_proj", "blocks.1.ffn.2"):
        assert key in summary


def test_a_file_that_changes_nothing_is_an_input_error():
    m = model()
    with pytest.raises(InputError) as e:
        match_lora({"lora_unet_input_blocks_1_0.lora_down.weight": torch.zeros(2, 8)}, m, "sdxl.safetensors")
    assert e.value.input_name == "lora_name" and "sdxl.safetensors" in str(e.value)


def test_merged_hooked_streamed_and_fp8_agree_and_restore():
    m, (x, t, ctx) = model(), inputs()
    files = [(match_lora(lora(m, "diffusion_model.blocks.0.ffn.0", "blocks.0.ffn.0", alpha=1.0), m, "a"), 0.8),
             (match_lora(lora(m, "lora_unet_blocks_1_self_attn_v", "blocks.1.self_attn.v", seed=3), m, "b"), -0.4)]
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with torch.no_grad():
        plain = m(x, t, ctx)
        with merged(m, files):
            ref = m(x, t, ctx)
        with unmerged(m, files):
            hooked = m(x, t, ctx)
        with applied(m, files, hooks=True), stream_blocks(m, "cpu"):
            streamed = m(x, t, ctx)
    assert (ref - plain).abs().max() > 0.05
    torch.testing.assert_close(hooked, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(streamed, ref, rtol=0, atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    with torch.no_grad(), merged(m, files + [(files[0][0], -0.8), (files[1][0], 0.4)]):
        torch.testing.assert_close(m(x, t, ctx), plain, rtol=0, atol=1e-5)  # stacked opposites cancel
