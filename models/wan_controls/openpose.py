"""The OpenPose COCO-18 body layout (keypoints, limbs, colours) and the iBUG-68 face count.

Pure data, 0-based indices. The keypoint order, the 17 drawn limbs and their order, and
the 18 colours are those of the OpenPose drawing code that both Wan pipelines use:
``draw_aapose_new`` in Wan-Video/Wan2.2 ``wan/modules/animate/preprocess/human_visualization.py``
and ``draw_bodypose`` in VACE's ``vace/annotators/dwpose/util.py`` (the same function as
huggingface/controlnet_aux ``src/controlnet_aux/dwpose/util.py``). Their ``limbSeq`` is
1-based and lists 19 pairs; only the first 17 are drawn (the ear-shoulder pairs never are).
"""
from __future__ import annotations

from typing import Final

BODY_KEYPOINTS: Final[tuple[str, ...]] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
)
NUM_BODY_KEYPOINTS: Final[int] = len(BODY_KEYPOINTS)  # 18; Neck = midpoint of the shoulders

# Limb i joins keypoints LIMBS[i]; drawn in this order, so later limbs cover earlier ones.
LIMBS: Final[tuple[tuple[int, int], ...]] = (
    (1, 2), (1, 5),            # neck -> right, left shoulder
    (2, 3), (3, 4),            # right arm
    (5, 6), (6, 7),            # left arm
    (1, 8), (8, 9), (9, 10),   # neck -> right hip, right leg
    (1, 11), (11, 12), (12, 13),  # neck -> left hip, left leg
    (1, 0),                    # neck -> nose
    (0, 14), (14, 16),         # nose -> right eye -> right ear
    (0, 15), (15, 17),         # nose -> left eye -> left ear
)

# COLORS[i] is limb i's colour and keypoint i's colour (RGB, 0-255): the triplets the sources
# pass to cv2. Wan-Animate (and ControlNet) treat that canvas as RGB, so these are the colours
# in their pose videos. VACE's annotator reverses the channels before saving, so its videos
# show them as BGR; ``pose_drawing`` applies that per style.
COLORS: Final[tuple[tuple[int, int, int], ...]] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

NUM_FACE_KEYPOINTS: Final[int] = 68  # iBUG-300W layout (DWPose's face points 24..91)
