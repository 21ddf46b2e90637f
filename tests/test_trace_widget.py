import numpy as np
import pytest
from conftest import click as _click
from qtpy.QtCore import Qt

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
    # a second Trace dock on the same data edits the same atoms layer and model
    from napari_aet.widgets import TraceWidget

    w2 = TraceWidget(viewer)
    w2.layer.value = viewer.layers["tomo"]
    assert w2.points is w.points and w2.model is w.model and "Editing" in w2.status.value
    # with the atoms layer gone (a new session on the same data) the autosave comes back
    positions = w.model.positions.copy()
    viewer.layers.remove(w.points)
    w3 = TraceWidget(viewer)
    w3.layer.value = viewer.layers["tomo"]  # selecting the data restores its autosave
    assert w3.model is not None and "Restored" in w3.status.value
    np.testing.assert_allclose(w3.model.positions, positions)
    assert w3.model.n_manual_removed == 1
    assert [e["action"] for e in w3.model.edit_log][0] == "remove"
    # another tomogram under the same name (no file behind it) does not get these atoms
    viewer.layers.remove(w3.points)
    other = np.asarray(viewer.layers["tomo"].data)[::-1].copy()
    viewer.layers.remove("tomo")
    viewer.add_image(other, name="tomo", scale=(PX, PX, PX))
    w4 = TraceWidget(viewer)
    w4.layer.value = viewer.layers["tomo"]
    assert w4.model is None and "Restored" not in w4.status.value


def test_refine_positions_against_the_series_is_one_undoable_edit(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    """Driven as an analyst drives it: the Trace and Refine buttons clicked, the pixel weighting
    chosen on its combo box with the keyboard, Ctrl+Z pressed on the canvas."""
    monkeypatch.setenv("NAPARI_AET_CACHE", str(tmp_path))
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    from napari_aet._layers import tilt_series_layer_data
    from napari_aet.io import TiltSeries
    from napari_aet.simulate import build_structure, simulate_tilt_series
    from napari_aet.widgets import TraceWidget

    px, angles = 0.358, np.linspace(-70, 70, 15)
    truth = build_structure("fcc", radius_A=10, shape_px=(96, 96), pixel_size_A=px, seed=1)
    sim = simulate_tilt_series(truth, angles, shape_px=(96, 96), seed=3)
    viewer = make_napari_viewer(show=True)
    data, kw, _ = tilt_series_layer_data(TiltSeries(sim.data, angles, px), name="aligned")
    viewer.add_image(data, **kw)
    vol = render_atom_volume(truth.positions, (96, 96, 96), voxel_size_A=px, sigma_A=0.5)
    viewer.add_image(vol, name="tomo", scale=(px, px, px))
    w = TraceWidget(viewer)
    viewer.window.add_dock_widget(w, name="Trace")
    w.layer.value = viewer.layers["tomo"]
    assert w.series.value is viewer.layers["aligned"]  # picked up as the tilt series

    def click_and_wait(button, done):
        qtbot.mouseClick(button.native, Qt.LeftButton)
        qtbot.waitUntil(lambda: done() and w.refine_button.enabled, timeout=180000)
        QApplication.processEvents()

    click_and_wait(w.run_button, lambda: w.model is not None and w.model.n_atoms > 0)
    assert w.model.n_atoms == truth.n_atoms
    noisy = w.model.positions + np.random.default_rng(0).normal(0, 0.12, w.model.positions.shape)
    w.model.replace_positions(noisy, action="test noise")
    w._sync()

    def err(p):
        from scipy.spatial import cKDTree

        return float(np.sqrt((cKDTree(truth.positions).query(p)[0] ** 2).mean()))

    click_and_wait(w.refine_button, lambda: w.model.edit_log[-1]["action"] == "refine")
    assert err(w.points.data) < 0.5 * err(noisy)
    assert "refine_shift_A" in w.points.features.columns
    assert "Refined" in w.status.value
    assert w.model.model.metadata["refinement"]["weighting"]["method"] == "uniform"
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier)
    QApplication.processEvents()
    np.testing.assert_allclose(w.points.data, noisy)
    # the pixel weighting chosen on the combo box reaches the fit and its record
    combo = w.weighting.native
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key_Down)
    QApplication.processEvents()
    assert w.weighting.value == "variance"
    n_edits = len(w.model.edit_log)
    click_and_wait(w.refine_button, lambda: len(w.model.edit_log) > n_edits)
    assert w.model.edit_log[-1]["action"] == "refine"
    assert w.model.model.metadata["refinement"]["weighting"]["method"] == "variance"
    assert err(w.points.data) < 0.5 * err(noisy)


def test_an_alloys_elements_from_the_tomogram_picked_for_them(make_napari_viewer, qtbot):
    """Tracing a tomogram in which every atom is alike (as the U-Net leaves it) with the
    GENFIRE-like one under "elements from" (picked by itself for a U-Net layer): each atom gets
    its element; a tomogram of another grid is refused with the fix named, and nothing runs."""
    from napari_aet.widgets import TraceWidget

    rng = np.random.default_rng(0)
    grid = np.array([[z, y, x] for z in (6.0, 9.0) for y in (6.0, 9.0, 12.0) for x in (6.0, 9.0)])
    pt = rng.permutation(len(grid)) < len(grid) // 2
    shape = (40, 40, 40)
    raw = sum(
        w * render_atom_volume(grid[sel], shape, voxel_size_A=PX, sigma_A=0.5)
        for w, sel in ((1.0, pt), (0.4, ~pt))
    )
    alike = render_atom_volume(grid, shape, voxel_size_A=PX, sigma_A=0.5)
    viewer = make_napari_viewer()
    viewer.add_image(raw, name="genfire", scale=(PX, PX, PX))
    viewer.add_image(raw[:-1], name="cropped", scale=(PX, PX, PX))
    w = TraceWidget(viewer)
    # the U-Net's tomogram, as the Augment widget adds it, brings the one it was made from
    meta = {"napari_aet_type": "tomogram", "augmented": True, "source_layer": "genfire"}
    viewer.add_image(alike, name="unet", scale=(PX, PX, PX), metadata=meta)
    w.layer.value = viewer.layers["unet"]
    assert w.species_from.value is viewer.layers["genfire"]
    w.element.value = "Pd,Pt"
    w.species_from.value = viewer.layers["cropped"]
    assert w.run() is None
    assert "same grid" in w.status.value
    w.species_from.value = viewer.layers["genfire"]
    qtbot.mouseClick(w.run_button.native, Qt.MouseButton.LeftButton)  # as the analyst does
    qtbot.waitUntil(lambda: w.points is not None and len(w.points.data) > 0, timeout=120000)
    data = np.asarray(w.points.data)
    assert len(data) == len(grid)
    got = w.points.features["element"].to_numpy()
    nearest = np.argmin(np.linalg.norm(data[:, None] - grid[None], axis=2), axis=1)
    np.testing.assert_array_equal(got, np.where(pt[nearest], "Pt", "Pd"))
    # a colour per element, as the viewer draws them
    face = np.asarray(w.points.face_color)
    assert len({tuple(c) for c in face[got == "Pt"]}) == 1
    assert len({tuple(c) for c in face[got == "Pd"]}) == 1
    assert not np.allclose(face[got == "Pt"][0], face[got == "Pd"][0])
    assert f"Pt {np.sum(got == 'Pt')} (blue), Pd {np.sum(got == 'Pd')} (green)" in w.status.value


def test_a_flat_alloy_tomograms_ghost_peaks_are_left_out_and_shown(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    """The analyst traces the U-Net's tomogram of a Pd-Pt particle (every atom alike, twelve
    half-formed peaks a bond outside the surface) with the GENFIRE one picked for the
    elements, by clicking Run: every atom is traced and no ghost, the status says how many
    peaks were left out off the lattice, and the histogram draws them as their own class."""
    monkeypatch.setenv("NAPARI_AET_CACHE", str(tmp_path))
    from test_trace import _surface_ghosts

    from napari_aet.analysis import compare_atom_models
    from napari_aet.simulate import build_structure
    from napari_aet.widgets import TraceWidget

    px = 0.358
    m = build_structure("fcc", element="Pd,Pt", radius_A=10, shape_px=(80, 80),
                        pixel_size_A=px, seed=3)  # fmt: skip
    pt = m.features["element"].to_numpy() == "Pt"
    shape = (80, 80, 80)
    rng = np.random.default_rng(1)
    raw = sum(
        w * render_atom_volume(m.positions[sel], shape, voxel_size_A=px, sigma_A=0.5)
        for w, sel in ((1.0, pt), (0.4, ~pt))
    )
    raw = raw / raw.max() + rng.normal(scale=0.03, size=shape).astype(np.float32)
    alike = render_atom_volume(m.positions, shape, voxel_size_A=px, sigma_A=0.5)
    ghosts = _surface_ghosts(m, 12, seed=4)
    halo = render_atom_volume(ghosts, shape, voxel_size_A=px, sigma_A=0.5)
    unet = (alike + 0.33 * halo) / alike.max()
    unet = unet + rng.normal(scale=0.02, size=shape).astype(np.float32)

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.add_image(raw, name="genfire", scale=(px, px, px))
    meta = {"napari_aet_type": "tomogram", "augmented": True, "source_layer": "genfire"}
    viewer.add_image(unet, name="unet", scale=(px, px, px), metadata=meta)
    w = TraceWidget(viewer)
    viewer.window.add_dock_widget(w, name="Trace")
    w.layer.value = viewer.layers["unet"]
    w.element.value = "Pd,Pt"
    assert w.species_from.value is viewer.layers["genfire"]
    qtbot.mouseClick(w.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "atoms from" in w.status.value, timeout=120000)
    c = compare_atom_models(m.positions, np.asarray(w.points.data), radius_A=1.0)
    assert c.found_fraction == 1.0 and c.n_test == m.n_atoms  # no ghost traced
    n_left = w.result.settings["species_flat"]["n_left_out"]
    assert n_left >= 12
    assert f"{n_left} peaks off the lattice left out" in w.status.value
    labels = [t.get_text() for t in w._figure.axes[0].get_legend().get_texts()]
    assert f"off the lattice ({n_left})" in labels
    qtbot.wait(200)
    shot = viewer.screenshot(str(tmp_path / "trace_flat_alloy.png"), canvas_only=False)
    assert shot.shape[0] > 500 and shot[..., :3].std() > 5  # drawn, not black
