"""ComfyUI's native Wan nodes on the tiny Wan models of ``tiny_wan_models``, in process.

For each tiny file, ComfyUI's own loader (``comfy.sd.load_diffusion_model``, what
``UNETLoader`` calls) must detect the intended model from the keys alone; then the native
conditioning node (``WanVaceToVideo``, ``WanFunControlToVideo``, ``WanCameraImageToVideo``,
``WanAnimateToVideo``), called as ComfyUI calls it, with the tiny Wan 2.1 VAE of
``tiny_models`` and the CI text stub, feeds one real sampling step (``common_ksampler``,
the ``KSampler`` node's body: euler, 1 step, cfg 1, so one model call on the positive), and
the result must change when the node's control input changes. No server, no text encoder,
no CLIP vision model.
"""
from __future__ import annotations

import time

import pytest
import torch
from devpack import import_comfyui

import_comfyui()

import comfy.clip_vision  # noqa: E402
import comfy.ldm.wan.model as wan  # noqa: E402
import comfy.ldm.wan.model_animate as wan_animate  # noqa: E402
import comfy.model_base  # noqa: E402
import comfy.sd  # noqa: E402
import comfy.supported_models  # noqa: E402
import nodes as comfy_nodes  # noqa: E402
from comfy_extras import nodes_camera_trajectory, nodes_wan  # noqa: E402

from .stub_text_encoder import NODE_CLASS_MAPPINGS as STUB_NODES  # noqa: E402
from .stub_text_encoder import NODE_DISPLAY_NAME_MAPPINGS as STUB_NAMES  # noqa: E402
from .tiny_models import tiny_wan_vae_state_dict  # noqa: E402
from .tiny_wan_models import (  # noqa: E402
    ANIMATE_NAME, FUN_CAMERA_NAME, FUN_CONTROL_NAME, MAX_BYTES, VACE_NAME, write_tiny_wan_models,
)

W = H = 64
LENGTH = 5  # 2 latent frames
MIN_CHANGE = 1e-3  # a control input must move the sampled latent by more than this


@pytest.fixture(scope="module")
def wan_files(tmp_path_factory) -> dict:
    start = time.perf_counter()
    paths = write_tiny_wan_models(tmp_path_factory.mktemp("models"))
    print(f"tiny Wan models written in {time.perf_counter() - start:.2f} s")
    return paths


@pytest.fixture(scope="module")
def models(wan_files) -> dict:
    return {name: comfy.sd.load_diffusion_model(str(path)) for name, path in wan_files.items()}


@pytest.fixture(scope="module")
def vae():
    return comfy.sd.VAE(sd=tiny_wan_vae_state_dict())


@pytest.fixture(scope="module")
def prompts():
    encode = STUB_NODES["FactorPortraitTestTextEncode"]().encode
    return encode("a person talking to the camera", 16)[0], encode("blurry, static", 16)[0]


def video(seed: int, frames: int = LENGTH, size: int = W) -> torch.Tensor:
    """A deterministic random IMAGE batch ``[frames, size, size, 3]`` in 0..1."""
    return torch.rand(frames, size, size, 3, generator=torch.Generator().manual_seed(seed))


def sample(model, positive, negative, latent) -> torch.Tensor:
    """One euler step at cfg 1 through the KSampler node's code path."""
    with torch.inference_mode():
        (out,) = comfy_nodes.common_ksampler(model, 0, 1, 1.0, "euler", "simple",
                                             positive, negative, latent)
    samples = out["samples"]
    assert samples.shape == latent["samples"].shape
    assert torch.isfinite(samples).all()
    return samples


def change(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# --- the CI text stub -------------------------------------------------------------------

def test_stub_text_encoder_is_deterministic_and_wan_shaped():
    assert STUB_NAMES == {"FactorPortraitTestTextEncode": "Test Text Encode (CI stub)"}
    node = STUB_NODES["FactorPortraitTestTextEncode"]
    assert node.INPUT_TYPES()["required"]["tokens"][1]["default"] == 16
    assert node.RETURN_TYPES == ("CONDITIONING",)
    (cond,) = node().encode("hello", 16)
    (again,) = node().encode("hello", 16)
    (other,) = node().encode("hello!", 16)
    tensor, extra = cond[0]
    assert len(cond) == 1 and extra == {}
    assert tensor.shape == (1, 16, 4096) and tensor.dtype == torch.float32
    assert torch.equal(tensor, again[0][0])
    assert not torch.equal(tensor, other[0][0])
    assert 0.09 < tensor.std().item() < 0.11
    assert node().encode("hello", 7)[0][0][0].shape == (1, 7, 4096)


# --- files and detection ----------------------------------------------------------------

DETECTED = {  # file -> (model_base class, supported_models config, diffusion model class, in_dim)
    VACE_NAME: (comfy.model_base.WAN21_Vace, comfy.supported_models.WAN21_Vace, wan.VaceWanModel, 16),
    FUN_CONTROL_NAME: (comfy.model_base.WAN21, comfy.supported_models.WAN21_FunControl2V, wan.WanModel, 48),
    FUN_CAMERA_NAME: (comfy.model_base.WAN21_Camera, comfy.supported_models.WAN21_Camera,
                      wan.CameraWanModel, 32),
    ANIMATE_NAME: (comfy.model_base.WAN22_Animate, comfy.supported_models.WAN22_Animate,
                   wan_animate.AnimateWanModel, 36),
}


def test_files_are_small_and_unprefixed(wan_files):
    from safetensors import safe_open

    assert set(wan_files) == set(DETECTED)
    for name, path in wan_files.items():
        assert path.parent.name == "diffusion_models" and path.name == name
        size = path.stat().st_size
        print(f"{name}: {size / 1e6:.1f} MB")
        assert size < MAX_BYTES[name]
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
        assert not any(k.startswith("model.diffusion_model.") for k in keys)  # as repackaged


@pytest.mark.parametrize("name", list(DETECTED))
def test_loader_detects_the_model(models, name):
    base_cls, config_cls, unet_cls, in_dim = DETECTED[name]
    model = models[name].model
    assert type(model) is base_cls
    assert type(model.model_config) is config_cls
    assert type(model.diffusion_model) is unet_cls
    unet = model.diffusion_model
    assert unet.patch_embedding.weight.shape[1] == in_dim
    assert (unet.dim, unet.num_heads, unet.num_layers) == (128, 1, 5 if name == ANIMATE_NAME else 1)
    assert unet.text_embedding[0].weight.shape[1] == 4096
    assert model.model_type == comfy.model_base.ModelType.FLOW
    if name == VACE_NAME:
        assert unet.vace_patch_embedding.weight.shape[1] == 96 and len(unet.vace_blocks) == 1
        assert unet.img_emb is None  # VACE is a t2v model: no CLIP vision input at all
    else:
        assert unet.img_emb is not None  # i2v cross-attention: takes clip_vision_output
    if name == ANIMATE_NAME:
        assert len(unet.face_adapter.fuser_blocks) == 1


# --- one sampling step per model, through its native node ---------------------------------

def test_vace_control_video_changes_the_output(models, vae, prompts):
    positive, negative = prompts
    model = models[VACE_NAME]
    reference = video(9, frames=1)

    def run(control):
        pos, neg, latent, trim = nodes_wan.WanVaceToVideo.execute(
            positive, negative, vae, W, H, LENGTH, 1, 1.0, control_video=control,
            reference_image=reference).args
        assert trim == 1 and latent["samples"].shape == (1, 16, 1 + 2, H // 8, W // 8)
        assert pos[0][1]["vace_frames"][0].shape == (1, 32, 3, H // 8, W // 8)
        out = sample(model, pos, neg, latent)
        (trimmed,) = nodes_wan.TrimVideoLatent.execute({"samples": out}, trim).args
        assert trimmed["samples"].shape == (1, 16, 2, H // 8, W // 8)
        return out

    a, b, a_again = run(video(1)), run(video(2)), run(video(1))
    assert torch.equal(a, a_again)  # deterministic
    print(f"VACE: control video A vs B changes the latent by {change(a, b):.3g}")
    assert change(a, b) > MIN_CHANGE


def test_fun_control_video_and_clip_vision_change_the_output(models, vae, prompts):
    positive, negative = prompts
    model = models[FUN_CONTROL_NAME]
    start = video(9, frames=1)

    def run(control, clip_vision_output=None):
        pos, neg, latent = nodes_wan.WanFunControlToVideo.execute(
            positive, negative, vae, W, H, LENGTH, 1, start_image=start, control_video=control,
            clip_vision_output=clip_vision_output).args
        assert pos[0][1]["concat_latent_image"].shape == (1, 32, 2, H // 8, W // 8)
        return sample(model, pos, neg, latent)

    a, b = run(video(1)), run(video(2))
    print(f"Fun Control: control video A vs B changes the latent by {change(a, b):.3g}")
    assert change(a, b) > MIN_CHANGE
    # Without clip_vision_output (above) the model runs: its image cross-attention then reads
    # the text tokens. A CLIPVisionEncode output (ViT-H penultimate states, [1, 257, 1280])
    # enters through img_emb and changes the result.
    clip = comfy.clip_vision.Output()
    clip.penultimate_hidden_states = torch.randn(1, 257, 1280, generator=torch.Generator().manual_seed(4))
    with_clip = run(video(1), clip)
    print(f"Fun Control: a clip_vision_output changes the latent by {change(a, with_clip):.3g}")
    assert change(a, with_clip) > MIN_CHANGE


def test_fun_camera_conditions_change_the_output(models, vae, prompts):
    positive, negative = prompts
    model = models[FUN_CAMERA_NAME]
    start = video(9, frames=1)

    def run(preset):
        camera, width, height, length = nodes_camera_trajectory.WanCameraEmbedding.execute(
            preset, W, H, LENGTH).args
        assert camera.shape == (1, 24, 2, H, W) and (width, height, length) == (W, H, LENGTH)
        pos, neg, latent = nodes_wan.WanCameraImageToVideo.execute(
            positive, negative, vae, width, height, length, 1, start_image=start,
            camera_conditions=camera).args
        assert pos[0][1]["camera_conditions"] is camera
        return sample(model, pos, neg, latent)

    a, b = run("Zoom In"), run("Pan Left")
    print(f"Fun Camera: Zoom In vs Pan Left changes the latent by {change(a, b):.3g}")
    assert change(a, b) > MIN_CHANGE


def test_animate_pose_and_face_videos_change_the_output(models, vae, prompts):
    positive, negative = prompts
    model = models[ANIMATE_NAME]
    reference = video(9, frames=1)

    def run(pose, face):
        pos, neg, latent, trim_latent, trim_image, offset = nodes_wan.WanAnimateToVideo.execute(
            positive, negative, vae, W, H, LENGTH, 1, 5, 0, reference_image=reference,
            face_video=face, pose_video=pose).args
        assert (trim_latent, trim_image, offset) == (1, 0, LENGTH)
        assert latent["samples"].shape == (1, 16, 1 + 2, H // 8, W // 8)
        assert pos[0][1]["pose_video_latent"].shape == (1, 16, 2, H // 8, W // 8)
        assert pos[0][1]["face_video_pixels"].shape == (1, 3, face.shape[0], 512, 512)
        return sample(model, pos, neg, latent)

    # The face path resizes every face frame to 512x512 for a full-size motion encoder
    # (~1.3 s a frame on two CPU cores): two face frames keep the test short.
    pose_a, pose_b, face_a, face_b = video(1), video(2), video(3, frames=2), video(4, frames=2)
    base = run(pose_a, face_a)
    by_pose, by_face = run(pose_b, face_a), run(pose_a, face_b)
    print(f"Animate: pose A vs B changes the latent by {change(base, by_pose):.3g}, "
          f"face A vs B by {change(base, by_face):.3g}")
    assert change(base, by_pose) > MIN_CHANGE
    assert change(base, by_face) > MIN_CHANGE
