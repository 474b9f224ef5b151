"""The one error type that ``models/`` raises for bad user input.

It carries the name of the offending input so the ComfyUI adapters in ``nodes/`` can
prefix the node's name and users read exactly which widget or socket to fix.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad value for a named input; ``str(err)`` says what is wrong and how to fix it."""

    def __init__(self, input_name: str, message: str):
        super().__init__(f"input '{input_name}': {message}")
        self.input_name = input_name
        self.message = message
