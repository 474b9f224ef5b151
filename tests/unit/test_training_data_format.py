"""The training sample format and manifests: round trip, atomic writes, torn manifests,
checksums, and errors that name the file and the tensor."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _training_data as td  # noqa: E402


def test_round_trip_keeps_every_value(tmp_path):
    from factorportrait.training.data.sample import file_sha256, read_sample, write_sample

    sample = td.make_sample(3)
    sample.measured_expression = torch.rand(td.FRAMES, 52)
    sample.mask = torch.randint(0, 2, (td.FRAMES, td.SIZE, td.SIZE), dtype=torch.uint8)
    sha, size = write_sample(tmp_path / "s.safetensors", sample)
    assert sha == file_sha256(tmp_path / "s.safetensors") and size == (tmp_path / "s.safetensors").stat().st_size
    back = read_sample(tmp_path / "s.safetensors")
    for key, value in sample.tensors().items():
        assert torch.equal(getattr(back, key), value), key
    torch.testing.assert_close(back.camera.w2c, sample.camera.w2c, rtol=0, atol=1e-12)
    torch.testing.assert_close(back.reference_camera.focal, sample.reference_camera.focal)
    assert back.info == sample.info and back.expression_encoder == "anny-arkit52"


def test_a_crash_while_writing_leaves_the_old_file_or_nothing(tmp_path, monkeypatch):
    from factorportrait.training.data import sample as fmt

    path = tmp_path / "samples" / "s.safetensors"

    def crash(fd):
        raise KeyboardInterrupt  # as if the job were stopped in the middle of the write

    monkeypatch.setattr(fmt.os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        fmt.write_sample(path, td.make_sample(0))
    assert not path.exists() and not list(path.parent.iterdir())  # no partial file, no temporary left
    monkeypatch.undo()
    fmt.write_sample(path, td.make_sample(0))
    before = path.read_bytes()
    monkeypatch.setattr(fmt.os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        fmt.write_sample(path, td.make_sample(1))
    assert path.read_bytes() == before  # the previous version is intact


def test_a_killed_writer_leaves_no_corrupt_sample(tmp_path):
    """SIGKILL (no clean-up possible) during a large write: the sample's name holds nothing
    or a whole file, never a partial one, and the manifest lists only whole samples."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parents[2] / 'scripts')!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from devpack import import_pack; import_pack()
        import _training_data as td
        from factorportrait.training.data import sample as fmt
        big = td.make_sample(0, frames=65, size=256)
        real_write = fmt.os.fdopen
        def slow_fdopen(*a, **k):
            f = real_write(*a, **k)
            w = f.write
            def write(data):
                print("writing", flush=True)
                for i in range(0, len(data), 1 << 16):
                    w(data[i:i + (1 << 16)]); f.flush(); time.sleep(0.002)
            f.write = write
            return f
        fmt.os.fdopen = slow_fdopen
        fmt.write_sample({str(tmp_path / 'samples' / 'big.safetensors')!r}, big)
        print("done", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    target = tmp_path / "samples" / "big.safetensors"
    assert not target.exists()
    temporaries = [p for p in (tmp_path / "samples").iterdir()]
    assert temporaries and all(p.name.startswith(".big.safetensors.") for p in temporaries)


def test_torn_manifest_line_is_dropped_and_the_sample_adopted(tmp_path):
    from factorportrait.training.data.manifest import ShardManifest, read_manifests, verify_folder

    td.write_folder(tmp_path, 3)
    path = tmp_path / "manifests" / "test-00000-of-00001.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])  # a crash mid-append
    manifest = ShardManifest(tmp_path, "test")
    assert [e["index"] for e in manifest.entries] == [0, 1] and path.read_text().endswith("\n")
    assert not manifest.is_done(2)
    assert manifest.adopt_existing("samples/test-0002.safetensors", 2)  # the file was whole: listed again
    assert [e["index"] for e in read_manifests(tmp_path)] == [0, 1, 2]
    assert verify_folder(tmp_path).bad == []
    blob = bytearray((tmp_path / "samples" / "test-0001.safetensors").read_bytes())
    blob[-1] ^= 1
    (tmp_path / "samples" / "test-0001.safetensors").write_bytes(bytes(blob))
    assert verify_folder(tmp_path).bad == [("samples/test-0001.safetensors", "sha256 differs from the manifest")]


def test_a_damaged_unlisted_sample_is_not_adopted(tmp_path):
    from factorportrait.training.data.manifest import ShardManifest

    (tmp_path / "samples").mkdir(parents=True)
    (tmp_path / "samples" / "x.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")
    manifest = ShardManifest(tmp_path, "test")
    assert not manifest.adopt_existing("samples/x.safetensors", 0)
    assert not (tmp_path / "samples" / "x.safetensors").exists()  # removed: it is made again


@pytest.mark.parametrize("change, needle", [
    (lambda s: setattr(s, "frames", s.frames[:8]), "'frames' has 8 frames; Wan needs 4k\\+1"),
    (lambda s: setattr(s, "normal_maps", s.normal_maps[:, :16]), "'normal_maps' must be torch.uint8 \\[9, 32, 32, 3\\]"),
    (lambda s: setattr(s, "reference", s.reference.float()), "'reference' must be torch.uint8"),
    (lambda s: s.expression.__setitem__((0, 0), float("nan")), "'expression' holds NaN"),
    (lambda s: setattr(s, "expression", s.expression[:4]), "'expression' must be float32 \\[9, D\\]"),
    (lambda s: setattr(s, "camera", s.camera.frames([0, 1])), "the camera has 2 frames, the clip 9"),
])
def test_invalid_samples_are_refused_with_the_tensor_named(tmp_path, change, needle):
    from factorportrait.training.data.sample import SampleError, write_sample

    sample = td.make_sample(0)
    change(sample)
    with pytest.raises(SampleError, match=needle):
        write_sample(tmp_path / "bad.safetensors", sample)
    assert not (tmp_path / "bad.safetensors").exists()


def test_reading_other_files_names_them(tmp_path):
    from safetensors.torch import save_file

    from factorportrait.training.data.sample import SampleError, read_sample

    save_file({"x": torch.zeros(1)}, tmp_path / "model.safetensors")
    with pytest.raises(SampleError, match=r"model\.safetensors: has no 'factorportrait_sample' metadata"):
        read_sample(tmp_path / "model.safetensors")
    save_file({"x": torch.zeros(1)}, tmp_path / "v2.safetensors",
              metadata={"factorportrait_sample": json.dumps({"format": "factorportrait-sample", "version": 2})})
    with pytest.raises(SampleError, match="version 2; this pack reads"):
        read_sample(tmp_path / "v2.safetensors")
