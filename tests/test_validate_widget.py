"""The "Validate (R-factor)" dock, opened from the Plugins menu and driven by real clicks."""

import numpy as np
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication
from test_gui_workflow_defaults import _dock_widget, _menu_action

from napari_aet._layers import atoms_layer_data, tilt_series_layer_data
from napari_aet.core.atoms import AtomModel
from napari_aet.io import TiltSeries
from napari_aet.simulate import build_structure, simulate_tilt_series

PX = 0.4


@pytest.fixture
def viewer_with_model(make_napari_viewer):
    atoms = build_structure("fcc", radius_A=8.0, shape_px=(64, 64), pixel_size_A=PX, seed=4)
    angles = np.arange(-60.0, 61.0, 15.0)
    sim = simulate_tilt_series(atoms, angles, pixel_size_A=PX, shape_px=(64, 64), seed=5)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    data, kw, _ = tilt_series_layer_data(TiltSeries(sim.data, angles, PX), name="aligned")
    viewer.add_image(data, **kw)
    pdata, pkw, _ = atoms_layer_data(AtomModel(atoms.positions), name="atoms")
    viewer.add_points(pdata, **pkw)
    return viewer, atoms


def _compute(qtbot, w):
    w.result = None
    qtbot.mouseClick(w.run_button.native, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.result is not None and w.run_button.enabled, timeout=120000)
    QApplication.processEvents()
    return w.result


def test_validate_dock_scores_the_model_on_screen_and_an_edit(viewer_with_model, qtbot, tmp_path):
    """The true atoms against their noisy series: the R-factor of shot noise, the blur the
    simulator used (0.45 A) found again, the calculated and residual stacks added beside the
    series. After an edit that loses a tenth of the atoms, a second click scores the edited
    model higher and replaces the stacks. With the blur given (the box unticked by a click),
    that blur is used."""
    from napari_aet.widgets import ValidateWidget

    viewer, atoms = viewer_with_model
    _menu_action(viewer.window, "Plugins", "napari AET", "5c. Validate (R-factor)").trigger()
    QApplication.processEvents()
    w = _dock_widget(viewer.window, ValidateWidget)
    assert w is not None
    assert w.layer.value is viewer.layers["atoms"] and w.series.value is viewer.layers["aligned"]
    v = _compute(qtbot, w)
    good = v.result.r_mean
    assert good < 0.25 and v.blur_sigma_A == pytest.approx(0.45, abs=0.08)
    assert w.status.value.startswith("Done: mean R-factor"), w.status.value
    calc, resid = viewer.layers["aligned calculated"], viewer.layers["aligned residual"]
    assert calc.data.shape == resid.data.shape == viewer.layers["aligned"].data.shape
    measured = viewer.layers["aligned"].data
    np.testing.assert_allclose(calc.data + resid.data, measured, atol=1e-3 * measured.max())
    assert len(w._figure.axes) == 1  # the R-factor per image
    lo, hi = resid.contrast_limits
    assert resid.colormap.name == "bwr" and lo == -hi  # a diverging map centred at zero
    resid.visible = True
    viewer.layers.selection.active = resid
    viewer.screenshot(str(tmp_path / "validate.png"), canvas_only=False)

    n = len(viewer.layers["atoms"].data)
    viewer.layers["atoms"].data = viewer.layers["atoms"].data[: int(0.9 * n)]
    worse = _compute(qtbot, w).result.r_mean
    assert worse > good + 0.02
    assert sum(layer.name == "aligned residual" for layer in viewer.layers) == 1

    qtbot.mouseClick(w.fit_blur.native, Qt.LeftButton)
    QApplication.processEvents()
    assert not w.fit_blur.value and w.blur.enabled
    w.blur.value = 0.9
    v = _compute(qtbot, w)
    assert v.blur_sigma_A == 0.9 and v.r_mean_study_blur is None
    assert "blur 0.900 A" in w.status.value and "fitted" not in w.status.value


def test_validate_dock_refuses_a_series_without_angles(viewer_with_model, qtbot):
    from napari_aet.widgets import ValidateWidget

    viewer, _ = viewer_with_model
    viewer.layers["aligned"].metadata["angles_deg"] = None
    w = ValidateWidget(viewer)
    viewer.window.add_dock_widget(w, name="Validate")
    qtbot.mouseClick(w.run_button.native, Qt.LeftButton)
    QApplication.processEvents()
    assert w.status.value.startswith("Not started") and "tilt angles" in w.status.value
    assert w.result is None


def _click_and_wait(qtbot, button, done, timeout=180000):
    qtbot.mouseClick(button.native, Qt.LeftButton)
    qtbot.waitUntil(done, timeout=timeout)
    QApplication.processEvents()


def test_validate_dock_precision_analysis_by_clicks(viewer_with_model, qtbot, tmp_path):
    """The precision analysis from the dock: the model on screen (the true atoms) simulated
    at the series' 9 angles, reconstructed, traced again with and without the U-Net and
    refined; the pipeline finds every atom of this small crystal again after the U-Net and
    the refinement, within 15 pm, and the raw tomogram's refined trace no worse than its
    trace. The deviation histogram replaces the plot and the status names every case. A
    second click followed by Cancel leaves the first result as it was."""
    from napari_aet.widgets import ValidateWidget

    viewer, atoms = viewer_with_model
    _menu_action(viewer.window, "Plugins", "napari AET", "5c. Validate (R-factor)").trigger()
    QApplication.processEvents()
    w = _dock_widget(viewer.window, ValidateWidget)
    assert w.simulator.value == "kirkland" and w.weights.value == "auto"
    assert not w.cancel_button.enabled
    _click_and_wait(
        qtbot, w.precision_button, lambda: w.precision is not None and w.run_button.enabled
    )
    res = w.precision.summary()
    assert set(res) == {"raw", "raw refined", "augmented", "augmented refined"}
    n = len(atoms.positions)
    assert all(v["n_model"] == n for v in res.values())
    final = res["augmented refined"]
    assert final["n_common"] == final["n_traced"] == n, final
    assert final["rmsd_pm"] < 15.0
    assert res["raw refined"]["identification_error"] <= res["raw"]["identification_error"]
    assert w.status.value.startswith(f"Precision (kirkland, {n} atoms"), w.status.value
    assert "augmented refined 0.00 %" in w.status.value
    ax = w._figure.axes[0]
    assert ax.get_xlabel() == "deviation (pm)" and len(ax.get_legend().get_texts()) == 4
    viewer.screenshot(str(tmp_path / "precision.png"), canvas_only=False)

    first = w.precision
    w.iterations.value = 2000  # long enough to be cancelled mid-way
    qtbot.mouseClick(w.precision_button.native, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.cancel_button.enabled, timeout=30000)
    assert not w.run_button.enabled and not w.precision_button.enabled
    _click_and_wait(qtbot, w.cancel_button, lambda: w.precision_button.enabled, timeout=60000)
    assert w.precision is first
    assert w.status.value == "Cancelled; nothing was added.", w.status.value
    assert not w.cancel_button.enabled


def test_validate_dock_uses_the_angles_the_refine_stage_corrected(make_napari_viewer, qtbot):
    """An atom layer read from a run whose refine stage corrected the angles (its metadata
    says so) over the aligned series that still carries the alignment's angles: a click
    projects the model at the corrected angles, plots against them and says so."""
    from test_angle_check import _checked_metadata

    from napari_aet.widgets import ValidateWidget

    atoms = build_structure("fcc", radius_A=8.0, shape_px=(64, 64), pixel_size_A=PX, seed=4)
    nominal = np.arange(-60.0, 61.0, 15.0)
    true = nominal + np.random.default_rng(1).uniform(-1.0, 1.0, len(nominal))
    sim = simulate_tilt_series(atoms, true, pixel_size_A=PX, shape_px=(64, 64), seed=5)
    viewer = make_napari_viewer(show=True)
    data, kw, _ = tilt_series_layer_data(TiltSeries(sim.data, nominal, PX), name="aligned")
    viewer.add_image(data, **kw)
    model = AtomModel(atoms.positions, metadata=_checked_metadata(nominal, true))
    pdata, pkw, _ = atoms_layer_data(model, name="refined atoms")
    viewer.add_points(pdata, **pkw)
    w = ValidateWidget(viewer)
    viewer.window.add_dock_widget(w, name="validate")
    assert w.layer.value is viewer.layers["refined atoms"]
    v = _compute(qtbot, w)
    assert v.angles_checked
    np.testing.assert_allclose(v.angles_deg, true)
    assert "angle check corrected" in w.status.value, w.status.value
    np.testing.assert_allclose(w._figure.axes[0].lines[0].get_xdata(), true)
