"""The README's picture of the main job, from its real output: the photo, driving frames and
the rendered frames at the same moments (the camera orbit's start, middle and end).

    python scripts/avatar_figure.py [--video output/factorportrait/avatar_00001_.mp4]
        [--driving assets/factorportrait_demo_driving.mp4] [--photo assets/astronaut.png]
        [--out docs/avatar_main_job.png]

Run ``scripts/run_default.py`` first (it writes the video); with ``--driving`` and the same
file given to ``run_default.py --driving`` it shows a run on another clip.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devpack import ROOT  # noqa: E402

TILE = 256
GAP = 6


def read_frames(path: Path) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def tile(image: np.ndarray) -> np.ndarray:
    """The image fitted into a TILE x TILE square (letterboxed on white)."""
    import cv2

    h, w = image.shape[:2]
    scale = TILE / max(h, w)
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    out = np.full((TILE, TILE, 3), 255, np.uint8)
    y, x = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def row(images: list[np.ndarray]) -> np.ndarray:
    gap = np.full((TILE, GAP, 3), 255, np.uint8)
    parts = []
    for image in images:
        parts += [tile(image), gap]
    return np.concatenate(parts[:-1], 1)


def main(argv: list[str] | None = None) -> int:
    import cv2

    newest = sorted((ROOT / "output" / "factorportrait").glob("avatar_0*.mp4"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=newest[-1] if newest else None)
    parser.add_argument("--driving", type=Path, default=ROOT / "assets" / "factorportrait_demo_driving.mp4")
    parser.add_argument("--photo", type=Path, default=ROOT / "assets" / "astronaut.png")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "avatar_main_job.png")
    args = parser.parse_args(argv)
    if args.video is None or not args.video.is_file():
        print("error: no rendered video; run scripts/run_default.py first", file=sys.stderr)
        return 2
    rendered, driving = read_frames(args.video), read_frames(args.driving)
    n = min(len(rendered), len(driving))
    moments = [0, n // 2, n - 1]
    photo = cv2.imread(str(args.photo), cv2.IMREAD_COLOR)
    blank = np.full_like(photo, 255)
    top = row([photo] + [driving[i] for i in moments])
    bottom = row([blank] + [rendered[i] for i in moments])
    figure = np.concatenate([top, np.full((GAP, top.shape[1], 3), 255, np.uint8), bottom], 0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), figure)
    print(f"wrote {args.out} (frames {moments} of {n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
