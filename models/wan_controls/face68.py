"""The 68 iBUG face points (DWPose's face, the box of Wan-Animate's face crops) on anny.

Each iBUG point is one MediaPipe face-mesh point, or the mean of two, placed on anny's
surface as the face correspondence places it (``expression/face_correspondence.py``: by
detection on renders of anny itself). The face contour's points near the ears are the ones
the correspondence drops (they follow each view's silhouette); those are placed where
MediaPipe puts them on a frontal render, the view a detector's jaw line is drawn from.
The surface points then follow every pose, shape and expression of the mesh.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..body.anny_model import AnnyUpperBody
from ..expression.face_correspondence import FaceCorrespondence, place_by_frontal_view

# MediaPipe face-mesh indices of each iBUG-68 point (0-based iBUG order: jaw 0-16 from the
# subject's right ear to the left, brows 17-26, nose 27-35, eyes 36-47, lips 48-67).
IBUG68_FROM_MEDIAPIPE: tuple[tuple[int, ...], ...] = (
    (127,), (234,), (93,), (58,), (172,), (136,), (150,), (176,), (152,),  # jaw, right half and chin
    (400,), (379,), (365,), (397,), (288,), (323,), (454,), (356,),  # jaw, left half
    (70,), (63,), (105,), (66,), (107,),  # right brow, outer to inner
    (336,), (296,), (334,), (293,), (300,),  # left brow, inner to outer
    (168,), (197,), (5,), (1,),  # nose bridge down to the tip
    (98,), (97,), (2,), (326,), (327,),  # nostrils, right to left
    (33,), (160,), (158,), (133,), (153,), (144,),  # right eye from the outer corner, upper lid first
    (362,), (385,), (387,), (263,), (373,), (380,),  # left eye from the inner corner
    (61,), (40,), (37,), (0,), (267,), (270,), (291,),  # outer lips: right corner, upper lip, left corner
    (321,), (314,), (17,), (84,), (91,),  # outer lower lip, left to right
    (78,), (81,), (13,), (311,), (308,),  # inner lips: right corner, upper lip, left corner
    (402,), (87, 317), (178,),  # inner lower lip, left to right (its middle point: the mean of its neighbours)
)
NUM_FACE_POINTS = 68


@dataclass(frozen=True)
class SurfacePoints:
    """Points on a mesh's surface as fixed combinations of its vertices.

    Attributes:
        vertex_index: ``[K, M]`` vertices of each point (int64).
        weight: ``[K, M]`` their weights (float32, each row sums to 1; 0 for padding).
    """

    vertex_index: Tensor
    weight: Tensor

    def __call__(self, vertices: Tensor) -> Tensor:
        """The points ``[F, K, 3]`` of vertices ``[F, V, 3]``."""
        return (vertices[:, self.vertex_index] * self.weight.to(vertices)[..., None]).sum(-2)


def face68_on_anny(model: AnnyUpperBody, correspondence: FaceCorrespondence) -> SurfacePoints:
    """The 68 iBUG points on anny (see the module docstring); runs MediaPipe once on a
    frontal render for the points the correspondence does not place."""
    placed = {int(p): n for n, p in enumerate(correspondence.point_index.tolist())}
    needed = sorted({i for group in IBUG68_FROM_MEDIAPIPE for i in group})
    missing = [i for i in needed if i not in placed]
    frontal = dict(zip(missing, zip(*place_by_frontal_view(model, missing)))) if missing else {}

    def corners(index: int) -> tuple[Tensor, Tensor]:
        if index in placed:
            n = placed[index]
            return correspondence.vertex_index[n], correspondence.bary[n].float()
        return frontal[index]

    width = 3 * max(len(g) for g in IBUG68_FROM_MEDIAPIPE)
    vertex_index = torch.zeros(NUM_FACE_POINTS, width, dtype=torch.long)
    weight = torch.zeros(NUM_FACE_POINTS, width)
    for k, group in enumerate(IBUG68_FROM_MEDIAPIPE):
        for j, index in enumerate(group):
            v, w = corners(index)
            vertex_index[k, 3 * j:3 * j + 3] = v
            weight[k, 3 * j:3 * j + 3] = w / len(group)
    return SurfacePoints(vertex_index, weight)
