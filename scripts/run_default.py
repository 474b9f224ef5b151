"""Run the pack's main job on built-in defaults in a real ComfyUI, on the CPU.

    python scripts/run_default.py [--workflow workflows/animate_portrait_api.json] [--output output]

Starts the ComfyUI host of scripts/setup_env.sh with this checkout installed as a custom
node pack (scripts/comfy_host.py), puts the shipped inputs (assets/: a reference portrait
and a driving video) into its input folder, queues the API workflow, shows the progress of
each node, and copies the files it saved (the animated frames and mp4, the normal-map
video) into ./output/ of the repository. The default model and VAE ship in weights/; the
anny body model is built once in .host/ComfyUI/models/anny (1-2 minutes the first time).
``--workflow workflows/camera_rays_api.json`` runs the camera-only example. Exits non-zero
with the reason on failure.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfy_host import ComfyError, load_api_workflow, running_comfyui  # noqa: E402
from devpack import ROOT  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflow", type=Path, default=ROOT / "workflows" / "animate_portrait_api.json",
                        help="API-format workflow to run (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=ROOT / "output",
                        help="folder to copy the results into (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the run")
    args = parser.parse_args(argv)

    try:
        prompt, extra = load_api_workflow(args.workflow)
    except (OSError, ValueError) as e:
        print(f"error: cannot read the workflow {args.workflow}: {e}", file=sys.stderr)
        return 2

    started = time.monotonic()
    try:
        print("starting ComfyUI on the CPU (about 15 s)...", flush=True)
        with running_comfyui() as comfy:
            _provide_inputs(comfy)
            print(f"ComfyUI is up at {comfy.url}; running {args.workflow.name}...", flush=True)
            entry = comfy.run(prompt, timeout=args.timeout, extra_data=extra, on_poll=_LogProgress(comfy.log_path))
            copied = {}
            for node_id, node_output in entry["outputs"].items():
                files = comfy.output_files({"outputs": {node_id: node_output}})
                targets = []
                for f in files:
                    target = args.output / f.relative_to(comfy.output_dir)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, target)
                    targets.append(target)
                if targets:
                    copied[node_id] = targets
    except (ComfyError, TimeoutError, OSError) as e:
        print(f"error: running {args.workflow.name} in ComfyUI failed: {e}", file=sys.stderr)
        return 1

    if not copied:
        print(f"error: {args.workflow.name} ran but saved no files.", file=sys.stderr)
        return 1
    print(f"done in {time.monotonic() - started:.0f} s; results in {args.output}:")
    for node_id, targets in copied.items():
        node = prompt[node_id]
        title = node.get("_meta", {}).get("title", node["class_type"])
        where = _shown(targets[0]) if len(targets) == 1 else (
            f"{len(targets)} files, {_shown(targets[0])} ... {targets[-1].name}")
        print(f"  {title}: {where}")
    return 0


class _LogProgress:
    """Prints the server log's new lines while the workflow runs: the nodes' messages and
    ComfyUI's progress bars (a bar's latest state only, at most every few seconds)."""

    def __init__(self, log_path: Path, every_s: float = 3.0):
        self.path, self.offset, self.every_s, self.last = log_path, log_path.stat().st_size, every_s, 0.0

    def __call__(self) -> None:
        if time.monotonic() - self.last < self.every_s:
            return
        self.last = time.monotonic()
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            new = f.read()
        self.offset += len(new)
        for line in new.decode("utf-8", errors="replace").splitlines():
            line = line.split("\r")[-1].strip()
            if line and "Feedback manager" not in line:
                print(f"  | {line}", flush=True)


def _provide_inputs(comfy) -> None:
    """The shipped inputs into the server's input folder; its anny folder -> the persistent one."""
    for f in (ROOT / "assets").glob("factorportrait_demo_*"):
        shutil.copy2(f, comfy.input_dir / f.name)
    persistent = ROOT / ".host" / "ComfyUI" / "models" / "anny"
    persistent.mkdir(parents=True, exist_ok=True)
    models = comfy.base_dir / "models"
    models.mkdir(exist_ok=True)
    if not (models / "anny").exists():
        (models / "anny").symlink_to(persistent, target_is_directory=True)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
