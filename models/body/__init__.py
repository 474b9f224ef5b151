"""Body models cut to the paper's upper-body template, in the DESIGN world.

``load_anny(cache_dir)`` (default, offline, built once per cache folder) and
``load_smplx(folder, gender)`` (licensed SMPL-X files) give an ``UpperBodyModel``:
``model(params) -> [F, V, 3]``, ``model.landmarks(vertices) -> [F, K, 3]``, ``model.faces``.
"""
from .anny_model import ARKIT_FACE_ACTIONS, FACE_ACTION_REGIONS, AnnyUpperBody, load_anny
from .cache import is_cached as is_anny_cached
from .smplx_model import SmplxUpperBody, load_smplx
from .upper_body import (JOINT_NAMES, LANDMARK_INDEX, LANDMARKS, Landmark, UpperBodyModel, UpperBodyParams,
                         axis_angle_to_matrix)

__all__ = [
    "ARKIT_FACE_ACTIONS", "FACE_ACTION_REGIONS", "JOINT_NAMES", "LANDMARKS", "LANDMARK_INDEX",
    "AnnyUpperBody", "Landmark", "SmplxUpperBody", "UpperBodyModel", "UpperBodyParams",
    "axis_angle_to_matrix", "is_anny_cached", "load_anny", "load_smplx",
]
