"""The "Strain and ORR" dock widget."""

import numpy as np
import pytest

from napari_aet._layers import atoms_layer_data
from napari_aet.core.atoms import AtomModel
from napari_aet.simulate import fcc_particle

TABLE = """# source: test table, not physical
# strain: fraction
# activity: log10(j/j_Pt(111))
facet,strain,activity
111,-0.05,-1.0
111,0.05,1.0
100,-0.05,-2.0
100,0.05,0.0
"""


@pytest.fixture
def widget(make_napari_viewer, tmp_path):
    from napari_aet.widgets import StrainWidget

    viewer = make_napari_viewer()
    pts = fcc_particle(radius_A=13, shape="sphere", seed=3) * 1.01 + 30
    data, kw, _ = atoms_layer_data(AtomModel(pts), name="atoms")
    viewer.add_points(data, **kw)
    w = StrainWidget(viewer)
    w.layer.value = viewer.layers["atoms"]
    (tmp_path / "orr.csv").write_text(TABLE)
    w.orr_table.value = tmp_path / "orr.csv"
    return viewer, w


def test_strain_widget_computes_colours_filters_and_maps(widget, qtbot):
    viewer, w = widget
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    qtbot.waitUntil(lambda: w.result is not None, timeout=30000)
    assert w.status.value.startswith("Done"), w.status.value
    layer = viewer.layers["atoms"]
    f = layer.features
    assert np.nanmedian(f["local_strain"]) == pytest.approx(0.01, abs=1e-6)
    # ORR on {111}: 0.01 strain -> 0.2 on the test line
    on111 = (f["facet"] == "111").to_numpy()
    np.testing.assert_allclose(f.loc[on111, "orr_activity"], 0.2, atol=1e-6)
    # the colour map is centred at zero: a tensile atom is red, NaN grey
    w.color_by.value = "local_strain"
    assert w.limits[0] == -w.limits[1]
    i = int(np.nanargmax(f["local_strain"].to_numpy()))
    r, g, b, _ = layer.face_color[i]
    assert r > b
    w.facets.value = "{111}"
    np.testing.assert_array_equal(layer.shown, on111)
    # what is drawn: the {111} atoms as their own layer, the full layer hidden
    drawn = [x for x in w._viewer.layers if x.metadata.get("napari_aet_subset_of") == layer.name]
    assert len(drawn) == 1 and len(drawn[0].data) == on111.sum() and not layer.visible
    img = w.add_map()
    assert img is not None and img.metadata["quantity"] == "local_strain"
    vals = img.data[img.data != 0]
    assert np.median(vals) == pytest.approx(0.01, abs=1e-3)
    w.color_by.value = "orr_activity"
    assert len(w._figure.axes) == 2  # histogram and colour bar


def test_strain_widget_refuses_a_missing_table(widget, tmp_path):
    _, w = widget
    w.orr_table.value = tmp_path / "missing.csv"
    assert w.run() is None and "no ORR table" in w.status.value


def test_strain_widget_element_sets_the_reference(widget, qtbot):
    viewer, w = widget
    w.element.value = "Au"
    assert w.a_ref.value == pytest.approx(4.078)
    w.element.value = "Pt"
    assert w.a_ref.value == pytest.approx(3.912)
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    qtbot.waitUntil(lambda: w.result is not None, timeout=30000)
    assert w.result.summary["reference_lattice_constant_A"] == pytest.approx(3.912)
    assert "surface local strain +1.00 %" in w.status.value
