"""Benchmark: our Plücker ray maps vs ComfyUI's WanCameraEmbedding, side by side.

Both produce the same full-resolution WAN_CAMERA_EMBEDDING ``[1, 24, 21, 480, 832]`` for
81 frames at 832x480 (the "ClockWise (CW)" preset, expressed with our keyframes). The
floor is a plain copy of a tensor of that size (memory bound). Prints medians and
ratios; the last line is a JSON object with the figures.

Run: ``.venv/bin/python benchmarks/camera.py [--repeats N] [--comfy-repeats N]``
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from devpack import import_comfyui, import_pack  # noqa: E402

from common import timed  # noqa: E402

import_comfyui()
import_pack()

from comfy_extras.nodes_camera_trajectory import WanCameraEmbedding  # noqa: E402

from factorportrait.models.camera import paths  # noqa: E402
from factorportrait.models.camera.plucker import wan_camera_embedding  # noqa: E402

WIDTH, HEIGHT, FRAMES = 832, 480, 81
PRESET = "ClockWise (CW)"


def comfy_equivalent_camera():
    """ComfyUI's CW preset: roll to 60° * 80/81 at its intrinsics fx=fy=cx=cy=0.5
    (poses assumed 1280x720: fx = 0.5 * H * 16/9 px, fy = 0.5 * H px)."""
    keys = {
        "interpolation": "linear",
        "keyframes": [
            {"frame": 0, "roll": 0, "focal": 0.5, "pixel_aspect": 16 / 9, "distance": 1.0},
            {"frame": FRAMES - 1, "roll": 60 * (FRAMES - 1) / FRAMES},
        ],
    }
    return paths.keyframed(FRAMES, json.dumps(keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--comfy-repeats", type=int, default=3)
    args = parser.parse_args()

    camera = comfy_equivalent_camera()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{FRAMES} frames at {WIDTH}x{HEIGHT}, full-resolution embedding")

    ours_s, ours_all, ours = timed(lambda: wan_camera_embedding(camera, WIDTH, HEIGHT), args.repeats)
    comfy_s, comfy_all, ref = timed(
        lambda: WanCameraEmbedding.execute(PRESET, WIDTH, HEIGHT, FRAMES).args[0], args.comfy_repeats)
    max_diff = float((ours - ref).abs().max())
    src = ours.clone()
    del ours, ref
    copy_s, copy_all, _ = timed(lambda: src.clone(), args.repeats)

    size_mb = src.numel() * src.element_size() / 1e6
    figures = {
        "frames": FRAMES, "width": WIDTH, "height": HEIGHT, "output_shape": list(src.shape),
        "output_mb": round(size_mb, 1),
        "ours_s": round(ours_s, 4), "comfyui_s": round(comfy_s, 4), "copy_s": round(copy_s, 4),
        "speedup_vs_comfyui": round(comfy_s / ours_s, 1),
        "ours_over_copy": round(ours_s / copy_s, 2),
        "max_abs_diff_vs_comfyui": max_diff,
        "targets_met": {"speedup_at_least_10x": comfy_s / ours_s >= 10, "within_2x_of_copy": ours_s / copy_s <= 2},
    }
    print(f"output {tuple(src.shape)} float32, {size_mb:.0f} MB")
    print(f"ours     median {ours_s * 1e3:9.1f} ms  (runs: {', '.join(f'{t * 1e3:.0f}' for t in ours_all)})")
    print(f"ComfyUI  median {comfy_s * 1e3:9.1f} ms  (runs: {', '.join(f'{t * 1e3:.0f}' for t in comfy_all)})")
    print(f"copy     median {copy_s * 1e3:9.1f} ms  (runs: {', '.join(f'{t * 1e3:.0f}' for t in copy_all)})")
    print(f"speedup vs ComfyUI: {comfy_s / ours_s:.1f}x (target >= 10x); "
          f"ours / copy: {ours_s / copy_s:.2f} (target <= 2); max |ours - ComfyUI| = {max_diff:.2e}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
