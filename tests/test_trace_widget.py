import numpy as np
import pytest
from conftest import click as _click

from napari_aet.simulate import render_atom_volume

PX = 0.5
ATOMS = np.array([[8.0, 8.0, 8.0], [8.0, 8.0, 11.0], [12.0, 9.0, 8.5], [10.5, 12.0, 12.0]])


@pytest.fixture
def traced(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_AET_CACHE", str(tmp_path))
    from napari_aet.widgets import TraceWidget

    viewer = make_napari_viewer()
    vol = render_atom_volume(ATOMS, (40, 40, 40), voxel_size_A=PX, sigma_A=0.5)
    viewer.add_image(vol, name="tomo", scale=(PX, PX, PX))
    w = TraceWidget(viewer)
    w.layer.value = viewer.layers["tomo"]
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    return viewer, w


def test_trace_widget_traces_and_plots(traced):
    viewer, w = traced
    assert w.points is not None and len(w.points.data) == 4
    got = np.array(sorted(w.points.data.tolist()))
    np.testing.assert_allclose(got, np.array(sorted(ATOMS.tolist())), atol=0.05)
    assert len(w._figure.axes[0].patches) > 0  # the histogram
    assert w.model.autosave_path.exists()


def test_ray_picking_in_3d_and_slice_view(traced):
    viewer, w = traced
    viewer.dims.ndisplay = 3
    # remove the atom at (8, 8, 11) with a ray along z through its (y, x)
    w.mode.value = "remove"
    _click(viewer, (0.0, 8.0, 11.2))
    assert len(w.points.data) == 3
    assert np.min(np.linalg.norm(w.points.data - ATOMS[1], axis=1)) > 2.0
    # add it back: the ray along z through (y, x) = (8.1, 10.9) finds the maximum at z = 8
    w.mode.value = "add"
    _click(viewer, (0.0, 8.1, 10.9))
    assert len(w.points.data) == 4
    new = w.points.data[-1]
    np.testing.assert_allclose(new, ATOMS[1], atol=0.05)
    assert w.points.features["manual"].tolist()[-1] == 1
    # a ray along x through (z, y) of atom 3 in the 3D view picks it too
    w.model.remove(w.model.nearest(ATOMS[3]))
    w._sync()
    _click(viewer, (10.4, 12.1, 0.0), view_direction=(0.0, 0.0, 1.0))
    np.testing.assert_allclose(w.points.data[-1], ATOMS[3], atol=0.05)
    # slice view: a click near an atom on the current slice adds the refined maximum
    viewer.dims.ndisplay = 2
    w.model.remove(w.model.nearest(ATOMS[2]))
    w._sync()
    _click(viewer, (12.0, 9.3, 8.2), view_direction=(1.0, 0.0, 0.0), dims=(1, 2))
    np.testing.assert_allclose(w.points.data[-1], ATOMS[2], atol=0.05)
    assert w.model.n_manual_added == 3 and w.model.n_manual_removed == 3


def test_keyboard_modes_undo_and_autosave_restore(traced, press_key):
    viewer, w = traced
    press_key(viewer, "Shift-A")
    assert w.mode.value == "add"
    press_key(viewer, "Shift-D")
    assert w.mode.value == "remove"
    viewer.dims.ndisplay = 3
    _click(viewer, (0.0, 8.0, 8.0))
    assert len(w.points.data) == 3
    press_key(viewer, "Control-Z")
    assert len(w.points.data) == 4
    press_key(viewer, "Control-Shift-Z")
    assert len(w.points.data) == 3
    press_key(viewer, "Shift-Q")
    assert w.mode.value == "off"
    _click(viewer, (0.0, 9.0, 12.0))  # edit mode off: nothing happens
    assert len(w.points.data) == 3
    # a new session on the same data restores the autosaved edits
    from napari_aet.widgets import TraceWidget

    w2 = TraceWidget(viewer)
    w2.layer.value = viewer.layers["tomo"]  # selecting the data restores its autosave
    assert w2.model is not None and "Restored" in w2.status.value
    np.testing.assert_allclose(w2.model.positions, w.model.positions)
    assert w2.model.n_manual_removed == 1
    assert [e["action"] for e in w2.model.edit_log][0] == "remove"
