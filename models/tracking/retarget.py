"""Retargeting: the driving actor's motion applied to the reference subject's body.

The driving video and the reference photo are fitted with the same body model in the same
world (DESIGN.md; each with its own static frontal camera). The retargeted sequence keeps
the reference's identity and starting pose and adds what the driving actor did *since the
driving video's first frame*:

    R_out[f] = R_drv[f] R_drv[0]^T R_ref      for every rotation (global, torso, neck, head,
                                              each clavicle); world axes, so the change is
                                              applied on the left, in the parent's frame
    t_out[f] = t_ref + t_drv[f] - t_drv[0]    (metres: both bodies live in metric worlds)
    shape    = shape_ref
    face[f]  = face_drv[f]                    (face actions are absolute and identity-free)

At frame 0 the result is exactly the reference's pose, so the first generated frame matches
the reference image; a driving actor who starts with a turned head does not turn the
reference's head.
"""
from __future__ import annotations

from kornia.geometry.conversions import axis_angle_to_rotation_matrix, rotation_matrix_to_axis_angle
from torch import Tensor

from ..body.upper_body import UpperBodyParams
from ..errors import InputError

ROTATIONS = ("rotation", "torso", "neck", "head", "clavicles")


def relative_rotation(driving: Tensor, reference: Tensor) -> Tensor:
    """``R(d[f]) R(d[0])^T R(r)`` as axis-angle.

    Args:
        driving: axis-angle ``[F, ..., 3]``.
        reference: axis-angle ``[..., 3]`` (one frame, broadcast over ``F``).
    Returns:
        axis-angle ``[F, ..., 3]``.
    """
    shape = driving.shape
    d = axis_angle_to_rotation_matrix(driving.reshape(-1, 3).double()).reshape(*shape[:-1], 3, 3)
    r = axis_angle_to_rotation_matrix(reference.reshape(-1, 3).double()).reshape(*shape[1:-1], 3, 3)
    out = d @ d[:1].transpose(-1, -2) @ r
    return rotation_matrix_to_axis_angle(out.reshape(-1, 3, 3)).reshape(shape).to(driving.dtype)


def retarget(driving: UpperBodyParams, reference: UpperBodyParams) -> UpperBodyParams:
    """The driving motion (relative to its first frame) on the reference's pose and shape.

    Args:
        driving: ``F`` frames fitted to the driving video.
        reference: one frame fitted to the reference image (the same body model).
    Returns:
        ``F`` frames with the reference's shape (see the module docstring).
    """
    if reference.frames != 1:
        raise InputError("reference_image", f"the reference must be one image, got {reference.frames} frames.")
    if driving.shape.shape != reference.shape.shape or driving.face.shape[1:] != reference.face.shape[1:]:
        raise InputError("body_model", "the driving video and the reference were fitted with different body models.")
    out = {k: relative_rotation(getattr(driving, k), getattr(reference, k)[0]) for k in ROTATIONS}
    translation = reference.translation + driving.translation - driving.translation[:1]
    return UpperBodyParams(shape=reference.shape.clone(), face=driving.face.clone(), translation=translation, **out)
