"""Shared test setup: the checkout is imported as the package ``factorportrait``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from devpack import anny_cache_dir as shared_anny_cache_dir, import_pack  # noqa: E402

import_pack()


import pytest  # noqa: E402


@pytest.fixture
def one_torch_thread():
    """Run the test on one torch intra-op thread (``models.threads.one_torch_thread``)."""
    from factorportrait.models.threads import one_torch_thread as single

    with single():
        yield


@pytest.fixture(scope="session")
def anny_cache_dir() -> str:
    """The anny cache shared by the unit and integration tests and the benchmarks
    (``devpack.anny_cache_dir``); the model is built there on first use."""
    return str(shared_anny_cache_dir())


@pytest.fixture(scope="session")
def anny_model(anny_cache_dir):
    """The anny upper body (float32), loaded once per session."""
    from factorportrait.models.body import load_anny

    return load_anny(anny_cache_dir)
