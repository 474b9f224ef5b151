"""Thread settings for the optimisers (body fit, ARKit expression fit)."""
from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def one_torch_thread():
    """Run torch on one intra-op thread inside the block, then restore the setting.

    The fits are thousands of small ops (3x3 to ~100x100 products and Cholesky factors) that
    a second thread cannot speed up; each BLAS/LAPACK call still opens a parallel region, and
    while other processes keep the cores busy every region waits for a scheduler slice
    (measured on 2 loaded cores: an 84x84 Cholesky 12 ms with 2 threads, 0.07 ms with one;
    an 81-frame expression fit 18 s with 2 threads, 1.5 s with one).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
