"""Wan 2.1 LoRAs on the FactorPortrait DiT: key formats, adapter kinds, merged or hooked."""
from .apply import Stack, applied, merged, unmerged
from .key_formats import FORMATS
from .lora_file import LoraFile, match_lora, read_lora

__all__ = ["FORMATS", "LoraFile", "Stack", "applied", "match_lora", "merged", "read_lora", "unmerged"]
