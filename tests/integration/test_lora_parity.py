"""Wan 2.1 LoRAs: the pack's loader against ComfyUI's own LoraLoaderModelOnly, in every
format (scripts/lora_parity.py says how: one tiny random Wan DiT, one random change written
in each format, ComfyUI loading its twin in a format it reads for Wan)."""
from __future__ import annotations

import pytest
import torch
from devpack import import_comfyui

import_comfyui()

import lora_parity as P  # noqa: E402

from factorportrait.models.lora import FORMATS, merged, read_lora  # noqa: E402
from factorportrait.training.trainer.lora import LoraAdapters, target_layers  # noqa: E402


@pytest.fixture(scope="module")
def base_state():
    return P.random_wan_state()


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    P.use_lora_folder(folder)
    return folder


@pytest.fixture(scope="module")
def inputs():
    return P.model_inputs()


def test_the_parity_check_covers_every_key_format():
    assert set(FORMATS) <= set(P.FORMATS)


@pytest.mark.parametrize("fmt", P.FORMATS)
def test_each_format_matches_comfyui(fmt, base_state, lora_dir, inputs):
    r = P.check_format(fmt, lora_dir, base_state, P.random_factors(base_state), inputs)
    print(f"{fmt}: LoRA changes the output by {r.change:.3f}; |pack - ComfyUI| merged "
          f"{r.merged_diff:.1e}, hooked {r.hooked_diff:.1e}")
    assert not r.not_applied, r.not_applied
    assert r.restored, "the LoRA stayed on the model"
    assert r.change > 0.05  # the LoRA matters, so a wrong mapping would show
    assert r.merged_diff <= P.TOL and r.hooked_diff <= P.TOL


def test_stacked_files_match_chained_comfyui_loaders(base_state, lora_dir, inputs):
    files = P.format_files(base_state, P.random_factors(base_state))
    a = P.write(lora_dir, "stack_a.safetensors", files["kohya"][0])
    b = P.write(lora_dir, "stack_b.safetensors", files["lycoris"][1])
    expected = P.comfy_output(base_state, [(a, 0.6), (b, -1.3)], inputs)
    model = P.ours(base_state)
    stack = [(read_lora(str(lora_dir / a), model), 0.6), (read_lora(str(lora_dir / b), model), -1.3)]
    with torch.no_grad(), merged(model, stack):
        out = model(*inputs)
    assert (out - expected).abs().max().item() <= P.TOL


def test_trainer_lora_matches_comfyui(base_state, lora_dir, inputs):
    """A LoRA file written by the pack's trainer (ComfyUI format, trained-like random up)."""
    model = P.ours(base_state)
    adapters = LoraAdapters(target_layers(model, ["self_attn.q", "ffn.2"]), rank=P.RANK, alpha=P.ALPHA, seed=5)
    with torch.no_grad():
        for up in adapters.up:
            up.normal_(0, 0.2)
    name = "trainer_lora.safetensors"
    (lora_dir / name).write_bytes(adapters.comfy_lora_bytes())
    adapters.remove()
    expected = P.comfy_output(base_state, [(name, 1.0)], inputs)
    lora = read_lora(str(lora_dir / name), model)
    with torch.no_grad(), merged(model, [(lora, 1.0)]):
        out = model(*inputs)
    assert (out - expected).abs().max().item() <= P.TOL
