"""The control evaluation of the default model as one suite: tools, test set, targets.

Used by ``benchmarks/controls.py`` and the CI test; the node "FactorPortrait Evaluate
Controls" uses ``models.evaluation`` directly on what a graph generated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...models.portrait.checkpoint import load_model
from ...models.evaluation.report import format_table  # noqa: F401  (re-exported for the benchmark)
from ..data.sample import to_float_images
from .evaluate import evaluate_variants
from .held_out import HELD_OUT_SEED, HeldOutClip, held_out_clips  # noqa: F401
from .variants import VARIANTS, SamplerSettings

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "weights" / "factorportrait" / "factorportrait_demo_128px.safetensors"
DEFAULT_VAE = ROOT / "weights" / "vae" / "factorportrait_demo_vae.safetensors"
TRAIN_CONFIG = ROOT / "training" / "configs" / "demo_128px.toml"
ALL_VARIANTS = VARIANTS + ("ground_truth", "vae_round_trip")
SAMPLER = SamplerSettings(steps=20, cfg=1.0, expression_cfg=1.0, shift=3.0)


@dataclass
class Tools:
    model: torch.nn.Module
    untrained: torch.nn.Module | None
    vae: object
    body_model: object
    encoder: object


def load_tools(anny_cache: Path, model_path: Path = DEFAULT_MODEL, vae_path: Path = DEFAULT_VAE,
               need_untrained: bool = True, need_model: bool = True) -> Tools:
    """The trained and untrained networks, ComfyUI's VAE of ``vae_path``, anny and the
    ARKit encoder. ``need_model=False``: measuring tools only (the ``ground_truth`` row)."""
    from ...models.body import load_anny
    from ...models.expression.arkit_encoder import ArkitEncoder
    from ...models.expression.face_correspondence import load_face_correspondence
    from ..data.latent_cache import load_comfy_vae
    from ..trainer.config import load_config
    from ..trainer.loop import build_dit

    model = load_model(checkpoint=str(model_path), dtype=torch.float32).model.eval() if need_model else None
    untrained = None
    if need_model and need_untrained:  # the same network as the trainer built it at step 0
        untrained = build_dit(load_config(TRAIN_CONFIG), torch.device("cpu")).eval()
    body = load_anny(anny_cache)
    encoder = ArkitEncoder(body, load_face_correspondence(anny_cache, body))
    return Tools(model, untrained, load_comfy_vae(vae_path) if need_model else None, body, encoder)


def held_out(tools: Tools, count: int) -> list[HeldOutClip]:
    return held_out_clips(tools.body_model, count)


def evaluate(tools: Tools, clips: list[HeldOutClip], variants, *, steps: int = SAMPLER.steps, keep_frames: int = 0,
             log=print):
    settings = SamplerSettings(steps=steps, cfg=SAMPLER.cfg, expression_cfg=SAMPLER.expression_cfg,
                               shift=SAMPLER.shift)
    return evaluate_variants(tools.model, tools.untrained, tools.vae, clips, tuple(variants),
                             body_model=tools.body_model, encoder=tools.encoder, settings=settings,
                             keep_frames=keep_frames, log=log)


def _get(results: dict, variant: str, key: str, channel: str | None = None):
    value = (results.get(variant) or {}).get(key)
    if channel is not None:
        value = (value or {}).get(channel)
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def check_targets(results: dict) -> dict:
    """The issue's targets: ``{name: {"value", "target", "met"}}`` (met None: not measured)."""
    def target(value, goal: str, ok) -> dict:
        return {"value": value, "target": goal, "met": None if value is None else bool(ok(value))}

    out = {
        "head_pose_error_deg_median": target(_get(results, "full", "head_pose_error_deg_median"), "<= 5",
                                             lambda v: v <= 5),
        "psnr_db": target(_get(results, "full", "psnr_db"), ">= 22", lambda v: v >= 22),
    }
    for channel in ("jawOpen", "mouthSmileLeft", "mouthSmileRight"):
        out[f"pearson_{channel}"] = target(_get(results, "full", "expression_pearson", channel), ">= 0.6",
                                           lambda v: v >= 0.6)
    full_pose, ablated_pose = (_get(results, v, "head_pose_error_deg_median") for v in ("full", "no_normals"))
    out["no_normals_pose_ratio"] = target(
        None if full_pose is None or ablated_pose is None else ablated_pose / max(full_pose, 1e-6), ">= 2",
        lambda v: v >= 2)
    full_r, ablated_r = (_get(results, v, "expression_pearson", "jawOpen") for v in ("full", "no_expression"))
    out["no_expression_jaw_r_drop"] = target(
        None if full_r is None or ablated_r is None else full_r - ablated_r, ">= 0.3", lambda v: v >= 0.3)
    full_bg, ablated_bg = (_get(results, v, "background_psnr_db") for v in ("full", "no_rays"))
    out["no_rays_background_psnr_drop_db"] = target(
        None if full_bg is None or ablated_bg is None else full_bg - ablated_bg, ">= 2", lambda v: v >= 2)
    return out


def write_strip(path: Path, clips: list[HeldOutClip], videos: dict, frames=(0, 8, 16)) -> None:
    """PNG rows per clip: reference | driving frames | generated frames (the ``full`` variant)."""
    from PIL import Image

    rows = []
    for i, generated in enumerate(videos.get("full", [])):
        sample = clips[i].sample
        truth = to_float_images(sample.frames)
        picks = [f for f in frames if f < sample.num_frames]
        tiles = [to_float_images(sample.reference[None])[0]] + [truth[f] for f in picks] + [generated[f] for f in picks]
        rows.append(torch.cat(tiles, 1))
    if rows:
        image = (torch.cat(rows, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
