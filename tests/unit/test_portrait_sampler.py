"""The portrait sampler: which controls each guidance branch sees, windows, determinism."""
import pytest
import torch

from factorportrait.models.portrait.dit import FactorPortraitDiT
from factorportrait.models.wan.latent_frames import latent_frame_groups
from factorportrait.models.portrait.sampler import PortraitConditions, branch_velocity, generate
from factorportrait.models.sampling import initial_noise, noise_latent, solver_sigmas
from factorportrait.models.wan.config import WanConfig

CONFIG = WanConfig(dim=64, ffn_dim=64, num_layers=1, num_heads=2, text_dim=16, freq_dim=32)
D = 4


class Recorder(torch.nn.Module):
    """Stands in for the DiT: records its inputs, returns a velocity that depends on them."""

    config, expression_dim = CONFIG, D

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, timestep, reference, rays, normals, expression, context):
        self.calls.append(dict(x=x, timestep=timestep, reference=reference, rays=rays,
                               normals=normals, expression=expression, context=context))
        return x * 0 + normals.mean() + expression.mean() + context.mean()


def conditions(t_lat=3, positive=True):
    g = torch.Generator().manual_seed(0)
    frames = 4 * t_lat - 3
    return PortraitConditions(
        reference=torch.randn(1, 16, 1, 4, 4, generator=g),
        rays=torch.randn(1, 24, t_lat, 4, 4, generator=g),
        normals=torch.randn(1, 16, t_lat, 4, 4, generator=g) + 3,
        expression=torch.rand(1, frames, D, generator=g) + 1,
        positive=torch.randn(1, 7, 16, generator=g) + 5 if positive else None,
        negative=torch.randn(1, 3, 16, generator=g) - 5)


def test_branches_see_the_documented_controls():
    model, cond = Recorder(), conditions()
    branch_velocity(model, cond, torch.zeros(3, 16, 3, 4, 4), 0.5, ("uncond", "pose", "full"))
    call = model.calls[0]
    normals, expression, context = call["normals"], call["expression"], call["context"]
    assert torch.equal(call["timestep"], torch.full((3,), 500.0))
    # uncond: no pose, no expression, negative text; pose: pose only; full: everything
    assert normals[0].abs().max() == 0 and torch.equal(normals[1], cond.normals[0]) and torch.equal(normals[2], cond.normals[0])
    assert expression[0].abs().max() == 0 and expression[1].abs().max() == 0
    assert torch.equal(expression[2], cond.expression[0])
    assert torch.equal(context[0, :3], cond.negative[0]) and context[0, 3:].abs().max() == 0
    assert torch.equal(context[1, :7], cond.positive[0]) and torch.equal(context[2, :7], cond.positive[0])
    assert context.shape[1] == 512  # Wan's padded text length
    assert torch.equal(call["reference"], cond.reference) and torch.equal(call["rays"], cond.rays)


def test_window_conditions_follow_wan_packing():
    cond = conditions(t_lat=6)  # 21 video frames
    w = cond.window(range(2, 5))  # latents 2..4 = video frames 5..16
    groups = latent_frame_groups(21)
    assert torch.equal(w.rays, cond.rays[:, :, 2:5]) and torch.equal(w.normals, cond.normals[:, :, 2:5])
    # the window's first latent stands for one frame: the mean of latent 2's four frames
    assert w.expression.shape[1] == 4 * 3 - 3
    torch.testing.assert_close(w.expression[:, 0], cond.expression[:, groups[2]].mean(1))
    assert torch.equal(w.expression[:, 1:], cond.expression[:, groups[3:5].flatten()])
    assert torch.equal(cond.window(range(0, 6)).expression, cond.expression)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = FactorPortraitDiT(CONFIG, D)
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    return model.eval()


def run(model, cond, t_lat, **kw):
    args = dict(num_latent_frames=t_lat, seed=7, steps=3, cfg=2.0, expression_cfg=3.0, shift=5.0)
    return generate(model, cond, **{**args, **kw})


def test_generate_is_deterministic_per_seed(tiny_model):
    cond = conditions()
    a, b = run(tiny_model, cond, 3), run(tiny_model, cond, 3)
    assert a.shape == (1, 16, 3, 4, 4) and torch.equal(a, b)
    assert not torch.equal(a, run(tiny_model, cond, 3, seed=8))


def test_denoise_starts_from_the_noised_latent():
    """With a zero velocity the sampler stays where it starts: denoise < 1 must start at
    (1 - sigma0) * latent + sigma0 * noise with sigma0 the schedule's first sigma."""

    class Still(Recorder):
        def forward(self, x, *args):
            return torch.zeros_like(x)

    start = torch.randn(1, 16, 3, 4, 4)
    out = run(Still(), conditions(), 3, shift=1.0, denoise=0.2, init_latent=start, steps=4, solver="euler")
    sigma0 = float(solver_sigmas(4, 1.0, 0.2, "euler")[0])
    assert abs(sigma0 - 0.2) < 1e-6
    expected = noise_latent(start, initial_noise(start.shape, 7), sigma0)
    torch.testing.assert_close(out, expected)
    full = run(Still(), conditions(), 3, shift=1.0, steps=4)
    torch.testing.assert_close(full, initial_noise(start.shape, 7))


def test_long_video_in_windows_calls_the_model_per_window():
    model, cond = Recorder(), conditions(t_lat=11)  # 41 video frames
    out = run(model, cond, 11, window=5, overlap=2, cfg=1.0, expression_cfg=1.0, steps=2)
    assert out.shape == (1, 16, 11, 4, 4)
    widths = {c["x"].shape[2] for c in model.calls}
    assert widths == {5}
    assert len(model.calls) == 2 * 3  # 2 steps x 3 windows of 5 covering 11 with overlap >= 2


def test_one_pass_per_step_without_guidance():
    model = Recorder()
    run(model, conditions(), 3, cfg=1.0, expression_cfg=1.0, steps=4)
    assert len(model.calls) == 4 and all(c["x"].shape[0] == 1 for c in model.calls)


def test_nan_from_the_model_stops_with_a_clear_error():
    class NaNModel(Recorder):
        def forward(self, x, *args):
            return x * float("nan")

    with pytest.raises(FloatingPointError, match="NaN"):
        run(NaNModel(), conditions(), 3)


def test_an_exception_in_the_callback_stops_sampling():
    model = Recorder()

    def cancel(step, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(model, conditions(), 3, cfg=1.0, expression_cfg=1.0, solver="euler", callback=cancel)
    assert len(model.calls) == 1
