"""The README's picture of the Wan control renders, made from a real photo used as a
one-frame driving video: the driving frame, then what Wan Controls and Face Video make of
it, at the photo's own view and with the camera turned 25 degrees.

    python scripts/wan_controls_figure.py [--photo assets/astronaut.png] [--out docs/wan_controls.png]

The photo is tracked (MediaPipe + the body fit, as Track Body Mesh does), its avatar built
(Build Avatar), and the controls rendered from the avatar driven by that track.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devpack import ROOT, anny_cache_dir, import_pack, load_anny_printing  # noqa: E402
from real_inputs import read_image  # noqa: E402

SIZE = 448
TILE = 224
GAP = 6
TURN = 25.0  # degrees of the second row's camera


def main() -> None:
    import cv2
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=ROOT / "assets" / "astronaut.png")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "wan_controls.png")
    args = parser.parse_args()
    import_pack()
    from factorportrait.models.avatar.avatar import build_avatar
    from factorportrait.models.avatar.controls import avatar_controls
    from factorportrait.models.avatar.render import render_avatar
    from factorportrait.models.camera import paths
    from factorportrait.models.expression.face_correspondence import load_face_correspondence
    from factorportrait.models.tracking.body_track import track_body
    from factorportrait.models.tracking.mediapipe_detector import detect_landmarks
    from factorportrait.models.wan_controls.controls import render_controls
    from factorportrait.models.wan_controls.face68 import face68_on_anny
    from factorportrait.models.wan_controls.face_crops import crop_faces, driving_face_points, face_boxes

    model = load_anny_printing()
    correspondence = load_face_correspondence(anny_cache_dir(), model)
    face68 = face68_on_anny(model, correspondence)
    photo = read_image(args.photo)[..., :3]
    avatar = build_avatar(model, correspondence, photo)
    track = track_body(model, detect_landmarks(photo, video=False))
    start = paths.reference_view(avatar.camera)
    camera = paths.trajectory_from_channels(torch.stack([torch.tensor(replace(start, yaw=start.yaw + y).vector())
                                                         for y in (0.0, TURN)]).double())
    params, view, _ = avatar_controls(avatar, track, None, camera)
    styles = {s: render_controls(model, params, view, SIZE, SIZE, face68=face68, avatar=avatar, style=s)
              for s in ("wan_animate", "dwpose")}
    rendered, _ = render_avatar(avatar, params, view, SIZE, SIZE)
    face = crop_faces(photo, face_boxes(driving_face_points(track, face68)))[0]

    def tile(image: torch.Tensor) -> np.ndarray:
        pixels = (image.clamp(0, 1).numpy() * 255).astype(np.uint8)
        return cv2.resize(pixels, (TILE, TILE), interpolation=cv2.INTER_AREA)

    wan, dw = styles["wan_animate"], styles["dwpose"]
    rows = []
    for f, first in ((0, photo[0]), (1, rendered[1])):
        cells = [first, face if f == 0 else torch.ones(SIZE, SIZE, 3), wan.pose[f], dw.pose[f], wan.depth[f],
                 wan.mask[f][..., None].expand(-1, -1, 3)]
        tiles = [tile(c) for c in cells]
        row = np.full((TILE, len(tiles) * (TILE + GAP) - GAP, 3), 255, np.uint8)
        for i, t in enumerate(tiles):
            row[:, i * (TILE + GAP):i * (TILE + GAP) + TILE] = t
        rows.append(row)
    captions = ["driving frame / avatar +25 deg", "face_video", "pose: wan_animate", "pose: dwpose", "depth_video",
                "mask"]
    header = np.full((22, rows[0].shape[1], 3), 255, np.uint8)
    for i, text in enumerate(captions):
        cv2.putText(header, text, (i * (TILE + GAP) + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    picture = np.concatenate([header, rows[0], np.full((GAP, rows[0].shape[1], 3), 255, np.uint8), rows[1]])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
