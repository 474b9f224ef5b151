"""Evaluation results as a Markdown table and a bar plot (IMAGE).

``results`` maps a variant name ("full", "cross_identity", "no_normals", ...) to the
figures of :func:`models.evaluation.measure.summarize`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .expression_metrics import EVALUATED_CHANNELS

SHORT = {"jawOpen": "jaw", "mouthSmileLeft": "smile L", "mouthSmileRight": "smile R",
         "eyeBlinkLeft": "blink L", "eyeBlinkRight": "blink R", "browInnerUp": "brow"}
# (title, how to read a variant's value, higher is better)
PLOTTED = (
    ("head pose error (deg)", lambda r: r.get("head_pose_error_deg_median"), False),
    ("expression r (jaw, smiles)", lambda r: _mean_r(r, ("jawOpen", "mouthSmileLeft", "mouthSmileRight")), True),
    ("PSNR (dB)", lambda r: r.get("psnr_db"), True),
    ("background PSNR (dB)", lambda r: r.get("background_psnr_db"), True),
)
PALETTE = ((0.3, 0.75, 0.95), (0.95, 0.8, 0.25), (0.95, 0.35, 0.3), (0.5, 0.9, 0.4), (0.85, 0.45, 0.95),
           (0.7, 0.7, 0.7), (0.98, 0.6, 0.2))


def _mean_r(result: dict, channels) -> float | None:
    r = result.get("expression_pearson") or {}
    values = [r[c] for c in channels if r.get(c) is not None and math.isfinite(r[c])]
    return sum(values) / len(values) if values else None


def _cell(value, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def format_table(results: dict[str, dict]) -> str:
    """One row per variant: head pose, Pearson per channel, expression MAE, PSNR, SSIM, background PSNR."""
    head = (["variant", "head pose (deg, median)"] + [f"r {SHORT[c]}" for c in EVALUATED_CHANNELS]
            + ["expr. MAE", "PSNR (dB)", "SSIM", "bg PSNR (dB)"])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        pearson = r.get("expression_pearson") or {}
        cells = ([name, _cell(r.get("head_pose_error_deg_median"), 1)]
                 + [_cell(pearson.get(c)) for c in EVALUATED_CHANNELS]
                 + [_cell(r.get("expression_mae"), 3), _cell(r.get("psnr_db")), _cell(r.get("ssim"), 3),
                    _cell(r.get("background_psnr_db"))])
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_results(results: dict[str, dict], width: int = 800, height: int = 300) -> torch.Tensor:
    """IMAGE ``[1, height, width, 3]``: one panel per plotted figure, one bar per variant
    (bars scaled to the panel's largest value; missing values leave a gap)."""
    names = list(results)
    panel_w = width // len(PLOTTED)
    top, bottom = 34, 40
    image = np.full((height, width, 3), 0.1, dtype=np.float32)
    labels = []
    for p, (title, read, _higher) in enumerate(PLOTTED):
        values = [read(results[n]) for n in names]
        finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
        scale = max(finite) if finite else 1.0
        x0 = p * panel_w + 10
        bar_w = max(2, (panel_w - 20) // max(1, len(names)))
        base = height - bottom
        for i, v in enumerate(values):
            if v is None or not math.isfinite(v) or scale == 0:
                continue
            h = int(round(max(v, 0.0) / scale * (base - top)))
            x = x0 + i * bar_w
            image[base - h:base, x + 1:x + bar_w - 1] = PALETTE[i % len(PALETTE)]
            labels.append(((x + 1, base - h - 12), _cell(v, 1)))
        labels.append(((x0, 8), title))
    for i, n in enumerate(names):
        labels.append(((10 + (i * width) // max(1, len(names)), height - 18), f"\u25a0 {n}"))
    image = _text(image, labels, [None] * (len(labels) - len(names)) + [PALETTE[i % len(PALETTE)] for i in range(len(names))])
    return torch.from_numpy(image)[None]


def _text(image: np.ndarray, labels, colours) -> np.ndarray:
    try:  # Pillow comes with ComfyUI; without it the plot keeps its bars only
        from PIL import Image, ImageDraw
    except ImportError:  # pragma: no cover
        return image
    pil = Image.fromarray((image * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for ((x, y), text), colour in zip(labels, colours):
        fill = (230, 230, 230) if colour is None else tuple(int(c * 255) for c in colour)
        draw.text((x, y), text.replace("\u25a0", "#"), fill=fill)
    return np.asarray(pil).astype(np.float32) / 255
