"""Plücker ray maps against a naive per-pixel reference and analytic geometry."""
import json

import pytest
import torch

from _reference_geometry import naive_pack, naive_rays, naive_rays_at, pixel_matrix
from factorportrait.models.camera import paths as tr
from factorportrait.models.camera.trajectory import CameraTrajectory
from factorportrait.models.errors import InputError
from factorportrait.models.wan.latent_frames import latent_frame_groups
from factorportrait.models.camera.plucker import (
    check_image_size,
    latent_plucker_rays,
    packed_plucker_rays,
    plucker_rays,
    wan_camera_embedding,
)

W, H = 64, 48
TOL = 1e-5


def constant_intrinsics_camera(frames: int = 9) -> CameraTrajectory:
    """An orbit with pitch, roll, an off-centre target, non-square pixels and an off-centre
    principal point (same intrinsics on every frame)."""
    start = tr.View(yaw=-20, pitch=15, roll=7, distance=1.1, fov=35, target=(0.05, -0.1, 0.02),
                    pixel_aspect=1.2, principal=(0.43, 0.56))
    return tr.orbit(frames, start, yaw_end=40)


def keyframed_camera(frames: int = 9) -> CameraTrajectory:
    """Keyframes moving every orbit channel and every intrinsic (varying intrinsics)."""
    keys = [
        {"frame": 0, "yaw": -15, "pitch": 8, "roll": -6, "distance": 1.0, "fov": 32,
         "pixel_aspect": 1.15, "principal": [0.46, 0.53], "target": [0.03, 0.08, -0.02]},
        {"frame": 3, "yaw": 10, "pitch": -12, "roll": 9, "fov": 41, "principal": [0.55, 0.47]},
        {"frame": frames - 1, "yaw": 35, "pitch": 20, "distance": 1.6, "pixel_aspect": 0.9,
         "target": [-0.05, 0.1, 0.04]},
    ]
    return tr.keyframed(frames, json.dumps(keys))


def dolly_zoom_camera(frames: int = 9) -> CameraTrajectory:
    start = tr.View(yaw=12, pitch=-6, roll=3, distance=1.0, fov=40, principal=(0.52, 0.47))
    return tr.dolly(frames, start, distance_end=1.8, dolly_zoom=True)


CAMERAS = {
    "constant": constant_intrinsics_camera,
    "keyframed": keyframed_camera,
    "dolly_zoom": dolly_zoom_camera,
}


def test_camera_fixtures_cover_both_code_paths():
    assert constant_intrinsics_camera().has_constant_intrinsics()
    assert not keyframed_camera().has_constant_intrinsics()
    assert not dolly_zoom_camera().has_constant_intrinsics()
    # The dolly zoom really changes the focal length.
    focal = dolly_zoom_camera().focal
    assert focal[-1] / focal[0] == pytest.approx(1.8, rel=1e-9)


@pytest.mark.parametrize("name", list(CAMERAS))
def test_directions_unit_and_moments_orthogonal(name):
    rays = plucker_rays(CAMERAS[name](), W, H).double()
    m, d = rays[:, :3], rays[:, 3:]
    assert (d.norm(dim=1) - 1).abs().max() < 1e-6
    assert (m * d).sum(dim=1).abs().max() < 1e-6


@pytest.mark.parametrize("name", list(CAMERAS))
def test_plucker_rays_match_naive_reference(name):
    camera = CAMERAS[name]()
    rays = plucker_rays(camera, W, H)
    assert rays.shape == (camera.num_frames, 6, H, W)
    assert rays.dtype == torch.float32
    ref = naive_rays(camera, W, H)
    assert (rays.double() - ref).abs().max() < TOL


def test_plucker_rays_match_naive_reference_non_square_image():
    # Width and height enter the intrinsics differently (cx scales with W, fx with H).
    camera = keyframed_camera(5)
    rays = plucker_rays(camera, 40, 72)
    assert (rays.double() - naive_rays(camera, 40, 72)).abs().max() < TOL


@pytest.mark.parametrize("name", list(CAMERAS))
def test_points_on_a_pixel_ray_project_back_and_are_incident(name):
    camera = CAMERAS[name]()
    rays = plucker_rays(camera, W, H).double()
    centres = camera.centers
    pixels = [(0, 0), (W - 1, H - 1), (17, 5), (40, 31), (W // 2, H // 2)]
    for f in range(camera.num_frames):
        for u, v in pixels:
            m, d = rays[f, :3, v, u], rays[f, 3:, v, u]
            o = centres[f]
            for t in (0.5, 2.0, 7.0):
                p = o + t * d
                # (b) Plücker incidence: every point p of the line has p x d = m.
                assert (torch.linalg.cross(p, d) - m).abs().max() < TOL
                # (a) The point projects back onto the pixel centre, in front of the camera.
                proj = camera.frames([f]).project(p[None], W, H)[0, 0]
                assert (proj[:2] - torch.tensor([u + 0.5, v + 0.5], dtype=torch.float64)).abs().max() < 1e-5
                assert proj[2] > 0


@pytest.mark.parametrize("name", list(CAMERAS))
def test_moment_gives_perpendicular_distance_of_world_points(name):
    """|p x d - m| is the distance from p to the ray; compare it with the distance computed
    independently from the projection of p and the naive pixel ray."""
    camera = CAMERAS[name]()
    rays = plucker_rays(camera, W, H).double()
    points = torch.tensor([[0.03, -0.05, 0.02], [-0.1, 0.12, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    proj = camera.project(points, W, H)  # [F, N, 3]
    for f in range(camera.num_frames):
        o = torch.linalg.inv(camera.w2c[f])[:3, 3]
        for n, p in enumerate(points):
            x, y, depth = proj[f, n].tolist()
            assert depth > 0
            u, v = int(x), int(y)  # the pixel that contains the projection
            assert 0 <= u < W and 0 <= v < H
            ref_d = naive_rays_at(camera.frames([f]), W, H, torch.tensor(u + 0.5, dtype=torch.float64),
                                  torch.tensor(v + 0.5, dtype=torch.float64))[0, 3:]
            op = p - o
            expected = (op - (op @ ref_d) * ref_d).norm()
            m, d = rays[f, :3, v, u], rays[f, 3:, v, u]
            got = (torch.linalg.cross(p, d) - m).norm()
            assert got == pytest.approx(float(expected), abs=TOL)
            # Sanity: p lies within half a pixel (at its depth) of that pixel's ray.
            fy = float(camera.focal[f]) * H
            fx = float(camera.pixel_aspect[f]) * fy
            assert float(expected) <= depth * (0.25 / fx**2 + 0.25 / fy**2) ** 0.5 + 1e-12


def test_frontal_camera_centre_pixels_follow_opencv_axes():
    camera = tr.static(1)
    rays = plucker_rays(camera, W, H)[0].double()
    d = rays[3:]
    fy = float(camera.focal[0]) * H
    fx = fy
    # The four pixels around the image centre (cx, cy) = (32, 24).
    tl, tr_, bl, br = d[:, 23, 31], d[:, 23, 32], d[:, 24, 31], d[:, 24, 32]
    # Camera x right = world +X, camera y down = world -Y, camera z forward = world -Z.
    for dir_, sx, sy in ((tl, -1, +1), (tr_, +1, +1), (bl, -1, -1), (br, +1, -1)):
        expected = torch.tensor([sx * 0.5 / fx, sy * 0.5 / fy, -1.0], dtype=torch.float64)
        expected = expected / expected.norm()
        assert (dir_ - expected).abs().max() < 1e-6
    # Symmetric around the optical axis (0, 0, -1).
    mean = (tl + tr_ + bl + br) / 4
    assert (mean[:2]).abs().max() < 1e-7
    assert (mean / mean.norm() - torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)).abs().max() < 1e-7
    # Right of centre looks to world +X, image top looks to world +Y (up), everywhere.
    assert (d[0, :, 32:] > 0).all() and (d[0, :, :32] < 0).all()
    assert (d[1, :24, :] > 0).all() and (d[1, 24:, :] < 0).all()
    assert (d[2] < 0).all()
    # The camera sits at (0, 0, 1.2): moments o x d = 1.2 * (-d_y, d_x, 0).
    m = rays[:3]
    assert (m[0] + 1.2 * d[1]).abs().max() < 1e-6
    assert (m[1] - 1.2 * d[0]).abs().max() < 1e-6
    assert m[2].abs().max() < 1e-6


def test_pixel_aspect_scales_horizontal_angles_only():
    square = tr.static(1, tr.View(fov=40))
    wide = tr.static(1, tr.View(fov=40, pixel_aspect=2.0))
    d_sq = plucker_rays(square, W, H)[0, 3:].double()
    d_wide = plucker_rays(wide, W, H)[0, 3:].double()
    # Camera-space slopes x/z and y/z (world x = cam x, world y = -cam y, world z = -cam z).
    sx_sq, sy_sq = d_sq[0] / -d_sq[2], -d_sq[1] / -d_sq[2]
    sx_w, sy_w = d_wide[0] / -d_wide[2], -d_wide[1] / -d_wide[2]
    assert (sx_w - sx_sq / 2).abs().max() < 1e-6
    assert (sy_w - sy_sq).abs().max() < 1e-6


@pytest.mark.parametrize("name", list(CAMERAS))
def test_packed_rays_equal_gathered_plucker_rays(name):
    camera = CAMERAS[name]()
    packed = packed_plucker_rays(camera, W, H)
    rays = plucker_rays(camera, W, H)
    groups = latent_frame_groups(camera.num_frames)
    t_lat = groups.shape[0]
    assert packed.shape == (1, 24, t_lat, H, W)
    for t in range(t_lat):
        for k in range(4):
            for c in range(6):
                assert torch.allclose(packed[0, 4 * c + k, t], rays[groups[t, k], c], atol=1e-6, rtol=0)
    # And against the loop-written packing of the naive reference rays.
    assert (packed.double() - naive_pack(naive_rays(camera, W, H))).abs().max() < TOL


def test_packed_rays_channel_layout_explicit_cells():
    camera = keyframed_camera(9)
    packed = packed_plucker_rays(camera, W, H)
    rays = plucker_rays(camera, W, H)
    # Latent frame 0 is frame 0 four times; latent frame 2 holds frames 5, 6, 7, 8.
    for c in range(6):
        for k in range(4):
            assert torch.allclose(packed[0, 4 * c + k, 0], rays[0, c], atol=1e-6, rtol=0)
            assert torch.allclose(packed[0, 4 * c + k, 2], rays[5 + k, c], atol=1e-6, rtol=0)
    # Direction z of frame 6 sits in channel 4*5 + 1 = 21 of latent frame 2.
    assert torch.allclose(packed[0, 21, 2], rays[6, 5], atol=1e-6, rtol=0)
    # Moment x of frame 3 sits in channel 2 of latent frame 1.
    assert torch.allclose(packed[0, 2, 1], rays[3, 0], atol=1e-6, rtol=0)


def test_packed_rays_refuse_frame_counts_that_are_not_4k_plus_1():
    camera = constant_intrinsics_camera(8)
    with pytest.raises(InputError) as info:
        packed_plucker_rays(camera, W, H)
    assert info.value.input_name == "camera"
    assert "5" in info.value.message and "9" in info.value.message


@pytest.mark.parametrize("name", list(CAMERAS))
def test_latent_rays_pass_through_latent_cell_centres(name):
    camera = CAMERAS[name]()
    width, height = 128, 96
    lat = latent_plucker_rays(camera, width, height)
    assert lat.shape == (1, 24, 3, height // 8, width // 8)
    # Latent cell (i, j) covers full-res pixels 8i..8i+7: its centre is coordinate 8i + 4.
    j, i = torch.meshgrid(torch.arange(height // 8, dtype=torch.float64),
                          torch.arange(width // 8, dtype=torch.float64), indexing="ij")
    ref = naive_rays_at(camera, width, height, 8 * i + 4, 8 * j + 4)
    assert (lat.double() - naive_pack(ref)).abs().max() < TOL


def test_latent_rays_refuse_sizes_that_are_not_multiples_of_16():
    with pytest.raises(InputError) as info:
        latent_plucker_rays(constant_intrinsics_camera(), 120, 96)
    assert info.value.input_name == "width"


def _relative_trajectory(camera: CameraTrajectory) -> CameraTrajectory:
    """Poses relative to frame 0, written independently: c2w_rel[i] = w2c[0] @ c2w[i]."""
    w2c0 = camera.w2c[0]
    rel = []
    for f in range(camera.num_frames):
        c2w_rel = w2c0 @ torch.linalg.inv(camera.w2c[f])
        rel.append(torch.linalg.inv(c2w_rel))
    return CameraTrajectory(torch.stack(rel), camera.focal, camera.pixel_aspect, camera.principal)


@pytest.mark.parametrize("name", list(CAMERAS))
def test_wan_camera_embedding_is_packed_rays_relative_to_first_camera(name):
    camera = CAMERAS[name]()
    emb = wan_camera_embedding(camera, W, H)
    assert emb.shape == (1, 24, 3, H, W)
    assert (emb - packed_plucker_rays(camera.relative_to_first(), W, H)).abs().max() < 1e-6
    ref = naive_pack(naive_rays(_relative_trajectory(camera), W, H))
    assert (emb.double() - ref).abs().max() < TOL


@pytest.mark.parametrize("name", list(CAMERAS))
def test_wan_camera_embedding_first_frame_is_identity_camera(name):
    camera = CAMERAS[name]()
    emb = wan_camera_embedding(camera, W, H).double()
    identity = CameraTrajectory.create(torch.eye(4, dtype=torch.float64)[None], camera.focal[0],
                                       camera.pixel_aspect[0], camera.principal[0])
    ref = naive_rays(identity, W, H)[0]  # directions in OpenCV camera axes, origin at 0
    for k in range(4):
        assert emb[0, [4 * c + k for c in range(3)], 0].abs().max() < 1e-6  # zero moments
        assert (emb[0, [4 * c + k for c in range(3, 6)], 0] - ref[3:]).abs().max() < TOL
    # Identity camera: direction = normalize(K^-1 [u + 0.5, v + 0.5, 1]) directly.
    k_inv = torch.linalg.inv(pixel_matrix(camera.focal[0], camera.pixel_aspect[0],
                                          camera.principal[0], W, H))
    dir_ = k_inv @ torch.tensor([10.5, 20.5, 1.0], dtype=torch.float64)
    assert (emb[0, [12, 16, 20], 0, 20, 10] - dir_ / dir_.norm()).abs().max() < TOL


def test_wan_camera_embedding_refuses_bad_sizes():
    with pytest.raises(InputError) as info:
        wan_camera_embedding(constant_intrinsics_camera(), W, 50)
    assert info.value.input_name == "height"


def test_check_image_size_suggests_neighbouring_multiples():
    with pytest.raises(InputError) as info:
        check_image_size(830, 480)
    assert info.value.input_name == "width"
    assert "830" in info.value.message
    assert "816" in info.value.message and "832" in info.value.message
    assert "16" in info.value.message


@pytest.mark.parametrize("height", [0, -16, 8])
def test_check_image_size_refuses_small_heights(height):
    with pytest.raises(InputError) as info:
        check_image_size(832, height)
    assert info.value.input_name == "height"
    assert "16" in info.value.message


@pytest.mark.parametrize("width, height", [(16, 16), (832, 480), (512, 512)])
def test_check_image_size_accepts_multiples_of_16(width, height):
    check_image_size(width, height)
