"""The background: the photo with the person removed and filled, on a plane behind them.

The person's region (the matte, widened so no halo of hair or skin stays behind) is filled
by OpenCV's inpainting on a reduced copy (Telea's method; the fill is smooth, as a defocused
background is), then pasted back at full size only inside that region, so the background
keeps the photo's own pixels everywhere the person did not cover.

The person is composited over it with the *layer matte* ``a``: the person's matte widened
by ``BAND`` and feathered (``inpaint_background`` returns both), so that the soft edge of a
matte that missed a few pixels of hair carries them along.
Where that matte is partial, the person's colours are separated from the background,
``F = (I - (1 - a) B) / a`` (the matting equation), so that re-compositing ``a F + (1 - a) B``
gives the photo back exactly at its own view. The price: a thin band of the old background
around the person (the widening) moves with them under a new camera.

The plane stands ``BEHIND`` metres behind the subject's head, facing the photo's camera:
a camera that moves sees it shift by the parallax of that depth
(:func:`plane_lookup`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

BEHIND = 1.0  # metres between the head and the background plane
FILL_SIDE = 256  # pixels on the longer side of the copy that is inpainted
WIDEN = 0.02  # the filled region reaches this fraction of the photo's size beyond the matte
BAND = 0.006  # the layer matte reaches this fraction beyond it (the rest of the region is new background)
MIN_ALPHA = 0.05  # below this the matte counts as background


def inpaint_background(rgb: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """The photo ``[H, W, 3]`` with the person (matte ``[H, W]``) removed and filled
    ``[H, W, 3]``, and the layer matte ``[H, W]`` (see the module docstring)."""
    import cv2

    height, width = alpha.shape
    radius = max(1, round(WIDEN * max(height, width)))
    region = (alpha.numpy() > MIN_ALPHA).astype(np.uint8)
    region = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    if not region.any():
        return rgb.clone(), alpha.clone()
    scale = min(1.0, FILL_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize((rgb.numpy() * 255).astype(np.uint8), size, interpolation=cv2.INTER_AREA)
    small_region = cv2.resize(region, size, interpolation=cv2.INTER_NEAREST)
    small_region = cv2.dilate(small_region, np.ones((3, 3), np.uint8))
    if small_region.all():  # the person fills the photo: nothing to take the background from
        filled = np.full_like(small, int(np.median(small.reshape(-1, 3), 0).mean()))
    else:
        filled = cv2.inpaint(small, small_region, 5, cv2.INPAINT_TELEA)
    filled = cv2.resize(filled, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    # Feather the paste over a few pixels so the region's edge leaves no seam.
    soft = cv2.GaussianBlur(region.astype(np.float32), (0, 0), max(1.0, radius / 4))
    soft = np.maximum(soft, region.astype(np.float32))[..., None]
    out = soft * np.clip(filled, 0, 1) + (1 - soft) * rgb.numpy()
    band = max(1, round(BAND * max(height, width)))
    near = cv2.dilate((alpha.numpy() > MIN_ALPHA).astype(np.uint8),
                      cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1)))
    near = cv2.GaussianBlur(near.astype(np.float32), (0, 0), band / 2)
    layer_matte = np.maximum(near, alpha.numpy())
    return torch.from_numpy(out.astype(np.float32)), torch.from_numpy(layer_matte.astype(np.float32))


def person_colours(rgb: Tensor, alpha: Tensor, background: Tensor) -> Tensor:
    """The person's own colours ``[H, W, 3]``: the photo unmixed from the background where
    the matte ``[H, W]`` is partial (see the module docstring); the photo where it is 0 or 1."""
    a = alpha[..., None]
    unmixed = ((rgb - (1 - a) * background) / a.clamp(min=MIN_ALPHA)).clamp(0, 1)
    return torch.where(a > MIN_ALPHA, unmixed, rgb)


def plane_homography(c2w: Tensor, k_inv: Tensor, ref_w2c: Tensor, ref_k: Tensor, depth: float) -> Tensor:
    """The map from new views' pixels to the photo's pixels through the background plane
    ``[F, 3, 3]`` (homogeneous pixel coordinates, centres at +0.5).

    The plane is ``z = depth`` in the photo's camera space; a plane maps one view's pixels
    to another's by a homography: a point ``X`` on it (photo camera space, ``n^T X = depth``
    with ``n = (0, 0, 1)``) is ``R X + t = (R + t n^T / depth) X`` in a new camera (``R, t``:
    photo camera to new camera), so photo pixels map to new ones by
    ``K (R + t n^T / depth) K_ref^-1`` and back by its inverse.

    Args:
        c2w: the new cameras' camera-to-world ``[F, 4, 4]``; ``k_inv``: their inverse pixel
            intrinsics ``[F, 3, 3]``.
        ref_w2c, ref_k: the photo camera's world-to-camera ``[4, 4]`` and intrinsics ``[3, 3]``
            (of the photo's size).
        depth: the plane's depth in the photo's camera (metres).
    """
    f64 = torch.float64
    ref_to_new = torch.linalg.inv(ref_w2c.to(f64) @ c2w.to(f64))  # [F, 4, 4]
    normal = torch.tensor([0.0, 0.0, 1.0], dtype=f64)
    plane = ref_to_new[:, :3, :3] + ref_to_new[:, :3, 3:] * normal / depth  # [F, 3, 3]
    return (ref_k.to(f64) @ torch.linalg.inv(plane) @ k_inv.to(f64)).float()


def map_pixels(homography: Tensor, frame: Tensor, pixel: Tensor, width: int) -> Tensor:
    """Photo pixel positions ``[M, 2]`` of the pixels ``pixel`` (flat index in a frame of
    ``width`` columns) of frames ``frame`` (``[M]`` each), through ``homography`` ``[F, 3, 3]``.
    A pixel whose ray misses the plane (a camera looking away from it) lands far outside."""
    u = (pixel % width).float() + 0.5
    v = torch.div(pixel, width, rounding_mode="floor").float() + 0.5
    h = homography.index_select(0, frame)  # [M, 3, 3]
    uvw = h[:, :, 0] * u[:, None] + h[:, :, 1] * v[:, None] + h[:, :, 2]
    w = uvw[:, 2:]
    return uvw[:, :2] / torch.where(w > 1e-6, w, torch.full_like(w, 1e-6))


def plane_lookup(c2w: Tensor, k_inv: Tensor, ref_w2c: Tensor, ref_k: Tensor, depth: float, width: int,
                 height: int) -> Tensor:
    """Where the photo's camera sees the background plane behind each pixel of new views:
    photo pixel positions ``[F, H, W, 2]`` (see :func:`plane_homography` for the arguments)."""
    homography = plane_homography(c2w, k_inv, ref_w2c, ref_k, depth)
    frames = homography.shape[0]
    pixel = torch.arange(height * width).repeat(frames)
    frame = torch.arange(frames).repeat_interleave(height * width)
    return map_pixels(homography, frame, pixel, width).reshape(frames, height, width, 2)
