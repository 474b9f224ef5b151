"""Pure PyTorch core of FactorPortrait: geometry, networks and samplers.

Nothing under ``models/`` imports ComfyUI, so it can be used as a plain Python API.
"""
