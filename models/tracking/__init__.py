"""Body-mesh tracking: 2-D landmark observations and the fit of an upper-body model to them.

``Keypoints2D`` (``detect_landmarks`` on images with the optional MediaPipe, MediaPipe arrays,
or ``POSE_KEYPOINT``) -> ``fit_sequence(model, keypoints)``
-> per-frame ``UpperBodyParams``, the static camera and a ``FitReport``.
"""
from .fit import FITTED_ARKIT, FitReport, fit_sequence
from .keypoints import LANDMARK_NAMES, Keypoints2D, from_mediapipe, from_pose_keypoint
from .mediapipe_detector import detect_landmarks, is_available as mediapipe_available

__all__ = ["FITTED_ARKIT", "LANDMARK_NAMES", "FitReport", "Keypoints2D", "detect_landmarks", "fit_sequence",
           "from_mediapipe", "from_pose_keypoint", "mediapipe_available"]
