"""Hair, clothing and whatever else of the person the bald upper-body template does not
cover, as a mesh tied to the body.

The layer is the person's matte minus the template's silhouette at the photo's view,
widened by a grid step (the matte's own alpha, looked up at render time, draws the exact
edge). Each pixel of it is lifted to 3-D at the depth of the nearest template pixel (a
shell around the head for hair, the chest's depth for clothing below the template's cut),
pushed ``BEHIND_BODY`` back so the template wins where both are, and smoothed so the shell
has no steps. A grid mesh with a vertex every ``step`` pixels spans it; triangles across a
depth jump larger than ``MAX_JUMP`` are dropped (no rubber sheets between hair and the
background). Each vertex takes the skinning weights of the template at its nearest pixel,
so hair moves with the head and clothing with the torso.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..render import rasterize as rz

BEHIND_BODY = 0.01  # metres
MAX_JUMP = 0.06  # metres of depth within one triangle
SMOOTH_STEPS = 2.0  # Gaussian blur of the depth, in grid steps
MIN_ALPHA = 0.05
CHIN_BAND = (0.1, 0.4)  # face sizes above the chin where the blend starts, and its length


@dataclass(frozen=True)
class Layer:
    """Attributes:
        vertices: ``[L, 3]`` world positions at the photo's pose.
        faces: ``[M, 3]`` int64 indices into ``vertices``.
        skin_weights: ``[L, J]`` the template's joint weights at each vertex.
    """

    vertices: Tensor
    faces: Tensor
    skin_weights: Tensor


def grid_step(width: int, height: int) -> int:
    """Pixels between layer vertices: about 100 along the photo's longer side."""
    return max(2, round(max(width, height) / 100))


def body_joints(model) -> tuple[list[int], int]:
    """The joints of the neck and head, and the last torso joint, of a body model."""
    groups = model.joint_groups
    head = [j for j, g in enumerate(groups) if g in ("neck", "head")]
    torso = max(j for j, g in enumerate(groups) if g == "torso")
    return head, torso


def build_layer(alpha: Tensor, fragments: rz.Fragments, pixel_weights: Tensor, c2w: Tensor, k: Tensor,
                step: int, chin_y: float, face_size: float, joints: tuple[list[int], int]) -> Layer:
    """The layer of a photo (see the module docstring).

    Args:
        alpha: the person's matte ``[H, W]``.
        fragments: the template rendered at the photo's view (one frame, ``H x W``).
        pixel_weights: the template's skinning weights interpolated at its pixels ``[H, W, J]``.
        c2w: the photo camera's camera-to-world ``[4, 4]``; ``k``: its intrinsics ``[3, 3]``.
        step: pixels between grid vertices.
        chin_y, face_size: the chin's row and the face's size in pixels: below the chin the
            layer (a collar, long hair on the shoulders) follows the torso, not the head,
            blended over ``CHIN_BAND`` face sizes.
        joints: :func:`body_joints` of the model.
    """
    import cv2

    height, width = alpha.shape
    body = fragments.face_id[0] >= 0
    num_joints = pixel_weights.shape[-1]
    empty = Layer(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, num_joints))
    if not bool(body.any()):
        return empty
    person = (alpha > MIN_ALPHA) & ~body
    if not bool(person.any()):
        return empty
    region = cv2.dilate(person.numpy().astype(np.uint8), np.ones((2 * step + 1, 2 * step + 1), np.uint8)) > 0

    # The nearest template pixel of every pixel: its depth and weights.
    src = (~body).numpy().astype(np.uint8)
    _dist, labels = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    body_pixels = torch.from_numpy(np.argwhere(src == 0))  # raster order = label order
    nearest = body_pixels[torch.from_numpy(labels.astype(np.int64)) - 1]  # [H, W, 2] (row, col)
    depth = fragments.depth[0][nearest[..., 0], nearest[..., 1]].numpy() + BEHIND_BODY
    depth = cv2.GaussianBlur(depth.astype(np.float32), (0, 0), SMOOTH_STEPS * step)
    weights = pixel_weights[nearest[..., 0], nearest[..., 1]]  # [H, W, J]

    # Grid vertices every `step` pixels inside the region, the first and last on the
    # photo's edges (so the layer reaches them); each reads the pixel it lies in.
    ys = torch.linspace(0, height, max(2, -(-height // step) + 1), dtype=torch.float64)
    xs = torch.linspace(0, width, max(2, -(-width // step) + 1), dtype=torch.float64)
    rows, cols = ys.long().clamp(max=height - 1), xs.long().clamp(max=width - 1)
    inside = torch.from_numpy(region)[rows][:, cols]  # [gh, gw]
    index = torch.full(inside.shape, -1, dtype=torch.long)
    index[inside] = torch.arange(int(inside.sum()))
    grid = inside.shape
    rr, cc = rows[:, None].expand(grid)[inside], cols[None].expand(grid)[inside]
    z = torch.from_numpy(depth)[rr, cc].double()
    pix = torch.stack([xs[None].expand(grid)[inside], ys[:, None].expand(grid)[inside], torch.ones_like(z)], -1)
    cam = (pix @ torch.linalg.inv(k.double()).T) * z[:, None]
    world = cam @ c2w[:3, :3].double().T + c2w[:3, 3].double()

    a, b = index[:-1, :-1], index[:-1, 1:]
    c, d = index[1:, :-1], index[1:, 1:]
    tris = torch.cat([torch.stack([a, c, b], -1).reshape(-1, 3), torch.stack([b, c, d], -1).reshape(-1, 3)])
    tris = tris[(tris >= 0).all(1)]
    if len(tris):
        tz = z[tris]
        tris = tris[(tz.max(1).values - tz.min(1).values) <= MAX_JUMP]
    w = weights[rr, cc].float()
    head, torso = joints
    to_torso = w.clone()
    to_torso[:, torso] += to_torso[:, head].sum(1)
    to_torso[:, head] = 0
    below = ((rr.float() - chin_y) / (face_size * CHIN_BAND[1]) + CHIN_BAND[0] / CHIN_BAND[1]).clamp(0, 1)
    w = (1 - below[:, None]) * w + below[:, None] * to_torso
    return Layer(world.float(), tris, w)
