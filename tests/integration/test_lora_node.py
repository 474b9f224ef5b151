"""FactorPortrait LoRA called in process, as ComfyUI runs it (under inference mode), on the
tiny random FactorPortrait checkpoint: the LoRA acts while the model runs, leaves the loaded
weights as they were, gives the same output merged, with streamed blocks and on fp8
weights (hooked), and a LoRA of another model is an error naming the node and input."""
import dataclasses

import pytest
import torch
from devpack import import_comfyui
from safetensors.torch import save_file

import_comfyui()

import folder_paths  # noqa: E402

from factorportrait.models.portrait.checkpoint import save_checkpoint  # noqa: E402
from factorportrait.nodes.errors import FactorPortraitInputError  # noqa: E402
from factorportrait.nodes.lora import LoraNode  # noqa: E402
from factorportrait.nodes.model_loader import LoadModel  # noqa: E402

from .tiny_models import CHECKPOINT_NAME, EXPRESSION_DIM, EXPRESSION_ENCODER, tiny_factorportrait_model  # noqa: E402

RANK = 4
LORA = "tiny_kohya_lora.safetensors"
SMALL = 0.05  # a change of a few percent of a weight: below fp8's rounding step (1/16 to 1/8)
WRONG_SIZE = "lora_for_another_width.safetensors"


def kohya_lora(model: torch.nn.Module, width_scale: int = 1) -> dict[str, torch.Tensor]:
    """A kohya-format LoRA on every attention and MLP Linear of the blocks."""
    gen = torch.Generator().manual_seed(7)
    tensors = {}
    for name, module in model.named_modules():
        if name.startswith("blocks.") and isinstance(module, torch.nn.Linear):
            out_f, in_f = module.weight.shape
            stem = "lora_unet_" + name.replace(".", "_")
            tensors[f"{stem}.lora_down.weight"] = torch.randn(RANK, in_f * width_scale, generator=gen) / in_f**0.5
            tensors[f"{stem}.lora_up.weight"] = torch.randn(out_f * width_scale, RANK, generator=gen) * 0.3
            tensors[f"{stem}.alpha"] = torch.tensor(float(RANK))
    return tensors


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    checkpoints, loras = tmp_path_factory.mktemp("factorportrait"), tmp_path_factory.mktemp("loras")
    model = tiny_factorportrait_model()
    save_checkpoint(model, str(checkpoints / CHECKPOINT_NAME), expression_encoder=EXPRESSION_ENCODER)
    save_file(kohya_lora(model), str(loras / LORA))
    save_file(kohya_lora(model, width_scale=2), str(loras / WRONG_SIZE))
    folder_paths.add_model_folder_path("factorportrait", str(checkpoints))
    folder_paths.add_model_folder_path("loras", str(loras))


def load(weight_dtype="default"):
    return LoadModel.execute(CHECKPOINT_NAME, "none", weight_dtype, "fp32", "off", 52).args[0]


def run(handle) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    noisy, reference = torch.randn(1, 16, 2, 4, 4, generator=gen), torch.randn(1, 16, 1, 4, 4, generator=gen)
    rays, normals = torch.randn(1, 24, 2, 4, 4, generator=gen), torch.randn(1, 16, 2, 4, 4, generator=gen)
    expression = torch.rand(1, 5, EXPRESSION_DIM, generator=gen)
    with handle.running() as device:
        return handle.model(noisy.to(device), torch.tensor([600.0], device=device), reference.to(device),
                            rays.to(device), normals.to(device), expression.to(device)).float().cpu()


def test_lora_acts_while_running_and_leaves_the_loaded_model_unchanged(folders):
    with torch.inference_mode():
        model = load()
        before = {k: v.clone() for k, v in model.model.state_dict().items()}
        plain = run(model)
        patched, info = LoraNode.execute(model, LORA, 1.0).args
        assert "lora" in info and "format kohya" in info
        with_lora = run(patched)
        assert (with_lora - plain).abs().max() > 0.05
        assert torch.equal(run(model), plain)  # the input model, on another branch of the graph
        assert all(torch.equal(v, before[k]) for k, v in model.model.state_dict().items())
        streamed = run(dataclasses.replace(patched, streaming="on"))
        assert (streamed - with_lora).abs().max() <= 1e-5
        half, _ = LoraNode.execute(model, LORA, 0.5).args
        both = run(LoraNode.execute(half, LORA, 0.5).args[0])  # two stacked halves = one whole
        assert (both - with_lora).abs().max() <= 1e-5


def test_lora_on_fp8_weights_is_not_rounded_away(folders):
    """On fp8 weights the LoRA runs beside the layers: its effect matches the fp32 model's."""
    with torch.inference_mode():
        full, fp8 = load(), load("fp8_e4m3fn")
        effect_full = run(LoraNode.execute(full, LORA, SMALL).args[0]) - run(full)
        effect_fp8 = run(LoraNode.execute(fp8, LORA, SMALL).args[0]) - run(fp8)
    error = (effect_fp8 - effect_full).abs().max() / effect_full.abs().max()
    print(f"fp8: LoRA effect off by {error:.3f} of its size")
    assert error < 0.1


def test_lora_of_another_model_size_is_an_error_naming_node_and_input(folders):
    with torch.inference_mode(), pytest.raises(FactorPortraitInputError) as e:
        LoraNode.execute(load(), WRONG_SIZE, 1.0)
    message = str(e.value)
    assert message.startswith("FactorPortrait LoRA") and "lora_name" in message
    assert "changes no layer" in message
