"""Turn ``models`` input errors into messages that name the node, the input and the fix."""
from __future__ import annotations

from contextlib import contextmanager

from ..models.errors import InputError


class FactorPortraitInputError(ValueError):
    """Raised to ComfyUI for bad user input; the message starts with the node's name."""


@contextmanager
def reported_as(node_name: str):
    """Re-raise any :class:`InputError` inside the block as ``"<node>: input '<x>': ..."``."""
    try:
        yield
    except InputError as e:
        raise FactorPortraitInputError(f"{node_name}: {e}") from None
