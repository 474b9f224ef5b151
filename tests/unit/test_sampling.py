"""The sampling core against ground truth: hand-computed schedules, analytic flow fields
(a point mass and a Gaussian, whose exact ODE solutions are known), the guidance formula,
and window plans checked frame by frame. No ComfyUI here (see the integration parity test).

Gaussian data x0 ~ N(mu, s^2), noise ~ N(0, 1), x = a x0 + sigma eps with a = 1 - sigma:
x ~ N(a mu, V), V = a^2 s^2 + sigma^2, and E[eps - x0 | x] = (sigma - a s^2) / V (x - a mu) - mu
(jointly Gaussian regression). The ODE dx/dsigma = v keeps the z-score fixed, so
x(sigma) = a mu + sqrt(V) z: noise z lands on mu + s z, noise quantiles on data quantiles.
"""
import math

import pytest
import torch

from factorportrait.models.errors import InputError
from factorportrait.models.sampling import (
    BRANCHES,
    batched_guided_velocity,
    blend_weights,
    branches_needed,
    flow_sigmas,
    guidance_weights,
    guided_velocity,
    guided_velocity_fn,
    initial_noise,
    model_timestep,
    noise_latent,
    plan_windows,
    sample,
    shift_sigma,
    solver_sigmas,
    window_video_frames,
    windowed_velocity,
    windowed_velocity_fn,
)

SOLVERS = ["euler", "unipc"]


# ----------------------------------------------------------------------------- fields

def point_mass_field(target):
    """Exact velocity when all data is ``target``: v = (x - target) / sigma."""
    return lambda x, sigma: (x - target) / sigma


def gaussian_field(mu, std):
    def velocity(x, sigma):
        a = 1.0 - sigma
        var = a * a * std * std + sigma * sigma
        return (sigma - a * std * std) / var * (x - a * mu) - mu
    return velocity


def gaussian_exact(mu, std, z, sigma):
    """The exact ODE state at ``sigma`` of the path starting from noise z at sigma = 1."""
    a = 1.0 - sigma
    return a * mu + torch.sqrt(a * a * std * std + sigma * sigma) * z


def gaussian_problem(n=2000, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, generator=g, dtype=torch.float64)
    std = 0.5 + torch.rand(n, generator=g, dtype=torch.float64)
    z = torch.randn(n, generator=g, dtype=torch.float64)
    return mu, std, z


def max_error(solver, steps, shift, problem=None):
    mu, std, z = problem or gaussian_problem()
    out = sample(gaussian_field(mu, std), z, flow_sigmas(steps, shift), solver)
    return (out - (mu + std * z)).abs().max().item()


# ----------------------------------------------------------------------------- schedule

def test_flow_sigmas_hand_computed_shift_5():
    # t = 1, 3/4, 1/2, 1/4 -> 5t / (1 + 4t)
    expected = [1.0, 3.75 / 4.0, 2.5 / 3.0, 1.25 / 2.0, 0.0]
    sigmas = flow_sigmas(4, 5.0)
    assert sigmas.dtype == torch.float64
    assert sigmas.tolist() == pytest.approx(expected, abs=1e-15)
    assert sigmas[-1].item() == 0.0


def test_flow_sigmas_shift_1_is_linear():
    assert flow_sigmas(10, 1.0).tolist() == pytest.approx([1 - k / 10 for k in range(11)], abs=1e-15)


@pytest.mark.parametrize("steps", [1, 2, 7, 20, 50, 1000])
@pytest.mark.parametrize("shift", [0.5, 1.0, 3.0, 5.0, 8.0])
def test_flow_sigmas_shape_order_and_ends(steps, shift):
    sigmas = flow_sigmas(steps, shift)
    assert sigmas.shape == (steps + 1,)
    assert sigmas[0].item() == 1.0 and sigmas[-1].item() == 0.0
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    # every sigma is the shift of one of Wan's 1000 training timesteps
    t = sigmas[:-1] / (shift - (shift - 1) * sigmas[:-1])  # inverse shift
    torch.testing.assert_close(t * 1000, (t * 1000).round(), rtol=0, atol=1e-9)


def test_flow_sigmas_use_comfyui_float_index_rounding():
    # ComfyUI picks timestep index int(k * (1000 / steps)); for steps=38, k=19 the float
    # product is 499.99..., so t = 501/1000, not 500/1000.
    assert flow_sigmas(38, 1.0)[19].item() == pytest.approx(0.501, abs=1e-15)


def test_shift_sigma_and_model_timestep():
    assert shift_sigma(0.5, 5.0) == pytest.approx(2.5 / 3.0)
    assert shift_sigma(0.3, 1.0) == 0.3
    assert model_timestep(0.25) == 250.0


@pytest.mark.parametrize("steps, denoise", [(10, 0.5), (20, 0.75), (4, 0.2), (10, 0.3)])
def test_denoise_keeps_the_tail_of_the_longer_schedule(steps, denoise):
    sigmas = flow_sigmas(steps, 5.0, denoise)
    full = flow_sigmas(int(steps / denoise), 5.0)
    assert sigmas.shape == (steps + 1,)
    assert torch.equal(sigmas, full[-(steps + 1):])
    assert sigmas[0] < 1.0 and sigmas[-1] == 0.0


def test_denoise_uses_comfyui_float_division():
    # int(7 / 0.07) == 99 in floating point (ComfyUI's rule), not 100
    assert torch.equal(flow_sigmas(7, 5.0, 0.07), flow_sigmas(99, 5.0)[-8:])


def test_denoise_just_below_one_is_a_full_run():
    assert torch.equal(flow_sigmas(10, 5.0, 0.99995), flow_sigmas(10, 5.0))


@pytest.mark.parametrize("steps, denoise", [(10, 1.0), (20, 0.5), (1, 1.0)])
def test_solver_sigmas_unipc_drops_the_penultimate_sigma(steps, denoise):
    longer_total = (steps if denoise == 1.0 else int(steps / denoise)) + 1
    longer = flow_sigmas(longer_total, 5.0)
    expected = torch.cat([longer[:-2], longer[-1:]])[-(steps + 1):]
    assert torch.equal(solver_sigmas(steps, 5.0, denoise, "unipc"), expected)
    assert torch.equal(solver_sigmas(steps, 5.0, denoise, "euler"), flow_sigmas(steps, 5.0, denoise))


@pytest.mark.parametrize("kwargs, name", [
    (dict(steps=0, shift=5.0), "steps"), (dict(steps=1001, shift=5.0), "steps"),
    (dict(steps=2.5, shift=5.0), "steps"), (dict(steps=True, shift=5.0), "steps"),
    (dict(steps=10, shift=0.0), "shift"), (dict(steps=10, shift=-1.0), "shift"),
    (dict(steps=10, shift=float("nan")), "shift"), (dict(steps=10, shift=float("inf")), "shift"),
    (dict(steps=10, shift=5.0, denoise=0.0), "denoise"), (dict(steps=10, shift=5.0, denoise=1.5), "denoise"),
    (dict(steps=10, shift=5.0, denoise=float("nan")), "denoise"), (dict(steps=10, shift="5", denoise=1.0), "shift"),
    (dict(steps=600, shift=5.0, denoise=0.5), "steps"),
])
def test_schedule_errors_name_the_input(kwargs, name):
    with pytest.raises(InputError) as info:
        flow_sigmas(**kwargs)
    assert info.value.input_name == name


def test_unknown_solver_is_an_input_error():
    with pytest.raises(InputError) as info:
        solver_sigmas(10, 5.0, solver="heun")
    assert info.value.input_name == "solver" and "euler" in info.value.message
    with pytest.raises(InputError):
        sample(lambda x, s: x, torch.zeros(2), flow_sigmas(2, 5.0), solver="dpm")


# ----------------------------------------------------------------------------- noise

def test_initial_noise_is_deterministic_per_seed():
    shape = (1, 16, 3, 8, 8)
    a, b, c = initial_noise(shape, 42), initial_noise(shape, 42), initial_noise(shape, 43)
    assert a.shape == shape and a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert abs(a.mean().item()) < 0.05 and abs(a.std().item() - 1) < 0.05
    assert initial_noise(shape, 7, dtype=torch.float64).dtype == torch.float64


def test_initial_noise_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    initial_noise((4, 4), 123)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "7", None, True])
def test_initial_noise_bad_seed(seed):
    with pytest.raises(InputError) as info:
        initial_noise((2, 2), seed)
    assert info.value.input_name == "seed"


def test_noise_latent_interpolates():
    x0, noise = torch.full((3,), 2.0), torch.full((3,), -1.0)
    assert torch.equal(noise_latent(x0, noise, 1.0), noise)
    assert torch.equal(noise_latent(x0, noise, 0.0), x0)
    torch.testing.assert_close(noise_latent(x0, noise, 0.25), torch.full((3,), 0.75 * 2.0 - 0.25))


# ----------------------------------------------------------------------------- solvers

@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 8, 20, 50])
@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0, 8.0])
def test_point_mass_lands_exactly(solver, steps, shift):
    g = torch.Generator().manual_seed(steps)
    target = torch.randn(2, 4, 3, 5, generator=g, dtype=torch.float64)
    noise = torch.randn(target.shape, generator=g, dtype=torch.float64)
    out = sample(point_mass_field(target), noise, flow_sigmas(steps, shift), solver)
    torch.testing.assert_close(out, target, rtol=0, atol=1e-6)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("denoise", [0.3, 0.75])
def test_point_mass_lands_exactly_from_a_partially_noised_latent(solver, denoise):
    target = torch.tensor([0.5, -1.5, 2.0])
    x0, noise = torch.tensor([3.0, 1.0, -2.0]), initial_noise((3,), 5)
    sigmas = flow_sigmas(12, 5.0, denoise)
    out = sample(point_mass_field(target), noise_latent(x0, noise, float(sigmas[0])), sigmas, solver)
    torch.testing.assert_close(out, target, rtol=0, atol=1e-6)


@pytest.mark.parametrize("solver", SOLVERS)
def test_point_mass_float32(solver):
    target = torch.linspace(-2, 2, 50)
    out = sample(point_mass_field(target), initial_noise((50,), 0), flow_sigmas(30, 5.0), solver)
    torch.testing.assert_close(out, target, rtol=0, atol=1e-6)


def test_nonzero_final_sigma_stops_on_the_exact_path():
    target, noise = torch.tensor([1.0, -1.0], dtype=torch.float64), torch.tensor([0.3, 0.9], dtype=torch.float64)
    sigmas = flow_sigmas(10, 5.0)[:-1]
    end = float(sigmas[-1])
    for solver in SOLVERS:
        out = sample(point_mass_field(target), noise, sigmas, solver)
        torch.testing.assert_close(out, (1 - end) * target + end * noise, rtol=0, atol=1e-12)


def test_euler_with_many_steps_follows_the_exact_gaussian_ode():
    mu, std, z = gaussian_problem()
    states = {}
    sigmas = flow_sigmas(1000, 1.0)
    out = sample(gaussian_field(mu, std), z, sigmas, "euler",
                 callback=lambda i, n, x, d: states.update({i: x}))
    torch.testing.assert_close(out, mu + std * z, rtol=0, atol=1e-2)
    for i in (99, 499, 899):
        exact = gaussian_exact(mu, std, z, float(sigmas[i + 1]))
        torch.testing.assert_close(states[i], exact, rtol=0, atol=1e-2)


def test_euler_is_first_order():
    ratio = max_error("euler", 100, 1.0) / max_error("euler", 200, 1.0)
    assert 1.7 < ratio < 2.3


@pytest.mark.parametrize("steps, shift", [(8, 1.0), (16, 1.0), (16, 3.0), (32, 5.0)])
def test_unipc_is_much_closer_than_euler_for_few_steps(steps, shift):
    assert max_error("unipc", steps, shift) < max_error("euler", steps, shift) / 5


def test_unipc_converges_faster_than_first_order():
    errors = [max_error("unipc", n, 1.0) for n in (16, 32, 64)]
    assert errors[0] / errors[1] > 3 and errors[1] / errors[2] > 3


def test_gaussian_noise_quantiles_map_to_data_quantiles():
    mu, s = 0.7, 1.3
    z = initial_noise((20000,), 11, dtype=torch.float64)
    out = sample(gaussian_field(torch.tensor(mu), torch.tensor(s)), z, flow_sigmas(30, 1.0), "unipc")
    qs = torch.tensor([0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99], dtype=torch.float64)
    torch.testing.assert_close(torch.quantile(out, qs), mu + s * torch.quantile(z, qs), rtol=0, atol=1e-2)
    assert abs(out.mean().item() - mu) < 0.03 and abs(out.std().item() - s) < 0.03


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("steps", [1, 2, 5, 12])
def test_callback_once_per_step_and_one_network_call_per_step(solver, steps):
    calls, seen = [], []

    def velocity(x, sigma):
        assert isinstance(sigma, float)
        calls.append(sigma)
        return x

    def callback(i, total, x, denoised):
        seen.append((i, total))
        assert x.shape == denoised.shape == (3,)

    sample(velocity, torch.ones(3), flow_sigmas(steps, 5.0), solver, callback=callback)
    assert seen == [(i, steps) for i in range(steps)]
    assert len(calls) == steps


@pytest.mark.parametrize("solver", SOLVERS)
def test_exception_in_callback_stops_sampling_at_once(solver):
    calls = []

    class Cancelled(Exception):
        pass

    def velocity(x, sigma):
        calls.append(sigma)
        return x

    def callback(i, total, x, denoised):
        if i == 3:
            calls_at_cancel.append(len(calls))
            raise Cancelled

    calls_at_cancel = []
    with pytest.raises(Cancelled):
        sample(velocity, torch.ones(3), flow_sigmas(20, 5.0), solver, callback=callback)
    assert calls_at_cancel == [len(calls)] and len(calls) < 20


def test_callback_reports_state_after_step_and_x0_prediction():
    target = torch.tensor([2.0, -1.0], dtype=torch.float64)
    noise = torch.tensor([0.5, 0.5], dtype=torch.float64)
    sigmas = flow_sigmas(6, 3.0)
    for solver in SOLVERS:
        got = []
        sample(point_mass_field(target), noise, sigmas, solver,
               callback=lambda i, n, x, d: got.append((x.clone(), d.clone())))
        for i, (x, denoised) in enumerate(got):
            s = float(sigmas[i + 1])
            torch.testing.assert_close(x, (1 - s) * target + s * noise, rtol=0, atol=1e-12)
            torch.testing.assert_close(denoised, target, rtol=0, atol=1e-12)


def test_sample_leaves_inputs_untouched():
    x, sigmas = torch.randn(4), flow_sigmas(5, 5.0)
    x_copy, sigmas_copy = x.clone(), sigmas.clone()
    for solver in SOLVERS:
        sample(lambda x, s: x * 0.5, x, sigmas, solver)
    assert torch.equal(x, x_copy) and torch.equal(sigmas, sigmas_copy)


@pytest.mark.parametrize("sigmas", [[1.0], [1.0, 1.0, 0.0], [0.5, 0.7, 0.0], [1.0, 0.5, -0.1], [2.0, 0.0]])
def test_bad_sigmas(sigmas):
    with pytest.raises(InputError) as info:
        sample(lambda x, s: x, torch.zeros(2), torch.tensor(sigmas), "unipc")
    assert info.value.input_name == "sigmas"


# ----------------------------------------------------------------------------- guidance

def branch_velocities(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, generator=g) for _ in range(3)]


def test_guidance_one_one_is_the_full_branch_exactly():
    vu, vp, vf = branch_velocities()
    assert branches_needed(1.0, 1.0) == ("full",)
    assert torch.equal(guided_velocity(vu, vp, vf, 1.0, 1.0), vf)
    assert torch.equal(guided_velocity(None, None, vf, 1, 1), vf)


@pytest.mark.parametrize("cfg, ecfg", [(5.0, 2.0), (3.0, 7.5), (0.0, 2.0), (5.0, 5.0), (1.0, 3.0),
                                       (4.0, 0.0), (1.0, 0.0), (0.0, 0.0), (-1.0, 0.5), (1.0, 1.0)])
def test_guidance_formula(cfg, ecfg):
    vu, vp, vf = branch_velocities()
    expected = vu + cfg * (vp - vu) + ecfg * (vf - vp)
    torch.testing.assert_close(guided_velocity(vu, vp, vf, cfg, ecfg), expected, rtol=1e-6, atol=1e-6)
    w = guidance_weights(cfg, ecfg)
    assert sum(w.values()) == pytest.approx(1.0)
    torch.testing.assert_close(w["uncond"] * vu + w["pose"] * vp + w["full"] * vf, expected,
                               rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("cfg, ecfg, needed", [
    (1.0, 1.0, ("full",)), (5.0, 5.0, ("uncond", "full")), (1.0, 3.0, ("pose", "full")),
    (5.0, 0.0, ("uncond", "pose")), (1.0, 0.0, ("pose",)), (0.0, 0.0, ("uncond",)),
    (5.0, 2.0, BRANCHES), (0.0, 2.0, BRANCHES),
])
def test_branches_needed_are_minimal_and_exact(cfg, ecfg, needed):
    assert branches_needed(cfg, ecfg) == needed
    vs = dict(zip(BRANCHES, branch_velocities()))
    given = [vs[b] if b in needed else None for b in BRANCHES]
    result = guided_velocity(*given, cfg, ecfg)
    expected = vs["uncond"] + cfg * (vs["pose"] - vs["uncond"]) + ecfg * (vs["full"] - vs["pose"])
    torch.testing.assert_close(result, expected, rtol=1e-6, atol=1e-6)
    # plain CFG is ComfyUI's formula to the bit
    if needed == ("uncond", "full"):
        assert torch.equal(result, vs["uncond"] + cfg * (vs["full"] - vs["uncond"]))


def test_missing_needed_branch_is_an_error():
    vu, vp, vf = branch_velocities()
    with pytest.raises(ValueError, match="pose"):
        guided_velocity(vu, None, vf, 5.0, 2.0)


@pytest.mark.parametrize("cfg, ecfg, name", [(float("nan"), 1.0, "cfg"), (1.0, float("inf"), "expression_cfg"),
                                             ("5", 1.0, "cfg"), (1.0, None, "expression_cfg")])
def test_guidance_scale_errors(cfg, ecfg, name):
    with pytest.raises(InputError) as info:
        branches_needed(cfg, ecfg)
    assert info.value.input_name == name


@pytest.mark.parametrize("cfg, ecfg", [(1.0, 1.0), (5.0, 5.0), (5.0, 2.0), (1.0, 4.0)])
def test_batched_guidance_one_call_with_the_needed_branches(cfg, ecfg):
    offsets = {"uncond": 0.0, "pose": 1.0, "full": 3.0}  # branch-dependent velocity x + offset
    calls = []

    def model_fn(x, sigma, branches):
        calls.append((x.shape[0], tuple(branches)))
        return x + torch.cat([torch.full_like(c, offsets[b]) for b, c in zip(branches, x.chunk(len(branches)))])

    x = torch.randn(2, 3)
    got = batched_guided_velocity(model_fn, x, 0.5, cfg, ecfg)
    needed = branches_needed(cfg, ecfg)
    assert calls == [(2 * len(needed), needed)]
    expected = guided_velocity(*[x + offsets[b] for b in BRANCHES], cfg, ecfg)
    torch.testing.assert_close(got, expected)


def test_guided_velocity_fn_in_the_sampler_calls_the_model_once_per_step():
    target = torch.tensor([1.0, -2.0], dtype=torch.float64)
    calls = []

    def model_fn(x, sigma, branches):
        calls.append(branches)
        return (x - target.repeat(len(branches))) / sigma  # every branch: the same point mass

    out = sample(guided_velocity_fn(model_fn, 5.0, 2.0), torch.zeros(2, dtype=torch.float64),
                 flow_sigmas(8, 5.0), "unipc")
    assert calls == [BRANCHES] * 8
    torch.testing.assert_close(out, target, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- windows

@pytest.mark.parametrize("n, window, overlap, expected", [
    (21, 21, 5, [range(0, 21)]),
    (10, 21, 5, [range(0, 10)]),
    (53, 21, 5, [range(0, 21), range(16, 37), range(32, 53)]),
    (37, 21, 5, [range(0, 21), range(16, 37)]),
    (40, 21, 5, [range(0, 21), range(9, 30), range(19, 40)]),
    (22, 21, 0, [range(0, 21), range(1, 22)]),
    (6, 2, 0, [range(0, 2), range(2, 4), range(4, 6)]),
    (5, 1, 0, [range(i, i + 1) for i in range(5)]),
])
def test_plan_windows_examples(n, window, overlap, expected):
    assert plan_windows(n, window, overlap) == expected


@pytest.mark.parametrize("n", [1, 2, 20, 21, 22, 36, 37, 38, 53, 100, 301])
@pytest.mark.parametrize("window, overlap", [(21, 5), (21, 0), (21, 20), (8, 3), (3, 1)])
def test_plan_windows_cover_with_at_least_the_overlap(n, window, overlap):
    windows = plan_windows(n, window, overlap)
    assert windows[0].start == 0 and windows[-1].stop == n
    assert all(len(w) == min(window, n) for w in windows)
    assert sorted(set().union(*windows)) == list(range(n))
    for a, b in zip(windows, windows[1:]):
        assert a.start < b.start and a.stop - b.start >= overlap
    if n > window:
        stride = window - overlap
        assert len(windows) == math.ceil((n - window) / stride) + 1  # as few as possible
        if (n - window) % stride == 0:
            assert all(a.stop - b.start == overlap for a, b in zip(windows, windows[1:]))


@pytest.mark.parametrize("n, window, overlap", [(53, 21, 5), (40, 21, 5), (100, 21, 20), (22, 21, 0),
                                                (301, 21, 5), (21, 21, 5), (9, 3, 2)])
def test_blend_weights_sum_to_one(n, window, overlap):
    windows = plan_windows(n, window, overlap)
    weights = blend_weights(windows, n)
    total = [0.0] * n
    for w, wt in zip(windows, weights):
        assert wt.shape == (len(w),) and wt.dtype == torch.float64
        assert bool((wt > 0).all()) and bool((wt <= 1).all())
        for frame, value in zip(w, wt.tolist()):
            total[frame] += value
    assert total == [1.0] * n  # exactly, summed in window order


def test_blend_weights_are_linear_ramps_across_the_overlap():
    windows = plan_windows(53, 21, 5)
    weights = blend_weights(windows, 53)
    up = torch.arange(1, 6, dtype=torch.float64) / 6
    torch.testing.assert_close(weights[1][:5], up, rtol=0, atol=1e-15)
    torch.testing.assert_close(weights[0][-5:], 1 - up, rtol=0, atol=1e-15)
    assert torch.equal(weights[0][:16], torch.ones(16, dtype=torch.float64))
    assert torch.equal(weights[1][5:16], torch.ones(11, dtype=torch.float64))


def latent(t=53, seed=0):
    return torch.randn(1, 4, t, 3, 2, generator=torch.Generator().manual_seed(seed))


def test_window_independent_field_is_identical_windowed_and_whole():
    x = latent()
    frame_scale = torch.linspace(0.5, 2.0, 53).view(1, 1, -1, 1, 1)
    seen = []

    def whole(x, sigma):
        return torch.sin(x) * sigma - frame_scale * x

    def per_window(x_w, sigma, frames):
        seen.append(frames)
        return torch.sin(x_w) * sigma - frame_scale[:, :, frames.start:frames.stop] * x_w

    windows = plan_windows(53, 21, 5)
    got = windowed_velocity(per_window, x, 0.7, windows, blend_weights(windows, 53))
    assert seen == windows
    assert torch.equal(got, whole(x, 0.7))


def test_windowed_velocity_passes_each_window_its_slice():
    x = latent(40)
    windows = plan_windows(40, 21, 5)

    def per_window(x_w, sigma, frames):
        assert torch.equal(x_w, x[:, :, frames.start:frames.stop])
        return x_w

    windowed_velocity(per_window, x, 0.5, windows, blend_weights(windows, 40))


def test_window_dependent_field_is_the_weighted_average():
    x = latent(40)
    windows = plan_windows(40, 21, 5)
    weights = blend_weights(windows, 40)
    got = windowed_velocity(lambda x_w, s, frames: torch.full_like(x_w, float(frames.start)), x, 0.5,
                            windows, weights)
    expected = torch.zeros(40, dtype=torch.float64)
    for w, wt in zip(windows, weights):
        expected[w.start:w.stop] += wt * w.start
    torch.testing.assert_close(got[0, 0, :, 0, 0], expected.float(), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("solver", SOLVERS)
def test_windowed_sampling_equals_whole_for_a_window_independent_field(solver):
    g = torch.Generator().manual_seed(1)
    mu, std = torch.randn(1, 2, 30, 2, 2, generator=g), 0.5 + torch.rand(1, 2, 30, 2, 2, generator=g)
    noise = torch.randn(1, 2, 30, 2, 2, generator=g)
    field = gaussian_field(mu, std)

    def per_window(x_w, sigma, frames):
        return gaussian_field(mu[:, :, frames.start:frames.stop], std[:, :, frames.start:frames.stop])(x_w, sigma)

    sigmas = flow_sigmas(10, 5.0)
    whole = sample(field, noise, sigmas, solver)
    windowed = sample(windowed_velocity_fn(per_window, 30, 12, 4), noise, sigmas, solver)
    assert torch.equal(windowed, whole)


def test_window_video_frames_follow_wan_grouping():
    assert window_video_frames(range(0, 21), 53) == range(0, 81)
    assert window_video_frames(range(16, 37), 53) == range(61, 145)
    assert window_video_frames(range(1, 2), 3) == range(1, 5)
    assert window_video_frames(range(32, 53), 53) == range(125, 209)


@pytest.mark.parametrize("args, name", [
    ((30, 21, 21), "overlap"), ((30, 21, 25), "overlap"), ((30, 0, 0), "window"), ((30, -3, 0), "window"),
    ((30, 21, -1), "overlap"), ((0, 21, 5), "frames"), ((30, 2.5, 0), "window"), ((10, 21, 21), "overlap"),
])
def test_plan_windows_errors(args, name):
    with pytest.raises(InputError) as info:
        plan_windows(*args)
    assert info.value.input_name == name


def test_windows_that_do_not_cover_are_rejected():
    with pytest.raises(ValueError):
        blend_weights([range(0, 5), range(6, 10)], 10)
    with pytest.raises(ValueError):
        windowed_velocity(lambda x, s, f: x, latent(10), 0.5, [range(0, 8)], [torch.ones(8)])
