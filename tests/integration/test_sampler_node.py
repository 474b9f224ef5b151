"""FactorPortrait Load Model + Sampler called in process, as ComfyUI runs them.

ComfyUI executes every prompt under ``torch.inference_mode()``; the nodes run here the
same way, on the tiny random checkpoint and ComfyUI's own Wan 2.1 VAE class from
tests/integration/tiny_models.py, with the model folder registered through
``folder_paths.add_model_folder_path`` as ``extra_model_paths.yaml`` would.
"""
import pytest
import torch
from devpack import import_comfyui

import_comfyui()

import comfy.sd  # noqa: E402
import folder_paths  # noqa: E402

from factorportrait.models.portrait.checkpoint import save_checkpoint  # noqa: E402
from factorportrait.models.expression.codes import ExpressionCodes  # noqa: E402
from factorportrait.nodes.camera_trajectory import CameraTrajectoryNode  # noqa: E402
from factorportrait.nodes.model_loader import LoadModel  # noqa: E402
from factorportrait.nodes.plucker_rays import PluckerRayMaps  # noqa: E402
from factorportrait.nodes.sampler import Sampler  # noqa: E402

from .tiny_models import (  # noqa: E402
    CHECKPOINT_NAME,
    EXPRESSION_DIM,
    EXPRESSION_ENCODER,
    portrait_image,
    tiny_factorportrait_model,
    tiny_wan_vae_state_dict,
)

SIZE = 32  # pixels: a 4x4 latent, 2x2 tokens per latent frame


def rays_for(frames: int) -> torch.Tensor:
    camera = CameraTrajectoryNode.execute(
        mode="orbit", frames=frames, fov=30.0, distance=1.2, yaw=0.0, pitch=0.0, roll=0.0,
        yaw_end=30.0, pitch_end=0.0, roll_end=0.0, distance_end=1.2, amplitude=10.0, turns=1.0,
        dolly_zoom=False, easing="linear", keyframes="").args[0]
    return PluckerRayMaps.execute(camera, SIZE, SIZE).args[0]


@pytest.fixture(scope="module")
def nodes_inputs(tmp_path_factory):
    """Keyword arguments of Sampler.execute: the loaded tiny model, the VAE and all controls."""
    folder = tmp_path_factory.mktemp("factorportrait")
    save_checkpoint(tiny_factorportrait_model(), str(folder / CHECKPOINT_NAME),
                    expression_encoder=EXPRESSION_ENCODER)
    folder_paths.add_model_folder_path("factorportrait", str(folder))
    gen = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        model, info = LoadModel.execute(CHECKPOINT_NAME, "none", "default", "auto", "auto", 52).args
        vae = comfy.sd.VAE(sd=tiny_wan_vae_state_dict())
        return dict(
            model=model, vae=vae, reference=portrait_image(128)[None], length=81, seed=1, steps=2,
            cfg=3.0, expression_cfg=2.0, shift=5.0, solver="unipc", denoise=1.0, window=81,
            overlap=16, rays=rays_for(9), normal_maps=torch.rand(9, SIZE, SIZE, 3, generator=gen),
            expression=ExpressionCodes(torch.rand(20, EXPRESSION_DIM, generator=gen), EXPRESSION_ENCODER))


def sample(inputs: dict, **changes) -> torch.Tensor:
    """The node's LATENT samples, run as ComfyUI runs a prompt (inference mode)."""
    with torch.inference_mode():
        return Sampler.execute(**{**inputs, **changes}).args[0]["samples"]


def test_deterministic_per_seed_under_inference_mode(nodes_inputs):
    first = sample(nodes_inputs)
    assert first.shape == (1, 16, 3, SIZE // 8, SIZE // 8)
    assert first.dtype == torch.float32 and torch.isfinite(first).all()
    assert torch.equal(first, sample(nodes_inputs))
    assert (first - sample(nodes_inputs, seed=2)).abs().max() > 1e-3


def test_denoise_keeps_the_start_latent(nodes_inputs):
    """denoise < 1 starts from the given latent partly noised: the result stays closer to
    it than a full run with the same seed, and closer the lower the denoise."""
    inputs = {**nodes_inputs, "normal_maps": None}  # (no normal maps to encode: quicker)
    start = sample(inputs, seed=11)

    def distance(denoise: float) -> float:
        out = sample(inputs, seed=12, denoise=denoise, latent={"samples": start})
        return float((out - start).norm())

    low, mid, full = distance(0.2), distance(0.6), distance(1.0)
    assert low < mid < full, (low, mid, full)


def test_long_video_in_overlapping_windows(nodes_inputs):
    """41 frames (11 latent frames) in windows of 17 frames overlapping by 8."""
    out = sample(nodes_inputs, rays=rays_for(41), normal_maps=None, window=17, overlap=8)
    assert out.shape == (1, 16, 11, SIZE // 8, SIZE // 8)
    assert torch.isfinite(out).all()
    # The windows are blended, not stitched from one window repeated.
    assert (out[:, :, 1:6] - out[:, :, 6:11]).abs().max() > 1e-3
