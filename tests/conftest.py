"""Shared test setup: the checkout is imported as the package ``factorportrait``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from devpack import import_pack  # noqa: E402

import_pack()


import pytest  # noqa: E402


@pytest.fixture
def one_torch_thread():
    """Run the test on one torch intra-op thread (``models.threads.one_torch_thread``)."""
    from factorportrait.models.threads import one_torch_thread as single

    with single():
        yield
