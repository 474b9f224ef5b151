"""Expression codes: encoders that make them, and the tools that shape them.

- :mod:`.arkit_codes`: the default code, anny's 52 ARKit face-action weights (D = 52, 0..1).
- :mod:`.face_align`: five face points -> least-squares similarity -> aligned crop.
- :mod:`.image_encoder`: the learned encoder's compact ResNet, crop ``[F, 3, S, S]`` -> ``[F, D]``.
- :mod:`.encoder_file`: its safetensors files with the config in the metadata; clear errors.
- :mod:`.encode`: driving frames + keypoints -> ``ExpressionCodes`` with the learned encoder.
- :mod:`.retarget`, :mod:`.smoothing`: neutral offset, intensity, region mixing, filters.
- :mod:`.keyframes`: codes written by hand as keyframes of named face actions.
- :mod:`.plot`: the preview of the strongest channels over time.
"""
from .arkit_codes import ARKIT_ENCODER, ARKIT_RANGE, arkit_codes
from .encode import encode_frames
from .encoder_file import load_image_encoder, save_image_encoder
from .face_align import (FACE_TEMPLATE, AlignedFaces, align_faces, alignment_matrices, face_points,
                         face_template, fit_similarity, warp_faces)
from .image_encoder import ExpressionImageEncoder, ImageEncoderConfig
from .keyframes import expression_from_keyframes
from .plot import expression_plot
from .retarget import retarget_expression

__all__ = [
    "ARKIT_ENCODER", "ARKIT_RANGE", "FACE_TEMPLATE", "AlignedFaces", "ExpressionImageEncoder",
    "ImageEncoderConfig", "align_faces", "alignment_matrices", "arkit_codes", "encode_frames",
    "expression_from_keyframes", "expression_plot", "face_points", "face_template", "fit_similarity",
    "load_image_encoder", "retarget_expression", "save_image_encoder", "warp_faces",
]
