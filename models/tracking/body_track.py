"""The body track: what "Track Body Mesh" produces and "Render Normal Maps" consumes.

``track_body`` fits the body model to the driving video's landmarks (all frames at once)
and, when given, to the reference image's landmarks the same way; with ``retarget`` the
driving motion is moved onto the reference's body (``retarget.py``) and the track is seen
from the reference's camera, so rendering it with that camera reproduces the reference
view in its first frame and a camera trajectory can be set relative to it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..body.upper_body import UpperBodyModel, UpperBodyParams
from ..camera.trajectory import CameraTrajectory
from .fit import FitReport, fit_sequence
from .keypoints import Keypoints2D
from .retarget import retarget as retarget_params

Progress = Callable[[int, int], None]


@dataclass
class FittedSequence:
    """One fit: parameters of ``F`` frames, the camera they were seen by (``F`` frames, static),
    the report and the landmarks fitted."""

    params: UpperBodyParams
    camera: CameraTrajectory
    report: FitReport
    keypoints: Keypoints2D


@dataclass
class BodyTrack:
    """The value of ``FACTORPORTRAIT_BODY_TRACK``.

    Attributes:
        model: the body model (anny or SMPL-X upper body) the parameters belong to.
        params: the ``F`` frames to render: the driving fit, or the retargeted motion.
        camera: the view ``params`` are seen in (``F`` frames): the reference image's camera
            when the motion was retargeted, else the driving video's.
        driving: the fit of the driving video.
        reference: the fit of the reference image (one frame), if one was given.
        retargeted: whether ``params`` carry the reference's body.
    """

    model: UpperBodyModel
    params: UpperBodyParams
    camera: CameraTrajectory
    driving: FittedSequence
    reference: FittedSequence | None = None
    retargeted: bool = False

    @property
    def frames(self) -> int:
        return self.params.frames

    @property
    def faces(self) -> Tensor:
        """Triangles ``[M, 3]`` (counter-clockwise seen from outside)."""
        return self.model.faces

    def vertices(self, frames: slice | list[int] | Tensor | None = None) -> Tensor:
        """World vertices ``[F', V, 3]`` of the given frames (all by default), float32, no grad."""
        params = self.params if frames is None else self.params.select(frames)
        with torch.no_grad():
            return self.model(params)

    def summary(self) -> str:
        """Text for the node's info output: the fits, filled frames and notes."""
        lines = [f"body model: {self.model.name}; {self.frames} frame(s)."]
        lines.append("driving video: " + self.driving.report.summary())
        if self.reference is not None:
            lines.append("reference image: " + self.reference.report.summary())
            lines.append("the driving motion was retargeted onto the reference's body and is seen from the "
                         "reference's camera." if self.retargeted else
                         "not retargeted: the driving actor's body is rendered from the video's camera.")
        return "\n".join(lines)


def _repeat(camera: CameraTrajectory, frames: int) -> CameraTrajectory:
    return camera.frames([0] * frames)


def track_body(model: UpperBodyModel, driving: Keypoints2D, reference: Keypoints2D | None = None, *,
               video_fov_deg: float | None = None, reference_fov_deg: float | None = None,
               retarget: bool = True, iterations: int | None = None, smoothness: float = 1.0,
               progress: Progress | None = None) -> BodyTrack:
    """Fit the driving landmarks (and the reference's), and retarget if asked.

    Args:
        model: the body model (built outside inference mode, as the loaders do).
        driving: landmarks of the ``F`` driving frames.
        reference: landmarks of the reference image (one frame), or None.
        video_fov_deg, reference_fov_deg: vertical fields of view; None fits them.
        retarget: with a reference, render the driving motion on the reference's body.
        iterations: solver iterations per fit (None: ``fit_sequence``'s default).
        smoothness: temporal smoothness weight of the driving fit.
        progress: ``(done, total)`` over both fits; may raise to cancel.
    """
    kwargs = {} if iterations is None else {"iterations": iterations}
    fits: list[FittedSequence] = []
    jobs = [(driving, video_fov_deg)] + ([(reference, reference_fov_deg)] if reference else [])
    weights = [kp.frames for kp, _fov in jobs]  # progress share: the fit's cost grows with frames
    offsets = [sum(weights[:i]) for i in range(len(weights))]
    total = sum(weights)

    for (keypoints, fov), offset, weight in zip(jobs, offsets, weights):
        def report(done: int, steps: int, offset=offset, weight=weight) -> None:
            if progress is not None:
                progress(min(total, offset + round(weight * done / steps)), total)

        params, camera, fit_report = fit_sequence(model, keypoints, camera_fov_deg=fov, smoothness=smoothness,
                                                  progress=report, **kwargs)
        fits.append(FittedSequence(params, camera, fit_report, keypoints))

    drv = fits[0]
    ref = fits[1] if reference else None
    if ref is not None and retarget:
        params = retarget_params(drv.params, ref.params)
        return BodyTrack(model, params, _repeat(ref.camera, drv.params.frames), drv, ref, retargeted=True)
    return BodyTrack(model, drv.params, drv.camera, drv, ref)
