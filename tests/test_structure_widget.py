import re

import numpy as np
import pytest

from napari_aet._layers import atoms_layer_data
from napari_aet.core.atoms import AtomModel
from napari_aet.figures import STUDY_LAYER_COLORS
from napari_aet.widgets._structure import parse_layer_selection


def test_parse_layer_selection():
    assert parse_layer_selection("-1:1") == {-1, 0, 1}
    assert parse_layer_selection("-3, 0; 2") == {-3, 0, 2}
    assert parse_layer_selection(" ") is None
    with pytest.raises(ValueError):
        parse_layer_selection("a:b")


def test_structure_widget_colours_tables_and_filters(make_napari_viewer, qtbot, sample):
    from matplotlib.colors import to_rgba

    from napari_aet.widgets import StructureWidget

    viewer = make_napari_viewer()
    data, kw, _ = atoms_layer_data(AtomModel(sample.truth.atoms.positions), name="atoms")
    layer = viewer.add_points(data, **kw)
    w = StructureWidget(viewer)
    w.layer.value = layer
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    f = layer.features
    assert {"layer", "abc", "stacking", "cluster", "q4", "q6"} <= set(f.columns)
    assert w.table.rowCount() == w.result.summary["n_layers"]
    interface = f["layer"].to_numpy() == 0
    np.testing.assert_allclose(
        layer.face_color[interface], [to_rgba(STUDY_LAYER_COLORS["interface"])] * interface.sum()
    )
    assert "interface" in w.legend.value and STUDY_LAYER_COLORS["interface"] in w.legend.value
    w.color_by.value = "stacking"
    assert "hcp" in w.legend.value and "#ff006e" in w.legend.value  # the legend follows
    hcp = f["stacking"].to_numpy() == "hcp"
    assert hcp.any()
    np.testing.assert_allclose(layer.face_color[hcp][0], to_rgba("#ff006e"))
    w.show_layers.value = "-1:1"
    n_sel = np.isin(f["layer"], [-1, 0, 1]).sum()
    assert layer.shown.sum() == n_sel
    # what is drawn: a layer of the chosen atoms only, the full one hidden
    subset = viewer.layers["atoms (layers -1:1)"]
    assert len(subset.data) == n_sel and subset.visible and not layer.visible
    assert set(subset.features["layer"]) == {-1, 0, 1}
    w.show_layers.value = ""
    assert layer.shown.all() and layer.visible
    assert [x.name for x in viewer.layers] == ["atoms"]
    # after the analysis the camera already looks along an in-layer <110>: the layers edge-on
    # and the view along nearest-neighbour bonds (atom columns end-on), [111] up
    assert viewer.dims.ndisplay == 3
    n = w.result.stacking.normal
    view = np.asarray(viewer.camera.view_direction)
    assert abs(view @ n) < 1e-3
    assert abs(np.asarray(viewer.camera.up_direction) @ n) == pytest.approx(1.0, abs=1e-3)
    pos = layer.data
    from scipy.spatial import cKDTree

    pairs = cKDTree(pos).query_pairs(3.0, output_type="ndarray")
    bonds = pos[pairs[:, 1]] - pos[pairs[:, 0]]
    bonds /= np.linalg.norm(bonds, axis=1, keepdims=True)
    assert np.abs(bonds @ view).max() > np.cos(np.deg2rad(2.0))
    # View again: the next of the three equivalent <110>, 60 deg on
    w.view_button.changed.emit(True)
    view2 = np.asarray(viewer.camera.view_direction)
    assert abs(view2 @ n) < 1e-3 and abs(view2 @ view) == pytest.approx(0.5, abs=1e-3)
    w.view_direction.value = "in-layer <112> (layers edge-on)"
    assert w.view_along()
    assert abs(np.asarray(viewer.camera.view_direction) @ view2) == pytest.approx(
        np.cos(np.deg2rad(30)), abs=1e-3
    )
    w.side_view()
    view = np.asarray(viewer.camera.view_direction)
    assert abs(view @ w.result.stacking.normal) < 1e-3  # the layers edge-on
    w.view_along_stacking()
    assert viewer.dims.ndisplay == 3
    view = np.asarray(viewer.camera.view_direction)
    assert abs(view @ w.result.stacking.normal) == pytest.approx(1.0, abs=1e-3)
    assert layer.metadata["structure_analysis"]["relative_rotation_deg"] == pytest.approx(
        1.6, abs=0.1
    )


@pytest.mark.slow
def test_structure_widget_user_selected_cluster(make_napari_viewer, qtbot, sample):
    from napari_aet.widgets import StructureWidget

    viewer = make_napari_viewer()
    data, kw, _ = atoms_layer_data(AtomModel(sample.truth.atoms.positions), name="atoms")
    layer = viewer.add_points(data, **kw)
    w = StructureWidget(viewer)
    w.layer.value = layer
    assert w.run_with_selection() is None and "Select atoms" in w.status.value
    top = np.nonzero(sample.truth.atoms.features["cluster"].to_numpy() == 1)[0]
    layer.selected_data = set(top.tolist())
    with qtbot.waitSignal(w.run_with_selection().finished, timeout=120000):
        pass
    np.testing.assert_array_equal(np.nonzero(layer.features["cluster"].to_numpy())[0], top)
    rot = layer.metadata["structure_analysis"]["relative_rotation_deg"]
    assert rot == pytest.approx(1.6, abs=0.1)


def test_structure_widget_strain_colouring(make_napari_viewer, qtbot):
    from matplotlib.colors import to_rgba

    from napari_aet.simulate import fcc_particle
    from napari_aet.widgets import StructureWidget

    viewer = make_napari_viewer()
    pts = fcc_particle(radius_A=12, shape="sphere", seed=0)
    c = pts.mean(0)
    e = np.diag([0.0, -0.01, 0.01])  # (z, y, x): eyy -1 %, exx +1 %
    data, kw, _ = atoms_layer_data(AtomModel(c + (pts - c) @ (np.eye(3) + e).T), name="atoms")
    layer = viewer.add_points(data, **kw)
    w = StructureWidget(viewer)
    w.layer.value = layer
    w.strain.value = True
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    f = layer.features
    core = np.linalg.norm(layer.data - c, axis=1) < 4
    assert np.nanmedian(f["exx"][core]) == pytest.approx(0.01, abs=1e-3)
    w.color_by.value = "exx"
    # positive exx is red in the diverging map
    rgba = layer.face_color[core][0]
    assert rgba[0] > rgba[2]
    w.color_by.value = "facet"
    faceted = f["facet"].to_numpy() == "111"
    assert faceted.any()
    np.testing.assert_allclose(layer.face_color[faceted][0], to_rgba("#e9c46a"))


def _analysed_by_click(make_napari_viewer, qtbot, atoms, element):
    """A shown viewer with ``atoms`` as a points layer and the Structure widget docked, its
    element set and Analyze clicked as the analyst does; returns (viewer, layer, widget)."""
    from qtpy.QtCore import Qt

    from napari_aet.widgets import StructureWidget

    viewer = make_napari_viewer(show=True)
    data, kw, _ = atoms_layer_data(AtomModel(atoms.positions), name=f"{element} atoms")
    layer = viewer.add_points(data, **kw)
    w = StructureWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.layer.value = layer
    w.element.value = element
    w.result = None
    qtbot.mouseClick(w.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: getattr(w, "result", None) is not None, timeout=120000)
    return viewer, layer, w


def test_structure_widget_shows_a_bcc_crystal_by_its_bond_order(make_napari_viewer, qtbot):
    from matplotlib.colors import to_rgba
    from qtpy.QtCore import Qt

    from napari_aet._layers import _STACKING_COLORS
    from napari_aet.simulate import build_structure

    w_atoms = build_structure("bcc", element="W", radius_A=11, seed=5)
    viewer, layer, w = _analysed_by_click(make_napari_viewer, qtbot, w_atoms, "W")
    s = w.result.summary
    assert s["lattice"] == "bcc" and s["n_layers"] == 0 and w.table.rowCount() == 0
    assert w.status.value.startswith("a bcc crystal, lattice constant 3.1")
    # the study preset has no layers to colour: the atoms show their bond order instead
    bcc = layer.features["local_structure"].to_numpy() == "bcc"
    assert bcc.sum() > 0.5 * len(bcc)
    np.testing.assert_allclose(
        layer.face_color[bcc], [to_rgba(_STACKING_COLORS["bcc"])] * bcc.sum()
    )
    assert "bcc" in w.legend.value
    # View looks down the fitted bcc lattice's [001], [011], [111] in turn: columns end-on
    rot = np.asarray(s["lattice_fits"][0]["rotation_crystal_to_lab"])
    for d in ((0, 0, 1), (0, 1, 1), (1, 1, 1)):
        qtbot.mouseClick(w.view_button.native, Qt.MouseButton.LeftButton)
        want = rot @ np.array(d, float) / np.linalg.norm(d)
        got = np.asarray(viewer.camera.view_direction)
        assert abs(got @ want) == pytest.approx(1.0, abs=1e-3), (d, got, want)
        assert "bcc lattice's" in w.status.value


def test_structure_widget_shows_an_hcp_crystal_by_its_stacking(make_napari_viewer, qtbot):
    from matplotlib.colors import to_rgba

    from napari_aet._layers import _STACKING_COLORS
    from napari_aet.simulate import build_structure

    ru = build_structure("hcp", element="Ru", radius_A=9, shape_px=(128, 128), seed=1)
    _, layer, w = _analysed_by_click(make_napari_viewer, qtbot, ru, "Ru")
    assert w.result.summary["lattice"] == "hcp"
    m = re.match(r"an hcp crystal, a ([\d.]+) A, c ([\d.]+) A", w.status.value)
    assert m, w.status.value
    assert float(m[1]) == pytest.approx(2.70, rel=0.002)  # Ru
    assert float(m[2]) == pytest.approx(2.70 * 1.584, rel=0.002)
    # no interface: the study preset's clusters would split one crystal at an arbitrary
    # layer, so its atoms show their stacking (hcp pink) instead
    hcp = layer.features["stacking"].to_numpy() == "hcp"
    assert hcp.sum() > 0.6 * len(hcp)
    np.testing.assert_allclose(
        layer.face_color[hcp], [to_rgba(_STACKING_COLORS["hcp"])] * hcp.sum()
    )
    # nor does the Q4-Q6 panel split it into "bottom" and "top" clusters
    labels = w._figure.axes[0].get_legend_handles_labels()[1]
    assert "atoms" in labels and not any("cluster" in x for x in labels), labels
