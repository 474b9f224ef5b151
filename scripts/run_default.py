"""Run the pack's main example on built-in defaults in a real ComfyUI, on the CPU.

    python scripts/run_default.py [--workflow workflows/camera_rays_api.json] [--output output]

Starts the ComfyUI host of scripts/setup_env.sh with this checkout installed as a custom
node pack (scripts/comfy_host.py), queues the API workflow, waits for it, and copies the
files it saved (camera path preview, per-frame ray-direction previews, the camera .json)
into ./output/ of the repository. No model files are needed. Exits non-zero with the
reason on failure.
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
    parser.add_argument("--workflow", type=Path, default=ROOT / "workflows" / "camera_rays_api.json",
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
            print(f"ComfyUI is up at {comfy.url}; running {args.workflow.name}...", flush=True)
            entry = comfy.run(prompt, timeout=args.timeout, extra_data=extra)
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


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
