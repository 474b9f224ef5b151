"""Preview of expression codes: the strongest channels plotted over time.

One image: a dark panel with a faint grid, one coloured curve per shown channel (frames
left to right, the codes' range bottom to top) and a legend of the channels' names (or
indices for learned codes). Channels are ranked by how much they move and how strong they
get (range plus peak), so a blink that happens twice still makes the list.
"""
from __future__ import annotations

import numpy as np
import torch

try:  # kornia >= 0.9
    from kornia.image import draw_line
except ImportError:  # pragma: no cover - older kornia
    from kornia.utils import draw_line

from .codes import ExpressionCodes

BACKGROUND, GRID = (0.1, 0.1, 0.11), (0.22, 0.22, 0.24)
PALETTE = ((0.95, 0.35, 0.3), (0.3, 0.75, 0.95), (0.95, 0.8, 0.25), (0.5, 0.9, 0.4), (0.85, 0.45, 0.95),
           (0.98, 0.6, 0.2), (0.35, 0.95, 0.8), (0.9, 0.9, 0.9))


def strongest_channels(expression: ExpressionCodes, count: int) -> list[int]:
    """Indices of the ``count`` channels with the largest range plus peak magnitude (channels
    that stay at zero are left out)."""
    codes = expression.codes.float()
    score = (codes.amax(0) - codes.amin(0)) + codes.abs().amax(0)
    ranked = score.argsort(descending=True)[: min(count, expression.dim)]
    return [int(c) for c in ranked if score[c] > 0]


def _legend(image: torch.Tensor, names: list[str], colours, top: int, left: int) -> None:
    """Colour swatches and, where Pillow is installed (it is with ComfyUI), the names."""
    h = 14
    for i, colour in enumerate(colours):
        y = top + i * h
        image[:, y + 3: y + 11, left: left + 8] = torch.tensor(colour)[:, None, None]
    try:
        from PIL import Image, ImageDraw
    except ImportError:  # swatches only
        return
    pil = Image.fromarray((image.permute(1, 2, 0) * 255).round().byte().numpy())
    draw = ImageDraw.Draw(pil)
    for i, name in enumerate(names):
        draw.text((left + 12, top + i * h), name, fill=(230, 230, 230))
    image.copy_(torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255)


def expression_plot(expression: ExpressionCodes, channels: int = 8, width: int = 640, height: int = 256) -> torch.Tensor:
    """IMAGE ``[1, height, width, 3]`` of the ``channels`` strongest channels over time."""
    shown = strongest_channels(expression, channels)
    codes = expression.codes.float()
    low, high = expression.value_range or (float(codes.amin()), float(codes.amax()))
    if high - low < 1e-6:
        high = low + 1.0
    legend_w = 150
    plot_w, margin = width - legend_w, 8
    image = torch.tensor(BACKGROUND)[:, None, None].repeat(1, height, width)
    for q in range(5):  # horizontal grid at quarters of the range
        y = margin + round(q * (height - 2 * margin - 1) / 4)
        draw_line(image, torch.tensor([margin, y]), torch.tensor([plot_w - margin, y]), torch.tensor(GRID))
    f = codes.shape[0]
    xs = torch.linspace(margin, plot_w - margin - 1, max(f, 2))[:f]
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(shown))]
    for channel, colour in zip(shown, colours):
        v = ((codes[:, channel] - low) / (high - low)).clamp(0, 1)
        ys = (height - margin - 1) - v * (height - 2 * margin - 1)
        points = torch.stack([xs, ys], -1).round().long()
        if f == 1:
            points = torch.cat([points, points + torch.tensor([plot_w - 2 * margin - 1, 0])])
        for a, b in zip(points[:-1], points[1:]):
            draw_line(image, a, b, torch.tensor(colour))
    names = [expression.labels[c] if expression.labels else f"code {c}" for c in shown]
    _legend(image, names, colours, top=margin, left=plot_w + 4)
    return image.permute(1, 2, 0)[None].clamp(0, 1)
