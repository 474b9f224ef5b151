"""Node "FactorPortrait Sampler": reference image + controls -> video LATENT for VAEDecode."""
from __future__ import annotations

import logging

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io

from ..models.errors import InputError
from ..models.wan.latent_frames import TEMPORAL_STRIDE, check_frame_count, latent_frame_count, video_frame_count
from ..models.camera.plucker import LATENT_STRIDE, check_image_size
from ..models.portrait.sampler import PortraitConditions, generate
from ..models.sampling import SOLVERS
from ..models.sampling.presets import PRESETS
from ..models.sampling.step_cache import StepCache
from ..models.wan import latent_format
from .errors import reported_as
from .ui_previews import latent_video_preview, with_images
from .types import Expression, Model, Rays

NAME = "FactorPortrait Sampler"
CUSTOM = "custom"


def _video_size(rays, normal_maps, reference, length: int) -> tuple[int, int, int]:
    """(frames, width, height) of the output video, reconciled across the controls."""
    frames = None
    if rays is not None:
        frames = video_frame_count(rays.shape[2])
        width, height = rays.shape[-1] * LATENT_STRIDE, rays.shape[-2] * LATENT_STRIDE
    if normal_maps is not None:
        n, h, w = normal_maps.shape[:3]
        if rays is not None and (w, h) != (width, height):
            raise InputError("normal_maps", f"are {w}x{h} but the ray maps were made for "
                             f"{width}x{height}; render both at the same size.")
        if rays is not None and rays.shape[2] > 1 and n != frames:
            raise InputError("normal_maps", f"have {n} frames but the ray maps have {frames} "
                             f"({rays.shape[2]} latent frames); make the camera trajectory and the "
                             "normal maps the same length.")
        frames, width, height = n, w, h
    if frames is None:
        frames, height, width = length, reference.shape[1] // 16 * 16, reference.shape[2] // 16 * 16
    check_frame_count(frames, "normal_maps" if normal_maps is not None else "length")
    check_image_size(width, height)
    return frames, width, height


def _encode(vae, images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """IMAGE ``[F, H, W, C]`` -> normalised Wan latents ``[1, 16, T, h, w]`` (centre-cropped)."""
    if getattr(vae, "latent_channels", None) != 16 or getattr(vae, "latent_dim", None) != 3:
        raise InputError("vae", "is not a Wan 2.1 video VAE (16 latent channels, 3-D latents); "
                         "load wan_2.1_vae.safetensors with ComfyUI's Load VAE node.")
    if images.shape[1:3] != (height, width):
        images = comfy.utils.common_upscale(images.movedim(-1, 1), width, height, "bicubic",
                                            "center").movedim(1, -1)
    return latent_format.normalize(vae.encode(images[..., :3]).float())


def _text(conditioning, input_name: str, text_dim: int) -> torch.Tensor | None:
    if conditioning is None:
        return None
    context = conditioning[0][0]
    if context.shape[-1] != text_dim:
        raise InputError(input_name, f"text embeddings of width {context.shape[-1]}, but the model "
                         f"takes {text_dim} (umT5-XXL); encode the prompt with Wan's umt5_xxl text "
                         "encoder (Load CLIP, type 'wan').")
    return context[:1].float()


class Sampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitSampler",
            display_name=NAME,
            category="FactorPortrait/sampling",
            description=(
                "Animates the reference portrait with the driving expression (codes), pose "
                "(normal maps) and camera (ray maps): flow-matching sampling of the "
                "FactorPortrait DiT. Outputs a Wan 2.1 video latent for ComfyUI's VAE Decode."
            ),
            inputs=[
                Model.Input("model", tooltip="From FactorPortrait Load Model."),
                io.Vae.Input("vae", tooltip="The native Wan 2.1 VAE (Load VAE), used to encode the "
                             "reference and the normal maps."),
                io.Image.Input("reference", tooltip="The portrait to animate (first image is used); "
                               "resized and centre-cropped to the video size."),
                Rays.Input("rays", optional=True, tooltip="Camera ray maps from FactorPortrait "
                           "Plücker Ray Maps; set the video size and length."),
                io.Image.Input("normal_maps", optional=True, tooltip="Pose: normal maps, one per video "
                               "frame (FactorPortrait Render Normal Maps or any normal estimator in "
                               "the DESIGN convention)."),
                Expression.Input("expression", optional=True, tooltip="Per-frame expression codes; "
                                 "resampled in time to the video length."),
                io.Conditioning.Input("positive", optional=True, tooltip="Optional text (Wan umT5)."),
                io.Conditioning.Input("negative", optional=True, tooltip="Optional negative text, "
                                      "used by the unconditional branch."),
                io.Int.Input("length", default=81, min=1, max=4097, step=4, tooltip=(
                    "Video frames (4k+1) when neither rays nor normal maps give the length.")),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed; the same seed gives the same video."),
                io.Int.Input("steps", default=30, min=1, max=999, tooltip="Sampling steps."),
                io.Float.Input("cfg", default=5.0, min=0.0, max=30.0, step=0.1, round=0.01, tooltip=(
                    "Guidance toward the pose (normal maps) and text; 1 = off.")),
                io.Float.Input("expression_cfg", default=5.0, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Guidance toward the expression codes; 1 with cfg 1 = one "
                                       "network pass per step."),
                io.Float.Input("shift", default=5.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Flow-matching schedule shift (Wan: 3 to 5 at 480p)."),
                io.Combo.Input("solver", options=list(SOLVERS), default="unipc",
                               tooltip="euler or unipc (multistep, better at few steps)."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip=(
                    "1 = from pure noise; below 1 starts from 'latent' partly noised; 0 returns "
                    "'latent' unchanged.")),
                io.Latent.Input("latent", optional=True, tooltip="Start latent for denoise < 1 "
                                "(e.g. a previous result)."),
                io.Int.Input("window", default=81, min=5, max=4097, step=4, tooltip=(
                    "Longer videos are made in overlapping windows of this many frames, each "
                    "conditioned on the reference.")),
                io.Int.Input("overlap", default=16, min=0, max=4096, step=4, tooltip=(
                    "Minimum overlap of neighbouring windows in frames; overlaps are blended.")),
                io.Combo.Input("preset", options=[CUSTOM, *PRESETS], default=CUSTOM, optional=True, tooltip=(
                    "custom: the settings above. step_distill_4: for Wan step-distill LoRAs "
                    "(lightx2v): 4 Euler steps at timesteps 1000/750/500/250, shift 5, cfg 1; "
                    "overrides steps, cfg, expression_cfg, shift and solver.")),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="[1, 16, T, H/8, W/8] video latent.")],
        )

    @classmethod
    def execute(cls, model, vae, reference, length, seed, steps, cfg, expression_cfg, shift, solver,
                denoise, window, overlap, rays=None, normal_maps=None, expression=None,
                positive=None, negative=None, latent=None, preset=CUSTOM) -> io.NodeOutput:
        with reported_as(NAME):
            timesteps = None
            if preset != CUSTOM:
                if preset not in PRESETS:
                    raise InputError("preset", f"unknown preset {preset!r}; choose one of {CUSTOM}, "
                                     + ", ".join(PRESETS) + ".")
                if denoise < 1.0:
                    raise InputError("denoise", f"the {preset} preset samples from pure noise at fixed "
                                     "timesteps; set denoise to 1 or the preset to custom.")
                p = PRESETS[preset]
                steps, cfg, expression_cfg, shift, solver, timesteps = (
                    p.steps, p.cfg, p.expression_cfg, p.shift, p.solver, p.timesteps)
            frames, width, height = _video_size(rays, normal_maps, reference, length)
            t_lat = latent_frame_count(frames)
            if rays is not None and rays.shape[2] == 1:  # a static camera: same rays every frame
                rays = rays.expand(-1, -1, t_lat, -1, -1)
            codes = None
            if expression is not None:
                expression.check_dim(model.loaded.expression_dim, "the loaded FactorPortrait model")
                codes = expression.resampled(frames).codes[None]
            init = None
            if denoise == 0.0 and latent is not None:  # as KSampler: nothing to denoise
                return io.NodeOutput(latent)
            if denoise < 1.0:
                if latent is None:
                    raise InputError("latent", f"denoise {denoise} < 1 needs a start latent; connect "
                                     "one or set denoise to 1.")
                init = latent_format.normalize(latent["samples"].float())
                if tuple(init.shape[2:]) != (t_lat, height // 8, width // 8):
                    raise InputError("latent", f"has shape {list(init.shape)}, but the video needs "
                                     f"[1, 16, {t_lat}, {height // 8}, {width // 8}].")
            check_frame_count(window, "window")
            window_lat = latent_frame_count(window)
            overlap_lat = -(-overlap // TEMPORAL_STRIDE)
            if t_lat > window_lat and overlap_lat >= window_lat:
                raise InputError("overlap", f"{overlap} frames must be smaller than the window "
                                 f"({window} frames).")
            conditions = PortraitConditions(
                reference=_encode(vae, reference[:1], width, height),
                rays=rays,
                normals=None if normal_maps is None else _encode(vae, normal_maps, width, height),
                expression=codes,
                positive=_text(positive, "positive", model.model.config.text_dim),
                negative=_text(negative, "negative", model.model.config.text_dim),
            )
            progress = comfy.utils.ProgressBar(steps)

            def on_step(step: int, total: int) -> None:
                progress.update_absolute(step + 1, total)
                mm.throw_exception_if_processing_interrupted()

            cache = StepCache(model.step_cache) if model.step_cache is not None else None
            with model.running() as device:
                try:
                    out = generate(model.model, conditions, num_latent_frames=t_lat, seed=seed,
                                   steps=steps, cfg=cfg, expression_cfg=expression_cfg, shift=shift,
                                   solver=solver, denoise=denoise, init_latent=init,
                                   window=window_lat, overlap=overlap_lat, device=device,
                                   callback=on_step, timesteps=timesteps, step_cache=cache)
                except FloatingPointError as e:
                    raise InputError("model", str(e)) from None
            if cache is not None:
                logging.info("%s: step cache ran the blocks %d of %d times (%.2fx fewer)", NAME,
                             cache.computed, cache.computed + cache.skipped, cache.speedup)
        samples = latent_format.denormalize(out).to(mm.intermediate_device())
        return io.NodeOutput({"samples": samples}, ui=with_images(latent_video_preview(samples)))
