"""A checkpoint written by the trainer loads in the real ComfyUI through FactorPortrait Load
Model (listed from the server's ``models/factorportrait`` folder) and samples, as a full
checkpoint and as control weights on a Wan base; the trained controls change the video."""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import torch

from .test_portrait_e2e import latent_prompt, read_latent
from .tiny_models import VAE_NAME, write_wan_base

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
import _training_data as td  # noqa: E402


@pytest.fixture(scope="module")
def trained(comfy, tmp_path_factory):
    from factorportrait.training.data.latent_cache import cache_latents, load_comfy_vae
    from factorportrait.training.trainer.config import config_from_dict
    from factorportrait.training.trainer.loop import train

    data = td.write_folder(tmp_path_factory.mktemp("data"), 2)
    vae_path = comfy.base_dir / "models" / "vae" / VAE_NAME  # the server's Wan VAE file
    cache_latents(data, load_comfy_vae(vae_path), str(vae_path), tag="tiny")
    run = f"trained-{uuid.uuid4().hex[:6]}"
    export_dir = comfy.base_dir / "models" / "factorportrait" / run
    cfg = td.tiny_config(data, tmp_path_factory.mktemp("run"), train={"steps": 2, "params": "controls", "lr": 5e-2},
                         output={"export_dir": str(export_dir), "name": "tiny"})
    cfg["model"]["wan"] = None
    base = write_wan_base(_untrained_full(tmp_path_factory.mktemp("base")),
                          comfy.base_dir / "models" / "diffusion_models" / f"{run}_base.safetensors")
    cfg["model"]["base"] = str(base)
    result = train(config_from_dict(cfg), progress=False, device="cpu")
    return {"full": f"{run}/{result.exports['full'].name}", "controls": f"{run}/{result.exports['controls'].name}",
            "base": base.name}


def _untrained_full(folder: Path) -> Path:
    """A full checkpoint of a random tiny FactorPortrait DiT whose base weights are all non-zero."""
    from factorportrait.models.portrait.checkpoint import save_checkpoint
    from factorportrait.models.portrait.dit import FactorPortraitDiT
    from factorportrait.models.wan.config import WanConfig

    torch.manual_seed(5)
    model = FactorPortraitDiT(WanConfig(**{**td.TINY_WAN, "num_heads": 1}), td.DIM)
    with torch.no_grad():
        model.head.head.weight.normal_(std=0.02)
    path = folder / "untrained.safetensors"
    save_checkpoint(model, str(path))
    return path


def _sample(comfy, tag: str, **loader_inputs) -> torch.Tensor:
    prompt, _sampler, saver = latent_prompt(tag, steps=2, cfg=1.0, expression_cfg=1.0)
    loader = [k for k, v in prompt.items() if v["class_type"] == "FactorPortraitLoadModel"][0]
    prompt[loader]["inputs"].update(loader_inputs)
    entry = comfy.run(prompt, timeout=180)
    (path,) = comfy.output_files({"outputs": {saver: entry["outputs"][saver]}})
    return read_latent(path)


def test_trainer_checkpoints_load_and_sample_in_comfyui(comfy, object_info, trained):
    info = comfy.object_info("FactorPortraitLoadModel")
    listed = info["input"]["required"]["factorportrait_weights"][1]["options"]
    assert trained["full"] in listed and trained["controls"] in listed
    full = _sample(comfy, "trained-full", factorportrait_weights=trained["full"], base_model="none")
    controls = _sample(comfy, "trained-controls", factorportrait_weights=trained["controls"],
                       base_model=trained["base"])
    untrained = _sample(comfy, "trained-base", factorportrait_weights="none", base_model=trained["base"])
    assert full.shape == (1, 16, 3, 8, 8) and torch.isfinite(full).all()
    torch.testing.assert_close(controls, full, rtol=1e-4, atol=1e-4)  # the same weights, two ways
    assert (full - untrained).abs().max() > 1e-3  # the trained controls act
