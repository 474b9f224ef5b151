"""The expression image encoder: face alignment against ground truth, the network, its file
format and errors, and frames -> ExpressionCodes end to end."""
import math
import pickle

import pytest
import torch
from kornia.geometry.transform import warp_affine
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from factorportrait.models.errors import InputError
from factorportrait.models.expression import (
    FACE_TEMPLATE, ExpressionImageEncoder, ImageEncoderConfig, align_faces, alignment_matrices,
    encode_frames, face_points, face_template, fit_similarity, load_image_encoder,
    save_image_encoder, warp_faces)
from factorportrait.models.expression.face_align import FACE_POINTS
from factorportrait.models.tracking.keypoints import LANDMARK_NAMES, Keypoints2D

S = 96  # crop size of the alignment tests
SIGMA = 1.5  # dot radius in crop pixels
INDEX = {n: i for i, n in enumerate(LANDMARK_NAMES)}
SMALL = ImageEncoderConfig(code_dim=24, width=8, depth=3, crop_size=64)


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> torch.Tensor:
    """``[2, 3]`` float64 ``[scale R(angle) | t]``."""
    a = math.radians(angle_deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    return torch.tensor([[c, -s, tx], [s, c, ty]], dtype=torch.float64)


def apply(m: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return p.double() @ m[:, :2].T + m[:, 2]


def invert(m: torch.Tensor) -> torch.Tensor:
    inv = torch.linalg.inv(m[:, :2])
    return torch.cat([inv, -(inv @ m[:, 2:])], 1)


def render(height: int, width: int, dots_crop: torch.Tensor, crop_to_image: torch.Tensor) -> torch.Tensor:
    """An IMAGE ``[H, W, 3]``: Gaussian dots placed at ``crop_to_image(dots_crop)``, their
    radius scaled with the map, so the image is the transformed crop-space picture."""
    centres = apply(crop_to_image, dots_crop)
    sigma = SIGMA * crop_to_image[:, :2].det().abs().sqrt()
    v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    d2 = (u[None] - centres[:, 0, None, None]) ** 2 + (v[None] - centres[:, 1, None, None]) ** 2
    image = torch.exp(-d2 / (2 * sigma**2)).sum(0).clamp(max=1)
    return image[..., None].expand(-1, -1, 3).float().contiguous()


def keypoints_for(points5: torch.Tensor, width: int, height: int, conf: torch.Tensor | None = None,
                  corners: bool = True) -> Keypoints2D:
    """Keypoints ``[F, K]`` whose five alignment points are ``points5 [F, 5, 2]``; the eyes
    as two corners around the centre (MediaPipe-like) or as the centre only (OpenPose-like)."""
    f = points5.shape[0]
    pts = torch.zeros(f, len(LANDMARK_NAMES), 2)
    c = torch.zeros(f, len(LANDMARK_NAMES))
    conf = torch.ones(f) if conf is None else conf
    for j, (names, fallback) in enumerate(FACE_POINTS):
        if len(names) == 2 and corners:
            offset = torch.tensor([3.7, -1.1])  # any offset: the centre is the corners' mean
            pts[:, INDEX[names[0]]], pts[:, INDEX[names[1]]] = points5[:, j] + offset, points5[:, j] - offset
            c[:, [INDEX[n] for n in names]] = conf[:, None]
        else:
            name = names[0] if len(names) == 1 else fallback
            pts[:, INDEX[name]], c[:, INDEX[name]] = points5[:, j], conf
    # Unrelated landmarks are present too, far away: they must not pull the fit.
    pts[:, INDEX["shoulder_left"]], c[:, INDEX["shoulder_left"]] = torch.tensor([1.0, 1.0]), 1.0
    return Keypoints2D(pts, c, width, height)


def centroid(crop: torch.Tensor, at: torch.Tensor, radius: int = 5) -> torch.Tensor:
    """Intensity centroid (pixel-centre coordinates) of ``crop [3, S, S]`` near ``at``."""
    g = crop.mean(0).double()
    x0, y0 = int(at[0]), int(at[1])
    ys, xs = torch.meshgrid(torch.arange(y0 - radius, y0 + radius + 1),
                            torch.arange(x0 - radius, x0 + radius + 1), indexing="ij")
    w = g[ys, xs]
    return torch.stack([(w * (xs + 0.5)).sum(), (w * (ys + 0.5)).sum()]) / w.sum()


# ----------------------------------------------------------------------------- alignment

@pytest.mark.parametrize("angle, scale, shift, size", [
    (25.0, 0.6, (41.0, 23.5), (160, 200)),   # face smaller than the crop: upsampled
    (-40.0, 2.9, (-30.0, 70.0), (420, 380)),  # face 2.9x the crop: blurred, then downsampled
    (180.0, 1.0, (150.0, 110.0), (120, 160)),  # upside down
])
def test_dots_land_on_the_template_to_subpixel_accuracy(angle, scale, shift, size):
    template = face_template(S, torch.float64)
    crop_to_image = similarity(angle, scale, *shift)
    h, w = size
    image = render(h, w, template, crop_to_image)
    dots = apply(crop_to_image, template)
    assert (dots > 10).all() and (dots[:, 0] < w - 10).all() and (dots[:, 1] < h - 10).all()
    aligned = align_faces(image[None], keypoints_for(dots[None].float(), w, h), S)
    assert aligned.crops.shape == (1, 3, S, S) and aligned.crops.dtype == torch.float32
    assert aligned.matrices.shape == (1, 2, 3) and aligned.filled == []
    # The matrix is the inverse of the known map, and the pixels agree with it.
    assert torch.allclose(aligned.matrices[0].double(), invert(crop_to_image), atol=2e-4, rtol=1e-4)
    for j in range(5):
        err = (centroid(aligned.crops[0], template[j]) - template[j]).norm()
        assert err < 0.1, f"dot {j} lands {err:.3f} px off the template"
        assert aligned.crops[0, :, int(template[j, 1]), int(template[j, 0])].min() > 0.5


def test_identity_alignment_returns_the_image_itself():
    torch.manual_seed(0)
    image = torch.rand(1, S, S, 3)
    aligned = align_faces(image, keypoints_for(face_template(S)[None], S, S), S)
    assert torch.allclose(aligned.matrices[0], torch.eye(2, 3), atol=1e-5)
    # Half a pixel off in the centre convention would blur every pixel: this is exact.
    assert torch.allclose(aligned.crops[0].permute(1, 2, 0), image[0], atol=1e-4)


def test_eye_centres_alone_give_the_same_alignment_as_eye_corners():
    dots = apply(similarity(10, 1.3, 20, 15), face_template(S, torch.float64))[None].float()
    m_corners, _ = alignment_matrices(keypoints_for(dots, 200, 200), S)
    m_centres, _ = alignment_matrices(keypoints_for(dots, 200, 200, corners=False), S)
    assert torch.allclose(m_corners, m_centres, atol=1e-4)


def test_keypoints_of_a_smaller_copy_of_the_video_are_scaled_to_the_images():
    dots = apply(similarity(-15, 1.1, 30, 40), face_template(S, torch.float64))[None].float()
    full, _ = alignment_matrices(keypoints_for(dots, 240, 180), S)
    half, _ = alignment_matrices(keypoints_for(dots / 2, 120, 90), S, image_size=(180, 240))
    assert torch.allclose(full, half, atol=1e-4)
    with pytest.raises(InputError) as e:
        alignment_matrices(keypoints_for(dots, 240, 180), S, image_size=(180, 180))
    assert e.value.input_name == "keypoints" and "aspect" in str(e.value)


def test_frames_without_a_face_use_the_nearest_frame_with_one():
    maps = [similarity(5 * f, 1.0 + 0.1 * f, 10 * f, 5) for f in range(5)]
    dots = torch.stack([apply(m, face_template(S, torch.float64)) for m in maps]).float()
    conf = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0])
    kp = keypoints_for(dots, 300, 300, conf)
    # Frame 4 still sees two points: not enough for a face.
    kp.confidence[4, INDEX["mouth_left"]] = kp.confidence[4, INDEX["mouth_right"]] = 1.0
    matrices, filled = alignment_matrices(kp, S)
    assert filled == [1, 3, 4]
    expected = torch.stack([invert(maps[f]) for f in (0, 0, 2, 2, 2)]).float()  # ties: earlier
    assert torch.allclose(matrices, expected, atol=2e-4)


def test_low_confidence_points_are_ignored_and_weights_count():
    template = face_template(S, torch.float64)
    dots = apply(similarity(0, 1.0, 0, 0), template)[None].float()
    kp = keypoints_for(dots, S, S)
    kp.points[0, INDEX["nose_tip"]] += 30  # a wild nose tip, but unconfident
    kp.confidence[0, INDEX["nose_tip"]] = 0.2
    points, weights = face_points(kp)
    assert weights[0].tolist() == [1, 1, 0, 1, 1]
    matrices, filled = alignment_matrices(kp, S)
    assert filled == [] and torch.allclose(matrices[0], torch.eye(2, 3), atol=1e-4)


def test_no_face_in_any_frame_is_an_error_naming_the_images():
    dots = face_template(S)[None].expand(3, -1, -1)
    for conf in (torch.zeros(3), torch.full((3,), 0.1)):
        with pytest.raises(InputError) as e:
            align_faces(torch.rand(3, S, S, 3), keypoints_for(dots, S, S, conf), S)
        assert e.value.input_name == "images" and "no face" in str(e.value)


def test_least_squares_similarity_matches_a_generic_solver_and_never_reflects():
    torch.manual_seed(1)
    src = torch.randn(4, 7, 2, dtype=torch.float64) * 20
    dst = torch.randn(4, 7, 2, dtype=torch.float64) * 20
    w = torch.rand(4, 7, dtype=torch.float64)
    m = fit_similarity(src, dst, w)
    # Reference: the 4-parameter linear system [a, b, tx, ty], weighted, by lstsq.
    for i in range(4):
        x, y = src[i, :, 0], src[i, :, 1]
        one, zero = torch.ones_like(x), torch.zeros_like(x)
        rows = torch.cat([torch.stack([x, -y, one, zero], 1), torch.stack([y, x, zero, one], 1)])
        rhs = torch.cat([dst[i, :, 0], dst[i, :, 1]])
        sw = w[i].sqrt().repeat(2)[:, None]
        a, b, tx, ty = torch.linalg.lstsq(rows * sw, rhs * sw[:, 0]).solution
        assert torch.allclose(m[i], torch.tensor([[a, -b, tx], [b, a, ty]], dtype=torch.float64), atol=1e-9)
    # A mirrored point set is fitted with a rotation (det > 0), never a reflection.
    mirrored = src * torch.tensor([-1.0, 1.0], dtype=torch.float64)
    assert (fit_similarity(src, mirrored)[:, :, :2].det() >= 0).all()
    # A zero-weight point does not count; coincident points give NaN, not garbage.
    w[:, 0] = 0
    moved = dst.clone()
    moved[:, 0] += 1000
    assert torch.allclose(fit_similarity(src, dst, w), fit_similarity(src, moved, w), atol=1e-9)
    assert torch.isnan(fit_similarity(torch.ones(1, 3, 2), torch.randn(1, 3, 2))).all()


def test_grayscale_and_rgba_images_give_the_rgb_crops():
    torch.manual_seed(2)
    maps = similarity(12, 0.8, 25, 30)
    kp = keypoints_for(apply(maps, face_template(S, torch.float64))[None].float(), 120, 100)
    gray = torch.rand(1, 100, 120, 1)
    rgb = torch.rand(1, 100, 120, 3)
    rgba = torch.cat([rgb, torch.rand(1, 100, 120, 1)], -1)
    assert torch.equal(align_faces(gray, kp, S).crops, align_faces(gray.expand(-1, -1, -1, 3), kp, S).crops)
    assert torch.equal(align_faces(rgba, kp, S).crops, align_faces(rgb, kp, S).crops)
    uint8 = torch.zeros(1, 100, 120, 3, dtype=torch.uint8)
    for bad in (torch.rand(1, 100, 120, 2), torch.rand(100, 120, 3), uint8):
        with pytest.raises(InputError) as e:
            align_faces(bad, kp, S)
        assert e.value.input_name == "images"
    with pytest.raises(InputError) as e:
        align_faces(torch.rand(2, 100, 120, 3), kp, S)
    assert e.value.input_name == "keypoints"


def test_downscaled_frames_are_filtered_against_aliasing():
    # Stripes two pixels apart, shrunk 3x: the crop must be an even grey, not a moire.
    stripes = (torch.arange(400) % 2).float()[None, None, :, None].expand(1, 400, 400, 3)
    template = face_template(S, torch.float64)
    dots = apply(similarity(7, 3.0, 50, 20), template)[None].float()  # the crop lies inside
    crops = align_faces(stripes, keypoints_for(dots, 400, 400), S).crops
    assert (crops.mean() - 0.5).abs() < 0.01 and crops.std() < 0.02
    # Without the filter, plain bilinear sampling of the same frame aliases.
    m = alignment_matrices(keypoints_for(dots, 400, 400), S)[0]
    m_k = m.clone()
    m_k[:, :, 2] += 0.5 * m[:, :, :2].sum(-1) - 0.5
    plain = warp_affine(stripes.permute(0, 3, 1, 2), m_k, (S, S), align_corners=True)
    assert plain.std() > 0.1


def test_crop_beyond_the_image_edge_repeats_the_border():
    # A small face in the top-left corner: the crop's corner maps to image pixel (-10, -8).
    kp = keypoints_for(face_template(S)[None] * 0.3 + torch.tensor([-10.0, -8.0]), 64, 64)
    image = torch.full((1, 64, 64, 3), 0.7)
    aligned = align_faces(image, kp, S)
    assert torch.allclose(aligned.crops, torch.tensor(0.7), atol=1e-5)
    black = warp_faces(image, aligned.matrices, S, padding_mode="zeros")
    assert black[0, :, 0, 0].abs().max() < 1e-6  # the crop's corner lies outside the image


# ----------------------------------------------------------------------------- network

def small_encoder(seed: int = 0, dtype=torch.float32) -> ExpressionImageEncoder:
    torch.manual_seed(seed)
    return ExpressionImageEncoder(SMALL, "test-encoder").to(dtype).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_network_shapes_dtypes_and_determinism(dtype):
    enc = small_encoder(dtype=dtype)
    crops = torch.rand(5, 3, 64, 64)
    codes = enc(crops)
    assert codes.shape == (5, SMALL.code_dim) and codes.dtype == dtype
    assert torch.isfinite(codes).all()
    assert torch.equal(codes, enc(crops))
    with pytest.raises(ValueError, match="crops"):
        enc(torch.rand(5, 3, 32, 32))


def test_default_config_is_the_documented_network():
    enc = ExpressionImageEncoder()
    assert enc.code_dim == 128 and enc.config.crop_size == 128
    assert enc(torch.rand(2, 3, 128, 128)).shape == (2, 128)
    assert len(enc.stages) == 4 and enc.head.in_features == 8 * 32


@pytest.mark.parametrize("train", [False, True])
def test_a_frames_code_does_not_depend_on_the_rest_of_its_batch(train):
    enc = small_encoder().train(train)
    torch.manual_seed(3)
    crops = torch.rand(6, 3, 64, 64)
    batch = enc(crops)
    alone = torch.cat([enc(crops[i:i + 1]) for i in range(6)])
    assert torch.allclose(batch, alone, atol=1e-5)
    other = crops.clone()
    other[1:] = torch.rand(5, 3, 64, 64)
    assert torch.allclose(enc(other)[0], batch[0], atol=1e-5)


def test_different_crops_give_different_codes():
    enc = small_encoder()
    torch.manual_seed(4)
    codes = enc(torch.rand(4, 3, 64, 64))
    dist = torch.cdist(codes, codes)
    assert (dist + torch.eye(4) * 1e9).min() > 1e-3 * codes.norm(dim=1).mean()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_network_runs_on_cuda(dtype):
    enc = small_encoder()
    crops = torch.rand(3, 3, 64, 64)
    ref = enc(crops)
    out = enc.to("cuda", dtype)(crops)  # CPU float32 input is moved and cast
    assert out.device.type == "cuda" and out.dtype == dtype
    assert torch.allclose(out.float().cpu(), ref, atol=0.05 * ref.abs().max().item())


# ----------------------------------------------------------------------------- file

@pytest.fixture
def saved(tmp_path):
    enc = small_encoder(seed=5)
    path = str(tmp_path / "enc.safetensors")
    save_image_encoder(enc, path, "test-encoder-v1")
    return enc, path


def rewrite(src: str, dst: str, tensors=None, metadata=None, edit=None) -> str:
    """Copy an encoder file with its tensors and/or metadata changed."""
    t = load_file(src)
    with safe_open(src, framework="pt") as f:
        meta = dict(f.metadata())
    if edit:
        edit(t, meta)
    save_file(tensors if tensors is not None else t, dst, metadata=metadata if metadata is not None else meta)
    return dst


def load_error(path: str, input_name: str = "encoder") -> str:
    with pytest.raises(InputError) as e:
        load_image_encoder(path, input_name=input_name)
    assert e.value.input_name == input_name
    return str(e.value)


def test_round_trip_is_bit_identical_and_needs_no_pickle(saved, monkeypatch):
    enc, path = saved

    def refuse(*a, **k):
        raise AssertionError("unpickling is not allowed")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded, name = load_image_encoder(path)
    assert name == "test-encoder-v1" and loaded.name == name and not loaded.training
    assert loaded.config == SMALL
    assert all(not p.requires_grad for p in loaded.parameters())
    crops = torch.rand(3, 3, 64, 64)
    assert torch.equal(loaded(crops), enc(crops))
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "factorportrait-expression-encoder" and meta["code_dim"] == "24"
    half, _ = load_image_encoder(path, dtype=torch.bfloat16)
    assert half.head.weight.dtype == torch.bfloat16 and half(crops).dtype == torch.bfloat16


def test_save_refuses_a_pickle_suffix_and_an_empty_name(saved, tmp_path):
    enc, _ = saved
    with pytest.raises(ValueError):
        save_image_encoder(enc, str(tmp_path / "enc.pt"), "x")
    with pytest.raises(ValueError):
        save_image_encoder(enc, str(tmp_path / "enc2.safetensors"), " ")


def test_missing_file(tmp_path):
    msg = load_error(str(tmp_path / "nope.safetensors"), "expression_encoder")
    assert "nope.safetensors" in msg and "does not exist" in msg


@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".bin", ".pth"])
def test_pickled_checkpoints_are_refused_unread(saved, tmp_path, monkeypatch, suffix):
    enc, _ = saved
    path = str(tmp_path / f"enc{suffix}")
    torch.save(enc.state_dict(), path)
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("unpickled"))
    assert "pickled" in load_error(path)


def test_a_renamed_pickle_is_recognised_by_its_content(saved, tmp_path):
    enc, _ = saved
    zipped = str(tmp_path / "zip.safetensors")
    torch.save(enc.state_dict(), zipped)
    assert "PyTorch checkpoint" in load_error(zipped)
    raw = str(tmp_path / "raw.safetensors")
    with open(raw, "wb") as f:
        pickle.dump({"a": 1}, f, protocol=4)
    assert "pickle" in load_error(raw)


def test_not_safetensors_truncated_and_empty_files(saved, tmp_path):
    _, path = saved
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a weight file at all" * 10)
    assert "not a readable safetensors" in load_error(str(junk))
    data = open(path, "rb").read()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    assert "cut.safetensors" in load_error(str(cut))
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert "not a readable safetensors" in load_error(str(empty))


@pytest.mark.parametrize("keys, looks_like", [
    (["blocks.0.self_attn.q.weight", "patch_embedding.weight"], "Wan 2.1"),
    (["conv1.weight", "prelu.weight", "layer1.0.conv1.weight", "fc.weight"], "face-recognition"),
    (["decoder.conv_in.weight"], "VAE"),
    (["something.weight"], "unknown model"),
])
def test_other_models_are_named(tmp_path, keys, looks_like):
    path = str(tmp_path / "other.safetensors")
    save_file({k: torch.zeros(2) for k in keys}, path)
    msg = load_error(path)
    assert "not a FactorPortrait expression encoder" in msg and looks_like in msg


def test_a_factorportrait_video_checkpoint_is_named(tmp_path):
    path = str(tmp_path / "fp.safetensors")
    save_file({"x": torch.zeros(1)}, path, metadata={"factorportrait": "{}"})
    assert "FactorPortrait video model" in load_error(path)


def test_version_and_damaged_metadata(saved, tmp_path):
    _, path = saved

    def set_meta(key, value):
        return lambda t, m: m.__setitem__(key, value)

    newer = rewrite(path, str(tmp_path / "v2.safetensors"), edit=set_meta("format_version", "2"))
    assert "version" in load_error(newer) and "Update" in load_error(newer)
    for key, value in [("config", "{not json"), ("config", '{"code_dim": 24}'), ("code_dim", "25"),
                       ("encoder_name", "")]:
        bad = rewrite(path, str(tmp_path / f"bad_{key}.safetensors"), edit=set_meta(key, value))
        assert "damaged encoder metadata" in load_error(bad)


def test_missing_unexpected_and_misshapen_tensors_are_named(saved, tmp_path):
    _, path = saved
    missing = rewrite(path, str(tmp_path / "m.safetensors"), edit=lambda t, m: t.pop("head.bias"))
    assert "missing tensors ['head.bias']" in load_error(missing)
    extra = rewrite(path, str(tmp_path / "e.safetensors"), edit=lambda t, m: t.update(extra=torch.zeros(1)))
    assert "unexpected tensors ['extra']" in load_error(extra)
    shape = rewrite(path, str(tmp_path / "s.safetensors"),
                    edit=lambda t, m: t.update({"head.weight": torch.zeros(24, 7)}))
    msg = load_error(shape)
    assert "'head.weight'" in msg and "[24, 7]" in msg and "[24, 32]" in msg


def test_non_finite_weights_are_refused(saved, tmp_path):
    _, path = saved

    def poison(t, m):
        t["stages.1.conv1.weight"][0, 0, 0, 0] = float("nan")

    msg = load_error(rewrite(path, str(tmp_path / "nan.safetensors"), edit=poison))
    assert "stages.1.conv1.weight" in msg and "NaN" in msg


# ----------------------------------------------------------------------------- encode_frames

# A "face" in crop space: the five alignment dots plus features that carry the expression.
NEUTRAL = [(0.5, 0.30), (0.3, 0.32), (0.7, 0.32)]  # forehead mark, brows
# Raised brows and an open mouth.
OPEN_MOUTH = [(0.5, 0.30), (0.3, 0.26), (0.7, 0.26), (0.5, 0.75), (0.45, 0.74), (0.55, 0.74)]


def face(size: int, features) -> torch.Tensor:
    return torch.cat([face_template(size, torch.float64), torch.tensor(features, dtype=torch.float64) * size])


def test_encode_frames_end_to_end(tmp_path):
    enc = small_encoder(seed=6)
    path = str(tmp_path / "enc.safetensors")
    save_image_encoder(enc, path, "synthetic-v1")
    enc, name = load_image_encoder(path)
    size = SMALL.crop_size
    maps = [similarity(0, 2.0, 40, 30), similarity(30, 2.6, 70, 10), similarity(0, 2.0, 40, 30),
            similarity(-20, 1.7, 60, 50), similarity(0, 2.0, 40, 30)]
    faces = [face(size, NEUTRAL), face(size, NEUTRAL), face(size, OPEN_MOUTH), face(size, NEUTRAL),
             face(size, NEUTRAL)]
    images = torch.stack([render(240, 260, f, m) for f, m in zip(faces, maps)])
    dots = torch.stack([apply(m, face_template(size, torch.float64)) for m in maps]).float()
    conf = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])  # the last frame has no face: filled from frame 3
    kp = keypoints_for(dots, 260, 240, conf)

    calls = []
    codes = encode_frames(enc, images, kp, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert codes.encoder == name == "synthetic-v1" and codes.num_frames == 5 and codes.dim == 24
    assert codes.codes.dtype == torch.float32 and codes.codes.device.type == "cpu"
    codes.check_dim(24)
    with pytest.raises(InputError):
        codes.check_dim(52)
    # The same as aligning and encoding by hand, in one batch.
    aligned = align_faces(images, kp, size)
    assert aligned.filled == [4]
    assert torch.allclose(codes.codes, enc(aligned.crops), atol=1e-5)
    # Alignment removes pose: the same face turned and scaled codes (nearly) alike, another
    # expression in the same pose does not.
    c = codes.codes
    same_face = max((c[1] - c[0]).norm(), (c[3] - c[0]).norm())
    other_expression = (c[2] - c[0]).norm()
    assert same_face < 0.2 * other_expression


def test_encode_frames_can_be_cancelled_from_progress():
    enc = small_encoder()
    dots = apply(similarity(0, 1.0, 0, 0), face_template(64, torch.float64))[None].expand(5, -1, -1).float()
    kp = keypoints_for(dots, 64, 64)
    seen = []

    def cancel(done, total):
        seen.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_frames(enc, torch.rand(5, 64, 64, 3), kp, batch_size=2, progress=cancel)
    assert seen == [2]
    with pytest.raises(InputError) as e:
        encode_frames(enc, torch.rand(4, 64, 64, 3), kp)
    assert e.value.input_name == "keypoints"


def test_template_constants_are_consistent():
    t = torch.tensor(FACE_TEMPLATE)
    assert t.shape == (len(FACE_POINTS), 2) and ((t > 0.1) & (t < 0.9)).all()
    assert t[0, 0] < t[1, 0] and t[3, 0] < t[4, 0]  # subject's right on the image's left
    assert torch.allclose(face_template(100), t * 100)
