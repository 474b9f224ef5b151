"""The avatar of real photos and its bad inputs: the NASA astronaut portrait (shipped in
assets/), variations of it (grayscale, alpha, 8000 pixels, a cut face, two faces), the
real test media fetched by scripts/setup_env.sh, and the controls' errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from factorportrait.models.avatar.avatar import build_avatar
from factorportrait.models.avatar.controls import avatar_controls
from factorportrait.models.avatar.render import render_avatar
from factorportrait.models.camera import paths
from factorportrait.models.errors import InputError
from factorportrait.models.expression.arkit_codes import arkit_codes
from factorportrait.models.expression.codes import ExpressionCodes
from factorportrait.models.expression.face_correspondence import load_face_correspondence
from factorportrait.models.tracking.body_track import BodyTrack, FittedSequence
from factorportrait.models.tracking.fit import FitReport
from real_inputs import read_image

ASTRONAUT = Path(__file__).resolve().parents[2] / "assets" / "astronaut.png"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10((a - b).square().mean().clamp(min=1e-12)))


@pytest.fixture(scope="module")
def tools(anny_model, anny_cache_dir):
    return anny_model, load_face_correspondence(anny_cache_dir, anny_model)


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    return read_image(ASTRONAUT)


@pytest.fixture(scope="module")
def avatar(tools, astronaut):
    return build_avatar(*tools, astronaut)


def test_astronaut_round_trip_and_build(avatar, astronaut):
    """At the photo's own camera, pose and expression the avatar gives the photo back, over
    the whole frame and over the face."""
    image, mask = render_avatar(avatar, avatar.params, avatar.camera, avatar.width, avatar.height)
    assert psnr(image[0], astronaut[0]) > 32
    face = avatar.fit.face
    y0, y1, x0, x1 = int(face.y0), int(face.y1), int(face.x0), int(face.x1)
    assert psnr(image[0, y0:y1, x0:x1], astronaut[0, y0:y1, x0:x1]) > 32
    assert float(mask[0, y0:y1, x0:x1].mean()) > 0.9  # the face is the person's
    assert float(mask[0, :20, 400:].mean()) < 0.05  # the sky behind the shuttle is not
    assert avatar.fit.face_error_px[1] < avatar.fit.face_error_px[0]


def test_each_control_acts_alone(avatar):
    """Only the camera changes: the person's pose and expression stay (the template's
    vertices are the same); only the expression changes: the head stays where it was."""
    n = 5
    orbit = paths.orbit(n, paths.View(yaw=-20, distance=float(avatar.camera.centers[0].norm()),
                                      focal=float(avatar.camera.focal[0])), yaw_end=20)
    params, camera, _notes = avatar_controls(avatar, camera=orbit)
    assert torch.equal(params.head, avatar.params.head.expand(n, -1)) and torch.equal(params.face, avatar.params.face.expand(n, -1))
    codes = torch.zeros(n, 52)
    codes[:, 24] = torch.linspace(0, 1, n)  # jawOpen
    params, camera, _notes = avatar_controls(avatar, expression=arkit_codes(codes))
    assert torch.equal(camera.w2c, avatar.camera.w2c)
    head = avatar.model.head_rotation(params)
    assert float((head - head[:1]).abs().max()) < 1e-6
    images, _masks = render_avatar(avatar, params, camera, 128, 128)
    assert images.shape == (n, 128, 128, 3) and bool(torch.isfinite(images).all())


def test_controls_of_different_lengths_name_the_input(avatar):
    cam = paths.orbit(17, paths.View(yaw=-20), yaw_end=20)
    with pytest.raises(InputError, match="different lengths") as err:
        avatar_controls(avatar, expression=arkit_codes(torch.zeros(9, 52)), camera=cam)
    assert err.value.input_name in ("camera", "expression")
    # A static camera of any length follows the other controls.
    params, camera, _ = avatar_controls(avatar, expression=arkit_codes(torch.zeros(9, 52)),
                                        camera=paths.static(17, paths.View()))
    assert params.frames == 9 and camera.num_frames == 1


def test_codes_of_a_learned_encoder_are_refused(avatar):
    codes = ExpressionCodes(torch.zeros(5, 128), "learned-resnet")
    with pytest.raises(InputError, match="ARKit-52") as err:
        avatar_controls(avatar, expression=codes)
    assert err.value.input_name == "expression"


def _track(avatar, frames: int, filled: list[int]) -> BodyTrack:
    params = avatar.params.select([0] * frames)
    params.head = params.head.clone()
    params.head[:, 1] = torch.linspace(0, 0.4, frames)
    report = FitReport(1.0, 1.0, [1.0] * frames, filled, 30.0, 1.0, 0.1)
    fit = FittedSequence(params, avatar.camera.frames([0] * frames), report, None)
    return BodyTrack(avatar.model, params, fit.camera, fit)


def test_frames_without_a_face_hold_the_last_pose(avatar):
    params, _camera, notes = avatar_controls(avatar, track=_track(avatar, 8, [3, 4, 7]))
    head = params.head[:, 1] - params.head[0, 1]
    expected = torch.linspace(0, 0.4, 8)[torch.tensor([0, 1, 2, 2, 2, 5, 6, 6])]
    assert torch.allclose(head, expected.to(head), atol=1e-5)
    assert any("3, 4, 7" in note and "held" in note for note in notes)


def test_a_track_of_another_body_model_is_refused(avatar):
    track = _track(avatar, 3, [])

    class OtherModel:
        name, num_vertices = "smplx", 10475

    track.model = OtherModel()
    with pytest.raises(InputError, match="anny") as err:
        avatar_controls(avatar, track=track)
    assert err.value.input_name == "body_track"


@pytest.mark.parametrize("make, message", [
    (lambda a: torch.full((1, 256, 256, 3), 0.5), "no face"),
    (lambda a: torch.rand(1, 40, 40, 3), "at least"),
    (lambda a: torch.where(torch.rand(1, 128, 128, 1) > 0.5, float("nan"), 0.5).expand(-1, -1, -1, 3), "NaN"),
    (lambda a: torch.zeros(1, 128, 128, 5), "channels"),
])
def test_bad_photos_name_the_input(tools, astronaut, make, message):
    with pytest.raises(InputError, match=message) as err:
        build_avatar(*tools, make(astronaut))
    assert err.value.input_name == "image"


def test_grayscale_photo(tools, astronaut):
    gray = (astronaut * torch.tensor([0.299, 0.587, 0.114])).sum(-1, keepdim=True)
    avatar = build_avatar(*tools, gray)
    assert any("grayscale" in n for n in avatar.notes)
    image, _mask = render_avatar(avatar, avatar.params, avatar.camera, 128, 128)
    assert float((image[..., 0] - image[..., 2]).abs().max()) < 1e-5
    assert psnr(render_avatar(avatar, avatar.params, avatar.camera, 512, 512)[0][0, ..., 0], gray[0, ..., 0]) > 32


def test_alpha_photo_uses_its_matte(tools, astronaut):
    yy, xx = torch.meshgrid(torch.arange(512), torch.arange(512), indexing="ij")
    alpha = ((((xx - 240) / 200.0) ** 2 + ((yy - 330) / 300.0) ** 2) < 1).float()
    avatar = build_avatar(*tools, torch.cat([astronaut, alpha[None, ..., None]], -1))
    assert any("alpha" in n for n in avatar.notes)
    image, mask = render_avatar(avatar, avatar.params, avatar.camera, 512, 512)
    assert float((mask[0] - alpha).abs().mean()) < 0.02
    # The transparent background is grey, not the colours under it (a second astronaut).
    assert float((image[0][alpha < 0.5] - 0.5).abs().max()) < 0.02
    composite = astronaut[0] * alpha[..., None] + 0.5 * (1 - alpha[..., None])
    assert psnr(image[0], composite) > 32


def test_two_faces_the_largest_is_used(tools, astronaut):
    small = torch.nn.functional.interpolate(astronaut.permute(0, 3, 1, 2), size=(320, 320), mode="area")
    canvas = torch.zeros(1, 512, 832, 3)
    canvas[:, :, :512] = astronaut
    canvas[:, 100:420, 512:] = small.permute(0, 2, 3, 1)  # a second, smaller astronaut on the right
    avatar = build_avatar(*tools, canvas)
    assert any("faces found: the largest" in n for n in avatar.notes)
    assert avatar.fit.face.x1 < 512  # the big astronaut's face, on the left


def test_face_cut_by_the_edge(tools, astronaut):
    cut = astronaut[:, :, 205:]  # 30 % of the face is outside the photo
    avatar = build_avatar(*tools, cut)
    assert any("cut by the photo's edge" in n for n in avatar.notes)
    image, _mask = render_avatar(avatar, avatar.params, avatar.camera, avatar.width, avatar.height)
    assert psnr(image[0], cut[0]) > 30
    with pytest.raises(InputError, match="cut off by the photo's edge") as err:
        build_avatar(*tools, astronaut[:, :, 230:])  # half the face: no detector finds it
    assert err.value.input_name == "image"


def test_photo_of_8000_pixels(tools, astronaut):
    big = torch.nn.functional.interpolate(astronaut.permute(0, 3, 1, 2), size=(4500, 4500), mode="bilinear")
    canvas = torch.zeros(1, 3, 4500, 8000)
    canvas[..., 1750:6250] = big
    del big
    avatar = build_avatar(*tools, canvas.permute(0, 2, 3, 1))
    assert max(avatar.width, avatar.height) == 2048
    assert any("reduced" in n for n in avatar.notes)


def test_real_photo_with_several_faces(tools):
    real_inputs = pytest.importorskip("real_inputs")
    try:
        path = real_inputs.real_input("multi_face")
    except FileNotFoundError:
        pytest.skip("real inputs not fetched (scripts/setup_env.sh)")
    avatar = build_avatar(*tools, read_image(path))
    assert any("faces found" in n for n in avatar.notes)


def test_build_under_inference_mode(tools, astronaut):
    """ComfyUI runs every node under torch.inference_mode(): the photo fit optimises anyway,
    with the correspondence loaded there too."""
    model, _corr = tools
    with torch.inference_mode():
        from factorportrait.models.expression.face_correspondence import load_face_correspondence as load
        from conftest import shared_anny_cache_dir

        corr = load(str(shared_anny_cache_dir()), model)
        avatar = build_avatar(model, corr, astronaut)
        image, _mask = render_avatar(avatar, avatar.params, avatar.camera, avatar.width, avatar.height)
    assert psnr(image[0], astronaut[0]) > 32


def test_small_face_in_a_large_photo(tools, astronaut):
    """A face of 2 % of a 3000x2000 photo's height (MediaPipe's full-range model alone sees
    it at 4 pixels): found in tiles, fitted on a crop around it."""
    small = torch.nn.functional.interpolate(astronaut.permute(0, 3, 1, 2), size=(300, 300), mode="area")
    canvas = torch.full((1, 3, 2000, 3000), 0.6)
    canvas[..., 1200:1500, 1700:2000] = small
    avatar = build_avatar(*tools, canvas.permute(0, 2, 3, 1))
    face = avatar.fit.face
    scale = avatar.width / 3000
    assert abs(face.centre[0] / scale - (1700 + 226 * 300 / 512)) < 15  # the astronaut's face, in photo pixels
    assert avatar.fit.face_error_px[1] < 1.5
