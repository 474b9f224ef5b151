"""Wan configs: the released presets are recovered from state-dict shapes alone."""
import json

import pytest
import torch

from factorportrait.models.wan import PRESETS, WanConfig, WanDiT, strip_prefix
from factorportrait.models.wan.config import COMFY_PREFIX


def meta_state_dict(config: WanConfig) -> dict:
    """The preset's full state dict as meta tensors: shapes only, no memory."""
    return WanDiT(config, device=torch.device("meta")).state_dict()


@pytest.fixture(scope="module", params=list(PRESETS))
def preset(request):
    config = PRESETS[request.param]
    return config, meta_state_dict(config)


def test_presets_are_the_released_sizes():
    assert (PRESETS["t2v-1.3B"].dim, PRESETS["t2v-1.3B"].num_layers, PRESETS["t2v-1.3B"].num_heads) == (1536, 30, 12)
    assert (PRESETS["t2v-14B"].dim, PRESETS["t2v-14B"].num_layers, PRESETS["t2v-14B"].num_heads) == (5120, 40, 40)
    assert PRESETS["i2v-14B"].in_dim == 36 and PRESETS["i2v-14B"].model_type == "i2v"
    assert all(c.head_dim == 128 for c in PRESETS.values())


def test_parameter_count_of_1_3b():
    sd = meta_state_dict(PRESETS["t2v-1.3B"])
    assert sum(t.numel() for t in sd.values()) == pytest.approx(1.42e9, rel=0.01)


def test_from_state_dict_infers_preset(preset):
    config, sd = preset
    assert all(t.is_meta for t in sd.values())
    assert WanConfig.from_state_dict(sd) == config


def test_from_state_dict_with_comfyui_prefix(preset):
    config, sd = preset
    prefixed = {COMFY_PREFIX + k: v for k, v in sd.items()}
    prefixed["first_stage_model.decoder.conv_in.weight"] = torch.empty(1, device="meta")  # other parts
    stripped = strip_prefix(prefixed)
    assert list(stripped) == list(sd)
    assert WanConfig.from_state_dict(stripped) == config


def test_strip_prefix_leaves_unprefixed_dicts_alone():
    sd = {"patch_embedding.weight": torch.empty(1, device="meta")}
    assert strip_prefix(sd) == sd


def test_i2v_keys(preset):
    config, sd = preset
    i2v_keys = {"img_emb.proj.0.weight", "img_emb.proj.4.bias", "blocks.0.cross_attn.k_img.weight",
                "blocks.0.cross_attn.norm_k_img.weight"}
    assert i2v_keys <= set(sd) if config.model_type == "i2v" else not (i2v_keys & set(sd))


def test_dict_round_trip_through_json():
    for config in PRESETS.values():
        assert WanConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_unknown_dict_key_is_an_error():
    d = PRESETS["t2v-1.3B"].to_dict() | {"dimm": 3}
    with pytest.raises(ValueError, match="dimm"):
        WanConfig.from_dict(d)


def test_other_architecture_is_a_clear_error():
    sdxl_like = {"input_blocks.0.0.weight": torch.empty(320, 4, 3, 3, device="meta")}
    with pytest.raises(ValueError, match="not a Wan 2.1 DiT"):
        WanConfig.from_state_dict(sdxl_like)


def test_invalid_config():
    with pytest.raises(ValueError, match="divisible"):
        WanConfig(dim=100, ffn_dim=10, num_layers=1, num_heads=3)
    with pytest.raises(ValueError, match="model_type"):
        WanConfig(dim=64, ffn_dim=10, num_layers=1, num_heads=2, model_type="vace")
