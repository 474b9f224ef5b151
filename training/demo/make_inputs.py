"""Make the main job's shipped inputs from the synthetic generator (identities no training
clip has: the training data is seed 0, the held-out test set seed 1000).

    python training/demo/make_inputs.py [--out assets] [--frames 81] [--only driving]

- ``factorportrait_demo_reference.png``: the portrait to animate (seed 2000), 256x256;
- ``factorportrait_demo_driving.mp4``: another identity (seed 3000) talking, smiling and
  turning its head in front of a static camera, 81 frames (the paper's clip length; 4k+1
  for Wan) at 15 fps, 256x256: the most expressive of the first candidates (range of
  jawOpen and smiles plus head motion).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SEED, DRIVING_SEED = 2000, 3000
REFERENCE_NAME, DRIVING_NAME = "factorportrait_demo_reference.png", "factorportrait_demo_driving.mp4"
SIZE, FRAMES, FPS, CANDIDATES = 256, 81, 15, 6


def write_mp4(frames: torch.Tensor, path: Path, fps: int = FPS) -> None:
    """uint8 frames ``[F, H, W, 3]`` (even H and W) as an H.264 mp4, nearly lossless (crf 12)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        for image in frames.numpy():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def expressiveness(sample) -> float:
    from factorportrait.models.body.anny_model import ARKIT_FACE_ACTIONS

    codes = sample.expression
    channels = [ARKIT_FACE_ACTIONS.index(c) for c in ("jawOpen", "mouthSmileLeft", "mouthSmileRight")]
    face = float((codes[:, channels].amax(0) - codes[:, channels].amin(0)).sum())
    head = torch.tensor(sample.info["pose"]["head"])
    return face + float((head.amax(0) - head.amin(0)).norm()) * 4


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets")
    parser.add_argument("--anny-cache", type=Path, default=ROOT / ".host" / "ComfyUI" / "models" / "anny")
    parser.add_argument("--frames", type=int, default=FRAMES, help="driving video frames, 4k+1 (default: %(default)s)")
    parser.add_argument("--only", choices=("reference", "driving"), help="write only this file")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "scripts"))
    import devpack

    devpack.import_pack()
    from PIL import Image

    from factorportrait.models.body import load_anny
    from factorportrait.training.synthetic.generate import generate_clip

    model = load_anny(args.anny_cache)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only != "driving":
        reference = generate_clip(model, REFERENCE_SEED, 0, frames=5, width=SIZE, height=SIZE, regime="phone")
        Image.fromarray(reference.reference.numpy()).save(args.out / REFERENCE_NAME)
        print(f"wrote {args.out / REFERENCE_NAME}")
    if args.only != "reference":
        candidates = [generate_clip(model, DRIVING_SEED, i, frames=args.frames, width=SIZE, height=SIZE,
                                    regime="phone") for i in range(CANDIDATES)]
        driving = max(candidates, key=expressiveness)
        write_mp4(driving.frames, args.out / DRIVING_NAME)
        print(f"wrote {args.out / DRIVING_NAME} ({args.frames} frames, clip {driving.info['index']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
