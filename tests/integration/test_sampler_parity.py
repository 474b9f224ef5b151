"""Parity of our sampling core with ComfyUI's own code, called in process.

Schedules against ``KSampler.set_steps`` on a ``ModelSamplingDiscreteFlow`` (the 'simple'
scheduler, denoise, UniPC's discarded penultimate sigma); trajectories against
``sample_euler`` and ``uni_pc.sample_unipc_bh2`` on the same analytic denoiser; noise
against ``prepare_noise``. The analytic field is the exact flow velocity of Gaussian
data ``N(mu, s^2)``, so it is smooth, nonlinear in sigma and exercises UniPC's high orders.
"""
import pytest
import torch
from devpack import import_comfyui

import_comfyui()

import comfy.model_sampling  # noqa: E402
import comfy.sample  # noqa: E402
import comfy.samplers  # noqa: E402
from comfy.extra_samplers import uni_pc  # noqa: E402
from comfy.k_diffusion import sampling as k_sampling  # noqa: E402

from factorportrait.models.sampling import (  # noqa: E402
    flow_sigmas,
    initial_noise,
    noise_latent,
    sample,
    solver_sigmas,
)

SHAPE = (1, 4, 3, 5, 6)  # a small video latent [B, C, T, H, W]


class FlowModelSampling(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
    """What ComfyUI builds for Wan 2.1: discrete flow sigmas with the CONST parameterisation."""


class _Config:
    def __init__(self, shift):
        self.sampling_settings = {"shift": shift, "multiplier": 1000}


class _Model:
    """Just enough of a ModelPatcher for ``comfy.samplers.KSampler`` to compute sigmas."""

    def __init__(self, shift):
        self.model_sampling = FlowModelSampling(_Config(shift))

    def get_model_object(self, name):
        assert name == "model_sampling"
        return self.model_sampling


def comfy_sigmas(steps, shift, denoise, sampler="euler"):
    return comfy.samplers.KSampler(_Model(shift), steps, "cpu", sampler=sampler, scheduler="simple",
                                   denoise=denoise).sigmas


def gaussian_field(mu, std):
    """Exact flow velocity for x0 ~ N(mu, std^2): v = (sigma - a std^2) / var * (x - a mu) - mu."""
    def velocity(x, sigma):
        a = 1.0 - sigma
        var = a * a * std * std + sigma * sigma
        return (sigma - a * std * std) / var * (x - a * mu) - mu
    return velocity


def as_comfy_denoiser(velocity):
    """ComfyUI's samplers call ``model(x, sigma_batch) -> denoised``: x0 = x - sigma * v."""
    def denoiser(x, sigma, **kwargs):
        s = float(sigma.reshape(-1)[0])
        return x - s * velocity(x, s)
    return denoiser


def problem(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(SHAPE, generator=g, dtype=torch.float64).to(dtype)
    std = (0.2 + torch.rand(SHAPE, generator=g, dtype=torch.float64)).to(dtype)
    noise = torch.randn(SHAPE, generator=g, dtype=torch.float64).to(dtype)
    return gaussian_field(mu, std), noise


STEP_SHIFT_DENOISE = [(1, 5.0, 1.0), (2, 1.0, 1.0), (4, 3.0, 1.0), (10, 5.0, 1.0), (20, 5.0, 1.0),
                      (30, 8.0, 1.0), (38, 5.0, 1.0), (50, 1.0, 1.0), (76, 3.0, 1.0), (10, 5.0, 0.75),
                      (20, 5.0, 0.5), (7, 5.0, 0.07), (17, 3.0, 0.34), (25, 5.0, 0.3), (1, 5.0, 0.2)]


@pytest.mark.parametrize("steps, shift, denoise", STEP_SHIFT_DENOISE)
def test_flow_sigmas_match_ksampler_simple(steps, shift, denoise):
    ours, theirs = flow_sigmas(steps, shift, denoise), comfy_sigmas(steps, shift, denoise)
    assert ours.dtype == torch.float64 and ours.shape == theirs.shape
    # ComfyUI keeps its sigma table in float32: equal to float32 precision, same timesteps.
    torch.testing.assert_close(ours, theirs.double(), rtol=0, atol=2e-7)
    assert ours[-1] == 0 and theirs[-1] == 0


@pytest.mark.parametrize("steps, shift, denoise", STEP_SHIFT_DENOISE)
def test_unipc_sigmas_match_ksampler_uni_pc_bh2(steps, shift, denoise):
    ours = solver_sigmas(steps, shift, denoise, solver="unipc")
    theirs = comfy_sigmas(steps, shift, denoise, sampler="uni_pc_bh2")
    assert ours.shape == theirs.shape == (steps + 1,)
    torch.testing.assert_close(ours, theirs.double(), rtol=0, atol=2e-7)
    assert torch.equal(solver_sigmas(steps, shift, denoise, "euler"), flow_sigmas(steps, shift, denoise))


def _callback_states(record):
    return lambda i, total, x, denoised: record.append(x.clone())


def assert_states_close(ours, theirs, tol):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("steps, shift", [(1, 5.0), (3, 1.0), (10, 5.0), (30, 3.0)])
def test_euler_trajectory_matches_sample_euler(steps, shift, dtype, tol):
    velocity, noise = problem(dtype)
    sigmas = flow_sigmas(steps, shift).to(dtype)
    theirs_states = []
    theirs = k_sampling.sample_euler(as_comfy_denoiser(velocity), noise, sigmas.clone(), disable=True,
                                     callback=lambda d: theirs_states.append(d["x"].clone()))
    ours_states = []
    ours = sample(velocity, noise, sigmas, "euler", callback=_callback_states(ours_states))
    # ComfyUI reports the state before each step, we the state after it.
    assert_states_close(ours_states[:-1], theirs_states[1:], tol)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=tol)


def comfy_unipc(velocity, noise, sigmas):
    """ComfyUI's uni_pc_bh2 sampler function and its per-step states, mapped back from the
    variance-preserving scaling it runs in (x_vp = x / sqrt(1 + sigma^2))."""
    states = []
    sigmas = sigmas.clone()  # sample_unipc overwrites a final 0 with 0.001 in place
    # ComfyUI's UniPC makes its coefficient tensors in the default dtype: float64 runs need it.
    default = torch.get_default_dtype()
    torch.set_default_dtype(noise.dtype)
    try:
        out = uni_pc.sample_unipc_bh2(as_comfy_denoiser(velocity), noise, sigmas, extra_args={}, disable=True,
                                      callback=lambda d: states.append(d["x"].clone()))
    finally:
        torch.set_default_dtype(default)
    # Callback i reports the state at sigmas[i], except the last: that is the final state,
    # after two updates. Drop it and undo the VP scaling of the others.
    states = [x * (1 + float(s) ** 2) ** 0.5 for x, s in zip(states[:-1], sigmas)]
    return out, states


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-9), (torch.float32, 1e-5)])
@pytest.mark.parametrize("steps, shift", [(2, 5.0), (3, 1.0), (4, 5.0), (5, 3.0), (10, 5.0), (25, 8.0)])
def test_unipc_trajectory_matches_uni_pc_bh2(steps, shift, dtype, tol):
    velocity, noise = problem(dtype, seed=steps)
    sigmas = solver_sigmas(steps, shift, solver="unipc").to(dtype)
    _, theirs_states = comfy_unipc(velocity, noise, sigmas)
    ours_states, ours_denoised = [], []

    def record(i, total, x, denoised):
        ours_states.append(x.clone())
        ours_denoised.append(denoised.clone())

    ours = sample(velocity, noise, sigmas, "unipc", callback=record)
    # ComfyUI's callback i reports the state at sigmas[i] (i < steps - 1), ours at sigmas[i + 1].
    assert_states_close(ours_states[:-2], theirs_states[1:], tol)
    # ComfyUI stops at sigma 0.001 instead of 0; with that last sigma we agree to the end.
    # (Compared with ComfyUI in float64: in float32 its log-SNR at 0.001 is off by ~2 %,
    # which moves its own float32 result by ~1e-4.)
    velocity64, noise64 = problem(torch.float64, seed=steps)
    theirs64, _ = comfy_unipc(velocity64, noise64, sigmas.double())
    stop_early = sigmas.clone()
    stop_early[-1] = 0.001
    torch.testing.assert_close(sample(velocity, noise, stop_early, "unipc").double(), theirs64,
                               rtol=0, atol=tol)
    # Our last step to 0 lands on the newest x0-prediction.
    assert torch.equal(ours, ours_denoised[-2] if steps > 1 else ours_denoised[-1])


@pytest.mark.parametrize("steps, shift", [(4, 5.0), (12, 3.0)])
def test_unipc_trajectory_matches_with_nonzero_final_sigma(steps, shift):
    velocity, noise = problem(torch.float64, seed=1)
    sigmas = flow_sigmas(steps + 1, shift)[:-1]  # stop at the last positive sigma
    theirs, _ = comfy_unipc(velocity, noise, sigmas)
    torch.testing.assert_close(sample(velocity, noise, sigmas, "unipc"), theirs, rtol=0, atol=1e-6)


def test_ksampler_unipc_leaves_noise_in_where_ours_lands_exactly():
    """Documents ComfyUI's behaviour: through KSAMPLER, uni_pc_bh2 on a flow model returns
    x(sigma=0.001) / 0.999 (its in-place 0.001 reaches inverse_noise_scaling), so even an
    exact point-mass field misses the point by ~0.001 * noise; ours lands on it."""
    target = torch.tensor([0.3, -0.7, 1.2]).reshape(1, 3)
    noise = initial_noise((1, 3), seed=0)

    class Wrap:
        class inner_model:  # noqa: N801 - the attribute path ComfyUI reads
            model_sampling = FlowModelSampling(_Config(5.0))

        def __call__(self, x, sigma, model_options=None, seed=None):
            return target.expand_as(x).clone()

    sigmas = flow_sigmas(10, 5.0).float()
    theirs = comfy.samplers.KSAMPLER(uni_pc.sample_unipc_bh2).sample(
        Wrap(), sigmas.clone(), {}, None, noise, latent_image=torch.zeros_like(noise), disable_pbar=True)
    predicted = (target * 0.999 + 0.001 * noise) / 0.999
    # (up to ComfyUI's float32 log-SNR at sigma 0.001, good to ~1e-4)
    torch.testing.assert_close(theirs, predicted, rtol=0, atol=2e-4)
    assert (theirs - target).abs().max() > 5e-4
    ours = sample(lambda x, s: (x - target) / s, noise, sigmas, "unipc")
    torch.testing.assert_close(ours, target, rtol=0, atol=1e-6)


def test_comfy_unipc_with_one_step_does_not_denoise_where_ours_does():
    """Documents ComfyUI's behaviour: with one step its UniPC runs at order min(3, 0) = 0,
    calls the model once and returns the noise rescaled by 1/sqrt(2) (its VP scaling at
    sigma 1). KSampler asks for it when steps=1 (two sigmas, the penultimate dropped).
    Ours takes the one order-1 step, which lands on the model's x0-prediction."""
    target = torch.tensor([[0.3, -0.7, 1.2]], dtype=torch.float64)
    noise = initial_noise((1, 3), seed=0, dtype=torch.float64)
    velocity = lambda x, s: (x - target) / s  # noqa: E731
    sigmas = solver_sigmas(1, 5.0, solver="unipc")
    assert sigmas.tolist() == [1.0, 0.0]
    theirs, _ = comfy_unipc(velocity, noise, sigmas)
    torch.testing.assert_close(theirs, noise / 2 ** 0.5 * (1 + 0.001 ** 2) ** 0.5, rtol=0, atol=1e-12)
    torch.testing.assert_close(sample(velocity, noise, sigmas, "unipc"), target, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 16, 21, 8, 8), (1, 16, 1, 60, 104), (2, 4, 3, 5, 5)])
@pytest.mark.parametrize("seed", [0, 1, 42, 123456789, 2**32 + 7, 2**64 - 1])
def test_initial_noise_equals_prepare_noise(shape, seed):
    theirs = comfy.sample.prepare_noise(torch.zeros(shape), seed)
    ours = initial_noise(shape, seed)
    assert ours.device.type == "cpu" and ours.dtype == theirs.dtype
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("sigma", [1.0, 0.8, 0.3125, 0.0])
def test_noise_latent_equals_flow_noise_scaling(sigma):
    g = torch.Generator().manual_seed(3)
    x0, noise = torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=g)
    ms = FlowModelSampling(_Config(5.0))
    sigma_t = torch.tensor(sigma)  # KSAMPLER passes sigmas[0], a float32 0-d tensor
    theirs = ms.noise_scaling(sigma_t, noise, x0)
    assert torch.equal(noise_latent(x0, noise, sigma_t), theirs)
    # A python float (our float64 schedule) rounds differently, by float32 precision only.
    torch.testing.assert_close(noise_latent(x0, noise, sigma), theirs, rtol=0, atol=1e-6)
