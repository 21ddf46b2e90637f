"""The whole workflow through the dock widgets, as an analyst clicks it (each run button
clicked with a real Qt event on its docked tab), then a session saved and reopened in a new
viewer."""

import matplotlib.image as mpimg
import numpy as np
from conftest import click
from qtpy.QtWidgets import QApplication

from napari_aet.analysis import compare_atom_models
from napari_aet.augment import shipped_weights
from napari_aet.io import read_atoms


def _run(qtbot, widget, timeout=180000):
    """Click the widget's run button, as an analyst does, and wait for the run to end."""
    from qtpy.QtCore import Qt

    widget.dock.raise_()  # its tab brought to the front
    QApplication.processEvents()
    button = widget.run_button
    assert button.native.isVisible() and button.enabled
    qtbot.mouseClick(button.native, Qt.LeftButton)
    assert widget.worker is not None and not button.enabled, widget.status.value
    qtbot.waitUntil(lambda: button.enabled, timeout=timeout)  # enabled again when it ends
    QApplication.processEvents()
    assert not widget.status.value.startswith("Failed"), widget.status.value


def test_simulate_align_recon_trace_edit_analyze_export_and_reopen(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, press_key
):
    monkeypatch.setenv("NAPARI_AET_CACHE", str(tmp_path / "cache"))
    from napari_aet.widgets import (
        AlignWidget,
        AugmentWidget,
        FiguresWidget,
        ReconWidget,
        SimulateWidget,
        StructureWidget,
        TraceWidget,
    )

    viewer = make_napari_viewer(show=True)
    sim, align, recon = SimulateWidget(viewer), AlignWidget(viewer), ReconWidget(viewer)
    augment, trace = AugmentWidget(viewer), TraceWidget(viewer)
    structure, figures = StructureWidget(viewer), FiguresWidget(viewer)
    docks = [sim, align, recon, augment, trace, structure, figures]
    for i, w in enumerate(docks):  # stacked in tabs: each run clicks its shown dock
        w.dock = viewer.window.add_dock_widget(w, name=type(w).__name__, area="right")
        if i:
            viewer.window._qt_window.tabifyDockWidget(docks[0].dock, w.dock)

    # 0. simulate a small twinned particle with shifts (the truth comes as a layer too)
    sim.structure.value = "twinned dumbbell"
    sim.radius.value = 7.0
    sim.size_px.value = 80
    sim.angles.value = "-70:70:10"
    sim.shift_error.value = 2.0
    sim.add_truth.value = True
    _run(qtbot, sim)
    truth = viewer.layers["true atoms"].data.copy()
    # 2. align: the widget picked up the simulated series by itself
    assert align.layer.value is viewer.layers["simulated twinned dumbbell"]
    align.rounds.value = 1
    _run(qtbot, align)
    # 3. reconstruct the aligned series (picked up automatically): its counts, since the
    # alignment denoised them (the hidden second layer), as `napari-aet run` does
    assert "denoised with" in align.status.value
    assert recon.layer.value.name == "simulated twinned dumbbell aligned counts"
    assert not recon.layer.value.visible
    recon.iterations.value = 40
    _run(qtbot, recon)
    tomo = recon.layer.value.name + " GENFIRE"
    assert viewer.layers[tomo].data.shape == (80, 80, 80)
    # 3b. augment with the shipped network when it is there
    if "fcc" in shipped_weights():
        assert augment.layer.value.name == tomo
        augment.device.value = "cpu"
        _run(qtbot, augment)
        tomo = tomo + " U-Net"
    # 4. trace the newest tomogram
    assert trace.layer.value.name == tomo
    _run(qtbot, trace)
    qtbot.waitUntil(lambda: trace.points is not None and len(trace.points.data) > 0)
    atoms = trace.points
    c = compare_atom_models(truth, atoms.data, radius_A=1.0)
    assert c.found_fraction > 0.95 and c.false_fraction < 0.05
    # a manual edit with the keyboard and the mouse: remove mode, click on an atom (slice view)
    n = len(atoms.data)
    press_key(viewer, "Shift-D")
    target = atoms.data[n // 2].copy()
    click(viewer, target, view_direction=(1.0, 0.0, 0.0), dims=(1, 2))
    assert len(atoms.data) == n - 1
    press_key(viewer, "Shift-Q")
    assert len(atoms.metadata["atom_model_metadata"]["edit_log"]) == 1
    # 5. structure with strain, on the traced layer (picked up)
    assert structure.layer.value is atoms
    structure.strain.value = True
    _run(qtbot, structure)
    assert {"layer", "stacking", "q4", "exx", "local_strain"} <= set(atoms.features.columns)
    # 6. figures, a 3D view and the model, then the session
    assert figures.layer.value is atoms
    figures.folder.value = tmp_path / "figs"
    figures.figures.value = ["atoms_stacking", "layers_111", "strain_slices"]
    figures.dpi.value = 80
    _run(qtbot, figures)
    qtbot.waitUntil(lambda: "Wrote 3 figures" in figures.status.value, timeout=30000)
    for name in ("atoms_stacking", "layers_111", "strain_slices"):
        assert mpimg.imread(tmp_path / "figs" / f"{name}.png")[..., :3].std() > 0.02
    figures.view_path.value = tmp_path / "view.png"
    figures.color_by.value = "exx"
    assert mpimg.imread(figures.save_view())[..., :3].std() > 0.05
    figures.atom_path.value = tmp_path / "model.h5"
    figures.atom_format.value = "HDF5"
    model = read_atoms(figures.export_atoms())
    assert model.n_atoms == n - 1 and len(model.metadata["edit_log"]) == 1
    figures.session_path.value = tmp_path / "analysis.aet.h5"
    assert figures.save_session() is not None

    # reopen in a fresh viewer: same layers, data, features, settings and edit log
    names = [layer.name for layer in viewer.layers]
    other = make_napari_viewer()
    reopen = FiguresWidget(other)
    reopen.session_path.value = tmp_path / "analysis.aet.h5"
    reopen.open_session()
    assert [layer.name for layer in other.layers] == names
    back = other.layers[atoms.name]
    np.testing.assert_allclose(back.data, atoms.data)
    assert list(back.features.columns) == list(atoms.features.columns)
    np.testing.assert_allclose(back.features["exx"], atoms.features["exx"])
    assert back.metadata["structure_analysis"]["n_layers"] > 3
    assert len(back.metadata["atom_model_metadata"]["edit_log"]) == 1
    t_back = other.layers[recon.layer.value.name + " GENFIRE"]
    assert t_back.metadata["recon_settings"]["iterations"] == 40
    assert tuple(t_back.scale) == tuple(viewer.layers[t_back.name].scale)
