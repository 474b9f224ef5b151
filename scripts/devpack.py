"""Development helpers: import this checkout as a package, and find the ComfyUI host.

The repository root is the ComfyUI custom-node package itself (ComfyUI imports it by its
folder name), so tests, benchmarks and scripts import it under the fixed name
``factorportrait`` through :func:`import_pack`.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = "factorportrait"


def import_pack() -> ModuleType:
    """Import the repository root as the package ``factorportrait`` (idempotent)."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module


def comfyui_dir() -> Path:
    """The ComfyUI host tree: ``$FACTORPORTRAIT_COMFYUI`` or ``.host/ComfyUI`` (setup_env.sh)."""
    return Path(os.environ.get("FACTORPORTRAIT_COMFYUI", ROOT / ".host" / "ComfyUI")).resolve()


def import_comfyui() -> Path:
    """Make the host's modules (``comfy``, ``comfy_extras``, ``nodes``...) importable in
    this process, on the CPU, without parsing our command line."""
    path = comfyui_dir()
    if not (path / "main.py").exists():
        raise RuntimeError(f"No ComfyUI host at {path}; run scripts/setup_env.sh first.")
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    return path
