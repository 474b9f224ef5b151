"""Procedural test meshes (used by tests and benchmarks as analytic ground truth)."""
from __future__ import annotations

import torch


def icosphere(subdivisions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit icosphere: vertices ``[V, 3]`` float64, faces ``[M, 3]`` counter-clockwise outside."""
    t = (1 + 5 ** 0.5) / 2
    v = torch.tensor([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t],
                      [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=torch.float64)
    f = torch.tensor([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
                      [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
                      [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])
    v = v / v.norm(dim=1, keepdim=True)
    for _ in range(subdivisions):
        edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).sort(1).values
        unique, inverse = torch.unique(edges, dim=0, return_inverse=True)
        mid = v[unique[:, 0]] + v[unique[:, 1]]
        m = inverse.reshape(3, -1).T + len(v)
        v = torch.cat([v, mid / mid.norm(dim=1, keepdim=True)])
        a, b, c = f.T
        ab, bc, ca = m.T
        f = torch.cat([torch.stack(s, 1) for s in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    return v, f
