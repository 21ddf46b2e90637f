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


@pytest.fixture
def press_key():
    """Run the viewer's binding for a key combination such as ``"Control-Z"`` or ``"Shift-N"``,
    as a key press in the canvas would."""

    def press(viewer, name: str) -> None:
        wanted = name.replace("Control", "Ctrl").replace("-", "+")
        for key, func in viewer.keymap.items():
            if str(key) == wanted:
                func(viewer)
                return
        raise AssertionError(f"no binding for {name}: {[str(k) for k in viewer.keymap]}")

    return press
