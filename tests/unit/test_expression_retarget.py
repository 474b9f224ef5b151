"""Shaping expression codes: filters against their defining properties (and scipy where it is
installed), neutral offset, region mixing, clamping, and hand-written keyframes."""
import math

import pytest
import torch

from factorportrait.models.body.anny_model import ARKIT_FACE_ACTIONS, FACE_ACTION_REGIONS
from factorportrait.models.errors import InputError
from factorportrait.models.expression.arkit_codes import ARKIT_ENCODER, arkit_codes
from factorportrait.models.expression.keyframes import expression_from_keyframes
from factorportrait.models.expression.retarget import (driving_neutral, mix_regions, parse_regions,
                                                       retarget_expression, smooth)
from factorportrait.models.expression.smoothing import one_euro, savitzky_golay
from factorportrait.models.expression.codes import ExpressionCodes

A = {name: i for i, name in enumerate(ARKIT_FACE_ACTIONS)}


def _noisy(frames=60, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, frames, dtype=torch.float64)[:, None]
    clean = 0.5 + 0.4 * torch.sin(2 * math.pi * t * torch.arange(1, dim + 1))
    return clean, clean + 0.05 * torch.randn(frames, dim, generator=g, dtype=torch.float64)


# -- filters -----------------------------------------------------------------------------------

def test_savitzky_golay_keeps_quadratics_exactly_everywhere():
    t = torch.arange(30, dtype=torch.float64)[:, None]
    quadratic = 0.3 - 0.02 * t + 0.001 * t ** 2
    torch.testing.assert_close(savitzky_golay(quadratic, 9, order=2), quadratic, rtol=0, atol=1e-10)


def test_savitzky_golay_matches_scipy():
    signal = pytest.importorskip("scipy.signal")
    _, noisy = _noisy()
    ours = savitzky_golay(noisy, 11, order=2)
    theirs = torch.from_numpy(signal.savgol_filter(noisy.numpy(), 11, 2, axis=0, mode="interp"))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)


def test_savitzky_golay_reduces_noise_and_handles_short_sequences():
    clean, noisy = _noisy()
    assert (savitzky_golay(noisy, 9) - clean).pow(2).mean() < 0.5 * (noisy - clean).pow(2).mean()
    short = noisy[:4]
    assert savitzky_golay(short, 9).shape == short.shape  # window shortened to 3 frames
    with pytest.raises(InputError, match="odd window"):
        savitzky_golay(noisy, 8)


def test_one_euro_is_causal_steady_and_adapts_to_speed():
    _, noisy = _noisy()
    out = one_euro(noisy, fps=15, min_cutoff=1.0, beta=0.0)
    changed = noisy.clone()
    changed[40:] += 1.0
    torch.testing.assert_close(one_euro(changed, fps=15, min_cutoff=1.0, beta=0.0)[:40], out[:40])  # causal
    constant = torch.full((60, 3), 0.7, dtype=torch.float64)
    torch.testing.assert_close(one_euro(constant, fps=15), constant)
    jitter = constant + 0.05 * torch.randn(60, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    steady = one_euro(jitter, fps=15, min_cutoff=1.0, beta=0.0)
    assert (steady - constant)[10:].pow(2).mean() < 0.5 * (jitter - constant)[10:].pow(2).mean()
    # A fast ramp: a speed-adaptive cutoff (beta > 0) lags less than a fixed one.
    ramp = torch.linspace(0, 1, 30, dtype=torch.float64)[:, None]
    lag_fixed = (ramp - one_euro(ramp, 15, 0.5, beta=0.0)).abs().max()
    lag_adaptive = (ramp - one_euro(ramp, 15, 0.5, beta=5.0)).abs().max()
    assert lag_adaptive < 0.5 * lag_fixed


# -- retargeting -------------------------------------------------------------------------------

def _driving(frames=40, seed=1):
    """A driving actor with a resting jaw at 0.2 and smile at 0.1, who opens the jaw mid-video."""
    w = torch.zeros(frames, 52)
    w[:, A["jawOpen"]] = 0.2 + 0.6 * torch.sin(math.pi * torch.linspace(0, 1, frames)) ** 2
    w[:, A["mouthSmileLeft"]] = 0.1
    w[:, A["eyeBlinkLeft"]] = (torch.arange(frames) % 10 == 5).float()
    return arkit_codes(w)


def test_neutral_offset_moves_the_actors_rest_to_the_references():
    driving = _driving()
    reference = torch.zeros(1, 52)
    reference[0, A["mouthSmileLeft"]] = 0.3  # a smiling portrait
    out = retarget_expression(driving, neutral="first frame", reference=arkit_codes(reference))
    assert out.encoder == ARKIT_ENCODER and out.labels == ARKIT_FACE_ACTIONS
    torch.testing.assert_close(out.codes[0], reference[0])  # frame 0: the reference's rest
    torch.testing.assert_close(out.codes[:, A["jawOpen"]], driving.codes[:, A["jawOpen"]] - 0.2)
    torch.testing.assert_close(out.codes[:, A["mouthSmileLeft"]], torch.full((40,), 0.3))
    lowest = driving_neutral(driving, "lowest 5%")
    assert lowest[A["jawOpen"]] == pytest.approx(0.2, abs=0.01) and lowest[A["eyeBlinkLeft"]] == 0


def test_scale_clamp_and_zero_intensity():
    driving = _driving()
    assert retarget_expression(driving, scale=0.0).codes.abs().max() == 0
    doubled = retarget_expression(driving, scale=2.0, clamp=True)
    assert doubled.codes.max() == 1.0 and doubled.codes.min() >= 0
    unclamped = retarget_expression(driving, scale=2.0, clamp=False)
    assert unclamped.codes[:, A["jawOpen"]].max() == pytest.approx(1.6, abs=0.01)


def test_region_mixing_takes_the_mouth_from_the_other_take():
    driving, other = _driving(), _driving(frames=20, seed=2)
    other = other.with_codes(torch.rand(20, 52, generator=torch.Generator().manual_seed(3)))
    mixed = mix_regions(driving, other, parse_regions("mouth, jaw"))
    other_full = other.resampled(40)
    for name in ARKIT_FACE_ACTIONS:
        from_other = name in FACE_ACTION_REGIONS["mouth"] + FACE_ACTION_REGIONS["jaw"]
        expected = (other_full if from_other else driving).codes[:, A[name]]
        torch.testing.assert_close(mixed.codes[:, A[name]], expected, msg=name)
    with pytest.raises(InputError, match="unknown region"):
        mix_regions(driving, other, ["lips"])
    learned = ExpressionCodes(torch.zeros(40, 128), "learned-128")
    with pytest.raises(InputError, match="no named channels"):
        mix_regions(learned, learned, ["mouth"])
    with pytest.raises(InputError, match="same encoder"):
        mix_regions(driving, learned, ["mouth"])
    with pytest.raises(InputError, match="connect 'other'"):
        retarget_expression(driving, regions_from_other=["mouth"])


def test_smoothing_choices():
    driving = _driving()
    noisy = driving.with_codes(driving.codes + 0.05 * torch.randn(40, 52, generator=torch.Generator().manual_seed(0)))
    for method in ("savitzky-golay", "one-euro"):
        out = smooth(noisy, method, window=7, fps=15)
        assert (out.codes - driving.codes).pow(2).mean() < (noisy.codes - driving.codes).pow(2).mean(), method
    assert smooth(noisy, "none", 7, 15) is noisy
    with pytest.raises(InputError, match="unknown smoothing"):
        smooth(noisy, "gaussian", 7, 15)


# -- keyframes ---------------------------------------------------------------------------------

def test_keyframes_hit_their_values_and_carry_over():
    text = ('{"interpolation": "smooth", "keyframes": [{"frame": 0}, '
            '{"frame": 10, "jawOpen": 0.6, "eyeBlink": 1.0}, {"frame": 20, "jawOpen": 0.0}]}')
    codes = expression_from_keyframes(text, 25)
    w = codes.codes
    assert codes.encoder == ARKIT_ENCODER and w.shape == (25, 52)
    assert w[10, A["jawOpen"]] == pytest.approx(0.6) and w[20, A["jawOpen"]] == 0 and w[0].abs().max() == 0
    assert w[10, A["eyeBlinkLeft"]] == 1 and w[10, A["eyeBlinkRight"]] == 1  # both sides
    assert w[20:, A["eyeBlinkLeft"]].eq(1).all()  # carried over, then held
    assert ((w[:, A["jawOpen"]] >= 0) & (w[:, A["jawOpen"]] <= 0.6 + 1e-6)).all()  # no overshoot
    linear = expression_from_keyframes('[{"frame": 0}, {"frame": 10, "jawOpen": 0.6}]', 11).codes
    assert linear[5, A["jawOpen"]] == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize("text, message", [
    ('[{"frame": 0, "jawOpenn": 0.5}]', "Did you mean jawOpen"),
    ('[{"frame": 0, "jawOpen": 1.5}]', "0..1"),
    ('[{"frame": 5}, {"frame": 3}]', "strictly increase"),
    ('[{"frame": 30}]', "outside"),
    ('[{"frame": 0,}]', "not valid JSON"),
    ('{"keyframes": []}', "non-empty"),
])
def test_bad_keyframes_say_what_is_wrong(text, message):
    with pytest.raises(InputError, match=message):
        expression_from_keyframes(text, 25)
