import os
import tempfile

import pytest

# Keep the sample cache inside the test run so that tests never depend on a user's cache.
os.environ.setdefault("NAPARI_AET_CACHE", tempfile.mkdtemp(prefix="napari-aet-test-cache-"))


@pytest.fixture(scope="session")
def sample():
    """The built-in sample (built once per session, then cached)."""
    from napari_aet.simulate import twinned_pt_nanodumbbell

    return twinned_pt_nanodumbbell()
