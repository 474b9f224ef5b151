"""The single-photo avatar against ground truth: synthetic photos of anny with known pose,
camera and per-vertex colours (no fit in the way), the background plane against the
analytic parallax, and the controls' frame rules.

The real-photo path (detection, fit, segmentation) and its bad inputs are in
``test_avatar_photos.py``.
"""
from __future__ import annotations

import math

import pytest
import torch

from factorportrait.models.avatar.avatar import avatar_from_fit
from factorportrait.models.avatar.background import plane_lookup
from factorportrait.models.avatar.photo import prepare_photo
from factorportrait.models.avatar.render import layer_world, photo_weights, render_avatar
from factorportrait.models.avatar.surface import grown_fill, mirror_vertices, neighbour_mean_matrix
from factorportrait.models.camera import paths
from factorportrait.models.camera.trajectory import CameraTrajectory
from factorportrait.models.render import rasterize as rz

SIZE = 256
BACKGROUND = (0.2, 0.35, 0.6)
VIEW = paths.View(distance=0.75, fov=30.0, target=(0.0, -0.08, 0.0))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10((a - b).square().mean().clamp(min=1e-12)))


def vertex_colours(model, symmetric: bool = False) -> torch.Tensor:
    """Smooth, varied per-vertex colours ``[V, 3]`` fixed to the rest surface (mirror-symmetric
    across x = 0 when ``symmetric``)."""
    rest = model(model.neutral_params(1))[0]
    x = rest[:, 0].abs() if symmetric else rest[:, 0]
    y, z = rest[:, 1], rest[:, 2]
    return torch.stack([0.5 + 0.4 * torch.sin(40 * x + 10 * y), 0.5 + 0.4 * torch.cos(30 * y + 20 * z),
                        0.5 + 0.4 * torch.sin(25 * z - 35 * x * x)], -1).clamp(0, 1)


def render_colours(model, params, camera, colours, size=SIZE):
    """Unshaded render of per-vertex colours over a flat background: image ``[F, H, W, 3]``
    and coverage ``[F, H, W]``: a photo whose every pixel's surface point is known."""
    with torch.no_grad():
        world = model(params)
    verts, k = rz.camera_space(world, camera, size, size)
    fragments = rz.rasterize(verts, model.faces, k, size, size)
    image = rz.interpolate(fragments, colours.expand(verts.shape[0], -1, -1).contiguous(), model.faces)
    covered = fragments.mask
    return torch.where(covered[..., None], image, torch.tensor(BACKGROUND)), covered


def known_avatar(model, params, camera, colours, extra=None):
    """The avatar of a synthetic photo built from its true pose and camera; ``extra``: a
    function that paints more of the person (and its matte) onto the photo."""
    image, covered = render_colours(model, params, camera, colours)
    matte = covered[0].float()
    if extra is not None:
        image, matte = extra(image, matte)
    photo = prepare_photo(image)
    return avatar_from_fit(model, photo, params, camera, matte), image[0], matte


@pytest.fixture(scope="module")
def model(anny_model):
    return anny_model


def photo_params(model, head_yaw: float = 0.0):
    params = model.neutral_params(1)
    params.head[:, 1] = math.radians(head_yaw)
    return params


def test_round_trip_is_the_photo(model):
    """At the photo's camera, pose and expression, every pixel is the photo's (the person
    looked up where the photo's camera saw it, the background untouched)."""
    params, camera = photo_params(model), paths.static(1, VIEW)
    avatar, photo, matte = known_avatar(model, params, camera, vertex_colours(model))
    image, mask = render_avatar(avatar, params, camera, SIZE, SIZE)
    assert psnr(image[0], photo) > 45
    assert float((mask[0] - matte).abs().mean()) < 0.01


def test_lookup_follows_the_surface_under_a_new_pose_and_camera(model):
    """Turned head, moved camera: where the photo saw the surface well, the avatar shows the
    colour that surface point has (the ground truth render of the same colours)."""
    colours = vertex_colours(model)
    camera = paths.static(1, VIEW)
    avatar, _photo, _matte = known_avatar(model, photo_params(model), camera, colours)
    params = photo_params(model, head_yaw=12.0)
    params.neck[:, 0] = math.radians(6)
    moved = paths.static(1, paths.View(yaw=10.0, pitch=5.0, distance=0.75, fov=30.0, target=(0.0, -0.08, 0.0)))
    image, _mask = render_avatar(avatar, params, moved, SIZE, SIZE)
    assert bool(torch.isfinite(image).all())
    truth, covered = render_colours(model, params, moved, colours)
    with torch.no_grad():
        weights = photo_weights(avatar, model(params), moved)[0, :, 0]
    verts, k = rz.camera_space(model(params), moved, SIZE, SIZE)
    fragments = rz.rasterize(verts, model.faces, k, SIZE, SIZE)
    w = rz.interpolate(fragments, weights[None, :, None], model.faces)[0, ..., 0]
    region = covered[0] & (w > 0.999)
    assert int(region.sum()) > 0.2 * int(covered[0].sum())
    assert psnr(image[0][region], truth[0][region]) > 32


def test_hidden_side_is_the_mirrored_side(model):
    """A photo with the head turned 35 degrees hides one cheek; turned the other way, the
    avatar shows there the photo's other cheek, mirrored: on a symmetric colouring that is the
    ground truth. Nothing is black."""
    colours = vertex_colours(model, symmetric=True)
    camera = paths.static(1, VIEW)
    avatar, _photo, _matte = known_avatar(model, photo_params(model, 35.0), camera, colours)
    params = photo_params(model, -35.0)
    image, _mask = render_avatar(avatar, params, camera, SIZE, SIZE)
    truth, covered = render_colours(model, params, camera, colours)
    with torch.no_grad():
        weights = photo_weights(avatar, model(params), camera)[0]
    verts, k = rz.camera_space(model(params), camera, SIZE, SIZE)
    fragments = rz.rasterize(verts, model.faces, k, SIZE, SIZE)
    w = rz.interpolate(fragments, weights[None], model.faces)[0]
    by_mirror = covered[0] & (w[..., 1] > 0.999)
    assert int(by_mirror.sum()) > 500  # the far cheek is now in view, painted by its mirror
    assert psnr(image[0][by_mirror], truth[0][by_mirror]) > 28
    assert float(image[0][covered[0]].sum(-1).min()) > 0.15  # never black


def test_mirror_vertices_of_the_symmetric_template(model):
    rest = model(model.neutral_params(1))[0]
    mirror = mirror_vertices(rest)
    paired = mirror != torch.arange(len(rest))
    assert float(paired.float().mean()) > 0.9
    reflected = rest[mirror] * torch.tensor([-1.0, 1.0, 1.0])
    assert float((reflected - rest)[paired].norm(dim=1).max()) < 0.004
    assert float((mirror[mirror] == torch.arange(len(rest)))[paired].float().mean()) > 0.95


def test_grown_fill_takes_the_colour_around_a_hidden_patch():
    """On a grid mesh, a hidden patch inside a blue region turns blue (not a blend with the
    red half beyond); every value stays within the known range."""
    n = 20
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1), idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    faces = torch.cat([torch.stack([a, c, b], 1), torch.stack([b, c, d], 1)])
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    values = torch.where((xx < 5).reshape(-1, 1), torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]))
    hidden = ((xx - 14).abs() <= 3) & ((yy - 10).abs() <= 3)
    known = ~hidden.reshape(-1)
    filled = grown_fill(torch.where(known[:, None], values, torch.zeros(3)), known, neighbour_mean_matrix(faces, n * n))
    patch = filled[~known]
    assert torch.allclose(patch, torch.tensor([0.0, 0.0, 1.0]).expand_as(patch), atol=1e-6)
    assert torch.equal(filled[known], values[known])


def test_hair_layer_moves_with_the_head(model):
    """A disc of 'hair' above the head (in the matte, off the template) becomes a layer; when
    only the head turns, the layer's vertices above the chin move rigidly with the head and
    those far below it (none here) would stay with the torso."""
    params, camera = photo_params(model), paths.static(1, VIEW)

    def hair(image, matte):
        yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
        disc = ((xx - SIZE / 2) ** 2 + ((yy - SIZE * 0.12) * 1.6) ** 2) < (SIZE * 0.2) ** 2
        top = disc & (matte < 0.5)
        image = image.clone()
        image[0][top] = torch.tensor([0.35, 0.2, 0.1])
        return image, torch.where(top, 1.0, matte)

    avatar, photo, _matte = known_avatar(model, params, camera, vertex_colours(model), hair)
    assert len(avatar.layer.vertices) > 50
    turned = photo_params(model, head_yaw=25.0)
    moved = layer_world(avatar, turned)[0]
    def square(m):
        return torch.cat([m.float(), torch.tensor([[0.0, 0, 0, 1]])])

    head = (square(model.joint_transforms(turned)[0, -1]) @ torch.linalg.inv(square(model.joint_transforms(params)[0, -1])))[:3]
    rigid = avatar.layer.vertices @ head[:, :3].T + head[:, 3]
    above = avatar.layer.vertices[:, 1] > float(model(params)[0, :, 1].max()) - 0.05
    assert int(above.sum()) > 20
    assert float((moved - rigid)[above].norm(dim=1).max()) < 1e-4
    # And at the photo's pose the layer stays put, so the hair is drawn where the photo has it.
    image, _mask = render_avatar(avatar, params, camera, SIZE, SIZE)
    assert psnr(image[0], photo) > 40


def _camera(w2c: torch.Tensor, focal: float) -> CameraTrajectory:
    return CameraTrajectory.create(w2c[None], focal)


def test_background_plane_parallax_is_the_analytic_shift():
    """A camera moved sideways by b sees the plane at depth D shifted by f b / D pixels; a
    camera that only turns sees it through the rotation's homography, at any depth."""
    width, height, depth, focal = 320, 240, 2.5, 1.1  # focal over height
    ref = torch.eye(4, dtype=torch.float64)
    k = _camera(ref, focal).intrinsics(width, height)[0]
    b = 0.12
    moved = ref.clone()
    moved[0, 3] = -b  # world-to-camera: the camera centre at x = +b
    cam = _camera(moved, focal)
    uv = plane_lookup(cam.c2w, torch.linalg.inv(cam.intrinsics(width, height)), ref, k, depth, width, height)[0]
    u = torch.arange(width) + 0.5
    v = torch.arange(height) + 0.5
    expected_u = u[None].expand(height, -1) + focal * height * b / depth
    assert torch.allclose(uv[..., 0], expected_u.float(), atol=1e-3)
    assert torch.allclose(uv[..., 1], v[:, None].expand(-1, width).float(), atol=1e-3)

    turn = math.radians(8)
    rotated = ref.clone()
    rotated[:3, :3] = torch.tensor([[math.cos(turn), 0, math.sin(turn)], [0, 1, 0], [-math.sin(turn), 0, math.cos(turn)]],
                                   dtype=torch.float64)
    cam = _camera(rotated, focal)
    near = plane_lookup(cam.c2w, torch.linalg.inv(cam.intrinsics(width, height)), ref, k, 1.0, width, height)
    far = plane_lookup(cam.c2w, torch.linalg.inv(cam.intrinsics(width, height)), ref, k, 9.0, width, height)
    assert torch.allclose(near, far, atol=1e-3)
    pix = torch.tensor([width // 2 + 0.5, height // 2 + 0.5, 1.0], dtype=torch.float64)  # that pixel's centre
    h = k @ rotated[:3, :3].T @ torch.linalg.inv(k)  # new pixels -> photo pixels
    centre = h @ pix
    assert torch.allclose(near[0, height // 2, width // 2], (centre[:2] / centre[2]).float(), atol=1e-2)


def test_camera_move_parallax_in_the_render(model):
    """In a render, the background moves against the person by the plane's parallax: a
    sideways camera move shifts a background feature by f b / D pixels."""
    params, camera = photo_params(model), paths.static(1, VIEW)

    def marker(image, matte):
        image = image.clone()
        image[0, 100:110, 30:40] = torch.tensor([1.0, 1.0, 0.0])  # a yellow square on the background
        return image, matte

    avatar, _photo, _matte = known_avatar(model, params, camera, vertex_colours(model), marker)
    b = 0.05
    w2c = camera.w2c[0].clone()
    w2c[0, 3] -= b  # the camera moves along its own +x
    moved = CameraTrajectory(w2c[None], camera.focal, camera.pixel_aspect, camera.principal)
    image, _mask = render_avatar(avatar, params, moved, SIZE, SIZE)
    yellow = (image[0, ..., 0] > 0.9) & (image[0, ..., 1] > 0.9) & (image[0, ..., 2] < 0.1)
    cols = torch.nonzero(yellow)[:, 1].float()
    shift = float(cols.mean()) - 34.5
    expected = -float(camera.focal[0]) * SIZE * b / avatar.plane_depth
    assert abs(shift - expected) < 0.6


def test_an_opened_jaw_shows_a_dark_mouth(model):
    """A photo with the mouth closed; opened, the avatar's mouth shows the dark cavity where
    the template's inner mouth comes into view, not lips or skin stretched over it."""
    camera = paths.static(1, VIEW)
    avatar, _photo, _matte = known_avatar(model, photo_params(model), camera, vertex_colours(model))
    cavity = avatar.surface.cavity
    assert 50 < int(cavity.sum()) < 1500
    params = photo_params(model)
    params.face[:, model.face_labels.index("jawOpen")] = 1.0
    image, _mask = render_avatar(avatar, params, camera, SIZE, SIZE)
    verts, k = rz.camera_space(model(params), camera, SIZE, SIZE)
    fragments = rz.rasterize(verts, model.faces, k, SIZE, SIZE)
    inner_faces = cavity[model.faces.long()].all(1)
    inner = (fragments.face_id[0] >= 0) & inner_faces[fragments.face_id[0].clamp(min=0)]
    assert int(inner.sum()) > 30  # the mouth is open in the render
    inside = image[0][inner].mean(-1)
    skin = image[0][(fragments.face_id[0] >= 0) & ~inner].mean(-1)
    assert float(inside.median()) < 0.25 < float(skin.median())  # dark inside (the colouring is 0.1..0.9)
    assert float(inside.mean()) < 0.6 * float(skin.mean())
