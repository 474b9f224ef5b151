"""The PyTorch rasterizer against analytic ground truth and an exact reference.

The reference is written independently of ``models/render/rasterize.py``: exact integer
arithmetic on the 1/256-pixel grid, the top-left rule stated through the third corner
(an edge's inward normal points right, or down for a horizontal edge), brute force over
every pixel centre and triangle, and depth from ray-plane intersection.
"""
import math

import pytest
import torch

from factorportrait.models.errors import InputError
from factorportrait.models.render import rasterize as rz
from factorportrait.models.render.meshes import icosphere

W, H = 64, 48
K = torch.tensor([[60.0, 0.0, 31.0], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]], dtype=torch.float64)


# ----------------------------------------------------------------------------- helpers



def unproject(uv: torch.Tensor, z: torch.Tensor, k: torch.Tensor = K) -> torch.Tensor:
    """Camera-space points ``[N, 3]`` that project to pixel positions ``uv [N, 2]`` at depth ``z``."""
    uv, z = uv.double(), torch.as_tensor(z, dtype=torch.float64).expand(uv.shape[0])
    x = (uv[:, 0] - k[0, 2]) / k[0, 0] * z
    y = (uv[:, 1] - k[1, 2]) / k[1, 1] * z
    return torch.stack([x, y, z], 1)


def on_grid(t: torch.Tensor) -> torch.Tensor:
    """Round pixel positions to the 1/256 grid (so snapping leaves them where they are)."""
    return torch.round(t * 256) / 256


def exact_inside(corners: torch.Tensor, width: int = W, height: int = H) -> torch.Tensor:
    """Reference point-in-triangle test of every pixel centre ``[H, W]`` (bool) for pixel
    corners ``[3, 2]`` on the 1/256 grid, with the top-left rule on centres on an edge."""
    p = (corners.double() * 256).round().long().tolist()
    v, u = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    px, py = u * 256 + 128, v * 256 + 128
    inside = torch.ones(height, width, dtype=torch.bool)
    for i in range(3):
        (ax, ay), (bx, by), (cx, cy) = p[i], p[(i + 1) % 3], p[(i + 2) % 3]
        ex, ey = bx - ax, by - ay
        nx, ny = -ey, ex  # a normal of edge a -> b; flipped to point at the third corner
        if nx * (cx - ax) + ny * (cy - ay) < 0:
            nx, ny = -nx, -ny
        if nx * (cx - ax) + ny * (cy - ay) == 0:
            return torch.zeros(height, width, dtype=torch.bool)  # degenerate: covers nothing
        side = nx * (px - ax) + ny * (py - ay)
        owns_edge = nx > 0 or (nx == 0 and ny > 0)  # inside to the right, or below
        inside &= (side > 0) | ((side == 0) & owns_edge)
    return inside


def exact_zbuffer(verts: torch.Tensor, faces: torch.Tensor, k: torch.Tensor = K, width: int = W,
                  height: int = H) -> torch.Tensor:
    """Reference front-most face ``[H, W]`` (-1 none) of camera-space triangles in front of
    the camera: exact coverage of the snapped projections, depth by ray-plane intersection,
    ties to the lower face index."""
    uv = on_grid(torch.stack([k[0, 0] * verts[:, 0] / verts[:, 2] + k[0, 2],
                              k[1, 1] * verts[:, 1] / verts[:, 2] + k[1, 2]], 1))
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64) + 0.5,
                          torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")
    rays = torch.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], torch.ones_like(u)], -1)
    best = torch.full((height, width), -1)
    best_z = torch.full((height, width), math.inf, dtype=torch.float64)
    for i, face in enumerate(faces.tolist()):
        a, b, c = verts[face]
        n = torch.linalg.cross(b - a, c - a)
        z = (n @ a) / (rays @ n)  # depth of the ray's hit on the face's plane
        take = exact_inside(uv[face], width, height) & (z < best_z)
        best = torch.where(take, i, best)
        best_z = torch.where(take, z, best_z)
    return best


def random_soup(seed: int, count: int, near_z: float = 1.0, far_z: float = 3.0):
    """Random, interpenetrating triangles with corners on the pixel grid, in front of the camera."""
    g = torch.Generator().manual_seed(seed)
    uv = on_grid(torch.rand(count * 3, 2, generator=g, dtype=torch.float64) * torch.tensor([W + 20.0, H + 20]) - 10)
    z = near_z + (far_z - near_z) * torch.rand(count * 3, generator=g, dtype=torch.float64)
    return unproject(uv, z), torch.arange(count * 3).reshape(count, 3)


def face_ids(verts, faces, k=K, width=W, height=H, **kwargs):
    return rz.rasterize_face_ids(verts[None] if verts.dim() == 2 else verts, faces,
                                 k.expand(1 if verts.dim() == 2 else verts.shape[0], 3, 3), width, height, **kwargs)


# ----------------------------------------------------------------------------- coverage

@pytest.mark.parametrize("corners", [
    [[10.5, 5.5], [50.5, 20.5], [20.5, 40.5]],  # corners on pixel centres: many centres on edges
    [[3.3, 2.7], [60.1, 4.9], [31.0, 45.2]],
    [[5.0, 5.0], [5.0, 40.0], [40.0, 40.0]],  # axis-aligned edges along pixel boundaries
    [[7.5, 3.5], [7.5, 30.5], [30.5, 3.5]],  # axis-aligned edges through pixel centres
    [[0.2, 10.1], [63.9, 11.3], [0.3, 11.0]],  # a sliver thinner than a pixel
    [[-20.0, -7.0], [90.0, 15.0], [10.0, 70.0]],  # larger than the image
])
@pytest.mark.parametrize("winding", [1, -1])
def test_single_triangle_covers_exactly_the_centres_inside(corners, winding):
    uv = on_grid(torch.tensor(corners, dtype=torch.float64))
    uv = uv if winding > 0 else uv.flip(0)
    verts = unproject(uv, torch.tensor([1.0, 1.7, 2.4]))
    ids = face_ids(verts, torch.tensor([[0, 1, 2]]))[0]
    assert torch.equal(ids >= 0, exact_inside(uv))


@pytest.mark.parametrize("order", [[0, 1, 2], [0, 2, 1]])
def test_triangle_whose_only_row_of_centres_lies_on_its_bottom_edge_covers_nothing(order):
    uv = torch.tensor([[10.5, 20.5], [15.5, 20.25], [20.5, 20.5]], dtype=torch.float64)[order]
    ids = face_ids(unproject(uv, 1.0), torch.tensor([[0, 1, 2]]))[0]
    assert (ids < 0).all() and not exact_inside(uv).any()
    flipped = uv * torch.tensor([1.0, -1.0]) + torch.tensor([0.0, 41.0])  # now it is a top edge
    ids = face_ids(unproject(flipped, 1.0), torch.tensor([[0, 1, 2]]))[0]
    assert torch.equal(ids >= 0, exact_inside(flipped)) and (ids >= 0).sum() == 10  # centres 10.5 .. 19.5


@pytest.mark.parametrize("seed", range(4))
def test_random_triangles_match_the_analytic_point_in_triangle_test(seed):
    g = torch.Generator().manual_seed(100 + seed)
    for _ in range(20):
        uv = on_grid(torch.rand(3, 2, generator=g, dtype=torch.float64) * torch.tensor([W + 10.0, H + 10]) - 5)
        verts = unproject(uv, 1 + torch.rand(3, generator=g, dtype=torch.float64))
        ids = face_ids(verts, torch.tensor([[0, 1, 2]]))[0]
        assert torch.equal(ids >= 0, exact_inside(uv))


def test_centres_exactly_on_edges_of_any_slope_follow_the_top_left_rule():
    # Corners on pixel centres (rows spaced 3/4 px): many centres lie exactly on edges
    # whose span boundaries are whole pixels, where float rounding must not decide.
    g = torch.Generator().manual_seed(7)
    for _ in range(150):
        uv = torch.randint(0, 60, (3, 2), generator=g).double() * torch.tensor([1.0, 0.75]) + 0.5
        verts = unproject(uv, torch.tensor([1.0, 1.3, 2.1]))
        ids = face_ids(verts, torch.tensor([[0, 1, 2]]))[0]
        assert torch.equal(ids >= 0, exact_inside(uv))


def _lattice_mesh(step: float, origin: tuple[float, float], nx: int, ny: int, seed: int):
    """A grid of quads split along alternating diagonals; vertices on pixel centres."""
    g = torch.Generator().manual_seed(seed)
    gx, gy = torch.meshgrid(torch.arange(nx + 1.0), torch.arange(ny + 1.0), indexing="xy")
    uv = torch.stack([gx, gy], -1).reshape(-1, 2) * step + torch.tensor(origin)
    faces = []
    for j in range(ny):
        for i in range(nx):
            a, b, c, d = j * (nx + 1) + i, j * (nx + 1) + i + 1, (j + 1) * (nx + 1) + i, (j + 1) * (nx + 1) + i + 1
            faces += [[a, b, d], [a, d, c]] if torch.rand(1, generator=g) < 0.5 else [[a, b, c], [b, d, c]]
    return uv.double(), torch.tensor(faces)


@pytest.mark.parametrize("step,origin", [(4.0, (2.5, 3.5)), (6.0, (0.5, 0.5)), (5.0, (-7.5, -2.5))])
def test_shared_edges_cover_every_centre_inside_the_union_exactly_once(step, origin):
    uv, faces = _lattice_mesh(step, origin, 10, 7, seed=int(step))
    verts = unproject(uv, 1.0 + 0.01 * torch.arange(len(uv)) % 0.5)  # non-planar, still one layer
    ids = face_ids(verts, faces)[0]
    per_face = torch.stack([exact_inside(uv[f]) for f in faces.tolist()])
    assert per_face.sum(0).max() == 1  # the reference agrees: a partition
    union = per_face.any(0)
    assert torch.equal(ids >= 0, union)
    # Each covered centre belongs to the face the reference gives it.
    assert torch.equal(ids[union], per_face.float().argmax(0)[union])
    # Drawing each face alone covers the same centres: no double hits, no holes.
    alone = sum(face_ids(verts, faces[i:i + 1])[0] >= 0 for i in range(len(faces)))
    assert alone.max() == 1 and torch.equal(alone > 0, union)


def test_fan_around_a_pixel_centre_covers_it_once():
    centre = torch.tensor([[30.5, 20.5]])
    angles = torch.arange(12) * (2 * math.pi / 12)
    rim = on_grid(centre + 15 * torch.stack([torch.cos(angles), torch.sin(angles)], 1))
    rim[::3] = centre + torch.tensor([[15.0, 0], [0, 15], [-15, 0], [0, -15]])  # spokes through centres
    uv = torch.cat([centre, rim]).double()
    faces = torch.tensor([[0, i + 1, (i + 1) % 12 + 1] for i in range(12)])
    verts = unproject(uv, 2.0)
    ids = face_ids(verts, faces)[0]
    per_face = torch.stack([exact_inside(uv[f]) for f in faces.tolist()])
    assert per_face.sum(0).max() == 1
    assert torch.equal(ids >= 0, per_face.any(0))
    assert ids[20, 30] >= 0  # the shared vertex's own pixel centre


# ----------------------------------------------------------------------------- depth

def _square(u0, v0, u1, v1, z):
    uv = torch.tensor([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], dtype=torch.float64)
    return unproject(uv, z), torch.tensor([[0, 1, 2], [0, 2, 3]])


@pytest.mark.parametrize("near_first", [True, False])
def test_near_square_wins_exactly_where_the_squares_overlap(near_first):
    near_v, near_f = _square(10, 8, 40, 30, 1.0)
    far_v, far_f = _square(25, 15, 60, 44, 2.0)
    parts = [(near_v, near_f), (far_v, far_f)] if near_first else [(far_v, far_f), (near_v, near_f)]
    verts = torch.cat([parts[0][0], parts[1][0]])
    faces = torch.cat([parts[0][1], parts[1][1] + 4])
    near_ids = {0, 1} if near_first else {2, 3}
    frags = rz.rasterize(verts[None], faces, K[None], W, H)
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    in_near = (u > 10) & (u < 40) & (v > 8) & (v < 30)
    in_far = (u > 25) & (u < 60) & (v > 15) & (v < 44)
    ids = frags.face_id[0]
    is_near = (ids == min(near_ids)) | (ids == max(near_ids))
    assert torch.equal(is_near, in_near)
    assert torch.equal((ids >= 0) & ~is_near, in_far & ~in_near)
    assert torch.allclose(frags.depth[0][in_near], torch.tensor(1.0), atol=1e-6)
    assert torch.allclose(frags.depth[0][in_far & ~in_near], torch.tensor(2.0), atol=1e-6)
    assert (frags.depth[0][ids < 0] == 0).all()


def test_interpenetrating_triangles_show_the_nearer_surface_per_pixel():
    # Two tilted triangles crossing each other along a line: per pixel the nearer plane wins.
    a = unproject(torch.tensor([[2.0, 2.0], [62.0, 4.0], [30.0, 46.0]]), torch.tensor([1.0, 3.0, 2.0]))
    b = unproject(torch.tensor([[60.0, 44.0], [4.0, 40.0], [33.0, 1.0]]), torch.tensor([1.2, 2.8, 2.1]))
    verts, faces = torch.cat([a, b]), torch.tensor([[0, 1, 2], [3, 4, 5]])
    ids = face_ids(verts, faces)[0]
    assert torch.equal(ids, exact_zbuffer(verts, faces))
    assert (ids == 0).sum() > 100 and (ids == 1).sum() > 100


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("cull", [False, True])
def test_random_soup_matches_the_exact_reference_zbuffer(seed, cull):
    verts, faces = random_soup(seed, 40)
    expected = exact_zbuffer(verts, faces) if not cull else None
    if cull:  # the reference with back faces removed first (clockwise on screen = front)
        uv = verts[:, :2] / verts[:, 2:]
        a, b, c = (uv[faces[:, i]] for i in range(3))
        front = ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]) < 0
        expected = exact_zbuffer(verts, faces[front])
        expected = torch.where(expected >= 0, front.nonzero()[:, 0][expected.clamp(min=0)], -1)
    assert torch.equal(face_ids(verts, faces, cull_back_faces=cull)[0], expected)


def test_plane_barycentrics_depth_and_interpolation_are_the_ray_hits():
    uv = torch.tensor([[-5.0, -3.0], [70.0, 2.0], [66.0, 52.0], [1.0, 45.0]], dtype=torch.float64)
    verts = unproject(uv, torch.tensor([1.0, 1.6, 2.5, 1.9]))
    verts[3] = verts[0] + (verts[2] - verts[1])  # a planar quad
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    frags = rz.rasterize(verts[None], faces, K[None], W, H)
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64) + 0.5,
                          torch.arange(W, dtype=torch.float64) + 0.5, indexing="ij")
    rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    n = torch.linalg.cross(verts[1] - verts[0], verts[2] - verts[0])
    z = (n @ verts[0]) / (rays @ n)
    mask = frags.mask[0]
    assert mask.sum() > 0.8 * W * H
    assert torch.allclose(frags.depth[0][mask].double(), z[mask], rtol=1e-5)
    assert torch.allclose(frags.bary[0][mask].sum(-1), torch.tensor(1.0), atol=1e-5)
    points = rz.interpolate(frags, verts[None], faces)[0]
    assert torch.allclose(points[mask], (rays * z[..., None])[mask], atol=1e-5)
    assert (frags.bary[0][~mask] == 0).all() and (points[~mask] == 0).all()


# ----------------------------------------------------------------------------- near plane, guard band

def _plane_hits(corners: torch.Tensor, near: float, width=W, height=H):
    """Reference coverage of a planar convex quad ``[4, 3]`` (camera space, any depth sign):
    pixel centres whose ray hits the quad at depth ``>= near``."""
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64) + 0.5,
                          torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")
    rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    n = torch.linalg.cross(corners[1] - corners[0], corners[2] - corners[0])
    t = (n @ corners[0]) / (rays @ n)
    p = rays * t[..., None]
    inside = torch.ones_like(t, dtype=torch.bool)
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        inside &= (torch.linalg.cross((b - a).expand_as(p), p - a) @ n) >= 0
    return inside & (t >= near), t


@pytest.mark.parametrize("behind", [False, True])
def test_faces_crossing_the_near_plane_are_clipped_there(behind):
    near = 0.5
    # A floor-like plane from behind the camera (or from just in front) to far away.
    z0 = -1.0 if behind else 0.2
    corners = torch.tensor([[-2.0, 0.4, z0], [2.0, 0.4, z0], [2.0, 0.1, 6.0], [-2.0, 0.1, 6.0]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    ids = face_ids(corners, faces, near=near)[0]
    expected, depth = _plane_hits(corners, near)
    # Clipping moves the cut line by float rounding and snapping only (< 1/256 pixel):
    # allow disagreement just at centres whose hit is within a hair of the near plane.
    margin = (depth - near).abs() < 2e-3
    assert expected.sum() > 300
    assert torch.equal((ids >= 0)[~margin], expected[~margin])


def test_everything_behind_the_camera_or_near_plane_draws_nothing():
    verts, faces = random_soup(5, 30, near_z=-3.0, far_z=-0.1)
    assert (face_ids(verts, faces) < 0).all()
    verts, faces = random_soup(6, 30, near_z=0.01, far_z=0.4)
    assert (face_ids(verts, faces, near=0.5) < 0).all()


def test_triangles_reaching_past_the_guard_band_keep_their_on_screen_coverage():
    # A quad at a grazing angle: its far side projects hundreds of thousands of pixels out.
    corners = torch.tensor([[-0.3, -0.2, 1.0], [0.3, -0.2, 1.0], [400.0, 0.25, 0.02], [-400.0, 0.25, 0.02]],
                           dtype=torch.float64)
    corners[2, 1] = corners[3, 1] = -0.2 + (0.25 + 0.2) * 1.0  # keep the quad planar
    n = torch.linalg.cross(corners[1] - corners[0], corners[3] - corners[0])
    corners[2] = corners[2] - (n @ (corners[2] - corners[0])) / (n @ n) * n
    corners[3] = corners[3] - (n @ (corners[3] - corners[0])) / (n @ n) * n
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    uv = corners[:, :2] / corners[:, 2:] * 60
    assert uv.abs().max() > rz.GUARD_BAND  # really beyond the guard band
    ids = face_ids(corners, faces, near=0.01)[0]
    expected, depth = _plane_hits(corners, 0.01)
    assert expected.sum() > 200
    assert (ids >= 0).ne(expected).sum() <= 2  # edges moved by < 1/256 px at most


# ----------------------------------------------------------------------------- sphere, batching

def _sphere_scene(frames: int = 1, subdivisions: int = 3):
    v, f = icosphere(subdivisions)
    centres = torch.tensor([[0.12, -0.08, 1.3], [-0.2, 0.1, 1.1], [0.0, 0.0, 1.6]], dtype=torch.float64)[:frames]
    return v[None] * 0.3 + centres[:, None], f, centres


def test_sphere_silhouette_matches_the_projected_ellipse():
    width, height = 160, 120
    k = torch.tensor([[120.0, 0, 80], [0, 120.0, 60], [0, 0, 1]], dtype=torch.float64)
    verts, faces, centres = _sphere_scene(3, subdivisions=4)
    ids = face_ids(verts, faces, k, width, height)
    r = 0.3
    for i, c in enumerate(centres):
        d2, cz = float(c @ c), float(c[2])
        # Closed form: the projection of a sphere is an ellipse of area
        # pi f^2 r^2 sqrt(d^2 - r^2) / (cz^2 - r^2)^(3/2) (square pixels).
        area = math.pi * 120.0 ** 2 * r * r * math.sqrt(d2 - r * r) / (cz * cz - r * r) ** 1.5
        covered = int((ids[i] >= 0).sum())
        assert abs(covered - area) / area < 0.01, (covered, area)
        # The inscribed polyhedron never covers a pixel whose ray misses the sphere.
        v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64) + 0.5,
                              torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")
        rays = torch.stack([(u - 80) / 120, (v - 60) / 120, torch.ones_like(u)], -1)
        rays = rays / rays.norm(dim=-1, keepdim=True)
        misses = (rays @ c) ** 2 - d2 + r * r < 0
        assert not ((ids[i] >= 0) & misses).any()


def test_frames_batch_and_chunk_independently():
    verts, faces, _ = _sphere_scene(3)
    k = K.expand(3, 3, 3)
    whole = rz.rasterize_face_ids(verts, faces, k, W, H, frames_per_chunk=3)
    for chunk in (1, 2):
        assert torch.equal(rz.rasterize_face_ids(verts, faces, k, W, H, frames_per_chunk=chunk), whole)
    for i in range(3):
        assert torch.equal(face_ids(verts[i], faces)[0], whole[i])


@pytest.mark.parametrize("seed", range(3))
def test_depth_from_the_zbuffer_keys_is_the_resolved_depth(seed):
    """``rasterize_depth`` reads depth from the z-buffer keys' high bits: the same coverage
    and, to float32 precision, the same depth as the barycentric resolve (random soups with
    interpenetrating faces, and a sphere in three frames chunked two ways)."""
    verts, faces = random_soup(seed, 40)
    full = rz.rasterize(verts[None], faces, K[None], W, H)
    depth = rz.rasterize_depth(verts[None], faces, K[None], W, H)
    assert torch.equal(depth > 0, full.face_id >= 0)
    assert torch.allclose(depth, full.depth, rtol=1e-6, atol=0)
    sphere, sphere_faces, _ = _sphere_scene(3)
    k = K.expand(3, 3, 3)
    full = rz.rasterize(sphere, sphere_faces, k, W, H, frames_per_chunk=3)
    for chunk in (1, 3):
        depth = rz.rasterize_depth(sphere, sphere_faces, k, W, H, frames_per_chunk=chunk)
        assert torch.equal(depth > 0, full.face_id >= 0) and (depth > 0).any()
        assert torch.allclose(depth, full.depth, rtol=1e-6, atol=0)


def test_closed_mesh_looks_the_same_with_back_faces_culled():
    verts, faces, _ = _sphere_scene(3)
    k = K.expand(3, 3, 3)
    two_sided = rz.rasterize_face_ids(verts, faces, k, W, H)
    assert torch.equal(rz.rasterize_face_ids(verts, faces, k, W, H, cull_back_faces=True), two_sided)


def test_open_mesh_shows_its_inside_through_the_opening():
    # A sphere with a hole toward the camera, a little off-axis: through the hole the inside
    # (back faces) shows, around it the outside (front faces), which hide the back faces
    # behind them (the hierarchical-z pass must skip exactly those).
    v, f = icosphere(3)
    keep = ~(v[f][:, :, 2] < -0.85).all(1)  # cut a cap from the side facing the camera
    verts = v * 0.4 + torch.tensor([0.08, -0.05, 1.2], dtype=torch.float64)
    ids = face_ids(verts, f[keep])[0]
    assert torch.equal(ids, exact_zbuffer(verts, f[keep]))
    culled = face_ids(verts, f[keep], cull_back_faces=True)[0]
    inside = (ids >= 0) & (culled != ids)  # where back faces show
    assert inside.sum() > 200 and ((culled == ids) & (ids >= 0)).sum() > 600


def test_back_faces_in_front_of_front_faces_are_never_skipped():
    # The inside of a bowl (back faces, small triangles) just in front of a backdrop that
    # fills the image (front faces): the hierarchical-z pass sees full tiles behind the bowl
    # and must keep every bowl face that is nearer than them.
    v, f = icosphere(3)
    bowl = f[(v[f][:, :, 2] > -1e-9).all(1)]  # the far half: opening toward the camera
    verts = torch.cat([v * 0.3 + torch.tensor([0.05, 0.0, 1.5], dtype=torch.float64),
                       unproject(torch.tensor([[-50.0, -50], [150, -50], [150, 150], [-50, 150]]), 1.85)])
    faces = torch.cat([bowl, torch.tensor([[0, 2, 1], [0, 3, 2]]) + len(v)])  # backdrop faces the camera
    ids = face_ids(verts, faces)[0]
    assert torch.equal(ids, exact_zbuffer(verts, faces))
    assert (ids < len(bowl)).sum() > 300  # the bowl's inside shows


@pytest.mark.parametrize("width,height", [(W, H), (61, 37), (130, 90)])
def test_hierarchical_z_pass_changes_no_pixel(monkeypatch, width, height):
    # Open spheres seen from several sides plus a random soup, at image sizes that are not
    # multiples of the 4-pixel tiles: skipping the back faces it proves hidden must give
    # exactly the z-buffer of drawing them all.
    v, f = icosphere(3)
    k = torch.tensor([[60.0, 0, width / 2], [0, 60.0, height / 2], [0, 0, 1]], dtype=torch.float64)
    open_faces = f[~(v[f][:, :, 0] > 0.7).all(1)]  # a hole on the +x side
    g = torch.Generator().manual_seed(3)
    frames = []
    for i in range(3):
        rot = torch.linalg.matrix_exp(torch.tensor([[0.0, -1, 0.5], [1, 0, -0.3], [-0.5, 0.3, 0]]) * (0.7 * i))
        frames.append(v @ rot.T.double() * 0.5 + torch.tensor([0.1 * i, 0.0, 1.6], dtype=torch.float64))
    verts = torch.stack(frames)
    soup, soup_faces = random_soup(4, 60)
    soup = soup * torch.tensor([width / W, height / H, 1.0], dtype=torch.float64)
    verts = torch.cat([verts, soup[None].expand(3, -1, -1)], 1)
    faces = torch.cat([open_faces, soup_faces + len(v)])
    ids = rz.rasterize_face_ids(verts, faces, k.expand(3, 3, 3), width, height)
    skipped = []
    monkeypatch.setattr(rz, "_hidden", lambda keys, tris, index, *a: skipped.append(len(index)) or
                        torch.zeros(len(index), dtype=torch.bool))
    assert torch.equal(rz.rasterize_face_ids(verts, faces, k.expand(3, 3, 3), width, height), ids)
    assert skipped  # the back-face pass ran


def test_world_mesh_through_a_camera_trajectory():
    from factorportrait.models.camera import paths as tr

    camera = tr.orbit(3, tr.View(yaw=-30, pitch=20, roll=10, distance=1.2, fov=40, principal=(0.45, 0.55)),
                      yaw_end=30)
    tri = torch.tensor([[-0.25, -0.2, 0.05], [0.3, -0.1, -0.05], [0.0, 0.3, 0.1]], dtype=torch.float64)
    verts, k = rz.camera_space(tri[None], camera, W, H)  # a static mesh follows the camera
    assert verts.shape == (3, 3, 3) and k.shape == (3, 3, 3)
    ids = rz.rasterize_face_ids(verts, torch.tensor([[0, 1, 2]]), k, W, H)
    uv = camera.project(tri, W, H)[..., :2]  # the camera's own projection
    for f in range(3):
        assert torch.equal(ids[f] >= 0, exact_inside(torch.round(uv[f] * 256) / 256))
        assert (ids[f] >= 0).sum() > 20
    with pytest.raises(InputError, match="body_track") as err:
        rz.camera_space(tri[None].expand(2, -1, -1), camera, W, H)
    assert err.value.input_name == "camera"


def test_degenerate_and_offscreen_faces_and_sizes():
    verts = unproject(torch.tensor([[5.0, 5.0], [30.0, 30.0], [55.0, 55.0], [500.0, 5.0], [600.0, 9.0],
                                    [550.0, 80.0]]), 1.0)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])  # collinear; entirely off-screen
    assert (face_ids(verts, faces) < 0).all()
    with pytest.raises(ValueError, match="image size"):
        face_ids(verts, faces, width=0)
    with pytest.raises(ValueError, match="backend"):
        face_ids(verts, faces, backend="opengl")


# ----------------------------------------------------------------------------- moderngl

def _moderngl():
    pytest.importorskip("moderngl")
    from factorportrait.models.render import moderngl_backend

    ok, why = moderngl_backend.is_available()
    if not ok:
        pytest.skip(f"moderngl cannot open an EGL context: {why}")
    return moderngl_backend


@pytest.mark.parametrize("size", [(64, 48), (101, 67)])
def test_moderngl_backend_gives_identical_face_ids(size):
    _moderngl()
    width, height = size
    k = K.clone()
    k[0, 2], k[1, 2] = width / 2, height / 2
    verts, faces, _ = _sphere_scene(3)
    k3 = k.expand(3, 3, 3)
    ours = rz.rasterize_face_ids(verts, faces, k3, width, height)
    assert torch.equal(rz.rasterize_face_ids(verts, faces, k3, width, height, backend="moderngl"), ours)
    lattice_uv, lattice_faces = _lattice_mesh(4.0, (2.5, 3.5), 14, 11, seed=4)  # ties on every edge
    lattice = unproject(lattice_uv, 1.5, k)[None]
    assert torch.equal(rz.rasterize_face_ids(lattice, lattice_faces, k[None], width, height, backend="moderngl"),
                       rz.rasterize_face_ids(lattice, lattice_faces, k[None], width, height))


def test_moderngl_backend_differs_only_at_depth_ties_of_interpenetrating_faces():
    _moderngl()
    verts, faces = random_soup(11, 300)
    ours, gl = (face_ids(verts, faces, backend=b)[0] for b in ("torch", "moderngl"))
    differ = ours != gl
    assert differ.float().mean() < 1e-3
    v, u = differ.nonzero().unbind(1)
    uv1 = torch.stack([u + 0.5, v + 0.5, torch.ones_like(u, dtype=torch.float64)], 1).double()
    planes = rz.face_ray_planes(verts[None], faces, K[None])  # [9, M]
    inv_depth = (planes[0:3] + planes[3:6] + planes[6:9]).T  # [M, 3]: 1/z = q . (u, v, 1)
    za = (inv_depth[ours[v, u]] * uv1).sum(1)
    zb = (inv_depth[gl[v, u]] * uv1).sum(1)
    assert ((za - zb).abs() / za < 1e-6).all()  # both cover the pixel at the same depth
