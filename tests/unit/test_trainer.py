"""The trainer: distributed equivalence, resume, exports, parameter groups, configs, errors.

Data: small real sample files (tests/unit/_training_data.py) with latents cached by a tiny
Wan 2.1 VAE built with ComfyUI's own VAE class; the model is a 2-block Wan DiT of width 128.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from devpack import ROOT, comfyui_dir

sys.path.insert(0, str(Path(__file__).parent))
import _training_data as td  # noqa: E402

pytestmark = pytest.mark.skipif(not (comfyui_dir() / "main.py").is_file(),
                                reason="needs the ComfyUI host (its VAE class encodes the latents)")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from devpack import import_comfyui

    from factorportrait.training.data.latent_cache import cache_latents, load_comfy_vae

    import_comfyui()
    root = td.write_folder(tmp_path_factory.mktemp("data"), 4)
    vae_path = td.write_tiny_vae(tmp_path_factory.mktemp("vae") / "tiny_wan_vae.safetensors")
    counts = cache_latents(root, load_comfy_vae(vae_path), str(vae_path), tag="tiny")
    assert counts == {"encoded": 4, "cached": 0}
    assert cache_latents(root, load_comfy_vae(vae_path), str(vae_path), tag="tiny") == {"encoded": 0, "cached": 4}
    (root / "vae_path").write_text(str(vae_path))
    return root


def test_batched_latent_cache_equals_comfyui_vae_encode_per_video(data, tmp_path):
    """The batched path (one network call for several samples) writes the latents that
    ComfyUI's ``VAE.encode`` gives video by video (the fixture's cache), to float tolerance
    (stored in bf16, so compared after the same rounding)."""
    from factorportrait.training.data.latent_cache import cache_latents, latent_path, load_comfy_vae, read_latents
    from factorportrait.training.data.manifest import read_manifests

    vae_path = (data / "vae_path").read_text()
    root = tmp_path / "data"
    shutil.copytree(data, root, ignore=shutil.ignore_patterns("latents"))
    counts = cache_latents(root, load_comfy_vae(vae_path), vae_path, tag="batched", batch_size=3)
    assert counts == {"encoded": 4, "cached": 0}
    for entry in read_manifests(root):
        one_by_one = read_latents(latent_path(data, "tiny", entry["file"]), entry["sha256"])
        batched = read_latents(latent_path(root, "batched", entry["file"]), entry["sha256"])
        assert batched.keys() == one_by_one.keys()
        for key in one_by_one:
            torch.testing.assert_close(batched[key], one_by_one[key], rtol=1e-2, atol=1e-2)
            assert (batched[key] != 0).any()


def _config(root: Path, out: Path, **sections):
    from factorportrait.training.trainer.config import config_from_dict

    return config_from_dict(td.tiny_config(root, out, **sections))


def _train(cfg, **kw):
    from factorportrait.training.trainer.loop import train

    return train(cfg, progress=False, device="cpu", **kw)


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]


# -- distributed -------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_gloo_processes_equal_one_process(data, tmp_path, strategy):
    """torchrun with 2 CPU processes (gloo) and the same global batch takes the same steps as
    one process: equal losses and parameters after 3 steps (EMA and accumulation included).
    Tolerance: gradients summed in another order differ by float rounding, which Adam's
    normalisation amplifies for tiny gradients (1.5e-5 seen); a wrong split of the batch
    moves weights by ~1e-3 here."""
    tolerance = 1e-4
    runs = {}
    for procs in (1, 2):
        out = tmp_path / f"p{procs}"
        cfg = td.tiny_config(data, out, train={"steps": 3, "batch_size": 4, "micro_batch_size": 1,
                                               "strategy": strategy if procs == 2 else "ddp", "ema_decay": 0.9})
        path = tmp_path / f"p{procs}.json"
        path.write_text(json.dumps(cfg))
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"] if procs == 2 else [sys.executable]
        done = subprocess.run([*launcher, str(ROOT / "training" / "train.py"), "--config", str(path), "--device", "cpu",
                               "--no-progress"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr[-3000:]
        runs[procs] = out
    assert _losses(runs[1]) == pytest.approx(_losses(runs[2]), abs=tolerance)
    assert len(_losses(runs[2])) == 3  # one log line per step: only rank 0 writes
    one = load_file(runs[1] / "checkpoints" / "tiny-step000003.safetensors")
    two = load_file(runs[2] / "checkpoints" / "tiny-step000003.safetensors")
    assert set(one) == set(two)
    assert max((one[k] - two[k]).abs().max().item() for k in one) < tolerance
    moved = max((one[k] - load_file(runs[1] / "checkpoints" / "tiny-step000003_controls.safetensors").get(k, one[k])).abs().max()
                for k in one)
    assert moved == 0  # controls file = the control keys of the full file
    # Both states resume: the same files as a single-process state.
    assert sorted(p.name for p in (runs[2] / "state" / "step-00000003").iterdir()) == \
        sorted(p.name for p in (runs[1] / "state" / "step-00000003").iterdir())


def test_only_rank_zero_writes(data, tmp_path):
    from factorportrait.training.trainer import distributed as D
    from factorportrait.training.trainer.exports import export_checkpoints  # noqa: F401
    from factorportrait.training.trainer.state import save_state

    module = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(module.parameters())
    module(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    rank1 = D.DistEnv(rank=1, world_size=1, local_rank=1, device=torch.device("cpu"))
    assert save_state(tmp_path, 1, module, optimizer, {"weight", "bias"}, None, {}, rank1) is None
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())
    rank0 = D.DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    assert (save_state(tmp_path, 1, module, optimizer, {"weight", "bias"}, None, {}, rank0) / "state.json").is_file()


# -- resume ------------------------------------------------------------------------------------------

def test_resume_continues_the_same_loss_curve(data, tmp_path):
    """Stopped after 3 of 6 steps (as a preemption) and resumed, a run has the losses and the
    weights of an uninterrupted run: optimizer, EMA, learning-rate schedule and data position."""
    sections = {"train": {"steps": 6, "ema_decay": 0.8, "warmup_steps": 2, "lr_schedule": "cosine",
                          "params": "controls+lora"}, "lora": {"rank": 4}, "output": {"export": ["full", "lora"]}}
    straight = _train(_config(data, tmp_path / "a", **sections))
    first = _train(_config(data, tmp_path / "b", **sections), stop_after=3)
    assert first.stopped_early and first.step == 3 and len(first.losses) == 3
    second = _train(_config(data, tmp_path / "b", **sections))
    assert first.losses + second.losses == pytest.approx(straight.losses, abs=1e-6)
    a = load_file(straight.exports["full"])
    b = load_file(second.exports["full"])
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    assert _losses(tmp_path / "b") == pytest.approx(straight.losses, abs=1e-6)


def test_cli_stop_at_ends_a_run_early_on_its_schedule(data, tmp_path):
    """``train.py --stop-at 2`` on a 4-step schedule: two steps, state and export at step 2,
    the learning rates of the 4-step schedule; a second call at that step trains nothing."""
    out = tmp_path / "run"
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(td.tiny_config(data, out, train={"steps": 4, "warmup_steps": 0, "lr_schedule": "cosine"},
                                              output={"save_every": 2})))

    def cli():
        return subprocess.run([sys.executable, str(ROOT / "training" / "train.py"), "--config", str(path), "--device",
                               "cpu", "--no-progress", "--stop-at", "2"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})

    done = cli()
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(_losses(out)) == 2 and (out / "checkpoints" / "tiny-step000002.safetensors").is_file()
    assert [p.name for p in (out / "state").iterdir()] == ["step-00000002"]
    lrs = [json.loads(line)["lr"] for line in (out / "log.jsonl").read_text().splitlines() if '"lr"' in line]
    assert lrs[1] < lrs[0]  # the cosine of 4 steps, not a constant learning rate
    again = cli()
    assert again.returncode == 0 and "not before --stop-at 2" in again.stdout and len(_losses(out)) == 2


def test_resume_refuses_another_parameter_group(data, tmp_path):
    _train(_config(data, tmp_path, train={"steps": 2}), stop_after=1)
    with pytest.raises(ValueError, match="other trained parameters"):
        _train(_config(data, tmp_path, train={"steps": 2, "params": "controls"}))


# -- what the run starts from and what it learns ----------------------------------------------------

def _wan_base_file(path: Path) -> Path:
    """A random tiny Wan 2.1 base in ComfyUI's layout (every parameter non-zero)."""
    from factorportrait.models.wan.config import WanConfig
    from factorportrait.models.wan.dit import WanDiT

    torch.manual_seed(0)
    wan = WanDiT(WanConfig(**td.TINY_WAN))
    with torch.no_grad():
        for p in wan.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    save_file({"model.diffusion_model." + k: v.contiguous() for k, v in wan.state_dict().items()}, path)
    return path


def test_step_zero_of_a_controls_run_is_the_base_model(data, tmp_path):
    """Exports at step 0 of a controls-only run (full and controls files) load through
    Load Model's code and predict exactly what the Wan base predicts on the fused sequence,
    whatever the controls (reference, rays, normals, expression) say."""
    from factorportrait.models.portrait.checkpoint import load_model
    from factorportrait.models.wan.config import strip_prefix
    from factorportrait.models.wan.dit import WanDiT

    base = _wan_base_file(tmp_path / "base.safetensors")
    result = _train(_config(data, tmp_path / "run", model={"wan": None, "base": str(base)},
                            train={"steps": 0, "params": "controls"}))
    wan = WanDiT.from_config_dict(load_model(base=str(base), dtype=torch.float32).model.config.to_dict())
    wan.load_state_dict(strip_prefix(load_file(base)))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, 3, 4, 4, generator=g)
    t = torch.tensor([500.0])
    # The base network on the fused sequence: the reference slot 0 prepended, its noise zero.
    with_slot = torch.cat([torch.zeros(1, 16, 1, 4, 4), x], dim=2)
    expected = wan(with_slot, t, torch.zeros(1, 512, td.TINY_WAN["text_dim"]))[:, :, 1:]
    assert expected.abs().max() > 0.1
    for loaded in (load_model(checkpoint=str(result.exports["full"]), dtype=torch.float32),
                   load_model(base=str(base), controls=str(result.exports["controls"]), dtype=torch.float32)):
        out = loaded.model(x, t, torch.randn(1, 16, 1, 4, 4, generator=g), torch.randn(1, 24, 3, 4, 4, generator=g),
                           torch.randn(1, 16, 3, 4, 4, generator=g), torch.rand(1, 9, td.DIM, generator=g))
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
        assert loaded.expression_encoder == "anny-arkit52"


def test_a_tiny_model_overfits_one_sample(data, tmp_path):
    root = tmp_path / "one"
    td.write_folder(root, 1)
    (root / "latents" / "tiny").mkdir(parents=True)
    shutil.copy(data / "latents" / "tiny" / "test-0000.safetensors", root / "latents" / "tiny")
    result = _train(_config(root, tmp_path / "run", train={"steps": 150, "batch_size": 1, "lr": 3e-3,
                                                           "weight_decay": 0.0},
                            dropout={"uncond": 0.0, "expression": 0.0}))
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert first / last >= 10, (first, last)


def test_controls_only_trains_only_the_controls(data, tmp_path):
    from factorportrait.models.portrait.checkpoint import is_control_key

    start = _train(_config(data, tmp_path / "a", train={"steps": 0, "params": "controls"}))
    after = _train(_config(data, tmp_path / "b", train={"steps": 2, "params": "controls", "lr": 1e-2}))
    a, b = load_file(start.exports["full"]), load_file(after.exports["full"])
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and all(is_control_key(k) for k in changed)
    assert any(k.startswith("control_embedding") for k in changed)
    assert any(k.startswith("expression_controller") for k in changed)


def test_gradient_checkpointing_gives_the_same_gradients():
    from factorportrait.models.portrait.dit import FactorPortraitDiT
    from factorportrait.models.wan.config import WanConfig

    torch.manual_seed(0)
    model = FactorPortraitDiT(WanConfig(**td.TINY_WAN), td.DIM)
    torch.nn.init.normal_(model.head.head.weight, std=0.02)
    g = torch.Generator().manual_seed(2)
    args = (torch.randn(1, 16, 2, 4, 4, generator=g), torch.tensor([300.0]), torch.randn(1, 16, 1, 4, 4, generator=g))
    grads = []
    for flag in (False, True):
        model.zero_grad()
        model.gradient_checkpointing = flag
        model(*args).square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-5, atol=1e-7)


# -- LoRA ---------------------------------------------------------------------------------------------

def test_lora_file_is_what_comfyui_applies(data, tmp_path):
    """ComfyUI's own LoRA loader and weight maths, applied to the trained LoRA file, give the
    weights of our merged full checkpoint."""
    from devpack import import_comfyui

    import_comfyui()
    import comfy.lora
    import comfy.weight_adapter  # noqa: F401

    result = _train(_config(data, tmp_path, train={"steps": 3, "params": "controls+lora", "lr": 1e-2},
                            lora={"rank": 4, "alpha": 2.0, "targets": ["self_attn.q", "ffn.2"]},
                            output={"export": ["controls", "full", "lora"]}))
    start = _train(_config(data, tmp_path / "zero", train={"steps": 0, "params": "controls+lora"},
                           lora={"rank": 4, "alpha": 2.0, "targets": ["self_attn.q", "ffn.2"]}))
    base = load_file(start.exports["full"])
    merged = load_file(result.exports["full"])
    lora = load_file(result.exports["lora"])
    key_map = {f"diffusion_model.{k[:-len('.weight')]}": f"diffusion_model.{k}" for k in base if k.endswith(".weight")}
    patches = comfy.lora.load_lora(lora, key_map)
    assert len(patches) == 4  # 2 blocks x 2 targets, every key understood
    for model_key, patch in patches.items():
        key = model_key[len("diffusion_model."):]
        weight = comfy.lora.calculate_weight([(1.0, patch, 1.0, None, None)], base[key].clone(), model_key)
        torch.testing.assert_close(weight, merged[key], rtol=1e-5, atol=1e-6)
        assert not torch.equal(merged[key], base[key])


# -- configs and data errors ------------------------------------------------------------------------

def test_config_errors_name_the_key(data, tmp_path):
    from factorportrait.training.trainer.config import ConfigError, config_from_dict, load_config

    good = td.tiny_config(data, tmp_path)
    for section, key, value, needle in [
        ("train", "lrr", 1.0, "train.lrr"),
        ("train", "lr", "fast", "train.lr"),
        ("train", "params", "everything", "train.params"),
        ("data", "frames", 16, "data.frames"),
        ("lora", "targets", ["attn.q"], "lora.targets"),
    ]:
        bad = json.loads(json.dumps(good))
        bad.setdefault(section, {})[key] = value
        with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
            config_from_dict(bad)
    with pytest.raises(ConfigError, match=r"section \[trian\]"):
        config_from_dict({**good, "trian": {}})
    path = tmp_path / "c.toml"
    path.write_text('[model]\nwan = {dim = 128, ffn_dim = 128, num_layers = 1, num_heads = 1}\n'
                    '[data]\nroot = "d"\nlatents = "tiny"\n[train]\nsteps = 3\n')
    cfg = load_config(path, ["train.lr=0.5", "output.name=x"])
    assert cfg.train.lr == 0.5 and cfg.output.name == "x" and cfg.data.root == str(tmp_path / "d")


def test_wrong_sized_and_corrupt_samples_are_named(data, tmp_path):
    from factorportrait.training.data.dataset import ClipDataset
    from factorportrait.training.data.manifest import read_manifests
    from factorportrait.training.data.sample import SampleError

    with pytest.raises(SampleError, match=r"test-0000\.safetensors.*is 32x32.*data\.width x data\.height is 64x64"):
        ClipDataset(data, frames=9, width=64, height=64, expression_dim=52, latents_tag="tiny")[0]
    with pytest.raises(SampleError, match=r"9 frames, fewer than data\.frames = 13"):
        ClipDataset(data, frames=13, width=32, height=32, expression_dim=52, latents_tag="tiny")[0]
    with pytest.raises(SampleError, match="dimension 52, the model takes 10"):
        ClipDataset(data, frames=9, width=32, height=32, expression_dim=10, latents_tag="tiny")[0]
    with pytest.raises(SampleError, match="no up-to-date cached latents under latents/other"):
        ClipDataset(data, frames=9, width=32, height=32, expression_dim=52, latents_tag="other", vae=None)[0]
    # A truncated sample: an error naming it, or skipped and logged when the config says so.
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    first = read_manifests(copy)[0]["file"]
    blob = (copy / first).read_bytes()
    (copy / first).write_bytes(blob[: len(blob) // 2])
    (copy / "latents" / "tiny" / Path(first).name).unlink()
    vae = _VaeThatMustNotRun()
    strict = ClipDataset(copy, frames=9, width=32, height=32, expression_dim=52, latents_tag="tiny", vae=vae)
    with pytest.raises(SampleError, match=rf"{Path(first).name}: is truncated or corrupt"):
        strict[0]
    lenient = ClipDataset(copy, frames=9, width=32, height=32, expression_dim=52, latents_tag="tiny", vae=vae,
                          on_error="skip")
    item = lenient[0]
    assert item["latents"].shape == (16, 3, 4, 4) and list(lenient.skipped) == [first]
    torch.testing.assert_close(item["expression"], lenient[1]["expression"])
    checked = ClipDataset(data, frames=9, width=32, height=32, expression_dim=52, latents_tag="tiny", verify=True)
    assert checked[0]["rays"].shape == (24, 3, 4, 4)


class _VaeThatMustNotRun:
    def encode(self, images):
        raise AssertionError("the truncated sample must fail before encoding")


def test_dataset_item_matches_the_sampler_inputs(data):
    """The dataset's rays are the Plücker Ray Maps node's, its latents the cached VAE latents
    normalised as the sampler node normalises them."""
    from factorportrait.models.camera.plucker import latent_plucker_rays
    from factorportrait.models.wan import latent_format
    from factorportrait.training.data.dataset import ClipDataset
    from factorportrait.training.data.latent_cache import latent_path
    from factorportrait.training.data.sample import read_sample

    ds = ClipDataset(data, frames=5, width=32, height=32, expression_dim=52, latents_tag="tiny")
    entry = ds.entries[1]
    item = ds[1]
    sample = read_sample(data / entry["file"])
    raw = load_file(latent_path(data, "tiny", entry["file"]))
    torch.testing.assert_close(item["latents"], latent_format.normalize(raw["frames"].float()[None])[0, :, :2])
    torch.testing.assert_close(item["rays"], latent_plucker_rays(sample.camera.frames([0, 1, 2, 3, 4]), 32, 32)[0])
    torch.testing.assert_close(item["expression"], sample.expression[:5])


def test_control_dropout_matches_the_guidance_branches():
    from factorportrait.training.trainer.config import DropoutConfig
    from factorportrait.training.trainer.control_dropout import apply_dropout, dropout_masks

    keep = dropout_masks(DropoutConfig(uncond=0.2, expression=0.3), seed=0, step=0, samples=list(range(4000)))
    uncond = ~keep["normals"] & ~keep["expression"]
    assert abs(uncond.float().mean() - 0.2) < 0.03
    assert abs((keep["normals"] & ~keep["expression"]).float().mean() - 0.8 * 0.3) < 0.03
    assert keep["rays"].all() and not (~keep["normals"] & keep["expression"]).any()
    batch = {"normals": torch.ones(2, 16, 1, 1, 1), "expression": torch.ones(2, 5, 3), "rays": torch.ones(2, 24, 1, 1, 1)}
    out = apply_dropout(batch, {"normals": torch.tensor([True, False]), "expression": torch.tensor([False, True]),
                                "rays": torch.tensor([True, True])})
    assert out["normals"][1].abs().sum() == 0 and out["normals"][0].min() == 1
    assert out["expression"][0].abs().sum() == 0 and out["rays"].min() == 1


def test_training_sigmas_follow_the_sampler_shift():
    from factorportrait.models.sampling.schedule import shift_sigma
    from factorportrait.training.trainer.flow_loss import noised, training_sigmas

    s = training_sigmas(0, 0, list(range(20000)), shift=5.0)
    unshifted = torch.sigmoid(torch.randn(20000, generator=torch.Generator().manual_seed(0)))
    assert abs(s.median() - shift_sigma(unshifted.median(), 5.0)) < 0.02  # median of logit-normal = 0.5 -> 5/6
    assert abs(s.median() - 5 / 6) < 0.02 and 0 < s.min() and s.max() < 1
    x0, noise = torch.randn(2, 16, 1, 2, 2), torch.randn(2, 16, 1, 2, 2)
    x_t, target = noised(x0, noise, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(x_t[0], x0[0])
    torch.testing.assert_close(x_t[1], noise[1])
    torch.testing.assert_close(target, noise - x0)


@pytest.mark.parametrize("path", sorted((ROOT / "training" / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_example_configs_are_valid(path):
    from factorportrait.training.trainer.config import load_config

    cfg = load_config(path)
    assert cfg.data.root and (cfg.model.base or cfg.model.checkpoint or cfg.model.wan)


def test_memory_estimate_counts_the_released_models():
    from factorportrait.models.wan.config import T2V_1_3B, T2V_14B
    from factorportrait.training.trainer.memory_estimate import base_parameters, estimate

    from factorportrait.models.portrait.dit import FactorPortraitDiT
    from factorportrait.training.trainer.memory_estimate import control_parameters

    for config in (T2V_1_3B, T2V_14B):
        model = FactorPortraitDiT(config, 52, device="meta")
        controls = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("control", "expression")))
        assert abs(base_parameters(config) / (sum(p.numel() for p in model.parameters()) - controls) - 1) < 0.001
        assert control_parameters(config, 52) == controls
    full = estimate(T2V_1_3B, 81, 832, 480, params="full", checkpointing=True)
    assert full.tokens == 22 * 30 * 52
    assert abs(full.optimizer_gib - base_parameters(T2V_1_3B) * 12 / 2**30) < 0.2
    assert estimate(T2V_1_3B, 81, 832, 480, params="full", checkpointing=False).activations_gib > 10 * full.activations_gib


def test_validation_loss_and_clips(data, tmp_path):
    """Validation: a loss at fixed noise that falls as the model trains, and clips sampled by
    the sampler itself, saved as latents and, with a VAE, as a truth-over-generated strip."""
    from PIL import Image

    vae = (data / "vae_path").read_text()
    out = tmp_path / "run"
    _train(_config(data, out, train={"steps": 40, "lr": 3e-3},
                   data={"validation_root": str(data), "vae": vae},
                   output={"validate_every": 20, "validation_clips": 1, "validation_steps": 2}))
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if "validation_loss" in line]
    assert [r["step"] for r in records] == [20, 40]
    assert records[1]["validation_loss"] < records[0]["validation_loss"]
    latent = load_file(out / "validation" / "step-000040-clip-0.safetensors")["latent_tensor"]
    assert latent.shape == (1, 16, 3, 4, 4) and torch.isfinite(latent).all()
    strip = Image.open(out / "validation" / "step-000040-clip-0.png")
    assert strip.size == (td.FRAMES * td.SIZE, 2 * td.SIZE)
