"""Integration tests: one real ComfyUI server (CPU, loopback) for the whole session.

The server comes from scripts/comfy_host.py: ComfyUI of ``.host/ComfyUI`` (or
``$FACTORPORTRAIT_COMFYUI``) with this checkout in a temporary ``custom_nodes`` folder.
Without a host tree (scripts/setup_env.sh not run) the integration tests are skipped.
Right after the server starts, tiny random model files (tests/integration/tiny_models.py,
and the Wan models of tiny_wan_models.py) are written into its model folders and a
reference portrait into its input folder, so the
portrait workflow's combos (checkpoint, VAE, image) are valid: ComfyUI lists model folders
when a prompt is validated and when ``/object_info`` is asked, not at start-up. The server
also loads the CI stub text encoder (stub_text_encoder/), which the Wan workflows use in CI.
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from comfy_host import PACK_FOLDER, ComfyClient, load_api_workflow, running_comfyui
from devpack import comfyui_dir

from .driving_video import write_driving_video
from .helpers import WORKFLOWS, shrunk_for_ci, with_prefix_folder
from .tiny_models import CHECKPOINT_NAME, write_tiny_models
from .tiny_wan_models import write_tiny_wan_models

REPO = Path(__file__).resolve().parents[2]
# CI's stand-in for the umt5-xxl text encoder of the Wan workflows (stub_text_encoder/__init__.py).
STUB_NODES = Path(__file__).resolve().parent / "stub_text_encoder"


@pytest.fixture(scope="session")
def comfy(anny_cache_dir) -> ComfyClient:
    if not (comfyui_dir() / "main.py").is_file():
        pytest.skip(f"no ComfyUI host at {comfyui_dir()}; run scripts/setup_env.sh")
    from factorportrait.models.body import load_anny

    anny = load_anny(anny_cache_dir)
    with running_comfyui({PACK_FOLDER: REPO, "factorportrait_ci_stub": STUB_NODES}) as client:
        client.tiny_models = write_tiny_models(client.base_dir / "models")
        client.tiny_wan_models = write_tiny_wan_models(client.base_dir / "models")
        client.anny_model = anny
        client.driving_video = write_driving_video(anny, anny_cache_dir, client.base_dir)
        for shipped in (REPO / "assets").glob("*.*"):  # the main jobs' inputs (the avatar's photo, the demo's)
            shutil.copy2(shipped, client.base_dir / "input" / shipped.name)
        yield client


@pytest.fixture(scope="session")
def object_info(comfy: ComfyClient) -> dict:
    """``/object_info``, fetched once, after the tiny model files exist."""
    info = comfy.object_info()
    options = info["FactorPortraitLoadModel"]["input"]["required"]["factorportrait_weights"]
    assert CHECKPOINT_NAME in options[1]["options"], (
        f"the server does not list {CHECKPOINT_NAME} written to {comfy.base_dir / 'models'}: {options}")
    return info


class WorkflowRun:
    """One finished run of an example workflow: the prompt queued, its history entry, and
    the files it saved (output-folder paths, in node and batch order, per node id)."""

    def __init__(self, comfy: ComfyClient, prompt: dict, entry: dict):
        self.prompt = prompt
        self.entry = entry
        self.files = {node_id: comfy.output_files({"outputs": {node_id: out}})
                      for node_id, out in entry["outputs"].items()}

    def node_of(self, class_type: str, **inputs) -> str:
        """The id of the one node of this type (whose inputs include ``inputs``)."""
        ids = [k for k, v in self.prompt.items() if v["class_type"] == class_type
               and all(v["inputs"].get(n) == x for n, x in inputs.items())]
        assert len(ids) == 1, f"expected one {class_type} with {inputs}, found {ids}"
        return ids[0]


@pytest.fixture(scope="session")
def run_workflow(comfy: ComfyClient):
    """``run_workflow("x_api.json") -> WorkflowRun``, each workflow run once per session,
    its files saved under a fresh output subfolder; workflows with a FactorPortrait
    Sampler or Render Avatar run shrunk for CI (``helpers.shrunk_for_ci``: 9 frames, the
    tests' short driving clip, 2 steps, small renders)."""
    runs: dict[str, WorkflowRun] = {}

    def run(name: str) -> WorkflowRun:
        if name not in runs:
            prompt, extra = load_api_workflow(WORKFLOWS / name)
            prompt = shrunk_for_ci(with_prefix_folder(prompt, f"it-{uuid.uuid4().hex[:8]}"))
            runs[name] = WorkflowRun(comfy, prompt, comfy.run(prompt, timeout=180, extra_data=extra))
        return runs[name]

    return run
