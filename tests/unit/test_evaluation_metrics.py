"""The control-evaluation metrics against values known in closed form."""
from __future__ import annotations

import math

import pytest
import torch

from factorportrait.models.camera import paths as tr
from factorportrait.models.body.anny_model import ARKIT_FACE_ACTIONS
from factorportrait.models.body.upper_body import axis_angle_to_matrix
from factorportrait.models.evaluation.expression_metrics import EVALUATED_CHANNELS, expression_agreement, pearson
from factorportrait.models.evaluation.head_pose import camera_space, rotation_error_deg
from factorportrait.models.evaluation.image_metrics import psnr, ssim
from factorportrait.models.evaluation.measure import ClipMeasurement, summarize
from factorportrait.models.evaluation.report import format_table, plot_results


def test_psnr_of_a_constant_error_is_analytic():
    target = torch.zeros(3, 16, 16, 3)
    assert psnr(target + 0.1, target) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert psnr(target + 0.01, target) == pytest.approx(40.0, abs=1e-3)


def test_masked_psnr_counts_only_the_mask():
    target = torch.zeros(2, 8, 8, 3)
    generated = target.clone()
    generated[:, :4] = 0.5  # wrong only on the top half
    mask = torch.zeros(2, 8, 8)
    mask[:, 4:] = 1
    assert psnr(generated, target, mask) == pytest.approx(100.0, abs=1e-3)  # clamped MSE 1e-10
    assert psnr(generated, target, 1 - mask) == pytest.approx(10 * math.log10(1 / 0.25), abs=1e-4)
    assert math.isnan(psnr(generated, target, torch.zeros(2, 8, 8)))


def test_ssim_is_one_for_equal_frames_and_falls_with_noise():
    frames = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    assert ssim(frames, frames) == pytest.approx(1.0, abs=1e-5)
    noisy = (frames + 0.2 * torch.randn(frames.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert ssim(noisy, frames) < 0.9


def test_psnr_rejects_mismatched_frames():
    with pytest.raises(Exception, match="ground_truth"):
        psnr(torch.zeros(2, 8, 8, 3), torch.zeros(3, 8, 8, 3))


def test_pearson_of_linear_series():
    a = torch.linspace(0, 1, 20)
    assert pearson(a, 3 * a + 1) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert math.isnan(pearson(a, torch.ones(20)))


def test_expression_agreement_per_channel():
    g = torch.Generator().manual_seed(2)
    driving = torch.rand(30, 52, generator=g)
    measured = driving.clone()
    jaw, blink = ARKIT_FACE_ACTIONS.index("jawOpen"), ARKIT_FACE_ACTIONS.index("eyeBlinkLeft")
    measured[:, blink] = 1 - driving[:, blink]  # anti-correlated
    out = expression_agreement(measured, driving)
    assert set(out["pearson"]) == set(EVALUATED_CHANNELS)
    assert out["pearson"]["jawOpen"] == pytest.approx(1.0)
    assert out["pearson"]["eyeBlinkLeft"] == pytest.approx(-1.0)
    expected_mae = (measured[:, blink] - driving[:, blink]).abs().mean() / len(EVALUATED_CHANNELS)
    assert out["mae"] == pytest.approx(float(expected_mae), rel=1e-5)
    assert jaw != blink


def test_rotation_error_is_the_angle_between():
    a = axis_angle_to_matrix(torch.tensor([[0.0, math.radians(30), 0.0], [0.0, 0.0, 0.0]]))
    b = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, 0.0], [math.radians(-12), 0.0, 0.0]]))
    assert rotation_error_deg(a, b).tolist() == pytest.approx([30.0, 12.0], abs=1e-4)


def test_camera_space_removes_the_camera_turn():
    # A camera orbiting by yaw sees a head that turns with it as not turning at all.
    camera = tr.orbit(5, tr.View(yaw=0.0, pitch=0.0, roll=0.0, distance=1.0, fov=30.0), 40.0, "linear")
    frontal = camera_space(torch.eye(3, dtype=torch.float64).expand(5, 3, 3), camera)
    follows = camera_space(camera.c2w[:, :3, :3], camera)
    assert rotation_error_deg(frontal[:1], frontal[-1:]).item() == pytest.approx(40.0, abs=1e-3)
    assert rotation_error_deg(follows, torch.eye(3, dtype=torch.float64).expand(5, 3, 3)).abs().max() < 1e-4


def test_summarize_pools_frames_and_averages_clips():
    jaw = ARKIT_FACE_ACTIONS.index("jawOpen")
    clips = []
    for k in range(2):
        codes = torch.zeros(5, 52)
        codes[:, jaw] = k  # each clip constant on its own: only the pool has a correlation
        clips.append(ClipMeasurement(measured_expression=codes, driving_expression=codes,
                                     head_error_deg=torch.tensor([1.0, 2.0, 3.0]) * (k + 1),
                                     psnr_db=20.0 + k, ssim=0.5, background_psnr_db=None))
    out = summarize(clips)
    assert out["expression_pearson"]["jawOpen"] == pytest.approx(1.0)
    assert out["head_pose_error_deg_median"] == pytest.approx(2.0)  # median of 1,2,3,2,4,6
    assert out["psnr_db"] == pytest.approx(20.5) and out["background_psnr_db"] is None


def test_table_and_plot():
    results = {"full": {"head_pose_error_deg_median": 3.0, "expression_pearson": {"jawOpen": 0.7},
                        "psnr_db": 20.0, "ssim": 0.6, "background_psnr_db": 19.0, "expression_mae": 0.1},
               "no_rays": {"head_pose_error_deg_median": 4.0, "psnr_db": 15.0}}
    table = format_table(results)
    assert "| full | 3.0 | 0.70 |" in table and "| no_rays | 4.0 | - |" in table
    plot = plot_results(results)
    assert plot.shape == (1, 300, 800, 3) and float(plot.std()) > 0
