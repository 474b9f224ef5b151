"""The synthetic data generator (training/synthetic): values against ground truth.

Determinism from (seed, index); shards; the normal maps against the "Render Normal Maps"
node's path; the room's parallax against the camera's projection; the regimes; the
expression curves; the reference image; resuming and crashes; the command line.
Small clips (64x64, 5 to 9 frames) keep the file fast; anny comes from the shared cache
(see test_body_models.py).
"""
import hashlib
import importlib.util
import json
import math
import os
import re
from pathlib import Path

import pytest
import torch

from factorportrait.models.camera import paths as tr
from factorportrait.models.body.anny_model import ARKIT_FACE_ACTIONS
from factorportrait.models.tracking.body_track import BodyTrack
from factorportrait.models.tracking.rendering import is_static, render_track_normals
from factorportrait.training.data import sample as sample_module
from factorportrait.training.data.manifest import manifest_path, read_manifests, shard_range, verify_folder
from factorportrait.training.data.sample import encode_sample, read_sample, to_uint8_images
from factorportrait.training.synthetic import generate as gen
from factorportrait.training.synthetic.appearance import LOCAL_CHANGE_LIMIT, PHENOTYPE_RANGES, Appearance
from factorportrait.training.synthetic.background import Room, WallTexture, cast_rays, render_room, wall_shading
from factorportrait.training.synthetic.expression_curves import ACTION_INDEX, sample_script
from factorportrait.training.synthetic.motion import POSE_LIMITS, sample_head_motion
from factorportrait.training.synthetic.render import avatar_params, avatar_vertices, render_avatar

SEED = 11
SIZE = 64
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clips(anny_model):  # noqa: F811
    """Clips made once per (index, regime, frames) and shared by the tests (never mutated)."""
    made = {}

    def clip(index, regime=None, frames=5):
        key = (index, regime, frames)
        if key not in made:
            made[key] = gen.generate_clip(anny_model, SEED, index, regime=regime, **_options(frames))
        return made[key]

    return clip


def _options(frames=5):
    return {"frames": frames, "width": SIZE, "height": SIZE}


def _params(model, sample, pose, expression):
    appearance = Appearance.from_json(sample.info["identity"])
    return appearance, avatar_params(model, appearance, expression, {k: torch.tensor(v) for k, v in pose.items()})


def _shading(appearance):
    return wall_shading(appearance.light_direction, appearance.light_intensity, appearance.ambient,
                        appearance.light_colour)


# -- determinism ----------------------------------------------------------------------------

def test_same_seed_and_index_give_the_same_bytes(anny_model, clips):  # noqa: F811
    again = gen.generate_clip(anny_model, SEED, 0, **_options())
    assert encode_sample(again) == encode_sample(clips(0))
    other = clips(1)
    assert other.info["identity"]["shape"] != clips(0).info["identity"]["shape"]
    assert other.info["identity"]["skin"] != clips(0).info["identity"]["skin"]
    assert not torch.equal(other.frames, clips(0).frames)
    # A forced regime or another length leaves the identity and room of (seed, index) alone.
    for forced in (clips(0, "phone"), clips(0, "view_sweep", frames=9)):
        assert forced.info["identity"] == clips(0).info["identity"] and forced.info["room"] == clips(0).info["room"]
    assert clips(0, "phone").info["regime"] == "phone"


def test_identity_is_in_range(clips, anny_model):  # noqa: F811
    shape = torch.tensor(clips(2).info["identity"]["shape"])
    assert shape.shape == (len(anny_model.shape_labels),)
    for i, label in enumerate(anny_model.phenotype_labels):
        low, high = PHENOTYPE_RANGES[label]
        assert low <= shape[i] <= high
    local = shape[len(anny_model.phenotype_labels):]
    assert local.abs().max() <= LOCAL_CHANGE_LIMIT and local.std() > 0.05
    light = torch.tensor(clips(2).info["identity"]["light_direction"])
    assert abs(float(light.norm()) - 1) < 1e-9 and light[1] > 0 and light[2] > 0  # above, in front


# -- what is rendered -----------------------------------------------------------------------

@pytest.mark.parametrize("regime", ["dynamic_sweep", "phone"])
def test_normal_maps_are_the_render_normal_maps_node_path(anny_model, clips, regime):  # noqa: F811
    sample = clips(3, regime, frames=9)  # 9 frames: two of the node's chunks of 8
    _appearance, params = _params(anny_model, sample, sample.info["pose"], sample.expression)
    track = BodyTrack(anny_model, params, sample.camera, driving=None)
    normals, mask = render_track_normals(track, sample.camera, SIZE, SIZE)
    assert torch.equal(to_uint8_images(normals), sample.normal_maps)
    assert torch.equal((mask > 0.5).to(torch.uint8), sample.mask)
    assert 0.1 < sample.mask.float().mean() < 0.8


def test_frames_are_the_lit_avatar_over_the_room(anny_model, clips):  # noqa: F811
    sample = clips(4, "dynamic_sweep")
    appearance, params = _params(anny_model, sample, sample.info["pose"], sample.expression)
    room, _depth = render_room(Room.from_json(sample.info["room"]), sample.camera, SIZE, SIZE, _shading(appearance))
    off = sample.mask == 0
    assert torch.equal(sample.frames[off], to_uint8_images(room)[off])
    # On the body the colours come from the painted, lit avatar, not the room.
    images, covered = render_avatar(anny_model, avatar_vertices(anny_model, params), sample.camera, SIZE, SIZE,
                                    appearance, room)
    assert torch.equal(covered.to(torch.uint8), sample.mask)
    assert torch.equal(to_uint8_images(images), sample.frames)
    body = sample.frames[sample.mask == 1].float()
    assert (body - to_uint8_images(room)[sample.mask == 1].float()).abs().mean() > 10
    # Clothing: the bottom rows of the body are the clothing colour, shaded (same hue ratios).
    cloth = torch.tensor(appearance.clothing)
    bottom = sample.frames[0, -3:][sample.mask[0, -3:] == 1].float().mean(0) / 255
    assert torch.allclose(bottom / bottom.sum(), cloth / cloth.sum(), atol=0.08)


def test_reference_is_the_same_identity_at_another_time_and_camera(anny_model, clips):  # noqa: F811
    sample = clips(5, "dynamic_sweep", frames=9)
    ref = sample.info["reference"]
    duration = (sample.num_frames - 1) / sample.info["fps"]
    assert ref["time"] <= -0.5 or ref["time"] >= duration + 0.5
    assert (sample.camera.centers - sample.reference_camera.centers).norm(dim=1).min() > 0.01
    ref_expression = torch.tensor([ref["expression"]])
    ref_head = torch.tensor(ref["pose"]["head"])
    assert ((sample.expression - ref_expression).abs().amax(1).min() > 0.01
            or (torch.tensor(sample.info["pose"]["head"]) - ref_head).abs().amax(1).min() > 1e-3)
    # The reference is the clip's identity, room and light rendered with the reference's
    # pose, face and camera (all from the sample's info).
    appearance, params = _params(anny_model, sample, ref["pose"], ref_expression)
    room, _depth = render_room(Room.from_json(sample.info["room"]), sample.reference_camera, SIZE, SIZE,
                               _shading(appearance))
    images, _covered = render_avatar(anny_model, avatar_vertices(anny_model, params), sample.reference_camera,
                                     SIZE, SIZE, appearance, room)
    assert torch.equal(to_uint8_images(images[0]), sample.reference)


def test_room_parallax_is_what_the_camera_projects():
    black, white = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    plain = WallTexture("blobs", (black, white, white), 1.0, 0.0, 0.0)
    marker = (0.1, 0.2)  # on the back wall (z = -2): world (0.1, 0.2, -2)
    back = WallTexture("blobs", (black, white, white), 1.0, 0.0, 0.0, ((*marker, 0.02, 1),))
    room = Room((-2.0, -1.5, -2.0), (2.0, 1.5, 2.0), (plain, plain, plain, plain, back, plain))
    size, distance = 128, 1.0
    camera = tr.orbit(5, tr.View(yaw=-20, distance=distance, fov=40), 20)
    images, depth = render_room(room, camera, size, size)
    point = torch.tensor([[marker[0], marker[1], -2.0]], dtype=torch.float64)
    expected = camera.project(point, size, size)[:, 0, :2]
    assert bool(((expected > 10) & (expected < size - 10)).all())
    grid_v, grid_u = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    for f in (0, 2, 4):
        w = images[f, ..., 0].double()
        found = torch.stack([(w * grid_u).sum() / w.sum(), (w * grid_v).sum() / w.sum()])
        assert (found - expected[f]).norm() < 0.1, (f, found, expected[f])
    # Finite depth: the marker moves unlike a point at infinity in the same first direction.
    far = camera.centers[0] + 1e4 * (point[0] - camera.centers[0])
    at_infinity = camera.project(far[None], size, size)[4, 0, :2]
    assert (at_infinity - expected[4]).norm() > 5
    # The frontal camera sees the back wall as a plane at depth 2 + distance.
    frontal = tr.static(1, tr.View(distance=distance, fov=40))
    wall, _points, depth = cast_rays(room, frontal, size, size)
    assert bool((wall == 4).all()) and torch.allclose(depth, torch.tensor(2.0 + distance), atol=1e-5)
    # A camera outside the room is refused.
    with pytest.raises(ValueError, match="outside the room"):
        render_room(room, tr.static(1, tr.View(distance=3.0)), size, size)


# -- regimes, curves, motion ----------------------------------------------------------------

def test_regimes_do_what_they_say(clips):
    sweep = clips(6, "view_sweep", frames=9)
    assert torch.equal(sweep.expression, sweep.expression[:1].expand_as(sweep.expression))
    for group in ("head", "neck", "torso"):
        pose = torch.tensor(sweep.info["pose"][group])
        assert torch.equal(pose, pose[:1].expand_as(pose))
    assert (sweep.camera.centers[-1] - sweep.camera.centers[0]).norm() > 0.02
    assert not is_static(sweep.camera)

    dynamic = clips(6, "dynamic_sweep", frames=9)
    head = torch.tensor(dynamic.info["pose"]["head"])
    assert (head - head[:1]).abs().max() > math.radians(0.2)
    assert (dynamic.expression - dynamic.expression[:1]).abs().max() > 0.01
    assert not is_static(dynamic.camera)

    phone = clips(6, "phone", frames=9)
    assert is_static(phone.camera)
    assert float(phone.camera.fov[0]) >= 55 and float(phone.camera.centers[0].norm()) <= 0.6
    head = torch.tensor(phone.info["pose"]["head"])
    assert (head - head[:1]).abs().max() > math.radians(0.2)


def test_regime_weights_are_followed(anny_model):  # noqa: F811
    g = gen.clip_generator(0, 0)
    drawn = [gen.choose_regime(g, {"view_sweep": 3.0, "dynamic_sweep": 1.0, "phone": 0.0}) for _ in range(400)]
    assert "phone" not in drawn and 0.65 < drawn.count("view_sweep") / len(drawn) < 0.85
    with pytest.raises(ValueError, match="unknown regime"):
        gen.check_regime_weights({"selfie": 1.0})
    with pytest.raises(ValueError, match="positive"):
        gen.check_regime_weights({"phone": 0.0})
    with pytest.raises(ValueError, match="4k\\+1"):
        gen.generate_clip(anny_model, 0, 0, frames=8)
    with pytest.raises(ValueError, match="multiple of 16"):
        gen.generate_clip(anny_model, 0, 0, width=100)


def test_expression_curves_are_smooth_in_range_and_varied():
    fps, names = 15.0, ARKIT_FACE_ACTIONS
    seen = {n: 0.0 for n in ("jawOpen", "mouthSmileLeft", "eyeBlinkLeft", "browInnerUp", "browDownLeft",
                             "mouthFunnel", "mouthPucker", "mouthClose", "mouthStretchLeft")}
    one_eyed = lopsided = calm = 0
    blink = [ACTION_INDEX["eyeBlinkLeft"], ACTION_INDEX["eyeBlinkRight"]]
    others = [i for i in range(len(names)) if i not in blink]
    for seed in range(30):
        script = sample_script(torch.Generator().manual_seed(seed), 0.0, 6.0)
        fine = torch.arange(0, 6.0, 5e-4, dtype=torch.float64)
        w = script.evaluate(fine).double()
        assert w.min() >= 0 and w.max() <= 1
        # Differentiable: the slopes over 0.5 ms and over 1 ms agree, and stay bounded.
        slope = (w[1:] - w[:-1]) / 5e-4
        slope2 = (w[2::2] - w[:-2:2]) / 1e-3
        assert slope.abs().max() < 60
        assert (slope[::2][:len(slope2)] - slope2).abs().max() < 1.0
        at_fps = script.evaluate(torch.arange(0, 6.0, 1 / fps))
        for n in seen:
            seen[n] = max(seen[n], float(at_fps[:, ACTION_INDEX[n]].max()))
        left, right = at_fps[:, blink[0]], at_fps[:, blink[1]]
        one_eyed += bool((((left > 0.8) & (right < 0.1)) | ((right > 0.8) & (left < 0.1))).any())
        smile_l, smile_r = at_fps[:, ACTION_INDEX["mouthSmileLeft"]], at_fps[:, ACTION_INDEX["mouthSmileRight"]]
        lopsided += bool(((smile_l - smile_r).abs() > 0.2).any())
        window = at_fps[:, others].amax(1) < 0.05
        calm += bool(window.unfold(0, 15, 1).all(1).any())  # a second of a neutral face
    assert all(v > 0.3 for v in seen.values()), seen
    assert one_eyed and lopsided and calm


def test_head_motion_stays_in_realistic_ranges():
    times = torch.arange(0, 8.0, 0.01, dtype=torch.float64)
    for seed in range(10):
        motion = sample_head_motion(torch.Generator().manual_seed(seed), 0.0, 8.0)
        total = motion.total(times)
        assert bool((total.abs() <= torch.tensor(POSE_LIMITS, dtype=torch.float64) + 1e-9).all())
        assert (total.amax(0) - total.amin(0)).max() > 2  # it moves
        parts = motion.evaluate(times)
        summed = parts["head"] + parts["neck"] + parts["torso"]
        assert torch.allclose(summed.double(), torch.deg2rad(total), atol=1e-6)


# -- shards, resuming, crashes --------------------------------------------------------------

def _statuses():
    seen = {}
    return seen, lambda done, total, index, status, seconds: seen.__setitem__(index, status)


def test_shards_are_disjoint_and_cover_every_index(anny_model, clips, tmp_path):  # noqa: F811
    for shard in range(2):
        entries = gen.generate_shard(tmp_path, 5, SEED, shard, 2, model=anny_model, **_options())
        assert [e["index"] for e in entries] == list(shard_range(5, shard, 2))
    listed = read_manifests(tmp_path)
    assert sorted(e["index"] for e in listed) == [0, 1, 2, 3, 4]
    assert len({e["file"] for e in listed}) == 5
    assert not verify_folder(tmp_path).bad
    by_index = {e["index"]: e for e in listed}
    # A clip does not depend on how the indices were split.
    assert by_index[1]["sha256"] == hashlib.sha256(encode_sample(clips(1))).hexdigest()
    loaded = read_sample(tmp_path / by_index[1]["file"])
    assert torch.equal(loaded.frames, clips(1).frames) and loaded.info == json.loads(json.dumps(clips(1).info))


def test_resume_generates_only_what_is_missing_and_adopts_unlisted_files(anny_model, tmp_path):  # noqa: F811
    first = {e["index"]: e for e in gen.generate_shard(tmp_path, 3, SEED, model=anny_model, **_options())}
    manifest = manifest_path(tmp_path, gen.MANIFEST_NAME)

    def drop_line(index):
        lines = [line for line in manifest.read_text().splitlines() if json.loads(line)["index"] != index]
        manifest.write_text("".join(line + "\n" for line in lines))

    (tmp_path / first[1]["file"]).unlink()
    drop_line(1)
    seen, progress = _statuses()
    gen.generate_shard(tmp_path, 3, SEED, model=anny_model, progress=progress, **_options())
    assert seen == {0: "listed", 1: "generated", 2: "listed"}
    drop_line(2)  # the file stays: a crash between the rename and the append
    seen, progress = _statuses()
    entries = gen.generate_shard(tmp_path, 3, SEED, model=anny_model, progress=progress, **_options())
    assert seen == {0: "listed", 1: "listed", 2: "adopted"}
    assert {e["index"]: e["sha256"] for e in entries} == {i: e["sha256"] for i, e in first.items()}
    assert not verify_folder(tmp_path).bad
    with pytest.raises(ValueError, match="seed"):  # another seed into the same folder
        gen.generate_shard(tmp_path, 3, SEED + 1, model=anny_model, **_options())


def test_a_crash_leaves_no_partial_sample(anny_model, tmp_path, monkeypatch):  # noqa: F811
    def boom(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(gen, "render_avatar", boom)  # inside generation
    with pytest.raises(RuntimeError, match="killed"):
        gen.generate_shard(tmp_path, 2, SEED, model=anny_model, **_options())
    monkeypatch.undo()
    monkeypatch.setattr(sample_module.os, "fsync", boom)  # while the file is being written
    with pytest.raises(RuntimeError, match="killed"):
        gen.generate_shard(tmp_path, 2, SEED, model=anny_model, **_options())
    monkeypatch.undo()
    assert list((tmp_path / "samples").iterdir()) == []  # no partial file, no temporary left
    assert not manifest_path(tmp_path, gen.MANIFEST_NAME).exists()  # nothing listed either
    seen, progress = _statuses()
    gen.generate_shard(tmp_path, 2, SEED, model=anny_model, progress=progress, **_options())
    assert seen == {0: "generated", 1: "generated"} and not verify_folder(tmp_path).bad


# -- measured expression, command line ------------------------------------------------------

def test_measured_expression_when_the_encoder_is_available(anny_model, anny_cache_dir):  # noqa: F811
    pytest.importorskip("mediapipe")
    from factorportrait.models.expression.arkit_encoder import ArkitEncoder
    from factorportrait.models.expression.encoders import ExpressionEncoder
    from factorportrait.models.expression.face_correspondence import correspondence_path, load_face_correspondence

    if not correspondence_path(anny_cache_dir).is_file():
        pytest.skip("the face correspondence is not cached yet (test_arkit_encoder.py builds it)")
    encoder = ExpressionEncoder.built_in(ArkitEncoder(anny_model, load_face_correspondence(anny_cache_dir, anny_model)))
    sample = gen.generate_clip(anny_model, SEED, 7, frames=5, width=192, height=192, regime="phone", encoder=encoder)
    assert sample.info["measured_expression"]["encoder"] == "anny-arkit52"
    codes = sample.measured_expression
    assert codes is not None and codes.shape == (5, 52) and codes.min() >= 0 and codes.max() <= 1
    assert torch.equal(_roundtrip(sample).measured_expression, codes)


def _roundtrip(sample):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.safetensors"
        sample_module.write_sample(path, sample)
        return read_sample(path)


def _cli():
    spec = importlib.util.spec_from_file_location("generate_synthetic_cli", ROOT / "training" / "generate_synthetic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_line(anny_cache_dir, tmp_path, capsys):  # noqa: F811
    cli = _cli()
    out = tmp_path / "data"
    args = ["--out", str(out), "--count", "3", "--seed", str(SEED), "--shard", "1", "--num-shards", "2",
            "--frames", "5", "--width", "64", "--height", "64", "--regimes", "phone=1", "--anny-cache", anny_cache_dir]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "1/1 clip 1: generated" in printed and "1 generated" in printed
    entries = read_manifests(out)
    assert [e["index"] for e in entries] == [1] and entries[0]["regime"] == "phone"
    for bad, message in ((["--frames", "8"], "4k\\+1"), (["--regimes", "selfie=1"], "unknown regime"),
                         (["--shard", "2"], "--shard must be in 0..1")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(args + bad)
        assert exit_info.value.code == 2
        assert re.search(message, capsys.readouterr().err)
    assert os.listdir(out / "samples") == ["synth-00000001.safetensors"]
