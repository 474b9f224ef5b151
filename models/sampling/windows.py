"""Long videos: overlapping windows of latent frames, blended per sampling step.

The network sees ``window`` latent frames at a time (21 = 81 video frames, what Wan was
trained on). A longer latent is covered by windows that overlap by at least ``overlap``
frames, the first starting at frame 0 and the last ending at the last frame; at every
step each window's velocity is computed (the caller conditions each window on the
reference and on its slice of the per-frame controls) and the velocities are blended
with linear ramps across the overlaps. All windows share one noisy latent, so the
overlaps are pulled to agreement step by step rather than stitched afterwards.
"""
from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import torch

from ..errors import InputError
from ..wan.latent_frames import latent_frame_groups, video_frame_count

WindowVelocityFn = Callable[[torch.Tensor, float, range], torch.Tensor]
"""``fn(x_window, sigma, frames) -> v_window``: x_window ``[B, C, len(frames), H, W]`` is
the latent's slice ``x[:, :, frames]``; ``frames`` tells the caller which controls to slice."""


def plan_windows(num_latent_frames: int, window: int, overlap: int) -> list[range]:
    """Windows of ``window`` latent frames covering ``0 .. num_latent_frames - 1``.

    Consecutive windows overlap by at least ``overlap`` frames. The fewest windows that
    allow this are used, spread evenly from frame 0 to the end, so when
    ``num_latent_frames - window`` is a multiple of ``window - overlap`` the overlaps are
    exactly ``overlap``, and otherwise a little larger and evenly shared (instead of one
    last window overlapping its neighbour almost entirely). A latent no longer than
    ``window`` is one window.

    >>> plan_windows(53, 21, 5)
    [range(0, 21), range(16, 37), range(32, 53)]
    """
    num_latent_frames = _whole(num_latent_frames, "frames")
    window, overlap = _whole(window, "window"), _whole(overlap, "overlap")
    if num_latent_frames < 1:
        raise InputError("frames", f"need at least one latent frame, got {num_latent_frames}.")
    if window < 1:
        raise InputError("window", f"the window must hold at least one latent frame, got {window}.")
    if overlap < 0:
        raise InputError("overlap", f"overlap must be 0 or more latent frames, got {overlap}.")
    if overlap >= window:
        raise InputError("overlap", f"overlap ({overlap}) must be smaller than the window "
                                    f"({window} latent frames); a window must add new frames.")
    if num_latent_frames <= window:
        return [range(num_latent_frames)]
    span, stride = num_latent_frames - window, window - overlap
    gaps = -(-span // stride)  # ceil: the fewest steps of at most `stride` frames
    return [range(k * span // gaps, k * span // gaps + window) for k in range(gaps + 1)]


def blend_weights(windows: Sequence[range], num_latent_frames: int) -> list[torch.Tensor]:
    """Per-window blend weights ``[len(window)]`` (float64) summing to 1 on every frame.

    Each window ramps up linearly across its overlap with the previous window and down
    across its overlap with the next (``i / (n + 1)`` over an overlap of ``n`` frames), and
    is 1 elsewhere; frames that three windows share are normalised. Summed in window order
    the weights of each frame are exactly 1.0.
    """
    _check_cover(windows, num_latent_frames)
    raw = []
    for k, w in enumerate(windows):
        pos = torch.arange(w.start, w.stop, dtype=torch.float64)
        ramp = torch.ones(len(w), dtype=torch.float64)
        if k > 0 and (n := windows[k - 1].stop - w.start) > 0:
            ramp = torch.minimum(ramp, (pos - w.start + 1) / (n + 1))
        if k + 1 < len(windows) and (n := w.stop - windows[k + 1].start) > 0:
            ramp = torch.minimum(ramp, (w.stop - pos) / (n + 1))
        raw.append(ramp)
    total = torch.zeros(num_latent_frames, dtype=torch.float64)
    for w, r in zip(windows, raw):
        total[w.start:w.stop] += r
    weights = [r / total[w.start:w.stop] for w, r in zip(windows, raw)]
    # The last window covering a frame takes the remainder, so the sum is exactly 1.
    covered = torch.zeros(num_latent_frames, dtype=torch.float64)
    last_cover = torch.zeros(num_latent_frames, dtype=torch.long)
    for k, w in enumerate(windows):
        last_cover[w.start:w.stop] = k
    for k, (w, wt) in enumerate(zip(windows, weights)):
        is_last = last_cover[w.start:w.stop] == k
        wt[is_last] = 1.0 - covered[w.start:w.stop][is_last]
        covered[w.start:w.stop] += wt
    return weights


def windowed_velocity(velocity_fn_for_window: WindowVelocityFn, x: torch.Tensor, sigma: float,
                      windows: Sequence[range], weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """The blended velocity of the whole latent ``x`` ``[B, C, T_lat, H, W]``, one call per window.

    Blending is a running ``lerp`` toward each window's velocity by its share of the weight
    so far: the weighted average of the windows, and bit-identical to the unwindowed
    velocity when the windows agree.
    """
    if x.ndim != 5:
        raise ValueError(f"expected a video latent [B, C, T, H, W], got shape {tuple(x.shape)}")
    if len(weights) != len(windows):
        raise ValueError(f"{len(windows)} windows but {len(weights)} weight vectors")
    _check_cover(windows, x.shape[2])
    seen = torch.zeros(x.shape[2], dtype=torch.float64)
    out = None
    for frames, weight in zip(windows, weights):
        v = velocity_fn_for_window(x[:, :, frames.start:frames.stop], sigma, frames)
        if out is None:
            out = torch.zeros(x.shape, dtype=v.dtype, device=v.device)
        seen[frames.start:frames.stop] += weight
        share = (weight / seen[frames.start:frames.stop]).to(device=v.device, dtype=v.dtype)
        part = out[:, :, frames.start:frames.stop]
        out[:, :, frames.start:frames.stop] = torch.lerp(part, v, share.view(1, 1, -1, 1, 1))
    return out


def windowed_velocity_fn(velocity_fn_for_window: WindowVelocityFn, num_latent_frames: int,
                         window: int, overlap: int) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """``velocity_fn(x, sigma)`` for ``solvers.sample`` that runs the model window by window."""
    windows = plan_windows(num_latent_frames, window, overlap)
    weights = blend_weights(windows, num_latent_frames)

    def velocity_fn(x: torch.Tensor, sigma: float) -> torch.Tensor:
        return windowed_velocity(velocity_fn_for_window, x, sigma, windows, weights)

    return velocity_fn


def window_video_frames(frames: range, num_latent_frames: int) -> range:
    """The video frames that latent frames ``frames`` decode to (Wan's 1 + 4k grouping).

    Latent frame 0 is video frame 0 and latent frame t >= 1 is video frames 4t-3 .. 4t,
    so ``range(0, 21)`` is frames 0..80 and ``range(16, 37)`` is frames 61..144.
    """
    groups = latent_frame_groups(video_frame_count(num_latent_frames))[frames.start:frames.stop]
    return range(int(groups.min()), int(groups.max()) + 1)


def _check_cover(windows: Sequence[range], num_latent_frames: int) -> None:
    """Windows must be non-empty, inside the latent, in order, and cover every frame."""
    frontier = 0
    for w in windows:
        if w.step != 1 or len(w) < 1 or w.start < 0 or w.stop > num_latent_frames or w.start > frontier:
            raise ValueError(f"windows {list(windows)} do not tile {num_latent_frames} latent frames in order")
        frontier = max(frontier, w.stop)
    if frontier != num_latent_frames:
        raise ValueError(f"windows {list(windows)} do not reach latent frame {num_latent_frames - 1}")


def _whole(value: int, name: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise InputError(name, f"{name} must be a whole number of latent frames, got {value!r}.") from None
