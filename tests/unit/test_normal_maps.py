"""Normal maps against analytic normals, the DESIGN.md encoding, broadcasting and errors."""
import math

import pytest
import torch

from factorportrait.models.camera import paths as tr
from factorportrait.models.errors import InputError
from factorportrait.models.render.normal_maps import BACKGROUND, render_normal_maps, vertex_normals
from test_rasterize import exact_inside, icosphere

W, H = 64, 48
FRONTAL = tr.static(1, tr.View(distance=1.0, fov=40))  # on +Z looking at the origin


def quad(normal_towards: torch.Tensor, size: float = 0.3, centre=(0.0, 0.0, 0.0)):
    """A square facing ``normal_towards`` (unit, world), wound counter-clockwise seen from it."""
    n = normal_towards / normal_towards.norm()
    helper = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    if abs(float(n @ helper)) > 0.9:
        helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    a = torch.linalg.cross(helper, n)
    a = a / a.norm()
    b = torch.linalg.cross(n, a)  # (a, b, n) right-handed: a -> b is counter-clockwise seen from n
    c = torch.tensor(centre, dtype=torch.float64)
    corners = torch.stack([c - size * a - size * b, c + size * a - size * b, c + size * a + size * b,
                           c - size * a + size * b])
    return corners, torch.tensor([[0, 1, 2], [0, 2, 3]])


def encode_camera_normal(n_world: torch.Tensor, camera, frame: int = 0) -> torch.Tensor:
    """The DESIGN.md encoding of a world normal: OpenCV camera axes, y and z flipped."""
    n = camera.w2c[frame, :3, :3] @ n_world
    return (torch.stack([n[0], -n[1], -n[2]]) + 1) / 2


def project(points: torch.Tensor, camera, width=W, height=H) -> torch.Tensor:
    return camera.project(points, width, height)[0, :, :2]


# ----------------------------------------------------------------------------- planes

def test_plane_facing_the_camera_encodes_to_straight_out_of_the_screen():
    corners, faces = quad(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    image, mask = render_normal_maps(corners, faces, FRONTAL, W, H)
    assert image.shape == (1, H, W, 3) and mask.shape == (1, H, W)
    assert image.dtype == torch.float32 and mask.dtype == torch.float32
    on = mask[0] > 0
    assert torch.allclose(image[0][on], torch.tensor([0.5, 0.5, 1.0]), atol=1e-6)
    assert (image[0][~on] == torch.tensor(BACKGROUND)).all() and (mask[0][~on] == 0).all()
    # Coverage: exactly the pixel centres inside the projected square (as two triangles).
    uv = torch.round(project(corners, FRONTAL) * 256) / 256
    expected = exact_inside(uv[[0, 1, 2]], W, H) | exact_inside(uv[[0, 2, 3]], W, H)
    assert expected.sum() > 500
    assert torch.equal(on, expected)


@pytest.mark.parametrize("tilt", [20.0, 45.0, 70.0])
def test_plane_tilted_to_face_image_up_has_green_above_half(tilt):
    # A floor-like plane turned up toward +Y (world up = image up for the frontal camera).
    n = torch.tensor([0.0, math.sin(math.radians(tilt)), math.cos(math.radians(tilt))], dtype=torch.float64)
    corners, faces = quad(n)
    image, mask = render_normal_maps(corners, faces, FRONTAL, W, H)
    on = mask[0] > 0
    assert on.sum() > 100
    expected = torch.tensor([0.5, 0.5 + 0.5 * math.sin(math.radians(tilt)),
                             0.5 + 0.5 * math.cos(math.radians(tilt))])
    assert torch.allclose(image[0][on], expected.float(), atol=1e-5)
    assert (image[0][on][:, 1] > 0.5).all()


def test_plane_facing_image_right_has_red_above_half_and_facing_left_below():
    for sign in (1.0, -1.0):
        n = torch.tensor([sign * 0.6, 0.0, 0.8], dtype=torch.float64)
        image, mask = render_normal_maps(*quad(n), FRONTAL, W, H)
        red = image[0][mask[0] > 0][:, 0]
        assert torch.allclose(red, torch.tensor(0.5 + 0.3 * sign), atol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_plane_seen_by_a_moving_camera_has_its_analytic_camera_normal(seed):
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(3, generator=g, dtype=torch.float64)
    n[2] = n[2].abs() + 1.0  # roughly toward the cameras on +Z
    n = n / n.norm()
    camera = tr.orbit(5, tr.View(yaw=-25, pitch=10, roll=5, distance=1.1, fov=35), yaw_end=25)
    image, mask = render_normal_maps(*quad(n, 0.25), camera, W, H)
    for f in range(5):
        on = mask[f] > 0
        assert on.sum() > 50
        assert torch.allclose(image[f][on], encode_camera_normal(n, camera, f).float(), atol=2e-5)


# ----------------------------------------------------------------------------- sphere

def test_sphere_normals_match_the_analytic_normal_at_each_pixels_ray_hit():
    """Icosphere of 4 subdivisions (edges span 4.0°; its area-weighted vertex normals are
    within 0.34° of radial): where the surface faces the camera within 60° the smooth
    normal is within 0.6° of the true sphere normal at the pixel ray's hit; elsewhere on
    the sphere (down to grazing, 84°) within 2.5°; on average within 0.2°."""
    v, f = icosphere(4)
    width, height = 128, 96
    r, c = 0.3, torch.tensor([0.03, -0.02, 0.01], dtype=torch.float64)
    camera = tr.static(1, tr.View(yaw=20, pitch=10, distance=1.2, fov=35, target=(0.05, 0.02, 0.0)))
    image, mask = render_normal_maps(v * r + c, f, camera, width, height)
    k, rot, t = camera.intrinsics(width, height)[0], camera.w2c[0, :3, :3], camera.w2c[0, :3, 3]
    vv, uu = torch.meshgrid(torch.arange(height, dtype=torch.float64) + 0.5,
                            torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")
    d = torch.stack([(uu - k[0, 2]) / k[0, 0], (vv - k[1, 2]) / k[1, 1], torch.ones_like(uu)], -1)
    d = d / d.norm(dim=-1, keepdim=True)
    cc = rot @ c + t  # sphere centre in camera space
    b = d @ cc
    disc = b * b - cc @ cc + r * r
    hit = d * (b - disc.clamp(min=0).sqrt())[..., None]
    n = (hit - cc) / r
    n = torch.stack([n[..., 0], -n[..., 1], -n[..., 2]], -1)  # DESIGN.md axes
    got = image[0].double() * 2 - 1
    angle = torch.rad2deg(torch.acos((got * n).sum(-1).clamp(-1, 1)))
    on = (mask[0] > 0) & (disc > 0)
    assert on.sum() > 4000
    facing = on & (n[..., 2] > 0.5)
    assert angle[facing].max() < 0.6
    assert angle[on & (n[..., 2] > 0.1)].max() < 2.5
    assert angle[on].mean() < 0.2
    assert torch.allclose(got[mask[0] > 0].norm(dim=-1), torch.tensor(1.0, dtype=torch.float64), atol=1e-6)


def test_vertex_normals_are_area_weighted_unit_vectors():
    # Vertex 0 is shared by a large face in the z = 0 plane and a small one in the x = 0 plane.
    verts = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 0.5], [0, -0.5, 0], [5, 5, 5]],
                         dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 3, 4]])  # normals +Z (area 2) and -X... (area 0.125)
    n = vertex_normals(verts[None], faces)[0]
    big = torch.tensor([0.0, 0, 1]) * 2.0
    small = torch.linalg.cross(verts[3] - verts[0], verts[4] - verts[0]) / 2  # area-length normal
    expected = (big + small) / (big + small).norm()
    assert torch.allclose(n[0], expected.to(n.dtype), atol=1e-12)
    assert torch.allclose(n[1], torch.tensor([0.0, 0, 1], dtype=n.dtype))
    assert (n[5] == 0).all()  # a vertex no face uses
    v, f = icosphere(3)
    nv = vertex_normals(v[None].expand(2, -1, -1), f)
    assert torch.allclose(nv.norm(dim=-1), torch.tensor(1.0, dtype=nv.dtype))
    assert ((nv * v).sum(-1) > math.cos(math.radians(1.0))).all()  # outward, near radial


# ----------------------------------------------------------------------------- frames

def _moving_sphere(frames: int):
    v, f = icosphere(2)
    shift = torch.linspace(-0.1, 0.1, frames, dtype=torch.float64)
    verts = v[None] * 0.25 + torch.stack([shift, 0.5 * shift, torch.zeros_like(shift)], -1)[:, None]
    return verts, f


def test_static_camera_broadcasts_over_mesh_frames():
    verts, faces = _moving_sphere(4)
    image, mask = render_normal_maps(verts, faces, FRONTAL, W, H)
    assert image.shape == (4, H, W, 3)
    for i in range(4):
        one, one_mask = render_normal_maps(verts[i], faces, FRONTAL, W, H)
        assert torch.equal(image[i], one[0]) and torch.equal(mask[i], one_mask[0])
    assert not torch.equal(mask[0], mask[3])


def test_static_mesh_broadcasts_over_a_moving_camera():
    v, faces = icosphere(2)
    camera = tr.orbit(3, tr.View(yaw=-40, distance=1.0, fov=40), yaw_end=40)
    image, mask = render_normal_maps(v * 0.25, faces, camera, W, H)
    assert image.shape == (3, H, W, 3)
    for i in range(3):
        one, _ = render_normal_maps(v * 0.25, faces, camera.frames([i]), W, H)
        assert torch.equal(image[i], one[0])
    assert not torch.equal(image[0], image[2])


def test_equal_lengths_pair_up_and_chunking_changes_nothing():
    verts, faces = _moving_sphere(5)
    camera = tr.orbit(5, tr.View(yaw=-20, distance=1.0, fov=40), yaw_end=20)
    image, mask = render_normal_maps(verts, faces, camera, W, H, frames_per_chunk=2)
    again, _ = render_normal_maps(verts, faces, camera, W, H, frames_per_chunk=5)
    assert torch.equal(image, again)
    one, _ = render_normal_maps(verts[3], faces, camera.frames([3]), W, H)
    assert torch.equal(image[3], one[0])


def test_chunks_rendered_side_by_side_on_threads_match_one_thread_and_keep_the_caller_state():
    verts, faces = _moving_sphere(6)
    camera = tr.orbit(6, tr.View(yaw=-20, distance=1.0, fov=40), yaw_end=20)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # one thread: chunks one after another
        single = render_normal_maps(verts, faces, camera, W, H, frames_per_chunk=2)
        torch.set_num_threads(3)  # three chunks side by side, as ComfyUI calls it
        with torch.inference_mode():
            image, mask = render_normal_maps(verts, faces, camera, W, H, frames_per_chunk=2)
            assert image.is_inference()
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(image, single[0]) and torch.equal(mask, single[1])


def test_length_mismatch_is_an_error_naming_camera_body_track_and_both_lengths():
    verts, faces = _moving_sphere(4)
    camera = tr.orbit(3, tr.View(), yaw_end=30)
    with pytest.raises(InputError) as err:
        render_normal_maps(verts, faces, camera, W, H)
    assert err.value.input_name == "camera"
    assert "3 frames" in str(err.value) and "4" in str(err.value) and "body_track" in str(err.value)


# ----------------------------------------------------------------------------- errors, backends

@pytest.mark.parametrize("change,name,match", [
    (lambda v, f: (v * float("nan"), f), "body_track", "NaN"),
    (lambda v, f: (v, f + 1000), "body_track", "face indices"),
    (lambda v, f: (v, f.double()), "body_track", "integer"),
    (lambda v, f: (v[..., :2], f), "body_track", "vertices must be"),
    (lambda v, f: (v, f[:, :2]), "body_track", "faces must be"),
])
def test_bad_meshes_are_input_errors(change, name, match):
    v, f = icosphere(1)
    v, f = change(v, f)
    with pytest.raises(InputError, match=match) as err:
        render_normal_maps(v, f, FRONTAL, W, H)
    assert err.value.input_name == name


@pytest.mark.parametrize("width,height,name", [(0, 48, "width"), (64, 9000, "height"), (64.0, 48, "width")])
def test_bad_sizes_are_input_errors(width, height, name):
    v, f = icosphere(1)
    with pytest.raises(InputError) as err:
        render_normal_maps(v, f, FRONTAL, width, height)
    assert err.value.input_name == name


def test_unknown_backend_is_an_input_error():
    v, f = icosphere(1)
    with pytest.raises(InputError) as err:
        render_normal_maps(v, f, FRONTAL, W, H, backend="pytorch3d")
    assert err.value.input_name == "backend"


def test_moderngl_backend_renders_the_same_images():
    """OpenGL draws the rasterizer's own screen triangles and interpolates the same affine
    normal functions: identical masks, normals equal up to float32 rounding."""
    pytest.importorskip("moderngl")
    from factorportrait.models.render import moderngl_backend

    ok, why = moderngl_backend.is_available()
    if not ok:
        pytest.skip(f"moderngl cannot open an EGL context: {why}")
    verts, faces = _moving_sphere(3)
    plane, plane_faces = quad(torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64), 0.4, (0, 0, -0.3))
    verts = torch.cat([verts, plane[None].expand(3, -1, -1)], 1)
    faces = torch.cat([faces, plane_faces + _moving_sphere(1)[0].shape[1]])
    camera = tr.orbit(3, tr.View(yaw=-30, pitch=15, distance=1.0, fov=40), yaw_end=30)
    for width, height in ((W, H), (97, 61)):
        ours = render_normal_maps(verts, faces, camera, width, height)
        gl = render_normal_maps(verts, faces, camera, width, height, backend="moderngl")
        assert torch.equal(ours[1], gl[1])
        difference = (ours[0] - gl[0]).abs()
        assert difference.max() < 1e-4 and difference.mean() < 1e-6
        assert torch.equal(ours[0][ours[1] == 0], gl[0][gl[1] == 0])  # background
