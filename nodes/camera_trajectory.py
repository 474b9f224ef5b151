"""Node "FactorPortrait Camera Trajectory": a camera path around the subject."""
from __future__ import annotations

import json
from dataclasses import replace

from comfy_api.latest import io

from ..models.camera import paths as tr
from ..models.errors import InputError
from ..models.camera.preview import trajectory_preview
from .errors import reported_as
from .types import Camera

MODES = (
    "static frontal",
    "static novel view",
    "orbit",
    "spiral",
    "dolly",
    "pan/tilt arc",
    "keyframes",
)

EXAMPLE_KEYFRAMES = json.dumps(
    {
        "interpolation": "smooth",
        "keyframes": [
            {"frame": 0, "yaw": 0, "pitch": 0, "distance": 1.2, "fov": 30},
            {"frame": 40, "yaw": 30, "pitch": 10},
            {"frame": 80, "yaw": -20, "pitch": 0, "roll": 5, "target": [0, 0.05, 0]},
        ],
    },
    indent=1,
)


def _angle(name: str, default: float, tooltip: str, limit: float = 720.0) -> io.Float.Input:
    return io.Float.Input(name, default=default, min=-limit, max=limit, step=0.5, tooltip=tooltip)


class CameraTrajectoryNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitCameraTrajectory",
            display_name="FactorPortrait Camera Trajectory",
            category="FactorPortrait/camera",
            description=(
                "Builds a camera path around the portrait subject: per-frame intrinsics and "
                "world-to-camera extrinsics. Angles are relative to the frontal view "
                "(camera in front of the face). Also draws the path seen from above and "
                "from the side."
            ),
            inputs=[
                io.Combo.Input("mode", options=list(MODES), default="orbit", tooltip=(
                    "static frontal: fixed frontal camera. static novel view: fixed camera at "
                    "yaw/pitch/roll/distance. orbit: turntable from yaw to yaw_end at constant "
                    "speed. spiral: the view circles 'turns' times on a circle of 'amplitude' "
                    "degrees through the start view, moving to distance_end. dolly: move to "
                    "distance_end (optionally dolly-zoom). pan/tilt arc: yaw, pitch, roll and "
                    "distance move from the start to the *_end values. keyframes: the JSON below.")),
                io.Int.Input("frames", default=81, min=1, max=4097, step=4, tooltip=(
                    "Number of video frames. Wan packs 4k+1 frames (..., 77, 81, 85) into "
                    "latent frames; the paper uses 81 at 15 fps.")),
                io.Float.Input("fov", default=30.0, min=1.0, max=179.0, step=0.5, tooltip=(
                    "Vertical field of view in degrees, strictly between 1 and 179. "
                    "Portrait lenses are about 20-40.")),
                io.Float.Input("distance", default=1.2, min=0.05, max=100.0, step=0.05, tooltip=(
                    "Camera distance to the look-at target in metres (start distance).")),
                _angle("yaw", 0.0, "Start yaw in degrees; positive moves the camera toward "
                       "the subject's left (world +X)."),
                _angle("pitch", 0.0, "Start pitch in degrees; positive moves the camera up, "
                       "looking down.", 180.0),
                _angle("roll", 0.0, "Start roll in degrees; positive turns the camera "
                       "clockwise (the picture turns counter-clockwise).", 180.0),
                _angle("yaw_end", 30.0, "End yaw for orbit and pan/tilt arc (orbit may go "
                       "past 360 for several turns)."),
                _angle("pitch_end", 0.0, "End pitch for pan/tilt arc.", 180.0),
                _angle("roll_end", 0.0, "End roll for pan/tilt arc.", 180.0),
                io.Float.Input("distance_end", default=1.2, min=0.05, max=100.0, step=0.05,
                               tooltip="End distance for dolly, spiral and pan/tilt arc, metres."),
                io.Float.Input("amplitude", default=10.0, min=0.0, max=89.0, step=0.5,
                               tooltip="Spiral: angular radius of the circle, degrees."),
                io.Float.Input("turns", default=1.0, min=0.0, max=20.0, step=0.25,
                               tooltip="Spiral: number of turns over the video."),
                io.Boolean.Input("dolly_zoom", default=False, tooltip=(
                    "Dolly: change the focal length with the distance so the subject keeps "
                    "its size while the perspective changes (the 'Vertigo' effect).")),
                io.Combo.Input("easing", options=list(tr.EASINGS), default="linear", tooltip=(
                    "Speed profile of orbit, dolly and pan/tilt arc: constant, or slow at "
                    "both ends.")),
                io.String.Input("keyframes", multiline=True, default=EXAMPLE_KEYFRAMES, tooltip=(
                    "Keyframes mode: JSON list of {frame, yaw, pitch, roll, distance, fov, "
                    "target [x,y,z] (metres), optionally focal, pixel_aspect, principal}, or "
                    "{\"keyframes\": [...], \"interpolation\": \"smooth\"|\"linear\"}. Frames "
                    "are 0-based and strictly increasing; missing values carry over from the "
                    "previous keyframe (the first from the widgets above). 'smooth' is a "
                    "monotone cubic through every keyframe (no overshoot, no jumps).")),
                Camera.Input("reference_camera", optional=True, tooltip=(
                    "Optional: start from this camera's view, e.g. Track Body Mesh's camera (the "
                    "reference image's view). Its distance and lens replace 'distance' and 'fov'; "
                    "distance_end keeps its ratio to 'distance'; angles are relative to it.")),
            ],
            outputs=[
                Camera.Output(display_name="camera", tooltip="The camera trajectory."),
                io.Image.Output(display_name="preview", tooltip=(
                    "The path from above (left; subject at the circle, facing down) and "
                    "from the subject's left side (right). Blue = first frame, red = last; "
                    "the first frustum is green.")),
            ],
        )

    @classmethod
    def execute(cls, mode: str, frames: int, fov: float, distance: float, yaw: float,
                pitch: float, roll: float, yaw_end: float, pitch_end: float, roll_end: float,
                distance_end: float, amplitude: float, turns: float, dolly_zoom: bool,
                easing: str, keyframes: str, reference_camera=None) -> io.NodeOutput:
        with reported_as("FactorPortrait Camera Trajectory"):
            frontal = tr.View(distance=distance, fov=fov)
            if reference_camera is not None:
                frontal = tr.reference_view(reference_camera)
                distance_end *= frontal.distance / distance
            start = replace(frontal, yaw=yaw, pitch=pitch, roll=roll)
            if mode == "static frontal":
                camera = tr.static(frames, frontal)
            elif mode == "static novel view":
                camera = tr.static(frames, start)
            elif mode == "orbit":
                camera = tr.orbit(frames, start, yaw_end, easing)
            elif mode == "spiral":
                camera = tr.spiral(frames, start, amplitude, turns, distance_end)
            elif mode == "dolly":
                camera = tr.dolly(frames, start, distance_end, dolly_zoom, easing)
            elif mode == "pan/tilt arc":
                end = replace(start, yaw=yaw_end, pitch=pitch_end, roll=roll_end, distance=distance_end)
                camera = tr.arc(frames, start, end, easing)
            elif mode == "keyframes":
                camera = tr.keyframed(frames, keyframes, start)
            else:
                raise InputError("mode", f"unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
        return io.NodeOutput(camera, trajectory_preview(camera))
