"""Trajectory and ray-direction preview pictures."""
import pytest
import torch

from _reference_geometry import naive_rays
from factorportrait.models.camera import paths as tr
from factorportrait.models.camera.preview import (
    FIRST_FRUSTUM_COLOUR,
    SUBJECT_COLOUR,
    ray_direction_preview,
    trajectory_preview,
)

S = 96


def _mask(panel: torch.Tensor, colour) -> torch.Tensor:
    return (panel - torch.tensor(colour)).abs().max(dim=-1).values < 1e-6


def _panels(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return image[0, :, :S], image[0, :, S + 2:]


@pytest.mark.parametrize("camera", [
    tr.static(1),
    tr.orbit(33, tr.View(pitch=20, roll=10), 90),
    tr.spiral(17, tr.View(target=(0.1, 0.2, -0.1)), 10, 1, 2.0),
])
def test_trajectory_preview_image(camera):
    image = trajectory_preview(camera, S)
    assert image.shape == (1, S, 2 * S + 2, 3)
    assert image.dtype == torch.float32
    assert image.min() >= 0 and image.max() <= 1
    top, side = _panels(image)
    for panel in (top, side):
        assert _mask(panel, FIRST_FRUSTUM_COLOUR).sum() > 5
        assert _mask(panel, SUBJECT_COLOUR).sum() > 5
    # The divider between the panels.
    assert (image[0, :, S:S + 2] == 0.5).all()


def test_static_frontal_camera_is_below_subject_on_top_view_and_right_on_side_view():
    image = trajectory_preview(tr.static(1), S)
    top, side = _panels(image)
    cam_top, subj_top = _mask(top, FIRST_FRUSTUM_COLOUR).nonzero(), _mask(top, SUBJECT_COLOUR).nonzero()
    # Top view: x right, +Z down. The camera (z = 1.2) is below the subject (rows grow down).
    assert cam_top[:, 0].min() > subj_top[:, 0].max()
    # Centred horizontally on the subject (both at x = 0).
    assert abs(cam_top[:, 1].float().mean() - subj_top[:, 1].float().mean()) < 2
    cam_side, subj_side = _mask(side, FIRST_FRUSTUM_COLOUR).nonzero(), _mask(side, SUBJECT_COLOUR).nonzero()
    # Side view: +Z to the right, +Y up. The camera is right of the subject, at its height.
    assert cam_side[:, 1].min() > subj_side[:, 1].max()
    assert abs(cam_side[:, 0].float().mean() - subj_side[:, 0].float().mean()) < 2


def test_camera_above_subject_appears_above_on_side_view():
    image = trajectory_preview(tr.static(1, tr.View(pitch=60)), S)
    _, side = _panels(image)
    cam, subj = _mask(side, FIRST_FRUSTUM_COLOUR).nonzero(), _mask(side, SUBJECT_COLOUR).nonzero()
    assert cam[:, 0].max() < subj[:, 0].float().mean()  # rows grow downward: above = smaller


def test_camera_at_plus_x_appears_right_on_top_view():
    image = trajectory_preview(tr.static(1, tr.View(yaw=90)), S)
    top, _ = _panels(image)
    cam, subj = _mask(top, FIRST_FRUSTUM_COLOUR).nonzero(), _mask(top, SUBJECT_COLOUR).nonzero()
    assert cam[:, 1].min() > subj[:, 1].max()


def test_ray_direction_preview_matches_rays_at_preview_size():
    camera = tr.orbit(2, tr.View(pitch=10, roll=5, principal=(0.45, 0.55)), 30)
    image = ray_direction_preview(camera, 832, 480)
    # Longer side 512, same aspect ratio: 480 * 512 / 832 = 295.4 -> 295.
    assert image.shape == (2, 295, 512, 3)
    assert image.min() >= 0 and image.max() <= 1
    ref = (naive_rays(camera, 512, 295)[:, 3:].permute(0, 2, 3, 1) + 1) / 2
    assert (image.double() - ref).abs().max() < 1e-5


def test_ray_direction_preview_keeps_small_sizes():
    camera = tr.static(1)
    image = ray_direction_preview(camera, 64, 48)
    assert image.shape == (1, 48, 64, 3)
    ref = (naive_rays(camera, 64, 48)[:, 3:].permute(0, 2, 3, 1) + 1) / 2
    assert (image.double() - ref).abs().max() < 1e-5
    # Frontal camera: looking toward -Z, so blue (z) is below 0.5 everywhere; the top-right
    # pixel looks right (+X, red > 0.5) and up (+Y, green > 0.5).
    assert (image[..., 2] < 0.5).all()
    assert image[0, 0, -1, 0] > 0.5 and image[0, 0, -1, 1] > 0.5


def test_ray_direction_preview_portrait_size():
    image = ray_direction_preview(tr.static(1), 480, 832, max_side=256)
    assert image.shape == (1, 256, 148, 3)
