import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import pytest

# Under pytest-xdist (`make test` runs one worker per CPU) each worker keeps to CPUs of its own,
# and torch and the BLAS and OpenMP pools to as many threads (napari_aet.core.threads reads the
# affinity mask): every worker starting one thread per CPU of the machine would have them fight
# over the same cores (two runs sharing 2 cores that way took 4-6x as long).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_N_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
if _WORKER.startswith("gw") and _N_WORKERS > 1 and hasattr(os, "sched_setaffinity"):
    _cpus = sorted(os.sched_getaffinity(0))
    if len(_cpus) >= _N_WORKERS:
        _mine = set(_cpus[int(_WORKER[2:]) % _N_WORKERS :: _N_WORKERS])
        os.sched_setaffinity(0, _mine)
        for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[_var] = str(len(_mine))  # for the processes a test starts
        from napari_aet.core.threads import set_threads

        set_threads()  # torch and this process's BLAS and OpenMP pools: the CPUs now its own

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


def structure_dock_analysed(make_napari_viewer, qtbot, model, name, elements):
    """A shown viewer with ``model`` as the points layer ``name`` and the Structure dock, the
    elements typed into its field and Analyze clicked, as an analyst does; returns
    ``(viewer, layer, widget)`` once the analysis is done."""
    from qtpy.QtCore import Qt

    from napari_aet._layers import atoms_layer_data
    from napari_aet.widgets import StructureWidget

    viewer = make_napari_viewer(show=True)
    data, kw, _ = atoms_layer_data(model, name=name)
    layer = viewer.add_points(data, **kw)
    w = StructureWidget(viewer)
    viewer.window.add_dock_widget(w, name="Structure")
    w.layer.value = layer
    w.element.native.selectAll()
    qtbot.keyClicks(w.element.native, elements)
    qtbot.mouseClick(w.run_button.native, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.result is not None, timeout=120000)
    return viewer, layer, w
