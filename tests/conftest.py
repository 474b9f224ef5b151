"""Shared test setup: the checkout is imported as the package ``factorportrait``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from devpack import import_pack  # noqa: E402

import_pack()
