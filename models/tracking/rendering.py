"""Normal maps of a body track seen by a camera trajectory (any device, in chunks).

Frame pairing: equal lengths go frame by frame; a static camera (one frame, or every frame
the same, as "static" camera trajectories of any length are) follows every frame of the
track; a one-frame track is seen by every camera frame; other lengths are an error.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..camera.trajectory import CameraTrajectory
from ..errors import InputError
from ..render.normal_maps import render_normal_maps
from .body_track import BodyTrack

FRAMES_PER_CHUNK = 8  # vertices and images of this many frames at once


def is_static(camera: CameraTrajectory) -> bool:
    """Whether every frame has the same extrinsics and intrinsics."""
    first = camera.frames([0])
    return all(bool((getattr(camera, k) == getattr(first, k)).all())
               for k in ("w2c", "focal", "pixel_aspect", "principal"))


def pair_camera(camera: CameraTrajectory, track_frames: int) -> CameraTrajectory:
    """The camera to render ``track_frames`` frames with (see the module docstring)."""
    if camera.num_frames == track_frames or track_frames == 1:
        return camera
    if is_static(camera):
        return camera.frames([0])
    raise InputError("camera", f"the camera moves over {camera.num_frames} frames but the body track has "
                     f"{track_frames}; set 'frames' on the Camera Trajectory node to {track_frames} (or use a "
                     f"static camera, which follows any number of frames), or trim the driving video to "
                     f"{camera.num_frames} frames.")


def render_track_normals(track: BodyTrack, camera: CameraTrajectory, width: int, height: int, *,
                         backend: str = "torch", device: torch.device | str = "cpu",
                         progress: Callable[[int, int], None] | None = None,
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Normal maps ``[N, H, W, 3]`` (DESIGN.md encoding) and masks ``[N, H, W]`` on ``device``.

    ``N`` is the track's length, or the camera's for a one-frame track. Vertices are
    evaluated and rendered ``FRAMES_PER_CHUNK`` frames at a time; ``progress(done, N)``
    after each chunk (it may raise to cancel).
    """
    if backend == "moderngl":
        from ..render.moderngl_backend import is_available

        ok, why = is_available()
        if not ok:
            raise InputError("backend", f"moderngl cannot run here ({why}); install the 'opengl' extra "
                             "(pip install moderngl) with an EGL driver (Mesa), or choose 'torch'.")
    camera = pair_camera(camera, track.frames)
    n = max(track.frames, camera.num_frames)
    model = track.model
    images, masks = [], []
    for f0 in range(0, n, FRAMES_PER_CHUNK):
        f1 = min(f0 + FRAMES_PER_CHUNK, n)
        mesh_frames = list(range(f0, f1)) if track.frames > 1 else [0]
        cam = camera.frames(list(range(f0, f1))) if camera.num_frames > 1 else camera
        vertices = track.vertices(mesh_frames).to(device)
        image, mask = render_normal_maps(vertices, model.faces.to(device), cam, width, height, backend=backend)
        images.append(image)
        masks.append(mask)
        if progress is not None:
            progress(f1, n)
    return torch.cat(images), torch.cat(masks)
