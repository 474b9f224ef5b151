"""Screen triangles: a mesh's faces projected, clipped and snapped to pixels, the hand-off
between :mod:`.rasterize` (which makes them and draws them in PyTorch) and
:mod:`.moderngl_backend` (which draws the very same triangles in OpenGL)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ScreenTriangles:
    """Projected, clipped and snapped triangles of a batch of frames (``T`` of them).

    Attributes:
        x, y: snapped pixel coordinates of the corners ``[3, T]`` each (float64).
        frame: frame of each triangle ``[T]`` (int64), relative to the batch.
        face: the mesh face it comes from ``[T]`` (int64); a clipped face gives several.
        inv_depth: ``(a, b, c)`` with ``1 / z = a u + b v + c`` on the face's plane
            ``[3, T]`` (float64).
        box: the pixels whose centre the triangle may cover: first and last column, first
            and last row ``[4, T]`` (float64, within the image; see :func:`.rasterize._boxes`), or None
            before snapping.
    """

    x: torch.Tensor
    y: torch.Tensor
    frame: torch.Tensor
    face: torch.Tensor
    inv_depth: torch.Tensor
    box: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.face.shape[0]

    def select(self, index: torch.Tensor) -> ScreenTriangles:
        """The triangles ``index`` (a row-wise gather: much faster than ``t[:, index]``)."""
        pick = lambda t: None if t is None else gather_rows(t, index)  # noqa: E731
        return ScreenTriangles(pick(self.x), pick(self.y), self.frame.index_select(0, index),
                               self.face.index_select(0, index), pick(self.inv_depth), pick(self.box))


def gather_rows(rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``rows[:, index]`` for ``rows [K, N]`` as K row-wise gathers written in place (a
    gather along the last dimension, or gathers then ``stack``, cost several times more)."""
    out = rows.new_empty(rows.shape[0], index.shape[0])
    for row, dst in zip(rows, out):
        torch.index_select(row, 0, index, out=dst)
    return out
