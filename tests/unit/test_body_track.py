"""The body track: retargeting, camera pairing, chunked rendering and the overlay preview.

Ground truth: rotations composed by hand, synthetic driving and reference subjects with
known poses and shapes (projected landmarks, fitted back), and the renderer called directly.
"""
import math

import pytest
import torch

from factorportrait.models.camera import paths as tr
from factorportrait.models.body import axis_angle_to_matrix
from factorportrait.models.errors import InputError
from factorportrait.models.render.normal_maps import render_normal_maps
from factorportrait.models.tracking.body_track import track_body
from factorportrait.models.tracking.preview import FITTED, OBSERVED, tracking_overlay
from factorportrait.models.tracking.rendering import pair_camera, render_track_normals
from factorportrait.models.tracking.retarget import ROTATIONS, retarget
from test_body_models import smplx_folder, smplx_model  # noqa: F401
from test_tracking import FOV, HEIGHT, WIDTH, _angle_deg, _camera, _head_orientation, _observe, _truth

ITERATIONS = 30


# Synthesis and rendering are many small ops too: one thread, as the fits use.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _random_params(model, frames, seed, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    p = model.neutral_params(frames)
    for k in ROTATIONS + ("translation",):
        setattr(p, k, scale * torch.randn(getattr(p, k).shape, generator=g))
    p.face = torch.rand(p.face.shape, generator=g)
    p.shape = torch.randn(p.shape.shape, generator=g)
    return p


def _matrices(params, name):
    return axis_angle_to_matrix(getattr(params, name).double())


# -- retargeting -------------------------------------------------------------------------------

def test_retarget_applies_the_driving_change_since_frame_0_to_the_reference(smplx_model):
    driving, reference = _random_params(smplx_model, 7, 0), _random_params(smplx_model, 1, 1)
    out = retarget(driving, reference)
    for name in ROTATIONS:
        d, r, o = _matrices(driving, name), _matrices(reference, name), _matrices(out, name)
        expected = d @ d[:1].transpose(-1, -2) @ r  # by hand, per frame
        assert torch.allclose(o, expected, atol=1e-5), name
        assert torch.allclose(o[0], r[0], atol=1e-5), name  # frame 0 is the reference's pose
    assert torch.allclose(out.translation, reference.translation + driving.translation - driving.translation[0])
    assert torch.equal(out.shape, reference.shape) and torch.equal(out.face, driving.face)
    assert out.frames == 7


def test_retarget_of_a_still_actor_is_the_reference_pose(smplx_model):
    still = _random_params(smplx_model, 1, 2).select([0, 0, 0, 0])
    reference = _random_params(smplx_model, 1, 3)
    out = retarget(still, reference)
    for name in ROTATIONS:
        for f in range(4):
            assert torch.allclose(_matrices(out, name)[f], _matrices(reference, name)[0], atol=1e-5), name


def test_retarget_checks_its_inputs(smplx_model, anny_model):
    with pytest.raises(InputError, match="one image"):
        retarget(_random_params(smplx_model, 3, 0), _random_params(smplx_model, 2, 1))
    with pytest.raises(InputError, match="different body models"):
        retarget(_random_params(smplx_model, 3, 0), anny_model.neutral_params(1))


def test_tracked_reference_and_driving_retarget_to_the_true_motion(anny_model):
    # Driving actor: the known head motion of test_tracking with an older, heavier body; the
    # reference: a younger, lighter body, head turned 20° to its left and tilted, off-centre.
    # Both are fitted from projected landmarks.
    model = anny_model
    driving_truth = _truth(model)
    driving_truth.shape[:6] = torch.tensor([0.8, 0.9, 0.5, 0.7, 0.5, 0.5])
    reference_truth = model.neutral_params(1)
    reference_truth.shape[:6] = torch.tensor([0.2, 0.3, 0.3, 0.3, 0.5, 0.5])
    reference_truth.head[0] = torch.tensor([0.15, math.radians(20), 0.0])
    reference_truth.translation[0] = torch.tensor([0.03, -0.02, 0.0])
    driving = _observe(model, driving_truth, _camera())
    reference = _observe(model, reference_truth, _camera(), noise_px=0.0)

    track = track_body(model, driving, reference, video_fov_deg=FOV, reference_fov_deg=FOV,
                       iterations=ITERATIONS)

    assert track.retargeted and track.frames == driving.frames and track.camera.num_frames == driving.frames
    # The head's world orientation follows the true change since frame 0 from the reference's.
    truth_out = retarget(driving_truth, reference_truth)
    err = _angle_deg(_head_orientation(track.params), _head_orientation(truth_out))
    assert err.median() < 3.0, err
    assert _angle_deg(_head_orientation(track.params)[:1], _head_orientation(reference_truth)).max() < 3.0
    assert torch.equal(track.params.shape, track.reference.params.shape)
    # Seen from the track's camera, frame 0 looks like the reference image: same silhouette.
    with torch.no_grad():
        truth_vertices = model(reference_truth)
    _, truth_mask = render_normal_maps(truth_vertices, model.faces, _camera(), 128, 128)
    _, mask = render_track_normals(track, track.camera.frames([0]), 128, 128)
    iou = (mask[0] * truth_mask[0]).sum() / ((mask[0] + truth_mask[0]) > 0).sum()
    assert iou > 0.9, iou
    assert "retargeted" in track.summary() and "reference image" in track.summary()


def test_without_retargeting_the_driving_fit_is_kept(smplx_model):
    truth = _truth(smplx_model)
    track = track_body(smplx_model, _observe(smplx_model, truth, _camera()),
                       _observe(smplx_model, truth.select([0]), _camera()), video_fov_deg=FOV,
                       reference_fov_deg=FOV, retarget=False, iterations=40)
    assert not track.retargeted and track.params is track.driving.params
    assert track.camera is track.driving.camera and track.reference is not None


# -- rendering a track -------------------------------------------------------------------------

def _static_camera(frames, distance=1.0):
    return tr.static(frames, tr.View(distance=distance, fov=FOV))


def test_static_cameras_of_any_length_follow_the_track():
    moving = tr.orbit(9, tr.View(fov=FOV), 40.0)
    assert pair_camera(_static_camera(81), 50).num_frames == 1
    assert pair_camera(_static_camera(1), 50).num_frames == 1
    assert pair_camera(moving, 9) is moving
    assert pair_camera(moving, 1) is moving  # a one-frame track is seen by every camera frame
    with pytest.raises(InputError, match="set 'frames' on the Camera Trajectory node to 50"):
        pair_camera(moving, 50)


def test_chunked_track_rendering_equals_one_direct_render(smplx_model):
    truth = _truth(smplx_model)  # 16 frames: two chunks
    track = track_body(smplx_model, _observe(smplx_model, truth, _camera()), video_fov_deg=FOV, iterations=8)
    camera = tr.orbit(truth.frames, tr.View(distance=1.1, fov=FOV), 60.0)
    calls = []
    image, mask = render_track_normals(track, camera, 96, 64, progress=lambda d, t: calls.append((d, t)))
    direct_image, direct_mask = render_normal_maps(track.vertices(), smplx_model.faces, camera, 96, 64)
    assert torch.equal(image, direct_image) and torch.equal(mask, direct_mask)
    assert calls[-1] == (truth.frames, truth.frames) and len(calls) == 2
    # A static camera of another length follows the 16 frames.
    still, _ = render_track_normals(track, _static_camera(81, 1.1), 96, 64)
    assert still.shape == (truth.frames, 64, 96, 3)


def test_reference_view_starts_trajectories_at_the_track_camera(smplx_model):
    truth = _truth(smplx_model).select([0])
    fit = track_body(smplx_model, _observe(smplx_model, truth, _camera()), iterations=8)
    view = tr.reference_view(fit.camera)
    again = tr.static(5, view)
    assert torch.allclose(again.w2c, fit.camera.w2c[:1].expand(5, -1, -1), atol=1e-9)
    assert torch.allclose(again.focal, fit.camera.focal[:1].expand(5))
    orbit = tr.orbit(5, view, 30.0)  # turns about the origin at the reference's distance
    assert torch.allclose(orbit.centers.norm(dim=-1), fit.camera.centers[0].norm().expand(5))


def test_missing_opengl_backend_is_a_clear_error(smplx_model, monkeypatch):
    from factorportrait.models.render import moderngl_backend

    monkeypatch.setattr(moderngl_backend, "is_available", lambda: (False, "no EGL"))
    truth = _truth(smplx_model).select([0])
    track = track_body(smplx_model, _observe(smplx_model, truth, _camera()), iterations=8)
    with pytest.raises(InputError, match="choose 'torch'"):
        render_track_normals(track, track.camera, 32, 32, backend="moderngl")


# -- overlay -----------------------------------------------------------------------------------

def test_overlay_draws_the_mesh_and_both_landmark_sets(smplx_model):
    truth = _truth(smplx_model)
    obs = _observe(smplx_model, truth, _camera())
    track = track_body(smplx_model, obs, video_fov_deg=FOV, iterations=ITERATIONS)
    frames = torch.zeros(truth.frames, HEIGHT, WIDTH, 3)
    overlay = tracking_overlay(frames, track.driving, smplx_model)
    assert overlay.shape == (truth.frames, HEIGHT, WIDTH, 3)
    f = 3
    green = (overlay[f] == torch.tensor(OBSERVED)).all(-1)
    red = (overlay[f] == torch.tensor(FITTED)).all(-1)
    assert green.any() and red.any()
    assert overlay[f].sum(-1).gt(0).float().mean() > 0.05  # the mesh is blended in
    # Filled frames get a red border; others do not.
    filled = track.driving.report.filled_frames[0]
    assert (overlay[filled, 0] == torch.tensor([1.0, 0.0, 0.0])).all()
    assert not (overlay[f, 0] == torch.tensor([1.0, 0.0, 0.0])).all()
    # A large video is previewed at most 768 px on its longer side; grayscale frames work.
    big = tracking_overlay(torch.zeros(truth.frames, 1080, 1920, 1), track.driving, smplx_model)
    assert big.shape == (truth.frames, 432, 768, 3)
