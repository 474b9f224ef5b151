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


def anny_cache_dir() -> Path:
    """The anny upper-body cache shared by the tests, benchmarks and scripts:
    ``$FACTORPORTRAIT_ANNY_CACHE``, else the tests' pytest cache folder
    (``.pytest_cache/d/factorportrait_anny``, where ``config.cache.mkdir`` puts it).
    Created if missing; the model is built there on first use (a minute or two)."""
    path = Path(os.environ.get("FACTORPORTRAIT_ANNY_CACHE") or ROOT / ".pytest_cache" / "d" / "factorportrait_anny")
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_anny_printing():
    """The anny upper body from :func:`anny_cache_dir`, printing the build's progress every
    10 % when this is its first use."""
    import_pack()
    from factorportrait.models.body import is_anny_cached, load_anny

    cache_dir = anny_cache_dir()
    if is_anny_cached(cache_dir):
        return load_anny(cache_dir)
    print(f"building the anny upper-body cache in {cache_dir} (first use only, 1-2 minutes)", flush=True)
    shown = set()

    def progress(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth not in shown:
            shown.add(tenth)
            print(f"  anny cache: {10 * tenth}%", flush=True)

    return load_anny(cache_dir, progress)
