"""Integration tests against a real ComfyUI host (scripts/comfy_host.py)."""
