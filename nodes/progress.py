"""A ``progress(done, total)`` callback for ``models`` loops: ComfyUI's bar and Cancel."""
from __future__ import annotations

from typing import Callable

import comfy.model_management as mm
import comfy.utils


def comfy_progress(total_hint: int = 100) -> Callable[[int, int], None]:
    """Moves this node's progress bar and raises ComfyUI's interrupt when Cancel was pressed."""
    bar = comfy.utils.ProgressBar(max(1, total_hint))

    def progress(done: int, total: int) -> None:
        bar.update_absolute(done, total)
        mm.throw_exception_if_processing_interrupted()

    return progress
