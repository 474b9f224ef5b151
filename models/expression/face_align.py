"""The aligned face crop that the expression image encoder reads.

Per frame, a similarity (rotation, uniform scale, translation; no reflection, no shear) is
fitted by weighted least squares from five face points to ``FACE_TEMPLATE``, and the frame
is warped with it into a ``size x size`` crop. A similarity keeps the face's proportions,
so the crop still shows the expression (a full affine fit would squash an open mouth back
onto the template).

Coordinates follow ``Keypoints2D``: continuous pixels with pixel centres at +0.5, in the
image and in the crop alike. The matrices map image pixels to crop pixels.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import warp_affine
from torch import Tensor

from ..errors import InputError
from ..tracking.keypoints import Keypoints2D

# The five points, each the mean of the named landmarks, with a single-landmark fallback
# (OpenPose gives only eye centres; MediaPipe's face mesh has no eye-centre point).
FACE_POINTS: tuple[tuple[tuple[str, ...], str | None], ...] = (
    (("eye_right_inner", "eye_right_outer"), "eye_right_center"),
    (("eye_left_inner", "eye_left_outer"), "eye_left_center"),
    (("nose_tip",), None),
    (("mouth_right",), None),
    (("mouth_left",), None),
)

# Where the five points land, as fractions of the crop size (x right, y down), in the order
# of FACE_POINTS. The subject's right eye is on the image's left. Average frontal-face
# proportions (eye-to-mouth 1.16 and mouth width 0.83 eye distances, nose tip 0.56 of the
# way down to the mouth), scaled so the eye centres are a quarter of the crop apart at 40%
# of its height: the whole face with brows, chin and some hair and background around it
# fits, so an open mouth or raised brows are not cut off.
FACE_TEMPLATE: tuple[tuple[float, float], ...] = (
    (0.375, 0.40), (0.625, 0.40), (0.500, 0.54), (0.396, 0.69), (0.604, 0.69),
)

MIN_CONFIDENCE = 0.3  # a landmark below this does not count as seen
MIN_POINTS = 3  # two points fix a similarity exactly; a third makes a bad one visible


class AlignedFaces(NamedTuple):
    """Attributes:
        crops: ``[F, 3, size, size]`` float32 RGB in 0..1.
        matrices: ``[F, 2, 3]`` image pixel -> crop pixel similarities.
        filled: frames without enough face points, which use their nearest frame's matrix.
    """

    crops: Tensor
    matrices: Tensor
    filled: list[int]


def face_template(size: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``FACE_TEMPLATE`` in the pixels of a ``size x size`` crop: ``[5, 2]``."""
    return torch.tensor(FACE_TEMPLATE, dtype=dtype) * size


def face_points(keypoints: Keypoints2D, min_confidence: float = MIN_CONFIDENCE) -> tuple[Tensor, Tensor]:
    """The five alignment points of every frame.

    Returns:
        points ``[F, 5, 2]`` in the keypoints' pixels and weights ``[F, 5]``: a point's
        weight is the lowest confidence of its landmarks, 0 when one is below
        ``min_confidence`` (its position is then meaningless).
    """
    index = {name: i for i, name in enumerate(keypoints.names)}
    points = keypoints.points.new_zeros(keypoints.frames, len(FACE_POINTS), 2)
    weights = keypoints.points.new_zeros(keypoints.frames, len(FACE_POINTS))
    for j, (names, fallback) in enumerate(FACE_POINTS):
        for group in (names, (fallback,) if fallback else ()):
            if not group or any(n not in index for n in group):
                continue
            idx = [index[n] for n in group]
            conf = keypoints.confidence[:, idx].min(1).values
            use = (conf >= min_confidence) & (weights[:, j] == 0)  # the fallback only fills gaps
            points[use, j] = keypoints.points[use][:, idx].mean(1)
            weights[use, j] = conf[use]
    return points, weights


def fit_similarity(src: Tensor, dst: Tensor, weights: Tensor | None = None) -> Tensor:
    """Weighted least-squares similarity ``dst ~ s R src + t`` without reflection.

    Written by hand: kornia 0.9 estimates affine maps (``find_affine``) and homographies,
    but no closed-form similarity. In 2-D a scaled rotation is ``[[a, -b], [b, a]]``, so
    the least-squares problem is linear in ``(a, b)`` and has the closed form below
    (Umeyama's solution with the reflection excluded); ``a`` and ``b`` are the dot and
    cross products of the centred point sets over the source's spread.

    Args:
        src, dst: ``[B, N, 2]`` corresponding points.
        weights: ``[B, N]`` non-negative (None: all 1).

    Returns:
        ``[B, 2, 3]`` matrices ``[s R | t]`` (dtype of ``src``); NaN where the weighted
        source points do not span a distance (fewer than two distinct points).
    """
    x, y = src.double(), dst.double()
    w = torch.ones_like(x[..., 0]) if weights is None else weights.double()
    total = w.sum(-1, keepdim=True).clamp_min(1e-300)
    x_mean = (w[..., None] * x).sum(-2) / total
    y_mean = (w[..., None] * y).sum(-2) / total
    xc, yc = x - x_mean[:, None], y - y_mean[:, None]
    spread = (w * xc.square().sum(-1)).sum(-1)
    dot = (w * (xc * yc).sum(-1)).sum(-1)
    cross = (w * (xc[..., 0] * yc[..., 1] - xc[..., 1] * yc[..., 0])).sum(-1)
    ok = spread > 1e-12 * (w * x.square().sum(-1)).sum(-1).clamp_min(1e-300)
    spread = torch.where(ok, spread, torch.nan)
    a, b = dot / spread, cross / spread
    linear = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)
    t = y_mean - (linear @ x_mean[..., None])[..., 0]
    return torch.cat([linear, t[..., None]], -1).to(src.dtype)


def alignment_matrices(keypoints: Keypoints2D, size: int, image_size: tuple[int, int] | None = None,
                       min_confidence: float = MIN_CONFIDENCE) -> tuple[Tensor, list[int]]:
    """Per-frame image -> crop similarities onto ``FACE_TEMPLATE``.

    Args:
        keypoints: landmarks of ``F`` frames.
        size: crop size in pixels.
        image_size: ``(H, W)`` of the frames to warp when they differ from the keypoints'
            (the same video at another resolution: the points are scaled; another aspect
            ratio is an error).

    Returns:
        ``[F, 2, 3]`` float32 matrices and the frames filled from their nearest frame
        with a face (ties: the earlier one).
    """
    points, weights = face_points(keypoints, min_confidence)
    if image_size is not None and tuple(image_size) != (keypoints.height, keypoints.width):
        h, w = image_size
        sx, sy = w / keypoints.width, h / keypoints.height
        if abs(sx / sy - 1) > 0.01:
            raise InputError("keypoints", f"the keypoints are for {keypoints.width}x{keypoints.height} "
                             f"frames but the images are {w}x{h} (another aspect ratio); detect the "
                             "keypoints on these images.")
        points = points * points.new_tensor([sx, sy])
    template = face_template(size, torch.float64).expand(keypoints.frames, -1, -1)
    matrices = fit_similarity(points.double(), template, weights)
    good = ((weights > 0).sum(1) >= MIN_POINTS) & torch.isfinite(matrices).flatten(1).all(1)
    if not good.any():
        raise InputError("images", f"no face was found in any of the {keypoints.frames} frames (at "
                         f"least {MIN_POINTS} of eyes, nose tip and mouth corners with confidence "
                         f">= {min_confidence} are needed); use a driving video where the face is "
                         "visible, or check that the keypoints belong to these images.")
    have = torch.nonzero(good)[:, 0]
    frames = torch.arange(keypoints.frames)
    nearest = have[(frames[:, None] - have[None]).abs().argmin(1)]  # argmin takes the first tie
    return matrices[nearest].float(), torch.nonzero(~good)[:, 0].tolist()


def to_rgb(images: Tensor) -> Tensor:
    """ComfyUI IMAGE ``[F, H, W, C]`` (C = 1, 3 or 4) -> ``[F, 3, H, W]`` float32:
    grayscale replicated, alpha dropped."""
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4) or not images.is_floating_point():
        raise InputError("images", f"expected a float IMAGE [frames, height, width, 1|3|4], got "
                         f"{tuple(images.shape)} {images.dtype}.")
    x = images[..., :3].float().permute(0, 3, 1, 2)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def warp_faces(images: Tensor, matrices: Tensor, size: int, padding_mode: str = "border") -> Tensor:
    """Warp frames into aligned crops.

    Args:
        images: ComfyUI IMAGE ``[F, H, W, C]``, C = 1, 3 or 4, values 0..1.
        matrices: ``[F, 2, 3]`` image pixel -> crop pixel (``alignment_matrices``).
        size: crop size.
        padding_mode: what the crop shows beyond the image edge (kornia): ``"border"``
            (default) repeats the edge pixels, so a face near the edge gets no black bar
            with a hard edge the encoder could read as a feature; ``"zeros"`` is black,
            ``"reflection"`` mirrors.

    Returns:
        ``[F, 3, size, size]`` float32, on the device of ``images``. Bilinear sampling;
        frames shrunk by more than 1:1 are first blurred with a Gaussian of sigma
        ``(1/scale - 1) / 2`` (per frame, so nothing jumps between frames) against aliasing.
    """
    x = to_rgb(images)
    m = matrices.to(device=x.device, dtype=torch.float32)
    scale = m[:, :, :2].det().abs().sqrt()  # crop pixels per image pixel
    sigma = ((1 / scale - 1) / 2).clamp_min(1e-3)
    if float(sigma.max()) > 0.25:  # below that the kernel is a delta to float32 precision
        radius = int(torch.ceil(3 * sigma.max()))
        x = gaussian_blur2d(x, 2 * radius + 1, sigma[:, None].expand(-1, 2), border_type="replicate")
    # kornia puts pixel centres at integers, ours at +0.5: shift in and out.
    m_k = m.clone()
    m_k[:, :, 2] += 0.5 * m[:, :, :2].sum(-1) - 0.5
    return warp_affine(x, m_k, (size, size), mode="bilinear", padding_mode=padding_mode, align_corners=True)


def align_faces(images: Tensor, keypoints: Keypoints2D, size: int, padding_mode: str = "border",
                min_confidence: float = MIN_CONFIDENCE) -> AlignedFaces:
    """Aligned face crops of ComfyUI IMAGE frames ``[F, H, W, C]`` from their landmarks.

    Returns ``AlignedFaces(crops [F, 3, size, size], matrices [F, 2, 3], filled)``.
    """
    check_frames(images, keypoints)
    matrices, filled = alignment_matrices(keypoints, size, tuple(images.shape[1:3]), min_confidence)
    return AlignedFaces(warp_faces(images, matrices, size, padding_mode), matrices, filled)


def check_frames(images: Tensor, keypoints: Keypoints2D) -> None:
    """Raise unless ``images`` is an IMAGE batch with one frame per keypoints frame."""
    to_rgb(images[:0])
    if images.shape[0] != keypoints.frames:
        raise InputError("keypoints", f"{keypoints.frames} frames of keypoints for {images.shape[0]} "
                         "images; detect the keypoints on the same video.")


__all__ = ["FACE_POINTS", "FACE_TEMPLATE", "AlignedFaces", "align_faces", "alignment_matrices",
           "face_points", "face_template", "fit_similarity", "to_rgb", "warp_faces"]
