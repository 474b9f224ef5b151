"""Benchmark: expression codes per second on the CPU, both encoders, with and without detection.

Input: a synthetic 640x360 driving video of the painted anny head (the renders the ARKit
encoder's tests use) with known face actions and head motion, ``--frames`` frames.

- built-in ``anny-arkit52``: MediaPipe face mesh (478 points) + the ARKit fit; the fit alone
  on the same detections; and its accuracy against the known actions (correlation);
- learned image encoder (default config: 128-d code, 128x128 crop; random weights, the cost
  does not depend on them): MediaPipe's 32 landmarks + alignment crop + network; alignment
  and network alone on the same landmarks.

Prints medians of ``--repeats`` runs; the last line is a JSON object with the figures.
Run: ``.venv/bin/python benchmarks/expression.py [--frames 81] [--repeats 3] [--threads 2]``
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from devpack import anny_cache_dir, import_pack  # noqa: E402

from common import timed  # noqa: E402

import_pack()

from factorportrait.models.camera import paths  # noqa: E402
from factorportrait.models.body.anny_model import ARKIT_FACE_ACTIONS, load_anny  # noqa: E402
from factorportrait.models.expression import ExpressionImageEncoder, ImageEncoderConfig, encode_frames  # noqa: E402
from factorportrait.models.expression.arkit_encoder import ArkitEncoder  # noqa: E402
from factorportrait.models.expression.face_correspondence import render_face_images  # noqa: E402
from factorportrait.models.expression.face_mesh import detect_face_mesh  # noqa: E402
from factorportrait.models.tracking.mediapipe_detector import detect_landmarks  # noqa: E402

WIDTH, HEIGHT, FOV, DISTANCE = 640, 360, 30.0, 0.7
MAIN_ACTIONS = ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "eyeBlinkLeft", "eyeBlinkRight", "browInnerUp")


def driving_video(model, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Painted anny frames ``[F, H, W, 3]`` and their true main actions ``[F, 6]``."""
    t = torch.linspace(0, 1, frames)
    truth = torch.stack([0.7 * torch.sin(math.pi * t) ** 2, 0.8 * torch.sin(2 * math.pi * t).clamp(min=0),
                         0.8 * torch.sin(2 * math.pi * t).clamp(min=0), (0.5 + 0.5 * torch.cos(6 * math.pi * t)) ** 6,
                         (0.5 + 0.5 * torch.cos(6 * math.pi * t)) ** 6, 0.9 * torch.sin(3 * math.pi * t).clamp(min=0)], 1)
    params = model.neutral_params(frames)
    with torch.no_grad():
        for i, name in enumerate(MAIN_ACTIONS):
            params.face[:, ARKIT_FACE_ACTIONS.index(name)] = truth[:, i]
        params.head[:, 1] = math.radians(15) * torch.sin(2 * math.pi * t + 1)
        params.head[:, 0] = math.radians(8) * torch.sin(2 * math.pi * t)
        vertices = model(params)
    camera = paths.static(1, paths.View(distance=DISTANCE, fov=FOV))
    return render_face_images(model, vertices, camera, WIDTH, HEIGHT), truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.frames
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average "
          f"{load:.2f}; {n} frames at {WIDTH}x{HEIGHT}")
    arkit = ArkitEncoder.from_cache(anny_cache_dir())
    images, truth = driving_video(load_anny(anny_cache_dir()), n)
    figures: dict = {"frames": n, "width": WIDTH, "height": HEIGHT, "threads": torch.get_num_threads(),
                     "load_average": round(load, 2)}

    def rate(seconds: float) -> float:
        return round(n / seconds, 1)

    # Built-in ARKit encoder.
    full_s, full_all, (codes, _report) = timed(lambda: arkit.encode_images(images, FOV), args.repeats)
    detections = detect_face_mesh(images, video=False)
    fit_s, fit_all, (codes_fit, _r) = timed(lambda: arkit.fit(detections, FOV, video=True), args.repeats)
    idx = [ARKIT_FACE_ACTIONS.index(a) for a in MAIN_ACTIONS]
    corr = {a: round(float(torch.corrcoef(torch.stack([codes.codes[:, i], truth[:, k]]))[0, 1]), 3)
            for k, (a, i) in enumerate(zip(MAIN_ACTIONS, idx))}
    figures["arkit52"] = {"codes_per_second_with_detection": rate(full_s), "codes_per_second_fit_only": rate(fit_s),
                          "correlation_with_truth": corr}
    print(f"anny-arkit52  with detection {rate(full_s):7.1f} codes/s (runs: {', '.join(f'{n / t:.1f}' for t in full_all)})"
          f";  fit only {rate(fit_s):7.1f} codes/s (runs: {', '.join(f'{n / t:.1f}' for t in fit_all)})")
    print("  correlation with the true actions: " + ", ".join(f"{a} {c:.3f}" for a, c in corr.items()))

    # Learned image encoder (default size, random weights).
    network = ExpressionImageEncoder(ImageEncoderConfig(), "benchmark-128").eval()
    learned_full_s, learned_full_all, _ = timed(
        lambda: encode_frames(network, images, detect_landmarks(images, detect_pose=False)), args.repeats)
    keypoints = detect_landmarks(images, detect_pose=False)
    learned_s, learned_all, learned = timed(lambda: encode_frames(network, images, keypoints), args.repeats)
    figures["learned_128"] = {"codes_per_second_with_detection": rate(learned_full_s),
                              "codes_per_second_without_detection": rate(learned_s), "code_dim": learned.dim,
                              "parameters": sum(p.numel() for p in network.parameters())}
    print(f"learned-128   with detection {rate(learned_full_s):7.1f} codes/s (runs: "
          f"{', '.join(f'{n / t:.1f}' for t in learned_full_all)});  crop + network {rate(learned_s):7.1f} codes/s "
          f"(runs: {', '.join(f'{n / t:.1f}' for t in learned_all)})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
