"""Training the small Wan 2.1 VAE: the statistics fold is exact, training learns and resumes,
and the exported file is what ComfyUI's stock Load VAE loads."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from _training_data import write_folder
from factorportrait.models.wan import latent_format
from factorportrait.training.vae.latent_stats import fold_latent_statistics, measure_latent_statistics
from factorportrait.training.vae.loop import VaeTrainConfig, train_vae
from factorportrait.training.vae.wan_vae import build_wan_vae


def clips(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(3, 3, 5, 4, 4, generator=g), size=(5, 32, 32),
                                             mode="trilinear")
    return smooth * 2 - 1  # [3, 3, 5, 32, 32]


def test_folding_the_statistics_keeps_the_video_and_gives_wan_latents():
    vae = build_wan_vae(8, seed=1).eval()
    x = clips()
    with torch.no_grad():
        before = vae.decode(vae.encode(x))
        mean, std = measure_latent_statistics(vae, x)
        fold_latent_statistics(vae, mean, std)
        after = vae.decode(vae.encode(x))
        z = torch.cat([vae.encode(c[None]) for c in x])
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    n = latent_format.normalize(z).transpose(0, 1).flatten(1)
    torch.testing.assert_close(n.mean(1), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(n.std(1), torch.ones(16), atol=1e-4, rtol=0)


def config(tmp_path, data, steps: int, name: str) -> VaeTrainConfig:
    """dim 4, 16-pixel crops: seconds per run."""
    return VaeTrainConfig(data=str(data), out_dir=str(tmp_path / name), export=str(tmp_path / f"{name}.safetensors"),
                          dim=4, steps=steps, batch_size=2, frames=5, crop=16, lr=3e-3, warmup_steps=1,
                          save_every=3, seed=5)


def test_vae_training_learns_resumes_and_exports_a_stock_wan_vae(tmp_path):
    data = write_folder(tmp_path / "data", 3)
    logs = []
    assert train_vae(config(tmp_path, data, 6, "straight"), log=logs.append) == 6
    assert train_vae(config(tmp_path, data, 6, "resumed"), stop_after=3, log=logs.append) == 3
    assert train_vae(config(tmp_path, data, 6, "resumed"), log=logs.append) == 6
    assert any("resumed from" in m for m in logs)
    # The trained weights (before the statistics fold, which divides by small spreads)
    straight, resumed = (load_file(tmp_path / n / "state" / "step-00000006" / "trainable.safetensors")
                         for n in ("straight", "resumed"))
    assert straight.keys() == resumed.keys()
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=1e-5, atol=1e-6)

    from factorportrait.training.data.latent_cache import load_comfy_vae

    vae = load_comfy_vae(tmp_path / "straight.safetensors")  # ComfyUI's comfy.sd.VAE, as Load VAE builds it
    assert vae.first_stage_model.dim == 4
    video = torch.rand(5, 16, 16, 3)
    latent = vae.encode(video)
    assert latent.shape == (1, 16, 2, 2, 2)
    assert vae.decode(latent).reshape(-1, 16, 16, 3).shape == (5, 16, 16, 3)

    # Fine-tuning starts from an exported file: with no step taken, the new export decodes
    # what the file decodes (its statistics are folded again, an exact reparametrisation).
    tuned = replace(config(tmp_path, data, 0, "tuned"), init=str(tmp_path / "straight.safetensors"))
    assert train_vae(tuned, log=logs.append) == 0
    assert any("started from" in m for m in logs)
    again = load_comfy_vae(tmp_path / "tuned.safetensors")
    torch.testing.assert_close(again.decode(again.encode(video)), vae.decode(vae.encode(video)),
                               rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="--dim is 8"):
        train_vae(replace(tuned, out_dir=str(tmp_path / "wrong"), dim=8), log=logs.append)

    # Decoder only: the encoder side is bit for bit the initial file's (so latents cached with
    # it, and a DiT trained on them, stay valid), the decoder learns, and a resume keeps both.
    decoder = replace(config(tmp_path, data, 4, "decoder"), init=str(tmp_path / "straight.safetensors"),
                      train="decoder")
    assert train_vae(decoder, stop_after=2, log=logs.append) == 2
    assert train_vae(decoder, log=logs.append) == 4
    start, end = load_file(tmp_path / "straight.safetensors"), load_file(tmp_path / "decoder.safetensors")
    for k in start:
        if k.startswith(("encoder.", "conv1.")):
            assert torch.equal(end[k], start[k]), k
    assert any(not torch.equal(end[k], start[k]) for k in start if k.startswith("decoder."))
    with pytest.raises(ValueError, match="--init"):
        train_vae(replace(decoder, out_dir=str(tmp_path / "no_init"), init=None), log=logs.append)


def test_vae_training_lowers_the_loss(tmp_path):
    from factorportrait.training.vae.losses import vae_loss

    torch.manual_seed(0)
    vae = build_wan_vae(4, seed=2)
    x = clips(3)[:1, :, :, :16, :16]
    optimizer = torch.optim.AdamW(vae.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, _ = vae_loss(vae, x, latent_noise=0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3, losses
