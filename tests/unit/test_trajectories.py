"""Camera trajectory generators: conventions, exactness at keys, smoothness and errors."""
import json
import math

import pytest
import torch

from _reference_geometry import orbit_angles, rotation_angle
from factorportrait.models.camera import paths as tr
from factorportrait.models.camera.trajectory import CameraTrajectory, focal_from_fov
from factorportrait.models.errors import InputError
from factorportrait.models.camera.interpolation import interpolate_keys

W, H = 64, 48
TARGET = (0.1, 0.2, -0.1)
F64 = torch.float64


def principal_px(camera: CameraTrajectory) -> torch.Tensor:
    return camera.principal * torch.tensor([W, H], dtype=F64)


def assert_looks_at(camera: CameraTrajectory, target) -> None:
    proj = camera.project(torch.tensor([target], dtype=F64), W, H)[:, 0]  # [F, 3]
    assert (proj[:, :2] - principal_px(camera)).abs().max() < 1e-6
    assert (proj[:, 2] > 0).all()


# --------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("distance", [1.2, 2.5])
def test_static_frontal_camera(distance):
    camera = tr.static(3, tr.View(distance=distance))
    expected = torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, distance], [0, 0, 0, 1]], dtype=F64)
    assert camera.num_frames == 3
    assert (camera.w2c - expected).abs().max() < 1e-12
    assert (camera.centers - torch.tensor([0.0, 0.0, distance], dtype=F64)).abs().max() < 1e-12
    assert torch.allclose(camera.focal, torch.full((3,), 0.5 / math.tan(math.radians(15)), dtype=F64))
    assert torch.allclose(camera.fov, torch.full((3,), 30.0, dtype=F64))
    assert (camera.principal == 0.5).all() and (camera.pixel_aspect == 1).all()


def test_static_default_is_frontal():
    camera = tr.static(1)
    assert (camera.w2c[0, :3, :3] - torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=F64))).abs().max() < 1e-12
    assert (camera.centers[0] - torch.tensor([0.0, 0.0, 1.2], dtype=F64)).abs().max() < 1e-12


def test_yaw_plus_90_moves_camera_to_plus_x():
    d = 1.5
    camera = tr.static(1, tr.View(yaw=90, distance=d))
    assert (camera.centers[0] - torch.tensor([d, 0.0, 0.0], dtype=F64)).abs().max() < 1e-12
    # OpenCV axes in world: x (image right) = -Z, y (image down) = -Y, z (forward) = -X.
    expected = torch.tensor([[0.0, 0, -1], [0, -1, 0], [-1, 0, 0]], dtype=F64)
    assert (camera.w2c[0, :3, :3] - expected).abs().max() < 1e-12


def test_yaw_small_positive_moves_camera_toward_subjects_left():
    camera = tr.static(1, tr.View(yaw=20))
    assert camera.centers[0, 0] > 0
    # Image right turns from world +X toward -Z: (cos 20°, 0, -sin 20°).
    c, s = math.cos(math.radians(20)), math.sin(math.radians(20))
    assert (camera.w2c[0, 0, :3] - torch.tensor([c, 0.0, -s], dtype=F64)).abs().max() < 1e-12
    # So a point on the subject's left (+X) still projects right of the principal point,
    # but nearer to it than in the frontal view (foreshortened).
    p = torch.tensor([[0.1, 0.0, 0.0]], dtype=F64)
    u_front = tr.static(1).project(p, W, H)[0, 0, 0]
    u_yaw = camera.project(p, W, H)[0, 0, 0]
    assert W / 2 < u_yaw < u_front


def test_pitch_plus_30_moves_camera_up_looking_down():
    d = 1.2
    camera = tr.static(1, tr.View(pitch=30, distance=d))
    c = camera.centers[0]
    expected = torch.tensor([0.0, d * math.sin(math.radians(30)), d * math.cos(math.radians(30))], dtype=F64)
    assert (c - expected).abs().max() < 1e-12
    assert c[1] > 0
    forward = camera.w2c[0, 2, :3]  # camera z axis in world
    assert (forward - (-c / d)).abs().max() < 1e-12  # points at the target (origin)
    assert forward[1] < 0  # looking down
    # Image "down" keeps pointing roughly to world -Y (no roll): y axis = (0, -cos, sin).
    down = camera.w2c[0, 1, :3]
    s, co = math.sin(math.radians(30)), math.cos(math.radians(30))
    assert (down - torch.tensor([0.0, -co, s], dtype=F64)).abs().max() < 1e-12
    assert_looks_at(camera, (0.0, 0.0, 0.0))


def test_roll_plus_90_turns_camera_clockwise():
    """roll > 0 turns the camera clockwise about its viewing axis: the image x axis rotates
    toward the image y axis (the picture content turns counter-clockwise)."""
    camera = tr.static(1, tr.View(roll=90))
    rot = camera.w2c[0, :3, :3]
    assert (rot[0] - torch.tensor([0.0, -1.0, 0.0], dtype=F64)).abs().max() < 1e-12  # x along -Y
    assert (rot[1] - torch.tensor([-1.0, 0.0, 0.0], dtype=F64)).abs().max() < 1e-12  # y along -X
    assert (rot[2] - torch.tensor([0.0, 0.0, -1.0], dtype=F64)).abs().max() < 1e-12  # same axis
    assert (camera.centers[0] - torch.tensor([0.0, 0.0, 1.2], dtype=F64)).abs().max() < 1e-12
    # Content turns counter-clockwise: world up (+Y) moves to the image left, world +X
    # (image right in the frontal view) moves to the image top.
    proj = camera.project(torch.tensor([[0.0, 0.1, 0.0], [0.1, 0.0, 0.0]], dtype=F64), W, H)[0]
    assert proj[0, 0] < W / 2 - 1 and abs(proj[0, 1] - H / 2) < 1e-9
    assert proj[1, 1] < H / 2 - 1 and abs(proj[1, 0] - W / 2) < 1e-9


@pytest.mark.parametrize("roll", [-35.0, 12.0, 90.0])
def test_roll_rotates_image_x_toward_image_y_for_any_pose(roll):
    base = tr.View(yaw=25, pitch=-15, distance=1.3, target=TARGET)
    r0 = tr.static(1, base).w2c[0, :3, :3]
    r = tr.static(1, tr.View(yaw=25, pitch=-15, distance=1.3, target=TARGET, roll=roll)).w2c[0, :3, :3]
    c, s = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    assert (r[0] - (c * r0[0] + s * r0[1])).abs().max() < 1e-12
    assert (r[1] - (-s * r0[0] + c * r0[1])).abs().max() < 1e-12
    assert (r[2] - r0[2]).abs().max() < 1e-12


# --------------------------------------------------------------------------- look-at


def _keyed_camera(frames: int = 17) -> CameraTrajectory:
    keys = [
        {"frame": 0, "yaw": -20, "pitch": 10, "roll": 5, "distance": 1.1, "target": list(TARGET)},
        {"frame": 5, "yaw": 15, "pitch": -8, "distance": 1.6, "principal": [0.45, 0.55]},
        {"frame": frames - 1, "yaw": 60, "pitch": 25, "roll": -10, "distance": 0.9, "pixel_aspect": 1.2},
    ]
    return tr.keyframed(frames, json.dumps(keys))


LOOKAT_CASES = {
    "orbit": lambda: tr.orbit(17, tr.View(pitch=20, roll=-7, distance=1.3, target=TARGET,
                                          principal=(0.4, 0.6)), 200),
    "spiral": lambda: tr.spiral(17, tr.View(yaw=10, pitch=-5, roll=4, target=TARGET), 12, 1.5, 2.0),
    "arc": lambda: tr.arc(17, tr.View(yaw=-30, pitch=-10, target=TARGET),
                          tr.View(yaw=40, pitch=35, roll=15, distance=2.0, target=TARGET)),
    "dolly": lambda: tr.dolly(17, tr.View(yaw=30, pitch=10, target=TARGET), 2.2, dolly_zoom=True),
    "keyframes": _keyed_camera,
}


@pytest.mark.parametrize("name", list(LOOKAT_CASES))
def test_every_mode_looks_at_its_target(name):
    assert_looks_at(LOOKAT_CASES[name](), TARGET)


def test_orbit_keeps_distance_to_target():
    camera = LOOKAT_CASES["orbit"]()
    dist = (camera.centers - torch.tensor(TARGET, dtype=F64)).norm(dim=-1)
    assert (dist - 1.3).abs().max() < 1e-9


def test_arc_and_keyframes_follow_their_distances():
    arc = LOOKAT_CASES["arc"]()
    s = torch.linspace(0, 1, 17, dtype=F64)
    ease = s * s * (3 - 2 * s)  # arc's default easing, "ease in-out"
    yaw, pitch, dist = orbit_angles(arc.centers, TARGET)
    assert (dist - (1.2 + 0.8 * ease)).abs().max() < 1e-9
    assert (yaw - (-30 + 70 * ease)).abs().max() < 1e-9
    assert (pitch - (-10 + 45 * ease)).abs().max() < 1e-9
    keyed = _keyed_camera()
    _, _, dist = orbit_angles(keyed.centers, TARGET)
    assert dist[0] == pytest.approx(1.1, abs=1e-9)
    assert dist[5] == pytest.approx(1.6, abs=1e-9)
    assert dist[-1] == pytest.approx(0.9, abs=1e-9)


def test_orbit_full_turn_goes_past_180_linearly():
    d = 1.2
    camera = tr.orbit(9, tr.View(distance=d), 360)
    angles = torch.arange(9, dtype=F64) * math.radians(45)
    expected = torch.stack([d * torch.sin(angles), torch.zeros(9, dtype=F64), d * torch.cos(angles)], -1)
    assert (camera.centers - expected).abs().max() < 1e-9
    assert (camera.centers[4] - torch.tensor([0.0, 0.0, -d], dtype=F64)).abs().max() < 1e-9
    assert (camera.w2c[-1] - camera.w2c[0]).abs().max() < 1e-9
    # Constant angular speed, 45° per frame, also across 180°.
    rot = camera.w2c[:, :3, :3]
    steps = rotation_angle(rot[1:] @ rot[:-1].transpose(-1, -2))
    assert (torch.rad2deg(steps) - 45).abs().max() < 1e-9


def test_orbit_two_turns_and_easing():
    camera = tr.orbit(5, tr.View(yaw=10), 730)  # 10 -> 730: 180° per frame
    yaw, _, _ = orbit_angles(camera.centers, (0, 0, 0))
    expected = torch.tensor([10.0, 190.0, 370.0, 550.0, 730.0], dtype=F64)
    assert ((yaw - expected + 180) % 360 - 180).abs().max() < 1e-9
    eased = tr.orbit(5, tr.View(), 80, easing="ease in-out")
    s = torch.linspace(0, 1, 5, dtype=F64)
    yaw, _, _ = orbit_angles(eased.centers, (0, 0, 0))
    assert (yaw - 80 * s * s * (3 - 2 * s)).abs().max() < 1e-9


# --------------------------------------------------------------------------- keyframes

KEYS = [
    {"frame": 0, "yaw": -10, "pitch": 5, "fov": 35, "target": list(TARGET)},
    {"frame": 6, "yaw": 25, "roll": 8, "distance": 1.5},
    {"frame": 13, "pitch": -12, "fov": 28, "principal": [0.45, 0.52]},
    {"frame": 20, "yaw": 40, "pixel_aspect": 1.1, "focal": 2.2},
]
# The same views written out by hand, carrying values over from the previous keyframe.
V0 = tr.View(yaw=-10, pitch=5, fov=35, target=TARGET)
V1 = tr.View(yaw=25, pitch=5, roll=8, distance=1.5, fov=35, target=TARGET)
V2 = tr.View(yaw=25, pitch=-12, roll=8, distance=1.5, fov=28, target=TARGET, principal=(0.45, 0.52))
V3 = tr.View(yaw=40, pitch=-12, roll=8, distance=1.5, fov=28, focal=2.2, target=TARGET, principal=(0.45, 0.52),
             pixel_aspect=1.1)
EXPECTED_VIEWS = [V0, V1, V2, V3]


def assert_same_camera(a: CameraTrajectory, fa: int, b: CameraTrajectory, fb: int, tol: float = 1e-9) -> None:
    assert (a.w2c[fa] - b.w2c[fb]).abs().max() < tol
    assert (a.centers[fa] - b.centers[fb]).abs().max() < tol
    assert abs(float(a.focal[fa] - b.focal[fb])) < tol
    assert abs(float(a.pixel_aspect[fa] - b.pixel_aspect[fb])) < tol
    assert (a.principal[fa] - b.principal[fb]).abs().max() < tol


def test_parse_keyframes_carries_values_over():
    frames, views, method = tr.parse_keyframes(json.dumps(KEYS), 21)
    assert frames == [0, 6, 13, 20]
    assert method == "smooth"
    assert views == EXPECTED_VIEWS


def test_first_keyframe_carries_over_from_defaults():
    defaults = tr.View(distance=2.0, roll=3, fov=45)
    _, views, _ = tr.parse_keyframes('[{"frame": 0, "yaw": 5}]', 5, defaults)
    assert views == [tr.View(yaw=5, distance=2.0, roll=3, fov=45)]


@pytest.mark.parametrize("method", ["smooth", "linear"])
def test_every_keyframe_is_hit_exactly(method):
    camera = tr.keyframed(21, json.dumps({"keyframes": KEYS, "interpolation": method}))
    for frame, view in zip([0, 6, 13, 20], EXPECTED_VIEWS):
        assert_same_camera(camera, frame, tr.static(1, view), 0)
    assert camera.focal[20] == pytest.approx(2.2, abs=1e-12)
    assert camera.focal[13] == pytest.approx(float(focal_from_fov(28)), abs=1e-12)


def test_linear_keyframes_interpolate_channels_linearly():
    camera = tr.keyframed(21, json.dumps({"keyframes": KEYS, "interpolation": "linear"}))
    yaw, pitch, _ = orbit_angles(camera.centers, TARGET)
    # Between keyframes 0 (yaw -10) and 6 (yaw 25), frame 2 is a third of the way.
    assert yaw[2] == pytest.approx(-10 + 35 / 3, abs=1e-9)
    assert pitch[16] == pytest.approx(-12.0, abs=1e-9)  # pitch constant after frame 13
    assert yaw[16] == pytest.approx(25 + 15 * 3 / 7, abs=1e-9)


def test_keyframes_hold_before_first_and_after_last():
    keys = [{"frame": 3, "yaw": 20, "pitch": 10}, {"frame": 8, "yaw": -15, "distance": 1.7}]
    camera = tr.keyframed(12, json.dumps(keys))
    first = tr.static(1, tr.View(yaw=20, pitch=10))
    last = tr.static(1, tr.View(yaw=-15, pitch=10, distance=1.7))
    for f in range(0, 4):
        assert_same_camera(camera, f, first, 0)
    for f in range(8, 12):
        assert_same_camera(camera, f, last, 0)
    # ...and actually moves in between.
    assert (camera.centers[5] - camera.centers[3]).norm() > 1e-3


def test_single_keyframe_is_static():
    camera = tr.keyframed(5, '[{"frame": 2, "yaw": 30, "fov": 40}]')
    for f in range(5):
        assert_same_camera(camera, f, tr.static(1, tr.View(yaw=30, fov=40)), 0)


def _motion_metrics(camera: CameraTrajectory) -> dict:
    """Step sizes and their changes, as fractions of the largest step."""
    c2w_rot = camera.w2c[:, :3, :3].transpose(-1, -2)
    increments = c2w_rot[:-1].transpose(-1, -2) @ c2w_rot[1:]  # R_i^T R_{i+1}
    angle = rotation_angle(increments)
    angle_change = rotation_angle(increments[:-1].transpose(-1, -2) @ increments[1:])
    c = camera.centers
    step = (c[1:] - c[:-1]).norm(dim=-1)
    accel = (c[2:] - 2 * c[1:-1] + c[:-2]).norm(dim=-1)
    return {
        "rotation step size change": float((angle[1:] - angle[:-1]).abs().max() / angle.max()),
        "rotation increment change": float(angle_change.max() / angle.max()),
        "centre step size change": float((step[1:] - step[:-1]).abs().max() / step.max()),
        "centre second difference": float(accel.max() / step.max()),
    }


SMOOTH_KEYS = [
    {"frame": 0, "yaw": 0, "pitch": 0, "roll": 0},
    {"frame": 11, "yaw": 20, "pitch": 8, "roll": 3},
    {"frame": 29, "yaw": 45, "pitch": -4, "roll": -2, "distance": 1.4},
    {"frame": 48, "yaw": 10, "pitch": -10, "distance": 1.0},
]


def test_smooth_keyframes_have_no_jumps():
    camera = tr.keyframed(49, json.dumps({"keyframes": SMOOTH_KEYS, "interpolation": "smooth"}))
    metrics = _motion_metrics(camera)
    for name, value in metrics.items():
        assert value < 0.15, (name, value)


def test_linear_keyframes_do_jump_so_the_smoothness_metric_is_meaningful():
    camera = tr.keyframed(49, json.dumps({"keyframes": SMOOTH_KEYS, "interpolation": "linear"}))
    metrics = _motion_metrics(camera)
    assert metrics["rotation increment change"] > 0.5
    assert metrics["centre second difference"] > 0.5


# --------------------------------------------------------------------------- interpolation


def _derivative(knots, values, x, h=1e-6):
    left = (interpolate_keys(knots, values, torch.tensor([x], dtype=F64))
            - interpolate_keys(knots, values, torch.tensor([x - h], dtype=F64))) / h
    right = (interpolate_keys(knots, values, torch.tensor([x + h], dtype=F64))
             - interpolate_keys(knots, values, torch.tensor([x], dtype=F64))) / h
    return left[0], right[0]


def test_interpolation_exact_at_knots_and_held_outside():
    knots = torch.tensor([2.0, 5.0, 6.0, 11.0], dtype=F64)
    values = torch.tensor([[0.0, 1.0], [3.0, -2.0], [3.5, 4.0], [-1.0, 0.5]], dtype=F64)
    for method in ("smooth", "linear"):
        assert torch.equal(interpolate_keys(knots, values, knots, method), values)
        out = interpolate_keys(knots, values, torch.tensor([-3.0, 0.0, 2.0, 11.0, 20.0], dtype=F64), method)
        assert torch.equal(out[:3], values[:1].expand(3, 2))
        assert torch.equal(out[3:], values[-1:].expand(2, 2))


def test_interpolation_is_monotone_without_overshoot():
    knots = torch.tensor([0.0, 1.0, 4.0, 5.0, 9.0, 10.0], dtype=F64)
    # A step, a plateau and steep rises: a natural cubic spline would overshoot here.
    values = torch.tensor([[0.0], [0.0], [1.0], [1.0], [1.2], [5.0]], dtype=F64)
    x = torch.linspace(0, 10, 2001, dtype=F64)
    y = interpolate_keys(knots, values, x)[:, 0]
    assert (y[1:] - y[:-1] >= -1e-12).all()
    seg = (torch.searchsorted(knots, x, right=True) - 1).clamp(0, len(knots) - 2)
    lo = torch.minimum(values[seg, 0], values[seg + 1, 0])
    hi = torch.maximum(values[seg, 0], values[seg + 1, 0])
    assert ((y >= lo - 1e-12) & (y <= hi + 1e-12)).all()
    # Flat between equal keys.
    flat = (x >= 0) & (x <= 1)
    assert y[flat].abs().max() < 1e-12


def test_interpolation_is_exactly_linear_on_evenly_moving_keys():
    knots = torch.tensor([0.0, 3.0, 4.0, 10.0, 17.0], dtype=F64)  # uneven spacing
    values = torch.stack([2 * knots + 1, -0.5 * knots + 3], dim=1)
    x = torch.linspace(0, 17, 341, dtype=F64)
    y = interpolate_keys(knots, values, x)
    expected = torch.stack([2 * x + 1, -0.5 * x + 3], dim=1)
    assert (y - expected).abs().max() < 1e-12


def test_interpolation_two_keys_is_linear():
    y = interpolate_keys(torch.tensor([1.0, 5.0]), torch.tensor([[2.0], [10.0]]),
                         torch.tensor([1.0, 2.0, 3.0, 5.0]))
    assert torch.allclose(y[:, 0], torch.tensor([2.0, 4.0, 6.0, 10.0], dtype=F64), atol=1e-12)


def test_smooth_interpolation_is_c1_at_interior_knots():
    knots = torch.tensor([0.0, 2.0, 3.0, 7.0, 8.0], dtype=F64)
    values = torch.tensor([[0.0], [1.0], [3.0], [2.0], [5.0]], dtype=F64)
    for k in knots[1:-1].tolist():
        left, right = _derivative(knots, values, k)
        assert float((left - right).abs().max()) < 1e-4, k
    # 'linear' has kinks there: the check above is sensitive.
    left = (interpolate_keys(knots, values, torch.tensor([2.0]), "linear")
            - interpolate_keys(knots, values, torch.tensor([2.0 - 1e-6]), "linear")) / 1e-6
    right = (interpolate_keys(knots, values, torch.tensor([2.0 + 1e-6]), "linear")
             - interpolate_keys(knots, values, torch.tensor([2.0]), "linear")) / 1e-6
    assert float((left - right).abs()) > 1.0


def test_smooth_interpolation_matches_scipy_pchip():
    scipy_interpolate = pytest.importorskip("scipy.interpolate")
    knots = torch.tensor([0.0, 1.5, 2.0, 4.0, 7.0, 7.5, 10.0], dtype=F64)
    values = torch.tensor([[0.0, 1.0], [2.0, 1.0], [1.0, 1.5], [1.0, -3.0], [4.0, 2.0],
                           [-2.0, 2.5], [3.0, 0.0]], dtype=F64)
    x = torch.linspace(0, 10, 1001, dtype=F64)
    ref = scipy_interpolate.PchipInterpolator(knots.numpy(), values.numpy(), axis=0)(x.numpy())
    assert (interpolate_keys(knots, values, x) - torch.from_numpy(ref)).abs().max() < 1e-12


def test_linear_interpolation_matches_piecewise_linear():
    knots = torch.tensor([0.0, 1.5, 2.0, 4.0], dtype=F64)
    values = torch.tensor([[0.0], [3.0], [1.0], [5.0]], dtype=F64)
    x = torch.tensor([0.75, 1.75, 3.0, 3.5], dtype=F64)
    expected = torch.tensor([1.5, 2.0, 3.0, 4.0], dtype=F64)
    assert (interpolate_keys(knots, values, x, "linear")[:, 0] - expected).abs().max() < 1e-12


def test_interpolation_unknown_method():
    with pytest.raises(ValueError):
        interpolate_keys(torch.tensor([0.0, 1.0]), torch.tensor([[0.0], [1.0]]), torch.tensor([0.5]), "cubic")


# --------------------------------------------------------------------------- dolly, spiral


def _lateral_point_radius(camera: CameraTrajectory, target) -> torch.Tensor:
    """Projected distance from the principal point of ``target + 0.1 m`` along image x."""
    image_x = camera.w2c[0, 0, :3]
    p = torch.as_tensor(target, dtype=F64) + 0.1 * image_x
    proj = camera.project(p[None], W, H)[:, 0, :2]
    return (proj - principal_px(camera)).norm(dim=-1)


def test_dolly_zoom_keeps_subject_size():
    start = tr.View(yaw=20, pitch=-10, distance=1.0, fov=40, target=TARGET)
    camera = tr.dolly(9, start, 2.0, dolly_zoom=True)
    _, _, dist = orbit_angles(camera.centers, TARGET)
    assert (dist - torch.linspace(1.0, 2.0, 9, dtype=F64)).abs().max() < 1e-9
    assert (camera.focal / float(focal_from_fov(40)) - dist).abs().max() < 1e-9
    r = _lateral_point_radius(camera, TARGET)
    assert ((r - r[0]).abs() / r[0]).max() < 1e-6
    # The rotation never changes while dollying.
    assert (camera.w2c[:, :3, :3] - camera.w2c[:1, :3, :3]).abs().max() < 1e-12


def test_dolly_without_zoom_changes_subject_size():
    start = tr.View(yaw=20, pitch=-10, distance=1.0, fov=40, target=TARGET)
    camera = tr.dolly(9, start, 2.0)
    assert (camera.focal == camera.focal[0]).all()
    r = _lateral_point_radius(camera, TARGET)
    dist = torch.linspace(1.0, 2.0, 9, dtype=F64)
    # Pinhole: radius = fy * 0.1 / depth.
    assert ((r - float(camera.focal[0]) * H * 0.1 / dist).abs() / r).max() < 1e-9
    assert r[-1] / r[0] == pytest.approx(0.5, rel=1e-9)


def test_dolly_zoom_refuses_an_impossible_field_of_view():
    with pytest.raises(InputError) as info:
        tr.dolly(5, tr.View(distance=10.0, fov=60), 0.01, dolly_zoom=True)
    assert info.value.input_name == "distance_end"
    assert "field of view" in info.value.message and "179" in info.value.message


def test_dolly_zoom_with_easing_keeps_subject_size():
    start = tr.View(distance=1.5, fov=30, target=TARGET)
    camera = tr.dolly(9, start, 0.8, dolly_zoom=True, easing="ease in-out")
    s = torch.linspace(0, 1, 9, dtype=F64)
    expected = 1.5 + (0.8 - 1.5) * s * s * (3 - 2 * s)
    _, _, dist = orbit_angles(camera.centers, TARGET)
    assert (dist - expected).abs().max() < 1e-9
    r = _lateral_point_radius(camera, TARGET)
    assert ((r - r[0]).abs() / r[0]).max() < 1e-6


def test_spiral_circles_through_start_view():
    start = tr.View(yaw=5, pitch=3, roll=4, distance=1.2, target=TARGET, fov=33)
    amplitude = 10.0
    camera = tr.spiral(9, start, amplitude, 1)
    assert_same_camera(camera, 0, tr.static(1, start), 0)
    assert_same_camera(camera, 8, camera, 0)  # one full turn comes back
    yaw, pitch, dist = orbit_angles(camera.centers, TARGET)
    assert (dist - 1.2).abs().max() < 1e-9
    # The (yaw, pitch) circle of radius `amplitude` through the start view.
    assert (((yaw - 5) ** 2 + (pitch - 3 - amplitude) ** 2).sqrt() - amplitude).abs().max() < 1e-9
    assert float((yaw - 5).abs().max()) == pytest.approx(amplitude, abs=1e-9)
    assert float((pitch - 3).max()) == pytest.approx(2 * amplitude, abs=1e-9)
    assert_looks_at(camera, TARGET)


def test_spiral_max_angular_deviation_is_the_circle_diameter():
    camera = tr.spiral(17, tr.View(), 7.5, 1)
    forward = camera.w2c[:, 2, :3]
    angle = torch.rad2deg(torch.acos((forward @ forward[0]).clamp(-1, 1)))
    assert float(angle.max()) == pytest.approx(15.0, abs=1e-6)
    assert int(angle.argmax()) == 8


def test_spiral_distance_end_and_turns():
    camera = tr.spiral(17, tr.View(distance=1.0), 5, 2, distance_end=1.8)
    _, _, dist = orbit_angles(camera.centers, (0, 0, 0))
    assert (dist - torch.linspace(1.0, 1.8, 17, dtype=F64)).abs().max() < 1e-9
    # Two turns: the view direction is back at the start half-way and at the end.
    for f in (8, 16):
        assert (camera.w2c[f, :3, :3] - camera.w2c[0, :3, :3]).abs().max() < 1e-9


# --------------------------------------------------------------------------- errors


def _keyframe_error(text: str, frames: int = 10) -> InputError:
    with pytest.raises(InputError) as info:
        tr.keyframed(frames, text)
    assert info.value.input_name == "keyframes"
    return info.value


def test_malformed_keyframe_json():
    err = _keyframe_error('[{"frame": 0, "yaw": 10}')
    assert "not valid JSON" in err.message
    assert "line 1" in err.message
    assert '"frame"' in err.message  # shows an example


@pytest.mark.parametrize("text", ["[]", "{}", '"yaw"', "[1, 2]"])
def test_keyframes_must_be_a_list_of_objects(text):
    err = _keyframe_error(text)
    assert "keyframe" in err.message


@pytest.mark.parametrize("frame", [-1, 10, 25])
def test_keyframe_frame_outside_range(frame):
    err = _keyframe_error(json.dumps([{"frame": frame, "yaw": 3}]))
    assert str(frame) in err.message and "0..9" in err.message


def test_keyframe_frame_must_be_whole():
    err = _keyframe_error('[{"frame": 1.5}]')
    assert "whole number" in err.message
    err = _keyframe_error('[{"yaw": 1}]')
    assert "'frame'" in err.message


@pytest.mark.parametrize("frames", [[0, 4, 4], [0, 5, 2]])
def test_keyframes_must_increase(frames):
    err = _keyframe_error(json.dumps([{"frame": f} for f in frames]))
    assert "keyframe 2" in err.message
    assert "strictly increasing" in err.message


def test_nan_in_view():
    with pytest.raises(InputError) as info:
        tr.static(1, tr.View(yaw=float("nan")))
    assert info.value.input_name == "yaw"
    assert "finite" in info.value.message
    with pytest.raises(InputError) as info:
        tr.static(1, tr.View(target=(0.0, float("inf"), 0.0)))
    assert info.value.input_name == "target"


@pytest.mark.parametrize("field", ["yaw", "distance", "fov"])
def test_nan_in_keyframe_json(field):
    err = _keyframe_error(f'[{{"frame": 0, "{field}": NaN}}]')
    assert field in err.message and "finite" in err.message
    assert "keyframe 0" in err.message


@pytest.mark.parametrize("fov", [0.5, 1.0, 179.0, 179.5, -30.0])
def test_fov_bounds_are_exclusive(fov):
    with pytest.raises(InputError) as info:
        tr.static(1, tr.View(fov=fov))
    assert info.value.input_name == "fov"
    assert f"{fov:g}" in info.value.message and "179" in info.value.message


@pytest.mark.parametrize("fov", [1.001, 20.0, 178.999])
def test_fov_inside_bounds_is_accepted(fov):
    camera = tr.static(1, tr.View(fov=fov))
    assert float(camera.fov[0]) == pytest.approx(fov, abs=1e-9)


@pytest.mark.parametrize("fov", [1, 179])
def test_fov_bounds_in_keyframes(fov):
    err = _keyframe_error(json.dumps([{"frame": 0, "fov": fov}]))
    assert "fov" in err.message


def test_unknown_keyframe_field():
    err = _keyframe_error('[{"frame": 0, "yaww": 3}]')
    assert "yaww" in err.message and "unknown" in err.message
    assert "yaw" in err.message.replace("yaww", "")  # lists the known fields


def test_unknown_top_level_field_and_interpolation():
    err = _keyframe_error('{"keyframes": [{"frame": 0}], "interp": "smooth"}')
    assert "interp" in err.message
    err = _keyframe_error('{"keyframes": [{"frame": 0}], "interpolation": "cubic"}')
    assert "cubic" in err.message and "smooth" in err.message


@pytest.mark.parametrize("key, value", [("target", [0, 1]), ("principal", [0.5]), ("target", "origin")])
def test_keyframe_vectors_need_the_right_length(key, value):
    err = _keyframe_error(json.dumps([{"frame": 0, key: value}]))
    assert key in err.message


def test_negative_distance():
    with pytest.raises(InputError) as info:
        tr.static(1, tr.View(distance=-1.0))
    assert info.value.input_name == "distance"
    assert "positive" in info.value.message
    err = _keyframe_error('[{"frame": 0, "distance": 0}]')
    assert "distance" in err.message and "positive" in err.message


@pytest.mark.parametrize("make", [
    lambda n: tr.static(n),
    lambda n: tr.orbit(n, tr.View(), 30),
    lambda n: tr.spiral(n, tr.View(), 5, 1),
    lambda n: tr.dolly(n, tr.View(), 2.0),
    lambda n: tr.arc(n, tr.View(), tr.View(yaw=10)),
    lambda n: tr.keyframed(n, '[{"frame": 0}]'),
], ids=["static", "orbit", "spiral", "dolly", "arc", "keyframes"])
@pytest.mark.parametrize("frames", [0, -4])
def test_frames_must_be_positive(make, frames):
    with pytest.raises(InputError) as info:
        make(frames)
    assert info.value.input_name == "frames"
    assert str(frames) in info.value.message


def test_unknown_easing():
    with pytest.raises(InputError) as info:
        tr.orbit(5, tr.View(), 30, easing="bounce")
    assert info.value.input_name == "easing"
    assert "linear" in info.value.message


# --- error names match the node's widgets ------------------------------------------------


@pytest.mark.parametrize(
    "build,input_name",
    [
        (lambda: tr.orbit(5, tr.View(), float("nan")), "yaw_end"),
        (lambda: tr.arc(5, tr.View(), tr.View(pitch=float("inf"))), "pitch_end"),
        (lambda: tr.dolly(5, tr.View(), -1.0), "distance_end"),
        (lambda: tr.spiral(5, tr.View(yaw=float("nan")), 5, 1), "yaw"),
        (lambda: tr.spiral(5, tr.View(fov=0.5), 5, 1), "fov"),
        (lambda: tr.spiral(5, tr.View(), 5, 1, distance_end=0.0), "distance_end"),
    ],
)
def test_errors_name_the_node_widget(build, input_name):
    with pytest.raises(InputError) as info:
        build()
    assert info.value.input_name == input_name


def test_keyframe_with_both_fov_and_focal_is_refused():
    with pytest.raises(InputError) as info:
        tr.parse_keyframes('[{"frame": 0, "fov": 30, "focal": 2.0}]', 5)
    assert info.value.input_name == "keyframes"
    assert "not both" in info.value.message
