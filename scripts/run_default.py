"""Run the pack's main job in a real ComfyUI, on the CPU: a portrait photo animated by a
driving video while the camera moves, through Build Avatar and Render Avatar (no weights).

    python scripts/run_default.py                                   # the shipped inputs
    python scripts/run_default.py --reference me.jpg --driving talk.mp4 [--camera orbit] [--output DIR]
    python scripts/run_default.py --workflow workflows/animate_portrait_api.json   # any API workflow

Starts the ComfyUI host of scripts/setup_env.sh with this checkout installed as a custom
node pack (scripts/comfy_host.py), puts the inputs into its input folder, queues the API
workflow (default ``workflows/avatar_portrait_api.json``), shows the progress of each node,
and copies the files it saved into ``--output`` (default ``./output/`` of the repository).

With no options: the shipped inputs (``assets/``): the public-domain NASA portrait of
astronaut Eileen Collins (``astronaut.png``) animated by the shipped driving video
(``factorportrait_demo_driving.mp4``, 81 frames at 15 fps) with a camera orbit from -30 to
+30 degrees around the photo's view -> an 81-frame 512x512 mp4 and the person's mask video.

Your own files:

- ``--reference PHOTO``: any image; it becomes every LoadImage of the workflow.
- ``--driving VIDEO``: any video with a face; it becomes every LoadVideo of the workflow.
  The frame count follows the video: Render Avatar takes it from the track, and the Camera
  Trajectory's ``frames`` is set to the video's frame count (read with OpenCV). A video
  longer than the node's maximum (4097 frames) gets a static camera (the photo's view),
  which follows any number of frames. The FactorPortrait Sampler workflows also need 4k+1
  frames (Wan's packing); their nodes say so when the count does not fit.
- ``--camera PRESET_OR_JSON``: the camera path, applied by editing the workflow's Camera
  Trajectory node; every path starts from the photo's view (its ``reference_camera``):

  - a preset: ``orbit`` (the default: yaw -30 -> +30 degrees, eased), ``static`` (the
    photo's own view), ``novel`` (held at yaw -30), ``dolly`` (moves in to 75 % of the
    distance), ``spiral`` (a 10-degree circle through the photo's view), ``arc`` (yaw -20 ->
    +20 and pitch -10 -> +10); the node's own mode names (``static frontal``, ``static
    novel view``, ``pan/tilt arc``) work too;
  - a ``.json`` file: keyframes as the node's keyframes mode reads them (a list of
    ``{"frame", "yaw", "pitch", "roll", "distance", "fov", ...}`` or ``{"keyframes": [...],
    "interpolation": "smooth"}``; angles relative to the photo's view, frames 0-based), or a
    trajectory file saved by Save Camera Trajectory (``"format": "factorportrait-camera"``,
    absolute cameras: loaded by a Load Camera Trajectory node instead; it must have as many
    frames as the video, or one).

``--workflow PATH`` runs any API workflow instead (e.g. ``workflows/animate_portrait_api.json``,
the Sampler with the shipped 128-px demonstration model, or ``workflows/camera_rays_api.json``);
``--reference``, ``--driving`` and ``--camera`` apply to it too where it has such nodes. The
anny body model is built once in ``.host/ComfyUI/models/anny`` (1-2 minutes the first time,
with MediaPipe's face mesh placed on it, about half a minute). Exits non-zero with the reason
on failure.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfy_host import ComfyError, load_api_workflow, running_comfyui  # noqa: E402
from devpack import ROOT  # noqa: E402

DEFAULT_WORKFLOW = ROOT / "workflows" / "avatar_portrait_api.json"
SHIPPED_INPUTS = ("astronaut.png", "factorportrait_demo_reference.png", "factorportrait_demo_driving.mp4")
CAMERA_NODE, LOAD_CAMERA_NODE = "FactorPortraitCameraTrajectory", "FactorPortraitLoadCameraTrajectory"
MAX_CAMERA_FRAMES = 4097  # the Camera Trajectory node's 'frames' maximum
# --camera presets: the Camera Trajectory widgets they set (the rest stay as in the workflow).
PRESETS: dict[str, dict] = {
    "orbit": {"mode": "orbit", "yaw": -30.0, "yaw_end": 30.0, "easing": "ease in-out"},
    "static": {"mode": "static frontal"},
    "novel": {"mode": "static novel view", "yaw": -30.0, "pitch": 0.0, "roll": 0.0},
    "dolly": {"mode": "dolly", "yaw": 0.0, "pitch": 0.0, "distance": 1.2, "distance_end": 0.9},
    "spiral": {"mode": "spiral", "yaw": 0.0, "pitch": 0.0, "amplitude": 10.0, "turns": 1.0,
               "distance": 1.2, "distance_end": 1.2},
    "arc": {"mode": "pan/tilt arc", "yaw": -20.0, "yaw_end": 20.0, "pitch": -10.0, "pitch_end": 10.0,
            "roll": 0.0, "roll_end": 0.0, "distance": 1.2, "distance_end": 1.2},
}
NODE_MODES = {"static frontal": "static", "static novel view": "novel", "pan/tilt arc": "arc"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="See the module docstring for the camera presets and files.")
    parser.add_argument("--workflow", type=Path, default=DEFAULT_WORKFLOW,
                        help="API-format workflow to run (default: %(default)s)")
    parser.add_argument("--reference", type=Path, help="your portrait photo (replaces every LoadImage)")
    parser.add_argument("--driving", type=Path, help="your driving video (replaces every LoadVideo)")
    parser.add_argument("--camera", help=f"a preset ({', '.join(PRESETS)}) or a .json file of keyframes or a "
                                         "saved camera trajectory")
    parser.add_argument("--output", type=Path, default=ROOT / "output",
                        help="folder to copy the results into (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the run")
    args = parser.parse_args(argv)

    try:
        prompt, extra = load_api_workflow(args.workflow)
    except (OSError, ValueError) as e:
        print(f"error: cannot read the workflow {args.workflow}: {e}", file=sys.stderr)
        return 2
    try:
        inputs, notes = configure(prompt, args.reference, args.driving, args.camera)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.reference or args.driving or args.camera:
        extra = {}  # the graph was edited: the UI workflow saved with the results would not match it
    for note in notes:
        print(note, flush=True)

    started = time.monotonic()
    try:
        print("starting ComfyUI on the CPU (about 15 s)...", flush=True)
        with running_comfyui() as comfy:
            _provide_inputs(comfy, inputs)
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
            texts = {node_id: out["text"] for node_id, out in entry["outputs"].items()
                     if prompt[node_id]["class_type"] == "PreviewAny" and out.get("text")}
    except (ComfyError, TimeoutError, OSError) as e:
        print(f"error: running {args.workflow.name} in ComfyUI failed: {e}", file=sys.stderr)
        return 1

    if not copied:
        print(f"error: {args.workflow.name} ran but saved no files.", file=sys.stderr)
        return 1
    for node_id, text in texts.items():
        print(f"{_title(prompt, node_id)}:")
        for line in "\n".join(text).splitlines():
            print(f"  {line}")
    print(f"done in {time.monotonic() - started:.0f} s; results in {args.output}:")
    for node_id, targets in copied.items():
        where = _shown(targets[0]) if len(targets) == 1 else (
            f"{len(targets)} files, {_shown(targets[0])} ... {targets[-1].name}")
        print(f"  {_title(prompt, node_id)}: {where}")
    return 0


def configure(prompt: dict, reference: Path | None, driving: Path | None,
              camera: str | None) -> tuple[dict[str, Path], list[str]]:
    """Edit the API prompt in place for the user's files and camera; returns the files to put
    into ComfyUI's input folder (name -> source) and notes for the user."""
    inputs: dict[str, Path] = {}
    notes: list[str] = []
    if reference is not None:
        _check_file(reference, "--reference")
        inputs[reference.name] = reference
        _set_all(prompt, "LoadImage", "image", reference.name, "--reference")
    if driving is not None:
        _check_file(driving, "--driving")
        inputs[driving.name] = driving
        _set_all(prompt, "LoadVideo", "file", driving.name, "--driving")
    trajectory_frames = None
    if camera is not None:
        trajectory_frames = _apply_camera(prompt, camera, inputs)
    video = _driving_video(prompt, driving)
    cameras = [v["inputs"] for v in prompt.values()
               if v["class_type"] == CAMERA_NODE and not v["inputs"]["mode"].startswith("static")]
    if video is None or not (cameras or trajectory_frames is not None):
        return inputs, notes
    frames = video_frame_count(video)
    if trajectory_frames is not None and trajectory_frames not in (1, frames):
        notes.append(f"warning: {camera} has {trajectory_frames} cameras but {video.name} has {frames} frames; "
                     "Render Avatar needs as many cameras as frames, or one.")
    for node in cameras:  # a static camera follows any number of frames
        if frames > MAX_CAMERA_FRAMES:
            node.update(mode="static frontal", frames=1)
            notes.append(f"{video.name}: {frames} frames, more than a camera path can have "
                         f"({MAX_CAMERA_FRAMES}): the camera is held at the photo's view.")
        else:
            node["frames"] = frames
            notes.append(f"{video.name}: {frames} frames; the camera path follows them.")
    return inputs, notes


def video_frame_count(path: Path) -> int:
    """The number of frames of a video, counted by decoding (OpenCV; PyAV when OpenCV is
    missing): containers' own counts are estimates."""
    try:
        import cv2
    except ImportError:
        import av

        with av.open(str(path)) as container:
            return sum(1 for _ in container.decode(video=0))
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"OpenCV cannot open the video {path}.")
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    if count == 0:
        raise ValueError(f"the video {path} has no frames that OpenCV can read.")
    return count


def _apply_camera(prompt: dict, camera: str, inputs: dict[str, Path]) -> int | None:
    """Set the Camera Trajectory nodes for ``--camera``; a saved trajectory file goes into
    ``inputs`` and its number of cameras is returned (None otherwise)."""
    ids = [k for k, v in prompt.items() if v["class_type"] == CAMERA_NODE]
    if not ids:
        raise ValueError("--camera: the workflow has no FactorPortrait Camera Trajectory node.")
    preset = NODE_MODES.get(camera, camera)
    if preset in PRESETS:
        for node_id in ids:
            prompt[node_id]["inputs"].update(PRESETS[preset])
        return None
    path = Path(camera)
    if path.suffix.lower() != ".json":
        raise ValueError(f"--camera {camera!r}: give a preset ({', '.join(PRESETS)}) or a .json file.")
    _check_file(path, "--camera")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--camera {path}: not valid JSON ({e}).") from None
    if isinstance(data, dict) and data.get("format") == "factorportrait-camera":
        for node_id in ids:  # a saved trajectory: a Load Camera Trajectory node in its place
            prompt[node_id] = {"class_type": LOAD_CAMERA_NODE, "inputs": {"file": path.name},
                               "_meta": {"title": f"Camera ({path.name})"}}
        inputs[path.name] = path
        return len(data.get("frames") or [])
    if not isinstance(data, (list, dict)):
        raise ValueError(f"--camera {path}: expected a list of keyframes or {{\"keyframes\": [...]}}.")
    for node_id in ids:  # keyframes, relative to the photo's view
        prompt[node_id]["inputs"].update(mode="keyframes", keyframes=json.dumps(data, indent=1), yaw=0.0,
                                         pitch=0.0, roll=0.0)
    return None


def _driving_video(prompt: dict, driving: Path | None) -> Path | None:
    """The driving video the workflow loads (the user's, else the shipped one it names)."""
    if driving is not None:
        return driving
    for node in prompt.values():
        if node["class_type"] == "LoadVideo":
            shipped = ROOT / "assets" / str(node["inputs"].get("file"))
            if shipped.is_file():
                return shipped
    return None


def _set_all(prompt: dict, class_type: str, name: str, value: str, option: str) -> None:
    nodes = [v for v in prompt.values() if v["class_type"] == class_type]
    if not nodes:
        raise ValueError(f"{option}: the workflow has no {class_type} node.")
    for node in nodes:
        node["inputs"][name] = value


def _check_file(path: Path, option: str) -> None:
    if not path.is_file():
        raise ValueError(f"{option}: {path} is not a file.")


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


def _provide_inputs(comfy, inputs: dict[str, Path]) -> None:
    """The shipped and the user's inputs into the server's input folder; its anny folder ->
    the persistent one."""
    for name in SHIPPED_INPUTS:
        shutil.copy2(ROOT / "assets" / name, comfy.input_dir / name)
    for name, source in inputs.items():
        shutil.copy2(source, comfy.input_dir / name)
    persistent = ROOT / ".host" / "ComfyUI" / "models" / "anny"
    persistent.mkdir(parents=True, exist_ok=True)
    models = comfy.base_dir / "models"
    models.mkdir(exist_ok=True)
    if not (models / "anny").exists():
        (models / "anny").symlink_to(persistent, target_is_directory=True)


def _title(prompt: dict, node_id: str) -> str:
    node = prompt[node_id]
    return node.get("_meta", {}).get("title", node["class_type"])


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
