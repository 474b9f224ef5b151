"""The expression encoders behind one interface: the value of
``FACTORPORTRAIT_EXPRESSION_ENCODER``.

- ``anny-arkit52`` (built in): anny's ARKit face actions fitted to MediaPipe's face mesh
  (:mod:`.arkit_encoder`); D = 52, named channels in 0..1.
- a learned image encoder from a safetensors file (:mod:`.image_encoder`): aligned face
  crops -> D-dimensional codes (the paper's kind; weights come from training).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .codes import ExpressionCodes
from ..tracking.keypoints import Keypoints2D
from .arkit_encoder import ArkitEncoder
from .encode import encode_frames
from .image_encoder import ExpressionImageEncoder

Progress = Callable[[int, int], None]


@dataclass
class ExpressionEncoder:
    """One loaded encoder: exactly one of ``arkit`` and ``network`` is set."""

    name: str
    dim: int
    arkit: ArkitEncoder | None = None
    network: ExpressionImageEncoder | None = None
    notes: list[str] = field(default_factory=list)

    @staticmethod
    def built_in(arkit: ArkitEncoder) -> ExpressionEncoder:
        from .arkit_codes import ARKIT_ENCODER

        return ExpressionEncoder(ARKIT_ENCODER, 52, arkit=arkit)

    @staticmethod
    def learned(network: ExpressionImageEncoder, name: str) -> ExpressionEncoder:
        return ExpressionEncoder(name, network.config.code_dim, network=network)

    def encode(self, images: torch.Tensor, keypoints: Keypoints2D | None = None, *, fov_degrees: float | None = None,
               video: bool = True, device: torch.device | str = "cpu",
               progress: Progress | None = None) -> tuple[ExpressionCodes, list[str]]:
        """Codes ``[F, D]`` of the frames, and notes for the user (filled frames, ...).

        Args:
            images: ComfyUI IMAGE ``[F, H, W, C]``.
            keypoints: landmarks of the frames from another detector (POSE_KEYPOINT); None
                runs MediaPipe (the face mesh for ARKit, its 32 landmarks for a learned encoder).
            fov_degrees: the camera's vertical field of view (ARKit fit); None estimates it.
            device: where a learned network runs.
        """
        if self.arkit is not None:
            if keypoints is None:
                codes, report = self.arkit.encode_images(images, fov_degrees, video=video, progress=progress)
            else:
                codes, report = self.arkit.fit(keypoints, fov_degrees, progress=progress)
            return codes, [f"ARKit fit: field of view {report.fov_degrees:.1f}°, {report.seconds:.1f} s.", *report.notes]
        if keypoints is None:
            from ..tracking.mediapipe_detector import detect_landmarks

            keypoints = detect_landmarks(images, video=video, detect_pose=False)
        network = self.network.to(device)
        try:
            codes = encode_frames(network, images, keypoints, progress=progress, name=self.name)
        finally:
            self.network.to("cpu")
        notes = list(keypoints.notes)
        missing = keypoints.missing_frames
        if missing:
            notes.append(f"no face in {len(missing)} frame(s): they were cropped like their nearest frame with one.")
        return codes, notes
