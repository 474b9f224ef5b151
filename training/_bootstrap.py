"""Lets the command-line scripts of this folder import the checkout as ``factorportrait``
(the repository root is a ComfyUI node pack, not an installed package)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from devpack import import_pack  # noqa: E402

import_pack()
