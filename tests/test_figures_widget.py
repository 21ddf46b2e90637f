"""The "Figures and export" dock widget."""

import matplotlib.image as mpimg
import numpy as np
import pytest

from napari_aet._layers import atoms_layer_data
from napari_aet.analysis import analyze_structure
from napari_aet.io import read_atoms
from napari_aet.simulate import build_structure


@pytest.fixture(scope="module")
def analysed():
    atoms = build_structure("twinned dumbbell", radius_A=8.0, shape_px=(96, 96), seed=5)
    return analyze_structure(atoms, strain=True)


@pytest.fixture
def widget(make_napari_viewer, analysed):
    from napari_aet.widgets import FiguresWidget

    viewer = make_napari_viewer(show=True)
    data, kw, _ = atoms_layer_data(analysed.model, name="atoms")
    layer = viewer.add_points(data, **kw)
    layer.metadata["structure_analysis"] = analysed.summary
    w = FiguresWidget(viewer)
    w.layer.value = layer
    return viewer, w


def test_figures_widget_exports_figures_and_report(widget, tmp_path, qtbot):
    _, w = widget
    w.folder.value = tmp_path / "figs"
    w.figures.value = ["layers_111", "strain_slices", "crystal_projections", "r_factor"]
    w.svg.value = True
    w.dpi.value = 80
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    qtbot.waitUntil(lambda: "Wrote 3 figures" in w.status.value, timeout=30000)
    for name in ("layers_111", "strain_slices", "crystal_projections"):
        img = mpimg.imread(tmp_path / "figs" / f"{name}.png")
        assert img[..., :3].std() > 0.02
        assert (tmp_path / "figs" / f"{name}.svg").exists()
    assert "r_factor" in w.result["skipped"]  # no tilt series in a layer-only session
    assert (tmp_path / "figs" / "report.html").read_text().count("<img ") == 3


def test_figures_widget_saves_a_3d_view_with_colour_bar(widget, tmp_path):
    _, w = widget
    w.color_by.value = "exx"
    w.view_path.value = tmp_path / "view.png"
    w.width_px.value = 600
    w.dpi.value = 150
    path = w.save_view()
    img = mpimg.imread(path)
    assert img.shape[1] >= 600
    assert img[..., :3].std() > 0.05  # not a black canvas
    # the colour bar on the right holds both ends of RdBu (red and blue)
    right = img[:, int(0.86 * img.shape[1]) :, :3].reshape(-1, 3)
    assert np.any((right[:, 0] > 0.5) & (right[:, 2] < 0.3))
    assert np.any((right[:, 2] > 0.5) & (right[:, 0] < 0.3))
    w.color_by.value = "stacking"
    assert w.save_view() is None and "not numeric" in w.status.value


@pytest.mark.parametrize("fmt,suffix", [("CSV", ".csv"), ("extended XYZ", ".xyz"), ("HDF5", ".h5")])
def test_figures_widget_exports_the_atom_model_with_every_feature(widget, tmp_path, fmt, suffix):
    _, w = widget
    w.atom_path.value = tmp_path / "model.csv"
    w.atom_format.value = fmt
    path = w.export_atoms()
    assert path.suffix == suffix
    m = read_atoms(path)
    layer = w.layer.value
    assert m.n_atoms == len(layer.data)
    assert set(layer.features.columns) <= set(m.features.columns)
    np.testing.assert_allclose(m.positions, layer.data, atol=1e-4)
