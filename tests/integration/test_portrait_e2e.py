"""The portrait workflow end to end through the real ComfyUI server, with tiny random models.

The session fixture ``comfy`` writes a tiny Wan 2.1 VAE (ComfyUI's own class), a tiny
FactorPortrait checkpoint and a reference portrait into the server's folders
(tests/integration/tiny_models.py). ``workflows/portrait_api.json`` runs shrunk for CI
(``helpers.shrunk_for_ci``: 9 frames at 64x64, 2 steps). The weights are random, so these
tests check the plumbing against an in-process reference, determinism, the loader's
warning, errors and Cancel, not image quality.
"""
from __future__ import annotations

import copy
import time
import uuid

import pytest
import torch

from comfy_host import ExecutionFailed

from .helpers import (
    CI_FRAMES,
    CI_SIZE,
    PNG_TOLERANCE,
    WORKFLOWS,
    failure_text,
    load_json,
    read_png,
    shrunk_for_ci,
    with_prefix_folder,
)
from .tiny_models import (
    CHECKPOINT_NAME,
    EXPRESSION_ENCODER,
    PORTRAIT_NAME,
    TINY_WAN,
    WAN_BASE_NAME,
    write_sdxl_like,
    write_truncated,
    write_wan_base,
)

PORTRAIT = "portrait_api.json"
LOADER_NAME = "FactorPortrait Load Model"
SAMPLER_NAME = "FactorPortrait Sampler"
UNTRAINED_WARNING = "No control weights: the expression, pose and camera controls are untrained"
VIDEO_FPS = 15


# -- prompts ----------------------------------------------------------------------------
def node_id(prompt: dict, class_type: str) -> str:
    (found,) = [k for k, v in prompt.items() if v["class_type"] == class_type]
    return found


def upstream(prompt: dict, outputs: list[str]) -> dict:
    """The sub-graph of ``prompt`` that the nodes ``outputs`` need (themselves included)."""
    keep, todo = set(), list(outputs)
    while todo:
        nid = todo.pop()
        if nid not in keep:
            keep.add(nid)
            todo += [v[0] for v in prompt[nid]["inputs"].values() if isinstance(v, list)]
    return {k: v for k, v in prompt.items() if k in keep}


def portrait_prompt(tag: str) -> dict:
    """The CI-shrunk portrait workflow, saving under a fresh output folder."""
    prompt = load_json(WORKFLOWS / PORTRAIT)
    return shrunk_for_ci(with_prefix_folder(prompt, f"it-{tag}-{uuid.uuid4().hex[:8]}"))


def latent_prompt(tag: str, **sampler_inputs) -> tuple[dict, str, str]:
    """Sampler -> ComfyUI's SaveLatent (exact latents, no VAE decode): the prompt, the
    sampler's id and the saver's id."""
    prompt = portrait_prompt(tag)
    sampler = node_id(prompt, "FactorPortraitSampler")
    prompt[sampler]["inputs"].update(sampler_inputs)
    prompt = upstream(prompt, [sampler])
    prompt["save_latent"] = {"class_type": "SaveLatent", "inputs": {
        "samples": [sampler, 0], "filename_prefix": f"it-{tag}-{uuid.uuid4().hex[:8]}/latent"}}
    return prompt, sampler, "save_latent"


def loader_prompt(**loader_inputs) -> dict:
    """FactorPortrait Load Model -> Preview as Text (its ``info`` output)."""
    loader = {"class_type": "FactorPortraitLoadModel", "inputs": {
        "factorportrait_weights": "none", "base_model": "none", "weight_dtype": "default",
        "compute_dtype": "auto", "block_streaming": "auto", "expression_dim": 52}}
    loader["inputs"].update(loader_inputs)
    return {"load": loader, "info": {"class_type": "PreviewAny", "inputs": {"source": ["load", 1]}}}


def read_latent(path) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(path))["latent_tensor"]


def executed_nodes(entry: dict) -> set[str]:
    """Nodes that ran (not taken from ComfyUI's cache) in a finished prompt. A history
    entry's ``prompt`` is ``[number, prompt_id, graph, extra_data, output ids]``."""
    cached = set()
    for kind, data in entry["status"]["messages"]:
        if kind == "execution_cached":
            cached |= set(data["nodes"])
    return set(entry["prompt"][2]) - cached


# -- (a) the example workflow ------------------------------------------------------------
@pytest.fixture(scope="module")
def portrait_run(run_workflow):
    return run_workflow(PORTRAIT)


def test_portrait_workflow_saves_nine_frames(portrait_run):
    run = portrait_run
    files = run.files[run.node_of("SaveImage")]
    assert len(files) == CI_FRAMES  # VAEDecode of 3 latent frames: 1 + 4 + 4 frames
    frames = torch.stack([read_png(f) for f in files])
    assert frames.shape == (CI_FRAMES, CI_SIZE, CI_SIZE, 3)
    assert frames.std() > 0.02
    assert all(float(f.std()) > 0.01 for f in frames), "a saved frame is flat"


def test_portrait_workflow_saves_the_video(portrait_run):
    import av

    run = portrait_run
    (path,) = run.files[run.node_of("SaveVideo")]
    assert path.suffix == ".mp4"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == VIDEO_FPS
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == CI_FRAMES
    assert frames[0].shape == (CI_SIZE, CI_SIZE, 3)
    pngs = [read_png(f) for f in run.files[run.node_of("SaveImage")]]
    for mp4, png in zip(frames, pngs):  # the same frames, up to h264's loss
        assert (torch.from_numpy(mp4).float() / 255 - png).abs().mean() < 0.1


def test_portrait_workflow_shows_what_was_loaded(portrait_run):
    run = portrait_run
    (info,) = run.entry["outputs"][run.node_of("PreviewAny")]["text"]
    assert f"dim {TINY_WAN['dim']}, {TINY_WAN['num_layers']} layers" in info, info
    assert f"D=52 from encoder '{EXPRESSION_ENCODER}'" in info, info
    assert CHECKPOINT_NAME in info and "WARNING" not in info, info


def test_portrait_frames_match_the_nodes_run_in_process(comfy, portrait_run):
    """The server's frames are what our nodes and ComfyUI's VAE give in this process for
    the same files and inputs (up to the PNGs' 8-bit rounding)."""
    from devpack import import_comfyui

    import_comfyui()
    import comfy.sd as comfy_sd  # (binds no name 'comfy': that is the server fixture here)
    import comfy.utils as comfy_utils
    import folder_paths

    from factorportrait.nodes.camera_trajectory import CameraTrajectoryNode
    from factorportrait.nodes.model_loader import LoadModel
    from factorportrait.nodes.plucker_rays import PluckerRayMaps
    from factorportrait.nodes.sampler import Sampler

    run = portrait_run
    inputs = {k: v["inputs"] for k, v in run.prompt.items()}
    cam_in = inputs[run.node_of("FactorPortraitCameraTrajectory")]
    rays_in = inputs[run.node_of("FactorPortraitPluckerRayMaps")]
    load_in = inputs[run.node_of("FactorPortraitLoadModel")]
    sampler_in = {k: v for k, v in inputs[run.node_of("FactorPortraitSampler")].items()
                  if not isinstance(v, list)}
    folder_paths.add_model_folder_path("factorportrait", str(comfy.base_dir / "models" / "factorportrait"))
    with torch.inference_mode():
        camera = CameraTrajectoryNode.execute(**cam_in).args[0]
        rays = PluckerRayMaps.execute(camera, rays_in["width"], rays_in["height"]).args[0]
        model = LoadModel.execute(**load_in).args[0]
        vae = comfy_sd.VAE(sd=comfy_utils.load_torch_file(str(comfy.tiny_models["vae"])))
        reference = read_png(comfy.input_dir / PORTRAIT_NAME)[None]
        latent = Sampler.execute(model=model, vae=vae, reference=reference, rays=rays, **sampler_in).args[0]
        expected = vae.decode(latent["samples"])[0]  # [F, H, W, 3]
    saved = torch.stack([read_png(f) for f in run.files[run.node_of("SaveImage")]])
    assert saved.shape == expected.shape
    assert (saved - expected).abs().max() <= PNG_TOLERANCE


# -- (b) determinism through the server ----------------------------------------------------
def test_same_seed_same_video_through_the_server(comfy):
    """Seeds 42, 43, 42: the first and third latents are identical, the second differs.
    ComfyUI keeps only the outputs of the last prompt's graph, so the third run really
    samples again (checked: the sampler is not among the cached nodes; the first run may
    come from the cache of an earlier test)."""
    latents = []
    for run, seed in enumerate((42, 43, 42)):
        prompt, sampler, saver = latent_prompt(f"seed{seed}", seed=seed)
        entry = comfy.run(prompt, timeout=120)
        if run:
            assert sampler in executed_nodes(entry), f"run {run + 1}: the sampler came from the cache"
        (path,) = comfy.output_files({"outputs": {saver: entry["outputs"][saver]}})
        latents.append(read_latent(path))
    assert latents[0].shape == (1, 16, 3, CI_SIZE // 8, CI_SIZE // 8)
    assert torch.isfinite(latents[0]).all()
    assert torch.equal(latents[0], latents[2])
    assert (latents[0] - latents[1]).abs().max() > 1e-3


# -- (c) a Wan base model alone -----------------------------------------------------------
def test_base_model_alone_warns_that_controls_are_untrained(comfy):
    models = comfy.base_dir / "models"
    write_wan_base(comfy.tiny_models["checkpoint"], models / "diffusion_models" / WAN_BASE_NAME)
    entry = comfy.run(loader_prompt(base_model=WAN_BASE_NAME), timeout=60)
    (info,) = entry["outputs"]["info"]["text"]
    assert "WARNING: " + UNTRAINED_WARNING in info, info
    assert f"dim {TINY_WAN['dim']}, {TINY_WAN['num_layers']} layers" in info, info
    assert f"{LOADER_NAME}: {UNTRAINED_WARNING}" in comfy.log()


# -- (d) bad inputs through the server ------------------------------------------------------
@pytest.fixture(scope="module")
def bad_files(comfy):
    models = comfy.base_dir / "models"
    checkpoint = comfy.tiny_models["checkpoint"]
    return {
        "sdxl": write_sdxl_like(models / "factorportrait" / "sdxl_like.safetensors").name,
        "sdxl_base": write_sdxl_like(models / "diffusion_models" / "sdxl_like_unet.safetensors").name,
        "truncated": write_truncated(checkpoint, models / "factorportrait" / "truncated.safetensors").name,
    }


@pytest.mark.parametrize("input_name,file,says", [
    ("factorportrait_weights", "sdxl", "not a FactorPortrait checkpoint"),
    ("factorportrait_weights", "truncated", "truncated or corrupt"),
    ("base_model", "sdxl_base", "is not a Wan 2.1 diffusion model"),
], ids=["sdxl-as-checkpoint", "truncated-checkpoint", "sdxl-as-base"])
def test_bad_model_file(comfy, object_info, bad_files, input_name, file, says):
    """The error names the node, the input and the file, and says what is wrong."""
    text, failed = failure_text(comfy, loader_prompt(**{input_name: bad_files[file]}), object_info,
                                timeout=60)
    assert failed == "FactorPortraitLoadModel", text
    assert LOADER_NAME in text and f"input '{input_name}'" in text, text
    assert says in text and bad_files[file] in text, text


def test_sdxl_base_error_says_what_the_file_is(comfy, object_info, bad_files):
    text, _ = failure_text(comfy, loader_prompt(base_model=bad_files["sdxl_base"]), object_info, timeout=60)
    assert "Stable Diffusion UNet" in text and "diffusion_models" in text, text


def test_normal_maps_of_another_length_than_the_rays(comfy, object_info):
    prompt, sampler, _ = latent_prompt("normals")
    prompt["normals"] = {"class_type": "EmptyImage", "inputs": {
        "width": CI_SIZE, "height": CI_SIZE, "batch_size": 5, "color": 0x7F7FFF}}
    prompt[sampler]["inputs"]["normal_maps"] = ["normals", 0]
    text, failed = failure_text(comfy, prompt, object_info, timeout=60)
    assert failed == "FactorPortraitSampler", text
    assert SAMPLER_NAME in text and "input 'normal_maps'" in text, text
    assert "5 frames" in text and f"{CI_FRAMES}" in text, text


# -- (e) Cancel -------------------------------------------------------------------------------
def test_sampler_honours_interrupt(comfy):
    """A long run (999 steps, the most the node takes) is interrupted inside the sampler and
    ends within seconds; the server then runs the next prompt."""
    warm, sampler, _ = latent_prompt("interrupt-warm", steps=1, seed=7)
    comfy.run(warm, timeout=120)  # loader, VAE, rays now cached: the long run samples at once
    long_run = copy.deepcopy(warm)
    long_run[sampler]["inputs"]["steps"] = 999
    prompt_id = comfy.queue(long_run)
    deadline = time.monotonic() + 30
    while not any(item[1] == prompt_id for item in comfy.get("/queue")["queue_running"]):
        assert time.monotonic() < deadline, "the long prompt never started"
        time.sleep(0.1)
    time.sleep(0.5)
    assert comfy.get(f"/history/{prompt_id}") == {}, "999 steps finished within 0.5 s"
    interrupted_at = time.monotonic()
    comfy.interrupt()
    with pytest.raises(ExecutionFailed) as failure:
        comfy.wait(prompt_id, timeout=30)
    took = time.monotonic() - interrupted_at
    assert failure.value.exception_message == "interrupted", failure.value
    assert failure.value.node_type == "FactorPortraitSampler", failure.value
    assert took < 5.0, f"the sampler took {took:.1f} s to stop"
    after, _, _ = latent_prompt("interrupt-after", steps=1, seed=7)
    assert comfy.run(after, timeout=60)["status"]["status_str"] == "success"
