import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import pytest

# Keep the sample cache inside the test run so that tests never depend on a user's cache (and
# remove it afterwards: each run left about 11 MB in the temporary folder).
if "NAPARI_AET_CACHE" not in os.environ:
    os.environ["NAPARI_AET_CACHE"] = tempfile.mkdtemp(prefix="napari-aet-test-cache-")
    atexit.register(shutil.rmtree, os.environ["NAPARI_AET_CACHE"], ignore_errors=True)


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


@dataclass
class _MouseEvent:
    """A vispy-like mouse event in world coordinates (as napari's own tests build them)."""

    position: tuple
    view_direction: tuple
    dims_displayed: list
    type: str = "mouse_press"
    is_dragging: bool = False
    modifiers: list = field(default_factory=list)
    button: int = 1
    handled: bool = False


def click(viewer, position, view_direction=(1.0, 0.0, 0.0), dims=(0, 1, 2)):
    """Dispatch a mouse press through the viewer's callbacks, as a canvas click would."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import mouse_press_callbacks

    event = _MouseEvent(tuple(position), tuple(view_direction), list(dims))
    mouse_press_callbacks(viewer, ReadOnlyWrapper(event, exceptions=("handled",)))
