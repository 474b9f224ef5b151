"""Sampler speed options without a host: the step-distill schedule, step caching, attention
backends and compiled blocks (figures: benchmarks/sampling.py)."""
import math

import pytest
import torch

from factorportrait.models.errors import InputError
from factorportrait.models.portrait.dit import FactorPortraitDiT
from factorportrait.models.portrait.sampler import PortraitConditions, generate
from factorportrait.models.sampling.presets import PRESETS
from factorportrait.models.sampling.schedule import fixed_timestep_sigmas, solver_sigmas
from factorportrait.models.sampling.step_cache import StepCache, StepCacheSettings
from factorportrait.models.wan import WanConfig, WanDiT
from factorportrait.models.wan.attention import use_attention
from factorportrait.models.wan.compile import CompileSettings, set_block_compile


def test_step_distill_preset_is_lightx2v_4_step_schedule():
    p = PRESETS["step_distill_4"]
    assert (p.steps, p.cfg, p.shift, p.timesteps) == (4, 1.0, 5.0, (1000, 750, 500, 250))
    sigmas = fixed_timestep_sigmas(p.timesteps, p.shift)
    # shift 5: 5t / (1 + 4t) at t = 1, 0.75, 0.5, 0.25, then 0
    expected = [1.0, 3.75 / 4.0, 2.5 / 3.0, 1.25 / 2.0, 0.0]
    assert sigmas.tolist() == pytest.approx(expected, abs=1e-12)
    # the same as ComfyUI's 'simple' 4-step schedule (what users pick with these LoRAs in ComfyUI)
    assert torch.allclose(sigmas, solver_sigmas(4, 5.0, 1.0, "euler"), atol=1e-12)
    for bad in ([], [1000, 1000], [250, 500], [1001, 500], [500, 0]):
        with pytest.raises(InputError):
            fixed_timestep_sigmas(bad, 5.0)


class Doubling(torch.nn.Module):
    """Blocks that double their input: transformation rate 1, output change = input change."""

    calls = 0

    def run_blocks(self, x, *args):
        Doubling.calls += 1
        return 2 * x


def test_step_cache_skips_while_the_predicted_change_stays_under_threshold():
    model, cache = Doubling(), StepCache(StepCacheSettings(threshold=0.25, start=0.0, end=1.0))
    base = torch.ones(1, 4, 8)
    inputs = [base * (1 + 0.1 * i) for i in range(8)]  # relative input change ~0.1 per step
    outs = []
    with cache.attached(model):
        for i, x in enumerate(inputs):
            cache.progress = i / len(inputs)
            outs.append(model.run_blocks(x))
    assert "run_blocks" not in model.__dict__  # detached again
    # calls 0, 1 compute (no rate yet), then k = 1: 0.083 + 0.077 = 0.16 < 0.25 skip twice,
    # + 0.071 = 0.23 skip, + 0.067 = 0.30 compute ...
    assert cache.computed + cache.skipped == 8 and cache.skipped >= 3
    residual = outs[1] - inputs[1]  # reused: output = input + the last computed residual
    torch.testing.assert_close(outs[2], inputs[2] + residual)
    assert cache.speedup == pytest.approx(8 / cache.computed)


def test_step_cache_threshold_zero_or_outside_start_end_computes_every_step():
    for settings in (StepCacheSettings(0.0), StepCacheSettings(10.0, start=0.5, end=0.5)):
        model, cache = Doubling(), StepCache(settings)
        with cache.attached(model):
            for i in range(6):
                cache.progress = i / 6
                model.run_blocks(torch.full((2, 3), float(i + 1)))
        assert cache.skipped == 0 and cache.computed == 6
    with pytest.raises(InputError):
        StepCacheSettings(0.1, start=0.8, end=0.2)


def tiny_dit() -> FactorPortraitDiT:
    torch.manual_seed(0)
    model = FactorPortraitDiT(WanConfig(dim=32, ffn_dim=64, num_layers=2, num_heads=2, text_dim=16), 8).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model


def conditions():
    gen = torch.Generator().manual_seed(1)
    return PortraitConditions(reference=torch.randn(1, 16, 1, 4, 4, generator=gen),
                              rays=torch.randn(1, 24, 3, 4, 4, generator=gen),
                              expression=torch.rand(1, 9, 8, generator=gen))


def test_generate_with_step_cache_counts_evaluations_and_stays_close():
    model, c = tiny_dit(), conditions()
    kwargs = dict(num_latent_frames=3, seed=2, steps=12, cfg=1.0, expression_cfg=1.0, shift=3.0, solver="euler")
    plain = generate(model, c, **kwargs)
    off = StepCache(StepCacheSettings(0.0))
    torch.testing.assert_close(generate(model, c, **kwargs, step_cache=off), plain, rtol=0, atol=0)
    assert off.computed == 12
    cache = StepCache(StepCacheSettings(0.3, start=0.2))
    cached = generate(model, c, **kwargs, step_cache=cache)
    assert cache.computed + cache.skipped == 12 and cache.skipped > 0
    psnr = 10 * math.log10(plain.pow(2).max() / (cached - plain).pow(2).mean())
    assert psnr > 20  # close to the uncached result, though not equal
    assert "run_blocks" not in model.__dict__


def test_generate_with_fixed_timesteps_runs_those_sigmas():
    model, c, seen = tiny_dit(), conditions(), []
    forward = model.forward
    model.forward = lambda x, t, *a, **k: (seen.append(float(t[0])), forward(x, t, *a, **k))[1]
    generate(model, c, num_latent_frames=3, seed=2, steps=4, cfg=1.0, expression_cfg=1.0, shift=5.0,
             solver="euler", timesteps=(1000, 750, 500, 250))
    assert seen == pytest.approx([1000.0, 937.5, 833.333333, 625.0], abs=1e-3)


def test_optional_attention_kernels_missing_is_a_clear_error_and_sdpa_is_the_default():
    model = WanDiT(WanConfig(dim=32, ffn_dim=64, num_layers=1, num_heads=2, text_dim=16)).eval()
    x, t, ctx = torch.randn(1, 16, 1, 4, 4), torch.tensor([500.0]), torch.randn(1, 3, 16)
    with torch.no_grad():
        plain = model(x, t, ctx)
        with use_attention("sdpa"):
            torch.testing.assert_close(model(x, t, ctx), plain, rtol=0, atol=0)
    for name in ("sage", "flash"):
        try:
            __import__({"sage": "sageattention", "flash": "flash_attn"}[name])
            continue  # installed here: nothing to check
        except ImportError:
            pass
        with pytest.raises(InputError) as e:
            with use_attention(name):
                pass
        assert e.value.input_name == "attention" and "pip install" in str(e.value)
    with pytest.raises(InputError):
        with use_attention("xformers"):
            pass


def test_compiled_blocks_match_eager_and_can_be_switched_off():
    model = WanDiT(WanConfig(dim=32, ffn_dim=64, num_layers=2, num_heads=2, text_dim=16)).eval()
    x, t, ctx = torch.randn(1, 16, 1, 4, 4), torch.tensor([500.0]), torch.randn(1, 3, 16)
    with torch.no_grad():
        eager = model(x, t, ctx)
        settings = CompileSettings(backend="aot_eager")  # Dynamo tracing without a C++ build (fast)
        set_block_compile(model.blocks, settings)
        assert all(b._compiled_call_impl is not None for b in model.blocks)
        compiled_fn = model.blocks[0]._compiled_call_impl
        set_block_compile(model.blocks, settings)  # idempotent: the compiled code is kept
        assert model.blocks[0]._compiled_call_impl is compiled_fn
        torch.testing.assert_close(model(x, t, ctx), eager, rtol=1e-5, atol=1e-6)
        set_block_compile(model.blocks, None)
        assert all(b._compiled_call_impl is None for b in model.blocks)
    with pytest.raises(InputError):
        CompileSettings(mode="fastest")
