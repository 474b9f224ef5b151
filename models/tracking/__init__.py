"""Body-mesh tracking: 2-D landmark observations and the fit of an upper-body model to them.

``Keypoints2D`` (from MediaPipe arrays or ``POSE_KEYPOINT``) -> ``fit_sequence(model, keypoints)``
-> per-frame ``UpperBodyParams``, the static camera and a ``FitReport``.
"""
from .fit import FITTED_ARKIT, FitReport, fit_sequence
from .keypoints import LANDMARK_NAMES, Keypoints2D, from_mediapipe, from_pose_keypoint

__all__ = ["FITTED_ARKIT", "LANDMARK_NAMES", "FitReport", "Keypoints2D", "fit_sequence", "from_mediapipe",
           "from_pose_keypoint"]
