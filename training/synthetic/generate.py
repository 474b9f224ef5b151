"""One synthetic clip from ``(seed, index)``, and generating a shard of them, resumably.

A clip is a function of ``(seed, index)`` and its options alone: each of its parts (regime,
identity, room, camera, times, face script, head motion, reference view) draws from its own
``torch.Generator`` seeded from ``(seed, index, part)`` (:func:`clip_generator`), never from
the global RNG. So any scheduler (SLURM arrays, torchrun ranks, one process) can split the
indices (:func:`training.data.manifest.shard_range`) and the same clips come out; and a
forced regime or another frame count leaves the identity and the room of an index as
they are.

Regimes (:data:`motion.REGIMES`):

- ``view_sweep``: expression and pose held (the face and pose at one moment of the script),
  the camera moving;
- ``dynamic_sweep``: expression, head pose and camera all moving;
- ``phone``: a static selfie camera, expression and head moving.

The reference image shows the same identity in the same room at another moment of the same
script and motion (0.5 to 3 s before or after the clip), from another camera of the regime.

A shard (:func:`generate_shard`) appends to its own manifest; on a rerun it skips what the
manifest lists, adopts sample files written but not listed (a crash between the rename and
the append), and makes the rest. Sample files are written atomically (``write_sample``).
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import Callable

import torch

from ...models.camera import paths as tr
from ...models.body.anny_model import AnnyUpperBody
from ...models.errors import InputError
from ...models.wan.latent_frames import TEMPORAL_STRIDE
from ..data.manifest import SAMPLE_DIR, ShardManifest, entry_for, shard_range
from ..data.sample import ClipSample, SampleError, read_metadata, to_float_images, to_uint8_images, write_sample
from .appearance import sample_appearance, uniform
from .background import render_room, sample_room, wall_shading
from .expression_curves import sample_script
from .motion import REGIMES, sample_camera, sample_head_motion, sample_view
from .render import avatar_params, avatar_vertices, render_avatar, render_normals

FPS = 15.0
MANIFEST_NAME = "synth"
ENCODER_NAME = "anny-arkit52"
GENERATOR_VERSION = 1
REFERENCE_GAP = (0.5, 3.0)  # seconds between the clip and its reference moment
DEFAULT_WEIGHTS = {regime: 1.0 for regime in REGIMES}
# progress(done, total, index, status, seconds): status "listed", "adopted" or "generated".
Progress = Callable[[int, int, int, str, float], None]


def clip_seed(seed: int, index: int, part: str = "clip") -> int:
    """A 63-bit seed of one ``part`` of clip ``index`` of run ``seed`` (a hash: neighbouring
    indices and parts get unrelated streams)."""
    digest = hashlib.sha256(f"factorportrait-synthetic:{int(seed)}:{int(index)}:{part}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def clip_generator(seed: int, index: int, part: str = "clip") -> torch.Generator:
    return torch.Generator().manual_seed(clip_seed(seed, index, part))


def check_regime_weights(weights: dict[str, float] | None) -> dict[str, float]:
    """``weights`` (None: all regimes alike) checked: known regimes, finite non-negative
    weights, at least one positive. Raises ValueError naming the problem."""
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    unknown = [r for r in weights if r not in REGIMES]
    if unknown:
        raise ValueError(f"unknown regime(s) {unknown}; choose among {', '.join(REGIMES)}")
    bad = {r: w for r, w in weights.items() if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0)}
    if bad:
        raise ValueError(f"regime weights must be finite numbers >= 0, got {bad}")
    if not any(w > 0 for w in weights.values()):
        raise ValueError(f"at least one regime weight must be positive, got {weights}")
    return {r: float(weights.get(r, 0.0)) for r in REGIMES}


def choose_regime(generator: torch.Generator, weights: dict[str, float]) -> str:
    """A regime drawn with probability proportional to its weight."""
    w = torch.tensor([weights.get(r, 0.0) for r in REGIMES], dtype=torch.float64)
    return REGIMES[int(torch.multinomial(w, 1, generator=generator)[0])]


def _check_options(frames: int, width: int, height: int) -> None:
    if not isinstance(frames, int) or frames < 1 or (frames - 1) % TEMPORAL_STRIDE:
        raise ValueError(f"frames must be 4k+1 (5, 9, 13, 17, ... 81) for Wan, got {frames!r}")
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or not 16 <= v <= 4096 or v % 16:
            raise ValueError(f"{name} must be a multiple of 16 in 16..4096 (Wan's VAE and patch grid), got {v!r}")


def _pose_json(pose: dict[str, torch.Tensor]) -> dict[str, list]:
    return {group: value.tolist() for group, value in pose.items()}


def generate_clip(model: AnnyUpperBody, seed: int, index: int, *, frames: int = 17, width: int = 128,
                  height: int = 128, regime: str | None = None, regime_weights: dict[str, float] | None = None,
                  encoder=None) -> ClipSample:
    """The synthetic clip ``index`` of run ``seed``.

    Args:
        model: anny (``models.body.load_anny``).
        frames: 4k+1 frames at ``FPS``.
        width, height: pixels (multiples of 16).
        regime: ``REGIMES`` entry; None draws one from ``regime_weights`` (None: uniform).
        encoder: an ``ExpressionEncoder`` (e.g. ``ExpressionEncoder.built_in``) to measure
            ``measured_expression`` on the frames with (needs MediaPipe; slow); None: not measured.
    Returns:
        A :class:`ClipSample`: frames, reference, normal maps, mask, cameras, the
        ground-truth ARKit weights ``expression [F, 52]`` and ``info`` (module docstring).
    """
    _check_options(frames, width, height)
    weights = check_regime_weights(regime_weights)
    if regime is not None and regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")

    def stream(part: str) -> torch.Generator:
        return clip_generator(seed, index, part)

    if regime is None:
        regime = choose_regime(stream("regime"), weights)
    appearance = sample_appearance(model, stream("identity"))
    room = sample_room(stream("room"))
    camera, plan = sample_camera(stream("camera"), regime, frames)
    duration = (frames - 1) / FPS
    g = stream("times")
    gap = uniform(g, *REFERENCE_GAP)
    t_ref = -gap if uniform(g, 0, 1) < 0.5 else duration + gap
    t_still = uniform(g, 0, duration)
    script = sample_script(stream("face"), min(0.0, t_ref), max(duration, t_ref))
    motion = sample_head_motion(stream("motion"), min(0.0, t_ref), max(duration, t_ref))
    reference_camera = tr.static(1, sample_view(stream("reference"), regime))

    times = torch.arange(frames, dtype=torch.float64) / FPS
    if regime == "view_sweep":  # the face and pose of one moment, held
        times = torch.full_like(times, t_still)
    expression, pose = script.evaluate(times), motion.evaluate(times)
    ref_expression, ref_pose = script.evaluate(torch.tensor([t_ref])), motion.evaluate(torch.tensor([t_ref]))

    shading = wall_shading(appearance.light_direction, appearance.light_intensity, appearance.ambient,
                           appearance.light_colour)
    vertices = avatar_vertices(model, avatar_params(model, appearance, expression, pose))
    normals, mask = render_normals(model, vertices, camera, width, height)
    background, _depth = render_room(room, camera, width, height, shading)
    images, _covered = render_avatar(model, vertices, camera, width, height, appearance, background)
    ref_vertices = avatar_vertices(model, avatar_params(model, appearance, ref_expression, ref_pose))
    ref_background, _depth = render_room(room, reference_camera, width, height, shading)
    reference, _covered = render_avatar(model, ref_vertices, reference_camera, width, height, appearance,
                                        ref_background)
    frames_u8 = to_uint8_images(images)

    info = {
        "source": "synthetic", "generator_version": GENERATOR_VERSION, "regime": regime, "seed": int(seed),
        "index": int(index), "frames": frames, "width": width, "height": height, "fps": FPS,
        "identity": appearance.to_json(), "room": room.to_json(),
        "camera_motion": plan.to_json(),
        "expression_time": t_still if regime == "view_sweep" else None,
        # Per frame, axis-angle radians in world axes (UpperBodyParams): the ground truth of head pose.
        "pose": _pose_json(pose),
        "reference": {"time": t_ref, "frame": t_ref * FPS, "pose": _pose_json(ref_pose),
                      "expression": ref_expression[0].tolist()},
    }
    measured = None
    if encoder is not None:
        measured, info["measured_expression"] = _measure(encoder, frames_u8, camera)
    return ClipSample(frames=frames_u8, reference=to_uint8_images(reference[0]), normal_maps=to_uint8_images(normals),
                      expression=expression.float(), camera=camera, reference_camera=reference_camera,
                      expression_encoder=ENCODER_NAME, mask=(mask > 0.5).to(torch.uint8),
                      measured_expression=measured, info=info)


def _measure(encoder, frames: torch.Tensor, camera) -> tuple[torch.Tensor | None, dict]:
    """The encoder's codes ``[F, D]`` of the frames (None when it finds no face), and a note."""
    fov = camera.fov
    fov = float(fov[0]) if bool((fov == fov[0]).all()) else None  # a dolly zoom: let the fit find it
    try:
        codes, notes = encoder.encode(to_float_images(frames), fov_degrees=fov, video=True)
    except InputError as e:
        return None, {"encoder": encoder.name, "error": str(e)}
    return codes.codes.float().contiguous(), {"encoder": encoder.name, "notes": list(notes)}


def sample_file(index: int) -> str:
    """The sample's path relative to the data folder."""
    return f"{SAMPLE_DIR}/{MANIFEST_NAME}-{index:08d}.safetensors"


def _check_made_with(path: Path, seed: int, frames: int, width: int, height: int) -> None:
    """Refuse to mix clips of other settings into a folder (a rerun with other options).
    Unreadable files pass: adopting deletes them and they are made again."""
    try:
        info = read_metadata(path)["info"]
    except SampleError:
        return
    want = {"seed": seed, "frames": frames, "width": width, "height": height}
    got = {k: info.get(k) for k in want}
    if got != want:
        raise ValueError(f"{path} was made with {got}, this run asks for {want}; use another --out "
                         "folder or the same settings")


def generate_shard(out_dir: str | os.PathLike, count: int, seed: int, shard: int = 0, num_shards: int = 1, *,
                   model: AnnyUpperBody, progress: Progress | None = None, **clip_options) -> list[dict]:
    """Generate the indices of ``shard_range(count, shard, num_shards)`` into ``out_dir``.

    Listed indices are skipped, unlisted sample files adopted, the others generated
    (:func:`generate_clip` with ``clip_options``) and written to ``samples/synth-<index>``,
    each appended to ``manifests/synth-<shard>-of-<num_shards>.jsonl`` once its file is in
    place. ``progress(done, total, index, status, seconds)`` after each index.

    Returns:
        The manifest entries of the shard's indices, in index order.
    """
    if not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be a whole number >= 0, got {count!r}")
    indices = shard_range(count, shard, num_shards)
    frames = clip_options.get("frames", 17)
    width, height = clip_options.get("width", 128), clip_options.get("height", 128)
    _check_options(frames, width, height)
    check_regime_weights(clip_options.get("regime_weights"))
    out = Path(out_dir)
    manifest = ShardManifest(out, MANIFEST_NAME, shard, num_shards)
    listed = {str(e["index"]): e for e in manifest.entries}
    entries = []
    for done, index in enumerate(indices, 1):
        start = time.perf_counter()
        file = sample_file(index)
        path = out / file
        if path.is_file():
            _check_made_with(path, seed, frames, width, height)
        if manifest.is_done(index):
            status, entry = "listed", listed[str(index)]
        elif manifest.adopt_existing(file, index):
            status, entry = "adopted", manifest.entries[-1]
        else:
            sample = generate_clip(model, seed, index, **clip_options)
            sha256, size = write_sample(path, sample)
            entry = entry_for(sample, file, sha256, size, index)
            manifest.add(entry)
            status = "generated"
        entries.append(entry)
        if progress is not None:
            progress(done, len(indices), index, status, time.perf_counter() - start)
    return entries
