"""The body models the tracking node offers, loaded once per process.

anny is the default: offline, built into the ``anny`` model folder on first use (1-2 min,
with progress). SMPL-X needs the user's licensed ``SMPLX_<GENDER>.npz`` in the ``smplx``
model folder.
"""
from __future__ import annotations

import logging
import os
from typing import Callable

import folder_paths

from ..models.body import UpperBodyModel, is_anny_cached, load_anny, load_smplx
from ..models.body.smplx_model import smplx_file_name
from ..models.errors import InputError
from .model_folders import ANNY, SMPLX

ANNY_CHOICE = "anny"
SMPLX_CHOICES = {"SMPL-X neutral": "neutral", "SMPL-X male": "male", "SMPL-X female": "female"}
BODY_MODELS = (ANNY_CHOICE, *SMPLX_CHOICES)

_loaded: dict[tuple, UpperBodyModel] = {}


def anny_cache_folder() -> str:
    """The first folder of the ``anny`` model folder (``extra_model_paths.yaml`` may move it)."""
    return folder_paths.get_folder_paths(ANNY)[0]


def _smplx_folder(gender: str) -> str:
    """The ``smplx`` folder that holds the file, or an error naming every place looked in."""
    name = smplx_file_name(gender)
    folders = folder_paths.get_folder_paths(SMPLX)
    for folder in folders:
        if os.path.isfile(os.path.join(folder, name)):
            return folder
    if len(folders) == 1:
        return folders[0]  # load_smplx says what is missing there (and spots a .pkl)
    raise InputError("body_model", f"SMPL-X file '{name}' not found in the 'smplx' model folder "
                     f"({', '.join(folders)}). Download SMPL-X (npz) from https://smpl-x.is.tue.mpg.de and put "
                     f"{name} there, or choose the body model 'anny' (no download needed).")


def load_body_model(choice: str, progress: Callable[[int, int], None] | None = None) -> UpperBodyModel:
    """The model for a ``body_model`` choice, cached by file (and its modification time)."""
    if choice == ANNY_CHOICE:
        folder = anny_cache_folder()
        if not is_anny_cached(folder):
            logging.info("FactorPortrait: building the anny body model in %s (first use, 1-2 minutes)...", folder)
        key = (choice, folder)
        if key not in _loaded or not is_anny_cached(folder):
            _loaded[key] = load_anny(folder, progress)
        return _loaded[key]
    if choice not in SMPLX_CHOICES:
        raise InputError("body_model", f"unknown body model {choice!r}; choose one of {', '.join(BODY_MODELS)}.")
    gender = SMPLX_CHOICES[choice]
    folder = _smplx_folder(gender)
    path = os.path.join(folder, smplx_file_name(gender))
    key = (choice, path, os.path.getmtime(path) if os.path.isfile(path) else None)
    if key not in _loaded:
        _loaded[key] = load_smplx(folder, gender, input_name="body_model")
    return _loaded[key]
