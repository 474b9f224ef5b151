"""Per-shard manifests of a data folder, and resuming a shard where it stopped.

A data folder holds ``samples/*.safetensors`` and ``manifests/<name>-<shard>-of-<n>.jsonl``.
Each job (a shard of the generator, a preparation run) appends to its own manifest, so any
number of jobs may write into one folder at once. One JSON line per finished sample::

    {"file": "samples/synth-00000042.safetensors", "sha256": "...", "bytes": 123,
     "index": 42, "frames": 17, "width": 128, "height": 128, "expression_dim": 52,
     "source": "synthetic", "regime": "view_sweep"}

A line is appended only after its sample file was renamed into place; a line cut short by a
crash (no final newline) is ignored and rewritten. On resume, a sample file that exists but
is not listed (the job died between the rename and the append) is read back, checked and
listed; other items are made again. Failed items (real videos without a face...) are
listed with ``"skipped": reason`` so a rerun does not retry them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .sample import ClipSample, SampleError, file_sha256, read_sample

MANIFEST_DIR = "manifests"
SAMPLE_DIR = "samples"


def shard_range(count: int, shard: int, num_shards: int) -> range:
    """Indices ``0..count-1`` owned by ``shard`` of ``num_shards`` (strided, so shards stay
    balanced when ``count`` grows)."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"--shard must be in 0..{num_shards - 1} for --num-shards {num_shards}, got {shard}")
    return range(shard, count, num_shards)


def manifest_path(root: str | os.PathLike, name: str, shard: int = 0, num_shards: int = 1) -> Path:
    return Path(root) / MANIFEST_DIR / f"{name}-{shard:05d}-of-{num_shards:05d}.jsonl"


def entry_for(sample: ClipSample, file: str, sha256: str, size: int, index: int | str) -> dict:
    """The manifest line of a written sample."""
    width, height = sample.size
    return {"file": file, "sha256": sha256, "bytes": size, "index": index, "frames": sample.num_frames,
            "width": width, "height": height, "expression_dim": sample.expression_dim,
            "source": sample.info.get("source"), "regime": sample.info.get("regime")}


def _read_lines(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    text = path.read_text()
    lines = text.split("\n")
    complete = lines[:-1]  # the part after the last newline is empty, or a line cut short
    out = []
    for number, line in enumerate(complete, 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                raise ValueError(f"manifest {path}, line {number}: not JSON; the manifest was edited "
                                 "or damaged: delete the line (the sample is re-checked on resume)") from None
    return out


class ShardManifest:
    """The manifest of one job: which items are done, appending new ones."""

    def __init__(self, root: str | os.PathLike, name: str, shard: int = 0, num_shards: int = 1):
        self.root = Path(root)
        self.path = manifest_path(root, name, shard, num_shards)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries = _read_lines(self.path)
        self._rewrite_if_torn()
        self.done = {str(e["index"]) for e in self.entries}

    def _rewrite_if_torn(self) -> None:
        if self.path.is_file() and self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(e) + "\n" for e in self.entries))
            os.replace(tmp, self.path)

    def is_done(self, index: int | str) -> bool:
        return str(index) in self.done

    def add(self, entry: dict) -> None:
        """Append one line, flushed to disk before returning."""
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.entries.append(entry)
        self.done.add(str(entry["index"]))

    def skip(self, index: int | str, reason: str, **extra) -> None:
        """Record an item that produced no sample, and why."""
        self.add({"index": index, "skipped": reason, **extra})

    def adopt_existing(self, file: str, index: int | str) -> bool:
        """List a sample file that exists but is not in the manifest (a crash between the
        rename and the append), after reading it back; False if it is absent or unusable."""
        path = self.root / file
        if not path.is_file():
            return False
        try:
            sample = read_sample(path)
        except SampleError:
            path.unlink()
            return False
        self.add(entry_for(sample, file, file_sha256(path), path.stat().st_size, index))
        return True


def read_manifests(root: str | os.PathLike) -> list[dict]:
    """Every finished sample of a data folder (skipped items left out), sorted by file name."""
    entries = []
    for path in sorted((Path(root) / MANIFEST_DIR).glob("*.jsonl")):
        entries.extend(e for e in _read_lines(path) if "skipped" not in e)
    if not entries:
        raise FileNotFoundError(f"no samples listed under {Path(root) / MANIFEST_DIR}; generate or "
                                "prepare data into this folder first")
    return sorted(entries, key=lambda e: e["file"])


def skipped_items(root: str | os.PathLike) -> list[dict]:
    """The items every job of the folder skipped, with their reasons (the report)."""
    out = []
    for path in sorted((Path(root) / MANIFEST_DIR).glob("*.jsonl")):
        out.extend(e for e in _read_lines(path) if "skipped" in e)
    return out


@dataclass(frozen=True)
class VerifyResult:
    ok: list[str]
    bad: list[tuple[str, str]]  # (file, reason)


def verify_folder(root: str | os.PathLike) -> VerifyResult:
    """Check every listed sample's size and sha256 against its manifest line."""
    ok, bad = [], []
    for e in read_manifests(root):
        path = Path(root) / e["file"]
        if not path.is_file():
            bad.append((e["file"], "missing"))
        elif path.stat().st_size != e["bytes"]:
            bad.append((e["file"], f"{path.stat().st_size} bytes, the manifest says {e['bytes']}"))
        elif file_sha256(path) != e["sha256"]:
            bad.append((e["file"], "sha256 differs from the manifest"))
        else:
            ok.append(e["file"])
    return VerifyResult(ok, bad)
