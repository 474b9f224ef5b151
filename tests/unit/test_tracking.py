"""Body tracking against ground truth: sequences synthesised from the body models with known
head rotations, jaw opening and camera are projected to landmarks and fitted back; and the
keypoint converters (POSE_KEYPOINT, MediaPipe arrays).

The anny and synthetic SMPL-X fixtures come from test_body_models (pytest puts tests/unit on
sys.path; importing the fixtures registers them here).
"""
import math

import numpy as np
import pytest
import torch

from factorportrait.models.body import LANDMARK_INDEX, LANDMARKS, axis_angle_to_matrix
from factorportrait.models.camera.trajectory import CameraTrajectory, focal_from_fov, orbit_extrinsics
from factorportrait.models.errors import InputError
from factorportrait.models.tracking import Keypoints2D, fit_sequence, from_mediapipe, from_pose_keypoint
from test_body_models import smplx_folder, smplx_model  # noqa: F401

FRAMES, WIDTH, HEIGHT, FOV = 16, 512, 512, 30.0
DROPPED = (5, 11)
JAW_AMOUNT = {"anny": 0.8, "smplx": 0.3}  # jawOpen weight; SMPL-X jaw pitch in radians


# Synthesis and rendering are many small ops too: one thread, as the fits use.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- synthesis ---------------------------------------------------------------------------------

def _truth(model):
    """Known motion: yaw up to ±30°, pitch ±15° shared by global, neck and head; the jaw opens
    0 -> max -> 0; a small sideways drift."""
    t = torch.linspace(0, 1, FRAMES)
    yaw = math.radians(30) * torch.sin(2 * math.pi * t)
    pitch = math.radians(15) * torch.sin(1.5 * math.pi * t)
    p = model.neutral_params(FRAMES)
    with torch.no_grad():
        p.rotation[:, 1], p.neck[:, 1], p.head[:, 1] = 0.1 * yaw, 0.3 * yaw, 0.6 * yaw
        p.neck[:, 0], p.head[:, 0] = 0.3 * pitch, 0.7 * pitch
        p.translation[:, 0] = 0.02 * torch.sin(2 * math.pi * t)
        p.face[:, model.face_labels.index(model.jaw_open_label)] = JAW_AMOUNT[model.name] * torch.sin(math.pi * t) ** 2
    return p


def _camera(frames=1):
    """Frontal camera 1 m from the head centre, 30° vertical field of view."""
    z = torch.zeros(frames)
    return CameraTrajectory.create(orbit_extrinsics(z, z, z, torch.ones(frames), torch.zeros(frames, 3)),
                                   focal_from_fov(FOV))


def _observe(model, params, camera, noise_px=0.5, seed=0):
    """Landmarks projected to pixels with noise, in LANDMARKS order; DROPPED frames missing."""
    with torch.no_grad():
        world = model.posed_landmarks(params)
    pixels = torch.stack([camera.frames([min(f, camera.num_frames - 1)]).project(world[f], WIDTH, HEIGHT)[0, :, :2]
                          for f in range(len(world))]).float()
    pixels += noise_px * torch.randn(pixels.shape, generator=torch.Generator().manual_seed(seed))
    sel = [LANDMARK_INDEX[n] for n in model.landmark_names]
    points, conf = torch.zeros(len(world), len(LANDMARKS), 2), torch.zeros(len(world), len(LANDMARKS))
    points[:, sel], conf[:, sel] = pixels, 1.0
    conf[[f for f in DROPPED if f < len(world)]] = 0
    return Keypoints2D(points, conf, WIDTH, HEIGHT)


def _head_orientation(params):
    """World orientation of the head: global o torso o neck o head ``[F, 3, 3]``."""
    r = axis_angle_to_matrix
    return r(params.rotation) @ r(params.torso) @ r(params.neck) @ r(params.head)


def _angle_deg(a, b):
    rel = a.transpose(-1, -2) @ b
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


# -- tracking against ground truth ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["anny", "smplx"])
def test_tracks_head_rotation_and_jaw_of_a_synthetic_sequence(name, request):
    model = request.getfixturevalue(f"{name}_model")
    truth = _truth(model)
    obs = _observe(model, truth, _camera())
    assert obs.missing_frames == list(DROPPED)

    params, camera, report = fit_sequence(model, obs, camera_fov_deg=FOV)

    err = _angle_deg(_head_orientation(params), _head_orientation(truth))
    assert err.median() < 3.0, err
    assert err[list(DROPPED)].max() < 5.0, err  # filled in by the smoothness term
    jaw = model.face_labels.index(model.jaw_open_label)
    fitted, true = params.face[:, jaw], truth.face[:, jaw]
    assert torch.corrcoef(torch.stack([fitted, true]))[0, 1] > 0.9
    assert (fitted - true).abs().max() < 0.15 * JAW_AMOUNT[name], (fitted, true)
    assert report.filled_frames == list(DROPPED)
    assert math.isnan(report.frame_error_px[DROPPED[0]])
    assert report.error_px < 2.0 and abs(report.fov_deg - FOV) < 1e-3
    # The returned camera reproduces the fit through the shared camera convention.
    assert camera.num_frames == FRAMES
    with torch.no_grad():
        world = model.posed_landmarks(params)
    again = torch.stack([camera.frames([f]).project(world[f], WIDTH, HEIGHT)[0, :, :2] for f in range(FRAMES)])
    sel = [LANDMARK_INDEX[n] for n in model.landmark_names]
    seen = obs.confidence[:, sel] > 0
    assert (again.float() - obs.points[:, sel]).norm(dim=-1)[seen].median() < 2.0
    print(f"{name}: head error median {err.median():.2f}°, max {err.max():.2f}°; "
          f"jaw corr {torch.corrcoef(torch.stack([fitted, true]))[0, 1]:.3f}; {report.summary()}")


def test_unknown_field_of_view_and_outliers(smplx_model):
    # No fov given (it is fitted from 40°; weakly determined, so only the head pose is
    # checked) and a few landmarks 40 px off (the robust loss ignores them).
    truth = _truth(smplx_model)
    obs = _observe(smplx_model, truth, _camera())
    sel = [LANDMARK_INDEX[n] for n in smplx_model.landmark_names]
    for f in (2, 8, 13):
        obs.points[f, sel[f % len(sel)]] += torch.tensor([40.0, -30.0])
    params, camera, report = fit_sequence(smplx_model, obs)
    err = _angle_deg(_head_orientation(params), _head_orientation(truth))
    assert err.median() < 3.0, err
    assert 15 < report.fov_deg < 60
    assert report.error_px < 2.0
    print(f"smplx, fov fitted {report.fov_deg:.1f}° (true {FOV}°), outliers: head error median "
          f"{err.median():.2f}°, max {err.max():.2f}°")


def test_fits_inside_inference_mode(smplx_model):
    # ComfyUI runs nodes under inference_mode, with observations made there.
    truth = _truth(smplx_model)
    with torch.inference_mode():
        obs = _observe(smplx_model, truth, _camera())
        params, camera, report = fit_sequence(smplx_model, obs, camera_fov_deg=FOV, iterations=8)
    assert params.head.shape == (FRAMES, 3) and torch.isfinite(params.head).all()
    assert report.filled_frames == list(DROPPED)


def test_single_frame_like_a_reference_image(smplx_model):
    truth = _truth(smplx_model).select([3])
    obs = _observe(smplx_model, truth, _camera(), noise_px=0.0)
    calls = []
    params, camera, report = fit_sequence(smplx_model, obs, camera_fov_deg=FOV, progress=lambda d, t: calls.append(d))
    assert camera.num_frames == 1 and calls[-1] == len(calls)
    assert _angle_deg(_head_orientation(params), _head_orientation(truth)).max() < 3.0
    assert report.filled_frames == []


@pytest.mark.parametrize("frames", [1, 2, 7, 10])
def test_banded_normal_equations_match_a_dense_solve(frames):
    # The Levenberg-Marquardt step: per-frame blocks plus the smoothness's pentadiagonal
    # coupling, some unknowns held, damping on the diagonal.
    from factorportrait.models.tracking.fit import _solve_banded

    gen = torch.Generator().manual_seed(frames)
    n = 5
    a = torch.randn(frames, n, n, generator=gen, dtype=torch.float64)
    hessian = a @ a.transpose(1, 2) + 0.1 * torch.eye(n, dtype=torch.float64)
    d = torch.zeros(max(frames - 2, 0), frames, dtype=torch.float64)
    for i in range(len(d)):
        d[i, i:i + 3] = torch.tensor([1.0, -2.0, 1.0], dtype=torch.float64)
    gram, s2 = d.T @ d, torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    free = torch.rand(frames, n, generator=gen) > 0.2
    rhs = torch.randn(frames, n, generator=gen, dtype=torch.float64)
    delta = _solve_banded(hessian, gram, s2, free, 0.01, rhs[..., None])[..., 0]

    m = free.flatten().double()
    dense = (torch.block_diag(*hessian) + torch.kron(gram, torch.diag(s2))) * m[:, None] * m
    dense = dense + torch.diag(0.01 * dense.diagonal() + 1e-6 + (1 - m))
    torch.testing.assert_close(delta.flatten(), torch.linalg.solve(dense, rhs.flatten() * m))
    assert (delta[~free] == 0).all()

    # Bordered by unknowns all frames share (shape, focal length): the Schur complement.
    from factorportrait.models.tracking.fit import _solve_bordered

    u = 3
    cross = torch.randn(frames, n, u, generator=gen, dtype=torch.float64) * free[..., None]
    b = torch.randn(u, u, generator=gen, dtype=torch.float64)
    hessian_s = b @ b.T + 5 * frames * torch.eye(u, dtype=torch.float64)
    rhs_s = torch.randn(u, generator=gen, dtype=torch.float64)
    dx, ds = _solve_bordered(hessian, gram, s2, free, cross, hessian_s, torch.ones(u, dtype=torch.bool), 0.01,
                             rhs, rhs_s)
    border = cross.reshape(-1, u)
    full = torch.cat([torch.cat([dense, border], 1),
                      torch.cat([border.T, hessian_s + torch.diag(0.01 * hessian_s.diagonal() + 1e-6)], 1)])
    expected = torch.linalg.solve(full, torch.cat([rhs.flatten() * m, rhs_s]))
    torch.testing.assert_close(torch.cat([dx.flatten(), ds]), expected)


def test_jacobians_match_autograd(smplx_folder):
    # The per-frame unknowns' by forward differences, the shape's and focal length's through
    # the rig: against autograd through the whole model (float64).
    from factorportrait.models.body import load_smplx
    from factorportrait.models.tracking.fit import _Problem

    model = load_smplx(smplx_folder, "neutral", num_betas=10, num_expressions=10, dtype=torch.float64)
    problem = _Problem(model, _observe(model, _truth(model), _camera()), FOV)
    gen = torch.Generator().manual_seed(0)
    x = 0.2 * torch.randn(problem.start.frame.shape, generator=gen, dtype=torch.float64)
    cols = problem.columns["translation"]
    x[:, cols] = problem.start.frame[:, cols]
    u = problem.start._replace(frame=x, shape=0.3 * torch.randn(10, generator=gen, dtype=torch.float64),
                               log_focal=torch.tensor(0.1, dtype=torch.float64))
    rig = model.landmark_rig(u.shape)

    def residuals(frame, shape, log_focal):
        v = u._replace(frame=frame, shape=shape, log_focal=log_focal)
        return problem.residuals(v).flatten(1) / problem.face_scale

    by_frame, by_shape, by_focal = torch.autograd.functional.jacobian(residuals, tuple(u))
    r, jac = problem.frame_jacobian(u, torch.arange(x.shape[1]), rig)  # [F, 2K], [F, 2K, P]
    torch.testing.assert_close(r, residuals(*u))
    by_frame = torch.stack([by_frame[f, :, f] for f in range(len(x))])  # each frame's own unknowns
    torch.testing.assert_close(jac, by_frame, atol=2e-3 * float(by_frame.abs().max()), rtol=0)
    shared = problem.shared_jacobian(u, ("shape", "log_focal"), rig)  # [F, 2K, 11]
    torch.testing.assert_close(shared, torch.cat([by_shape, by_focal[..., None]], -1))


def test_no_face_in_any_frame_is_a_clear_error(smplx_model):
    obs = Keypoints2D(torch.zeros(3, len(LANDMARKS), 2), torch.zeros(3, len(LANDMARKS)), WIDTH, HEIGHT)
    with pytest.raises(InputError, match="face landmarks"):
        fit_sequence(smplx_model, obs, camera_fov_deg=FOV)


def test_keypoints_shape_is_checked():
    with pytest.raises(InputError, match="points must be"):
        Keypoints2D(torch.zeros(2, 5, 2), torch.zeros(2, 5), WIDTH, HEIGHT)


# -- POSE_KEYPOINT ---------------------------------------------------------------------------------

def _person(centre, size, conf=0.9):
    """An OpenPose/DWPose person: iBUG face points spread ``size`` around ``centre`` (in the
    frame's units) and the 18 body points; returns the dict and the expected nose tip."""
    rng = np.random.default_rng(int(size * 1000) % 97)
    face = np.concatenate([centre + size * rng.uniform(-1, 1, (70, 2)), np.full((70, 1), conf)], 1)
    body = np.concatenate([centre + 2 * size * rng.uniform(-1, 1, (18, 2)), np.full((18, 1), conf)], 1)
    return {"pose_keypoints_2d": body.ravel().tolist(), "face_keypoints_2d": face.ravel().tolist(),
            "hand_left_keypoints_2d": None}, face[30, :2], body[5, :2]


def test_pose_keypoint_takes_the_largest_person_and_says_so():
    small, _, _ = _person(np.array([0.2, 0.3]), 0.05)
    large, nose, shoulder = _person(np.array([0.6, 0.5]), 0.15)
    frames = [{"people": [small, large], "canvas_width": 640, "canvas_height": 360}]
    kp = from_pose_keypoint(frames)
    assert (kp.width, kp.height) == (640, 360)
    np.testing.assert_allclose(kp.points[0, LANDMARK_INDEX["nose_tip"]], nose * [640, 360], rtol=1e-5)
    np.testing.assert_allclose(kp.points[0, LANDMARK_INDEX["shoulder_left"]], shoulder * [640, 360], rtol=1e-5)
    assert kp.confidence[0, LANDMARK_INDEX["nose_tip"]] == pytest.approx(0.9)
    assert any("several people" in n and "largest" in n for n in kp.notes)
    # Averaged iBUG points (eye centre: the 6 eye points).
    face = np.asarray(large["face_keypoints_2d"]).reshape(-1, 3)
    np.testing.assert_allclose(kp.points[0, LANDMARK_INDEX["eye_left_center"]],
                               face[42:48, :2].mean(0) * [640, 360], rtol=1e-5)


def test_pose_keypoint_normalised_and_pixel_coordinates_agree():
    person, nose, _ = _person(np.array([0.5, 0.45]), 0.1)
    pixel = {k: (np.asarray(v).reshape(-1, 3) * [640, 360, 1]).ravel().tolist() if v else v
             for k, v in person.items()}
    a = from_pose_keypoint([{"people": [person], "canvas_width": 640, "canvas_height": 360}])
    b = from_pose_keypoint([{"people": [pixel], "canvas_width": 640, "canvas_height": 360}])
    torch.testing.assert_close(a.points, b.points)
    torch.testing.assert_close(a.confidence, b.confidence)
    # Pixels of another canvas are rescaled to the requested size.
    c = from_pose_keypoint([{"people": [pixel], "canvas_width": 640, "canvas_height": 360}], width=320, height=180)
    torch.testing.assert_close(c.points, a.points / 2)
    assert not a.notes


def test_pose_keypoint_missing_frames_have_zero_confidence():
    person, _, _ = _person(np.array([0.5, 0.5]), 0.1)
    nobody = dict(person, pose_keypoints_2d=[0.0] * 54, face_keypoints_2d=[0.0] * 210)
    frames = [{"people": [person], "canvas_width": 64, "canvas_height": 64},
              {"people": [], "canvas_width": 64, "canvas_height": 64},
              {"people": [nobody], "canvas_width": 64, "canvas_height": 64},
              {"people": [person], "canvas_width": 64, "canvas_height": 64}]
    kp = from_pose_keypoint(frames)
    assert kp.missing_frames == [1, 2]
    assert (kp.confidence[[1, 2]] == 0).all() and (kp.confidence[[0, 3]] > 0).any(1).all()
    with pytest.raises(InputError, match="POSE_KEYPOINT"):
        from_pose_keypoint([])


# -- MediaPipe arrays ------------------------------------------------------------------------------

def test_mediapipe_arrays_map_to_the_landmarks():
    rng = np.random.default_rng(0)
    face = rng.uniform(0.3, 0.7, (478, 3))
    pose = np.concatenate([rng.uniform(0.2, 0.8, (33, 3)), np.full((33, 1), 0.7)], 1)
    kp = from_mediapipe([face, None], [pose, None], 640, 360)
    assert kp.missing_frames == [1]
    np.testing.assert_allclose(kp.points[0, LANDMARK_INDEX["nose_tip"]], face[1, :2] * [640, 360], rtol=1e-5)
    assert kp.confidence[0, LANDMARK_INDEX["nose_tip"]] == 1.0
    # Only in the pose model: taken from there with its visibility as confidence.
    np.testing.assert_allclose(kp.points[0, LANDMARK_INDEX["shoulder_right"]], pose[12, :2] * [640, 360], rtol=1e-5)
    assert kp.confidence[0, LANDMARK_INDEX["eye_right_center"]] == pytest.approx(0.7)
    with pytest.raises(InputError, match="frames"):
        from_mediapipe([face], [pose, pose], 640, 360)
