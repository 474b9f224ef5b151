"""Pose, depth and mask videos of a posed body (and an avatar's layer and background) from a
camera, made together in chunks of frames: one body-model pass and one rasterizer pass per
chunk serve all three.

The controls come from a body track (its frames, optionally with ARKit expression codes and
a camera: ``track_controls``) or from an avatar (``avatar/controls.py``: the track
retargeted onto the photo), as per-frame body-model parameters and a camera; this file
only renders them. Memory beyond the three outputs is one chunk's: the depth waits in the
depth output's first channel until the clip's range is known, then is stretched in place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..avatar.avatar import Avatar
from ..avatar.controls import frame_count, still_as_one, with_arkit_face
from ..avatar.render import layer_world
from ..body.upper_body import UpperBodyModel, UpperBodyParams
from ..camera.trajectory import CameraTrajectory
from ..errors import InputError
from ..expression.codes import ExpressionCodes
from ..tracking.body_track import BodyTrack
from .depth import depth_to_image, disparity_range, merge_ranges
from .face68 import SurfacePoints
from .pose_drawing import draw_pose
from .scene import Plane, render_depth
from .skeleton import Skeleton2D, project_skeleton, skeleton_3d

FRAMES_PER_CHUNK = 8
Progress = Callable[[int, int], None]


@dataclass
class ControlVideos:
    """The renders of ``N`` frames.

    Attributes:
        pose: skeleton images ``[N, H, W, 3]`` (float32 0..1, black background).
        depth: inverse-depth images ``[N, H, W, 3]`` (near bright, stretched over the clip).
        mask: the person ``[N, H, W]`` (1 on the body and the avatar's layer, else 0).
        skeleton: the drawn points (pixels and visibility) of every frame.
    """

    pose: Tensor
    depth: Tensor
    mask: Tensor
    skeleton: Skeleton2D


def track_controls(track: BodyTrack, expression: ExpressionCodes | None = None,
                   camera: CameraTrajectory | None = None) -> tuple[UpperBodyParams, CameraTrajectory]:
    """Per-frame parameters ``[N]`` of a body track (its own face actions, or ARKit codes
    when given) and the camera to see them from (the track's own when None; ``N`` frames or
    one). Lengths as ``avatar/controls.frame_count`` pairs them."""
    n = frame_count(track, expression, camera)
    params = track.params if track.frames == n else track.params.select([0] * n)
    if expression is not None:
        params = with_arkit_face(params, expression, f"the face of a {track.model.name} body track (anny's)")
    if camera is None:
        camera = track.camera if track.camera.num_frames == n else track.camera.frames([0] * n)
    return params, still_as_one(camera)


def render_controls(model: UpperBodyModel, params: UpperBodyParams, camera: CameraTrajectory, width: int,
                    height: int, *, face68: SurfacePoints | None = None, avatar: Avatar | None = None,
                    style: str = "wan_animate", progress: Progress | None = None,
                    frames_per_chunk: int = FRAMES_PER_CHUNK) -> ControlVideos:
    """Pose, depth and mask videos of ``N = params.frames`` frames.

    Args:
        model: the body model ``params`` belong to.
        camera: ``N`` frames or one.
        face68: the iBUG face points on ``model`` (None: no face points drawn).
        avatar: adds its layer (hair, clothing) to the depth and mask, and its background
            plane to the depth.
        style: the skeleton's drawing style (``pose_drawing.STYLES``).
        progress: ``(done, N)`` after each chunk; may raise to cancel.
    """
    n = params.frames
    if camera.num_frames not in (1, n):
        raise InputError("camera", f"the camera has {camera.num_frames} frames but {n} frames are rendered; use a "
                                   f"camera of {n} frames or a static one.")
    faces = model.faces.long()
    plane = None
    if avatar is not None:
        faces = torch.cat([faces, avatar.layer.faces + model.num_vertices])
        plane = Plane.facing_camera(avatar.camera, avatar.plane_depth)
    pose = torch.empty(n, height, width, 3)
    images = torch.empty(n, height, width, 3)  # depth in metres in channel 0 until the clip's range is known
    mask = torch.empty(n, height, width)
    points: list[Skeleton2D] = []
    near_far = None
    for f0 in range(0, n, frames_per_chunk):
        f1 = min(f0 + frames_per_chunk, n)
        chunk = params.select(slice(f0, f1))
        cam = camera if camera.num_frames == 1 else camera.frames(list(range(f0, f1)))
        with torch.no_grad():
            body = model(chunk).float()
            world = body if avatar is None else torch.cat([body, layer_world(avatar, chunk)], 1)
        depth, covered = render_depth(world, faces, cam, width, height, plane)
        skeleton = project_skeleton(skeleton_3d(model.landmarks(body), body, face68), cam, width, height,
                                    depth * covered)
        drawn = draw_pose(skeleton.body, skeleton.body_visible, skeleton.face, skeleton.face_visible,
                          width=width, height=height, style=style)
        pose[f0:f1] = torch.from_numpy(drawn).float().div_(255.0)
        images[f0:f1, ..., 0] = depth
        near_far = merge_ranges(near_far, disparity_range(depth))
        mask[f0:f1] = covered.float()
        points.append(skeleton)
        if progress is not None:
            progress(f1, n)
    for f0 in range(0, n, frames_per_chunk):
        chunk_images = images[f0:f0 + frames_per_chunk]
        depth_to_image(chunk_images[..., 0].clone(), near_far, out=chunk_images)
    return ControlVideos(pose, images, mask, _concat(points))


def _concat(parts: list[Skeleton2D]) -> Skeleton2D:
    face = None if parts[0].face is None else torch.cat([p.face for p in parts])
    face_visible = None if parts[0].face_visible is None else torch.cat([p.face_visible for p in parts])
    return Skeleton2D(torch.cat([p.body for p in parts]), torch.cat([p.body_visible for p in parts]), face,
                      face_visible)

