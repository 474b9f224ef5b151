"""Nodes that save a camera trajectory to a JSON file and load one back, for sharing."""
from __future__ import annotations

import hashlib
import os

import folder_paths
from comfy_api.latest import io

from ..models.camera.files import trajectory_from_json, trajectory_to_dict, trajectory_to_json
from ..models.camera.preview import trajectory_preview
from ..models.errors import InputError
from .errors import reported_as
from .ui_previews import CAMERA_KEY
from .types import Camera

LOAD_NAME = "FactorPortrait Load Camera Trajectory"
SAVE_NAME = "FactorPortrait Save Camera Trajectory"


def _json_files() -> list[str]:
    """JSON files under ComfyUI's input folder, relative paths with forward slashes."""
    root = folder_paths.get_input_directory()
    found, seen = [], set()
    for dirpath, dirnames, files in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop: do not walk a folder twice
            dirnames[:] = []
            continue
        seen.add(real)
        for name in files:
            if name.lower().endswith(".json"):
                found.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return sorted(found)


def _input_path(file: str) -> str:
    root = os.path.abspath(folder_paths.get_input_directory())
    path = os.path.abspath(os.path.join(root, file))
    if os.path.commonpath([root, path]) != root:
        raise InputError("file", f"{file!r} is outside ComfyUI's input folder {root}.")
    if not os.path.isfile(path):
        raise InputError("file", f"{file!r} was not found in ComfyUI's input folder {root}; "
                         "put the trajectory .json there and refresh the node list.")
    return path


class LoadCameraTrajectory(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitLoadCameraTrajectory",
            display_name=LOAD_NAME,
            category="FactorPortrait/camera",
            description=("Loads a camera trajectory saved by FactorPortrait Save Camera "
                         "Trajectory (a .json file in ComfyUI's input folder)."),
            inputs=[
                io.Combo.Input("file", options=_json_files(), tooltip=(
                    "A factorportrait-camera .json file in ComfyUI's input folder.")),
            ],
            outputs=[
                Camera.Output(display_name="camera", tooltip="The loaded camera trajectory."),
                io.Image.Output(display_name="preview", tooltip="The path from above and from the side."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, file: str) -> str:
        # Re-run when the file's content changes, not only when another file is chosen.
        try:
            with open(_input_path(file), "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        except (InputError, OSError):
            return file

    @classmethod
    def execute(cls, file: str) -> io.NodeOutput:
        with reported_as(LOAD_NAME):
            path = _input_path(file)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                raise InputError("file", f"{file!r} could not be read ({e}).") from None
            camera = trajectory_from_json(text, "file", repr(file))
        return io.NodeOutput(camera, trajectory_preview(camera), ui={CAMERA_KEY: [trajectory_to_dict(camera)]})


class SaveCameraTrajectory(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitSaveCameraTrajectory",
            display_name=SAVE_NAME,
            category="FactorPortrait/camera",
            description=("Saves a camera trajectory as .json in ComfyUI's output folder so it "
                         "can be shared and loaded again (put it in the input folder)."),
            inputs=[
                Camera.Input("camera", tooltip="The trajectory to save."),
                io.String.Input("filename_prefix", default="factorportrait/camera", tooltip=(
                    "File name prefix, may contain a subfolder; a counter is appended.")),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, camera, filename_prefix: str) -> io.NodeOutput:
        out_dir = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, out_dir)
        filename = f"{name}_{counter:05}_.json"
        with open(os.path.join(folder, filename), "w", encoding="utf-8") as f:
            f.write(trajectory_to_json(camera))
        return io.NodeOutput(ui={"text": [os.path.join(subfolder, filename)]})
