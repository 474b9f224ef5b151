"""Checkpoint formats: full, base + controls, base alone; storage dtypes; bad files."""
import pytest
import torch
from safetensors.torch import save_file

from factorportrait.models.portrait import checkpoint as ck
from factorportrait.models.errors import InputError
from factorportrait.models.portrait.dit import FactorPortraitDiT
from factorportrait.models.wan.config import WanConfig
from factorportrait.models.wan.dit import WanDiT

CONFIG = WanConfig(dim=256, ffn_dim=64, num_layers=2, num_heads=2, text_dim=32, freq_dim=32)
EXPRESSION_DIM = 6


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A random base model, a trained-looking FactorPortrait model and their files."""
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    base = WanDiT(CONFIG)
    for p in base.parameters():
        p.data.normal_(0, 0.05)
    model = FactorPortraitDiT.from_wan(base, EXPRESSION_DIM)
    for p in list(model.control_embedding.parameters()) + list(model.expression_controller.parameters()):
        p.data.normal_(0, 0.05)
    paths = {k: str(d / f"{k}.safetensors") for k in ("base", "comfy_base", "full", "controls")}
    save_file(dict(base.state_dict()), paths["base"])
    save_file({f"model.diffusion_model.{k}": v for k, v in base.state_dict().items()}
              | {"first_stage_model.decoder.conv_in.weight": torch.zeros(1)}, paths["comfy_base"])
    ck.save_checkpoint(model, paths["full"], expression_encoder="test-encoder")
    ck.save_checkpoint(model, paths["controls"], controls_only=True, expression_encoder="test-encoder")
    return paths, base, model, d


def run(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    x, ref = torch.randn(1, 16, 2, 4, 4, generator=g), torch.randn(1, 16, 1, 4, 4, generator=g)
    rays, normals = torch.randn(1, 24, 2, 4, 4, generator=g), torch.randn(1, 16, 2, 4, 4, generator=g)
    expr, ctx = torch.randn(1, 5, EXPRESSION_DIM, generator=g), torch.randn(1, 7, 32, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([700.0]), ref, rays, normals, expr, ctx)


@pytest.mark.parametrize("kind", ["full", "base+controls", "comfy_base+controls"])
def test_trained_model_round_trips_exactly(files, kind):
    paths, _, model, _ = files
    kw = {"full": {"checkpoint": paths["full"]},
          "base+controls": {"base": paths["base"], "controls": paths["controls"]},
          "comfy_base+controls": {"base": paths["comfy_base"], "controls": paths["controls"]}}[kind]
    loaded = ck.load_model(**kw, dtype=torch.float32)
    assert loaded.warnings == [] and loaded.expression_encoder == "test-encoder"
    assert loaded.expression_dim == EXPRESSION_DIM
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.model.state_dict().items())
    torch.testing.assert_close(run(loaded.model), run(model), atol=2e-6, rtol=0)  # same weights


def test_base_alone_equals_the_base_model_and_warns(files):
    paths, base, _, _ = files
    loaded = ck.load_model(base=paths["base"], expression_dim=EXPRESSION_DIM, dtype=torch.float32)
    assert loaded.warnings and "untrained" in loaded.warnings[0]
    fp = FactorPortraitDiT.from_wan(base, EXPRESSION_DIM)
    torch.testing.assert_close(run(loaded.model), run(fp), atol=2e-6, rtol=0)
    assert loaded.model.control_embedding.weight.abs().max() == 0


@pytest.mark.parametrize("storage,tol", [("bf16", 2e-2), ("fp16", 5e-3), ("fp8_e4m3fn", 1.5e-1)])
def test_storage_dtypes(files, storage, tol):
    paths, _, model, _ = files
    loaded = ck.load_model(checkpoint=paths["full"], dtype=torch.float32,
                           storage_dtype=ck.STORAGE_DTYPES[storage])
    q = loaded.model.blocks[0].self_attn.q.weight
    assert q.dtype == ck.STORAGE_DTYPES[storage]
    assert loaded.model.blocks[0].modulation.dtype == torch.float32
    ref, out = run(model), run(loaded.model)
    assert (out - ref).abs().max() / ref.abs().max() < tol


def test_bf16_compute(files):
    paths, _, model, _ = files
    loaded = ck.load_model(checkpoint=paths["full"], dtype=torch.bfloat16)
    ref, out = run(model), run(loaded.model)
    assert (out.float() - ref).abs().max() / ref.abs().max() < 5e-2


def write(path, tensors, metadata=None):
    save_file(tensors, str(path), metadata=metadata)
    return str(path)


def test_other_architecture_is_named(files):
    _, _, _, d = files
    sdxl = write(d / "sdxl.safetensors", {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2),
        "conditioner.embedders.0.transformer.text_model.embeddings.position_ids": torch.zeros(2)})
    for kw, name in (({"checkpoint": sdxl}, "checkpoint"), ({"base": sdxl}, "base_model")):
        with pytest.raises(InputError) as info:
            ck.load_model(**kw)
        assert info.value.input_name == name
    assert "Stable Diffusion" in info.value.message and "sdxl.safetensors" in info.value.message


def test_truncated_file(files):
    paths, _, _, d = files
    data = open(paths["full"], "rb").read()
    (d / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt") as info:
        ck.load_model(checkpoint=str(d / "cut.safetensors"))
    assert info.value.input_name == "checkpoint"


def test_pickle_is_refused(files):
    _, _, _, d = files
    (d / "model.ckpt").write_bytes(b"not opened")
    with pytest.raises(InputError, match="pickled"):
        ck.load_model(base=str(d / "model.ckpt"))


def test_missing_file(files):
    with pytest.raises(InputError, match="does not exist"):
        ck.load_model(checkpoint="/nonexistent/x.safetensors")


def test_controls_for_another_base_are_refused(files):
    paths, _, _, d = files
    other = WanConfig(dim=256, ffn_dim=64, num_layers=3, num_heads=2, text_dim=32, freq_dim=32)
    ck.save_checkpoint(FactorPortraitDiT(other, EXPRESSION_DIM), str(d / "other.safetensors"), controls_only=True)
    with pytest.raises(InputError) as info:
        ck.load_model(base=paths["base"], controls=str(d / "other.safetensors"))
    assert info.value.input_name == "control_weights" and "3 layers" in info.value.message


def test_wrong_file_roles(files):
    paths, _, _, _ = files
    with pytest.raises(InputError, match="base model instead"):
        ck.load_model(checkpoint=paths["base"])
    with pytest.raises(InputError, match="'controls' file"):
        ck.load_model(checkpoint=paths["controls"])
    with pytest.raises(InputError, match="not both"):
        ck.load_model(checkpoint=paths["full"], base=paths["base"])
    with pytest.raises(InputError, match="need the Wan 2.1 base"):
        ck.load_model(controls=paths["controls"])


def test_damaged_weights_are_refused(files):
    paths, base, _, d = files
    sd = dict(base.state_dict())
    sd["blocks.1.ffn.0.weight"] = sd["blocks.1.ffn.0.weight"][:-1]
    with pytest.raises(InputError, match="do not fit") as info:
        ck.load_model(base=write(d / "bad.safetensors", sd))
    assert info.value.input_name == "base_model"
    del sd["blocks.1.ffn.0.weight"]
    with pytest.raises(InputError, match="missing keys"):
        ck.load_model(base=write(d / "bad2.safetensors", sd))


def test_expression_dim_mismatch_names_both(files):
    paths, _, _, _ = files
    model = ck.load_model(checkpoint=paths["full"], dtype=torch.float32).model
    with pytest.raises(InputError) as info:
        model(torch.zeros(1, 16, 1, 4, 4), torch.tensor([1.0]), torch.zeros(1, 16, 1, 4, 4),
              expression=torch.zeros(1, 1, 52))
    assert str(EXPRESSION_DIM) in info.value.message and "52" in info.value.message
