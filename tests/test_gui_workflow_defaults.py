"""The path a new analyst takes with their own file, driven through napari's own File > Open
handling, the Plugins menu and real clicks on the widgets' buttons: the reader chosen for our
formats, a missing pixel size asked for, every step starting from the previous step's output and
showing its result (#21, finding 7)."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_aet.simulate import fcc_particle, simulate_tilt_series


def _menu_action(window, *path):
    """The menu-bar action reached by the texts ``path`` (``"Plugins", "napari AET", ...``)."""
    menu = None
    actions = window._qt_window.menuBar().actions()
    for i, text in enumerate(path):
        found = [a for a in actions if a.text().replace("&", "") == text]
        assert found, f"no menu entry {text!r} under {path[:i]}: {[a.text() for a in actions]}"
        if i == len(path) - 1:
            return found[0]
        menu = found[0].menu()
        menu.aboutToShow.emit()  # napari fills some menus when they open
        actions = menu.actions()
    return None


def _dock_widget(window, cls):
    docks = [w for w in window._wrapped_dock_widgets.values() if w.isVisible()]
    inner = [d.inner_widget() for d in docks]
    found = [w for w in inner if isinstance(w, cls)]
    return found[0] if found else None


def _press(qtbot, button):
    qtbot.mouseClick(button.native, Qt.LeftButton)
    QApplication.processEvents()


def _series(tmp_path):
    """A small tilt series written as a TIFF without pixel size or angles."""
    from napari_aet.forward import rotation_center_A

    px = 0.4
    atoms = fcc_particle(radius_A=6.0, shape="sphere", seed=1)
    atoms = atoms + rotation_center_A((48, 48), px)
    angles = np.arange(-60.0, 61.0, 12.0)
    sim = simulate_tilt_series(atoms, angles, pixel_size_A=px, shape_px=(48, 48), seed=2)
    path = tmp_path / "my series.tif"
    tifffile.imwrite(path, sim.data.astype(np.float32))
    return path, angles, px


@pytest.fixture
def reader_choice(monkeypatch):
    """napari's 'Choose reader' dialog answered with its preselected entry (what an analyst
    gets by pressing OK); the choices and the preselection are recorded."""
    from napari._qt.dialogs import qt_reader_dialog

    seen = {}

    def answer(self):
        seen["choices"] = [b.text() for b in self.reader_btn_group.buttons()]
        seen["preselected"] = self._get_plugin_choice()
        return seen["preselected"], False

    monkeypatch.setattr(qt_reader_dialog.QtReaderDialog, "get_user_choices", answer)
    return seen


def test_own_tiff_opens_with_our_reader_and_the_pixel_size_is_asked_for(
    make_napari_viewer, qtbot, tmp_path, reader_choice
):
    from napari_aet.widgets import AlignWidget, TiltSeriesWidget

    path, angles, px = _series(tmp_path)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    # File > Open's handling of a chosen file: napari's builtins can read a TIFF too, so napari
    # asks which reader; napari-aet's is the one preselected
    viewer.window._qt_viewer._qt_open([str(path)], stack=False)
    assert "napari builtins" in reader_choice["choices"]
    assert reader_choice["preselected"] == "napari AET"
    layer = viewer.layers["my series"]
    assert layer.metadata["napari_aet_type"] == "tilt_series"
    assert layer.metadata["pixel_size_A"] is None
    # Plugins > napari AET > 2. Preprocess and align, then its Align button
    _menu_action(viewer.window, "Plugins", "napari AET", "2. Preprocess and align").trigger()
    QApplication.processEvents()
    align = _dock_widget(viewer.window, AlignWidget)
    assert align.layer.value is layer
    _press(qtbot, align.run_button)
    assert align.worker is None  # nothing started
    assert "needs its tilt angles and pixel size" in align.status.value
    # ... which opened the geometry dock on this layer with the missing fields marked
    geo = _dock_widget(viewer.window, TiltSeriesWidget)
    assert geo is not None and geo.layer.value is layer
    assert "pixel size missing" in geo.status.value
    assert "border" in geo.pixel_size.native.styleSheet()
    # the analyst types the angles and the pixel size and presses Apply
    qtbot.keyClicks(geo.angles.native, "-60:60:12")
    spin = geo.pixel_size.native
    spin.selectAll()
    qtbot.keyClicks(spin, "0.4")
    spin.interpretText()
    _press(qtbot, geo.apply_button)
    assert geo.status.value.startswith("Applied"), geo.status.value
    np.testing.assert_allclose(layer.metadata["angles_deg"], angles)
    assert layer.metadata["pixel_size_A"] == pytest.approx(px)
    assert tuple(layer.scale) == pytest.approx((px, px, px))
    assert [str(u) for u in layer.units] == ["angstrom"] * 3
    assert geo.pixel_size.native.styleSheet() == ""


def test_each_step_starts_from_the_last_output_and_shows_it(
    make_napari_viewer, qtbot, tmp_path, reader_choice, monkeypatch
):
    monkeypatch.setenv("NAPARI_AET_CACHE", str(tmp_path / "cache"))
    from napari_aet.widgets import AlignWidget, ReconWidget, TraceWidget

    path, angles, px = _series(tmp_path)
    (tmp_path / "my series.tlt").write_text("\n".join(f"{a:g}" for a in angles))
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.window._qt_viewer._qt_open([str(path)], stack=False)
    raw = viewer.layers["my series"]
    # the .tlt beside it gave the angles; the TIFF has no pixel size: set it as the widget would
    assert raw.metadata["angles_deg"] is not None
    raw.metadata = {**raw.metadata, "pixel_size_A": px}
    raw.scale, raw.units = (px, px, px), ("angstrom",) * 3
    # an aligned layer exists before the Reconstruct dock is opened: it starts from that one
    aligned = viewer.add_image(
        raw.data.copy(),
        name="my series aligned",
        scale=raw.scale,
        units=raw.units,
        metadata={**raw.metadata, "alignment": {"steps": {}}},
    )
    align, recon = AlignWidget(viewer), ReconWidget(viewer)
    viewer.window.add_dock_widget(recon, name="Reconstruct")
    assert align.layer.value is raw  # alignment starts from the raw series
    assert recon.layer.value is aligned
    # a Trace dock opened before any tomogram exists refuses the tilt series it was given
    trace = TraceWidget(viewer)
    trace.layer.value = aligned
    _press(qtbot, trace.run_button)
    assert "is a tilt series (images), not a tomogram" in trace.status.value
    # reconstruct with the button; the tomogram is shown at its middle slice, the series hidden
    viewer.dims.set_point(0, 2 * px)  # the slider on the second image of the series
    recon.iterations.value = 30
    _press(qtbot, recon.run_button)
    qtbot.waitUntil(lambda: recon.result is not None, timeout=120000)
    tomo = viewer.layers["my series aligned GENFIRE"]
    assert tomo.visible and not raw.visible and not aligned.visible
    assert viewer.layers.selection.active is tomo
    assert viewer.dims.point[0] == pytest.approx(24 * px, abs=px)
    assert viewer.dims.axis_labels == ("z", "y", "x")
    # one kind of unit per axis across the layers: napari keeps them (no "Inconsistent units")
    assert viewer.layers.extent.units is not None
    assert [str(u) for u in viewer.layers.extent.units] == ["angstrom"] * 3
    shot = viewer.screenshot(str(tmp_path / "after_recon.png"), canvas_only=False, flash=False)
    assert shot[..., :3].mean() > 5  # the particle's slice, not a black view
    # the Trace widget follows the new tomogram; one opened now starts from it too
    assert trace.layer.value is tomo
    assert TraceWidget(viewer).layer.value is tomo


def test_exports_default_next_to_the_data_and_keep_a_typed_path(
    make_napari_viewer, tmp_path, reader_choice
):
    from napari_aet._layers import atoms_layer_data
    from napari_aet.core.atoms import AtomModel
    from napari_aet.widgets import FiguresWidget

    data = tmp_path / "beamtime" / "particle 3"
    data.mkdir(parents=True)
    path, _, _ = _series(tmp_path)
    path = path.rename(data / path.name)
    viewer = make_napari_viewer()
    viewer.window._qt_viewer._qt_open([str(path)], stack=False)
    pos = fcc_particle(radius_A=5.0, shape="sphere", seed=0)
    pdata, kw, _ = atoms_layer_data(AtomModel(pos), name="my atoms")
    viewer.add_points(pdata, **kw)
    w = FiguresWidget(viewer)
    assert Path(w.folder.value) == data / "figures"
    assert Path(w.view_path.value) == data / "figures" / "view3d.png"
    assert Path(w.atom_path.value) == data / "my atoms.csv"
    assert Path(w.session_path.value) == data / "analysis.aet.h5"
    w.atom_format.value = "HDF5"  # the suffix follows the format, the path stays a default
    assert Path(w.atom_path.value) == data / "my atoms.h5"
    # a path the analyst typed is kept when the atoms layer changes
    w.folder.value = tmp_path / "paper"
    pdata, kw, _ = atoms_layer_data(AtomModel(pos + 1.0), name="edited atoms")
    viewer.add_points(pdata, **kw)
    assert w.layer.value.name == "edited atoms"
    assert Path(w.folder.value) == tmp_path / "paper"
    assert Path(w.atom_path.value) == data / "edited atoms.h5"
    assert Path(w.export_atoms()).parent == data


def test_stacked_docks_fit_a_1000_px_screen_without_cutting_fields(make_napari_viewer, qtbot):
    """Three docks opened from the Plugins menu on a 1,000-px screen: the window keeps its
    height (each dock scrolls), and every form is as wide as its widest field."""
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1400, 900)
    for name in ("2. Preprocess and align", "5. Structure", "6. Figures and export"):
        _menu_action(viewer.window, "Plugins", "napari AET", name).trigger()
        QApplication.processEvents()
    qtbot.wait(50)
    assert window.height() <= 1000  # it grew to ~2,400 px when the docks did not scroll
    docks = [d for d in viewer.window._wrapped_dock_widgets.values() if d.isVisible()]
    assert len(docks) == 3
    scrolled = 0
    for dock in docks:
        scroll = dock.widget()
        form = scroll.widget()
        assert form.minimumSizeHint().width() <= scroll.viewport().width()
        scrolled += scroll.verticalScrollBar().maximum() > 0
    assert scrolled >= 2  # the forms taller than their share of the window scroll
