"""The ComfyUI model folders this pack reads, registered once with ``folder_paths``.

Registering through ``add_model_folder_path`` keeps entries that ``extra_model_paths.yaml``
added for the same names.
"""
from __future__ import annotations

import os
from pathlib import Path

import folder_paths

from ..models.errors import InputError

FACTORPORTRAIT = "factorportrait"  # full checkpoints and control-weights files
DIFFUSION_MODELS = "diffusion_models"  # Wan 2.1 base DiT files (ComfyUI's own folder)
SMPLX = "smplx"  # users' licensed SMPLX_<GENDER>.npz files
ANNY = "anny"  # the anny upper-body cache, built on first use
EXPRESSION_ENCODERS = "factorportrait_expression"  # learned expression image encoders
WEIGHT_EXTENSIONS = (".safetensors", ".sft")
NONE = "none"

VAE = "vae"  # ComfyUI's own folder (Load VAE)
# The pack's shipped default files (docs/default_model.md): a demonstration DiT and
# its small Wan 2.1-layout VAE. Their folders are added to the model folders so that Load
# Model and ComfyUI's stock Load VAE list them, after the folders ComfyUI already knows.
SHIPPED = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_MODEL = "factorportrait_demo_128px.safetensors"
DEFAULT_VAE = "factorportrait_demo_vae.safetensors"

for _name in (FACTORPORTRAIT, SMPLX, ANNY, EXPRESSION_ENCODERS):
    folder_paths.add_model_folder_path(_name, os.path.join(folder_paths.models_dir, _name))
for _name in (FACTORPORTRAIT, VAE):
    if (SHIPPED / _name).is_dir():
        folder_paths.add_model_folder_path(_name, str(SHIPPED / _name))


def weight_files(folder: str) -> list[str]:
    """Safetensors files in a model folder (pickled formats are never offered)."""
    try:
        names = folder_paths.get_filename_list(folder)
    except KeyError:
        return []
    files = [n for n in names if n.lower().endswith(WEIGHT_EXTENSIONS)]
    if folder == FACTORPORTRAIT and DEFAULT_MODEL in files:  # the shipped default first
        files.remove(DEFAULT_MODEL)
        files.insert(0, DEFAULT_MODEL)
    return files


def resolve(folder: str, name: str, input_name: str) -> str:
    """Full path of ``name`` in ``folder``, or an error naming the folder's locations."""
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        places = ", ".join(folder_paths.get_folder_paths(folder))
        raise InputError(input_name, f"{name!r} was not found in the '{folder}' model folder "
                         f"({places}); put the file there and refresh.")
    return path
