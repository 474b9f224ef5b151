"""The speed options as a graph uses them, in process: the Sampler's step-distill preset,
the Step Cache node and the Attention & Compile node on the tiny random checkpoint."""
import dataclasses

import pytest
import torch
from devpack import import_comfyui

import_comfyui()

from factorportrait.nodes.attention_compile import AttentionCompileNode  # noqa: E402
from factorportrait.nodes.errors import FactorPortraitInputError  # noqa: E402
from factorportrait.nodes.step_cache import StepCacheNode  # noqa: E402

from .test_sampler_node import nodes_inputs, sample  # noqa: E402,F401  (the fixture and its runner)


def timesteps_seen(inputs: dict, **changes) -> list[float]:
    """The network's timesteps during one Sampler run (one per network call)."""
    model = inputs["model"].model
    seen, forward = [], model.forward
    model.forward = lambda x, t, *a, **k: (seen.append(float(t.flatten()[0])), forward(x, t, *a, **k))[1]
    try:
        sample(inputs, **changes)
    finally:
        del model.forward
    return seen


def test_step_distill_preset_runs_four_steps_at_lightx2v_timesteps(nodes_inputs):
    inputs = {**nodes_inputs, "normal_maps": None}
    seen = timesteps_seen(inputs, preset="step_distill_4", steps=30, cfg=5.0, expression_cfg=5.0)
    assert seen == pytest.approx([1000.0, 937.5, 833.3333, 625.0], abs=1e-3)  # cfg 1: one pass per step
    with pytest.raises(FactorPortraitInputError) as e:
        sample(inputs, preset="step_distill_4", denoise=0.5, latent={"samples": torch.zeros(1, 16, 3, 4, 4)})
    assert "denoise" in str(e.value)


def test_step_cache_node_skips_blocks_and_stays_close(nodes_inputs):
    inputs = {**nodes_inputs, "normal_maps": None, "cfg": 1.0, "expression_cfg": 1.0, "steps": 12}
    plain = sample(inputs)
    cached_model = StepCacheNode.execute(inputs["model"], 0.3, 0.2, 1.0).args[0]
    assert inputs["model"].step_cache is None and cached_model.step_cache.threshold == 0.3
    blocks = []
    run_blocks = type(cached_model.model).run_blocks
    type(cached_model.model).run_blocks = lambda self, *a: (blocks.append(1), run_blocks(self, *a))[1]
    try:
        cached = sample(inputs, model=cached_model)
    finally:
        type(cached_model.model).run_blocks = run_blocks
    assert len(blocks) < 12  # some steps reused the residual
    assert (cached - plain).abs().max() < 0.5 * plain.abs().max()
    off = StepCacheNode.execute(inputs["model"], 0.0, 0.2, 1.0).args[0]
    assert off.step_cache is None and torch.equal(sample(inputs, model=off), plain)


def test_attention_and_compile_node(nodes_inputs):
    model = nodes_inputs["model"]
    for name in ("sage", "flash"):
        try:
            __import__({"sage": "sageattention", "flash": "flash_attn"}[name])
        except ImportError:
            with pytest.raises(FactorPortraitInputError) as e:
                AttentionCompileNode.execute(model, name, False, "default", False)
            message = str(e.value)
            assert message.startswith("FactorPortrait Attention & Compile") and "'attention'" in message
            assert "pip install" in message
    compiled = AttentionCompileNode.execute(model, "sdpa", True, "max-autotune", True).args[0]
    assert compiled.compile.mode == "max-autotune" and compiled.compile.dynamic and model.compile is None
    with compiled.running():  # compiled lazily: nothing is traced until a block runs
        assert all(b._compiled_call_impl is not None for b in compiled.model.blocks)
    with model.running():
        assert all(b._compiled_call_impl is None for b in model.model.blocks)
    eager = dataclasses.replace(compiled, streaming="on")  # streamed blocks run eagerly
    with eager.running():
        assert all(b._compiled_call_impl is None for b in eager.model.blocks)
