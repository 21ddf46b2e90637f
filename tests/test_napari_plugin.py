import numpy as np
import pytest

from napari_aet.io import TiltSeries, write_atoms, write_tilt_series


def test_manifest_contributions_resolve():
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    mf = pm.get_manifest("napari-aet")
    c = mf.contributions
    assert {w.display_name for w in c.widgets} >= {
        "1. Tilt-series geometry",
        "3b. Augment (U-Net)",
        "5b. Strain and ORR",
        "6. Figures and export",
    }
    names = [w.display_name for w in c.widgets]
    assert names == sorted(names)  # the menu lists them in workflow order
    assert {s.key for s in c.sample_data} == {"nanodumbbell", "nanodumbbell_truth"}
    assert len(c.readers) == 1 and "*.mrc" in c.readers[0].filename_patterns
    assert {tuple(w.layer_types) for w in c.writers} == {
        ("points",),
        ("image",),
        ("image*", "points*"),  # the session writer
    }
    # every command's python_name imports
    for cmd in c.commands:
        assert cmd.exec is not None
        pm.commands.get(cmd.id)


def test_session_round_trip_through_the_reader_and_writer(tmp_path):
    import pandas as pd

    from napari_aet._reader import napari_get_reader
    from napari_aet._writer import write_session_layers

    img = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    pts = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    feats = pd.DataFrame({"layer": [0, 1], "stacking": ["fcc", "hcp"], "q6": [0.5, 0.45]})
    layers = [
        (img, {"name": "tomo", "scale": (0.4, 0.4, 0.4), "colormap": "inferno",
               "metadata": {"napari_aet_type": "tomogram", "angles_deg": np.array([1.0])}},
         "image"),
        (pts, {"name": "atoms", "features": feats, "size": 1.2,
               "metadata": {"atom_model_metadata": {"edit_log": [{"action": "add"}]}}},
         "points"),
    ]  # fmt: skip
    (path,) = write_session_layers(str(tmp_path / "s.aet.h5"), layers)
    reader = napari_get_reader(path)
    assert reader is not None
    back = reader(path)
    assert [(a["name"], t) for _, a, t in back] == [("tomo", "image"), ("atoms", "points")]
    np.testing.assert_array_equal(back[0][0], img)
    assert back[0][1]["scale"] == [0.4, 0.4, 0.4] and back[0][1]["colormap"] == "inferno"
    assert back[0][1]["metadata"]["angles_deg"] == [1.0]
    pd.testing.assert_frame_equal(back[1][1]["features"], feats, check_dtype=False)
    assert back[1][1]["metadata"]["atom_model_metadata"]["edit_log"] == [{"action": "add"}]
    with pytest.raises(ValueError, match="image and points"):
        write_session_layers(str(tmp_path / "x.aet.h5"), [(img, {"name": "s"}, "shapes")])
    assert not (tmp_path / "x.aet.h5").exists()


def test_reader_returns_none_for_foreign_files(tmp_path):
    from napari_aet._reader import napari_get_reader

    other = tmp_path / "table.csv"
    other.write_text("a,b\n1,2\n")
    assert napari_get_reader(str(other)) is None
    assert napari_get_reader(str(tmp_path / "photo.jpg")) is None
    assert napari_get_reader([str(other), str(other)]) is None


def test_reader_gives_layers_with_metadata(tmp_path, sample):
    from napari_aet._reader import napari_get_reader

    p = tmp_path / "s.h5"
    write_tilt_series(p, TiltSeries(sample.data[:3], sample.angles_deg[:3], 0.358))
    ((data, kwargs, kind),) = napari_get_reader(str(p))(str(p))
    assert kind == "image" and data.shape == (3, 256, 256)
    assert kwargs["scale"] == (0.358, 0.358, 0.358)
    assert kwargs["metadata"]["angles_deg"] == [-70.0, -63.0, -56.0]
    q = write_atoms(tmp_path / "atoms.csv", sample.truth.atoms)
    ((pdata, pkw, pkind),) = napari_get_reader(str(q))(str(q))
    assert pkind == "points" and pdata.shape == (sample.truth.atoms.n_atoms, 3)
    assert {"layer", "stacking", "cluster"} <= set(pkw["features"].columns)


def test_sample_opens_in_viewer_and_layers_save(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-aet", "nanodumbbell")
    layer = viewer.layers["nanodumbbell tilt series"]
    assert layer.data.shape == (21, 256, 256)
    assert len(layer.metadata["angles_deg"]) == 21
    assert tuple(layer.scale) == pytest.approx((0.358, 0.358, 0.358))
    out = tmp_path / "saved.h5"
    viewer.layers.save(str(out), selected=False, plugin="napari-aet")
    from napari_aet.io import read_tilt_series

    back = read_tilt_series(out)
    np.testing.assert_allclose(back.angles_deg, np.linspace(-70, 70, 21))
    viewer.layers.clear()
    viewer.open_sample("napari-aet", "nanodumbbell_truth")
    pts = viewer.layers[0]
    assert "stacking" in pts.features.columns
    pts_out = tmp_path / "atoms.xyz"
    viewer.layers.save(str(pts_out), plugin="napari-aet")
    from napari_aet.io import read_atoms

    assert read_atoms(pts_out).n_atoms == len(pts.data)


def test_tilt_series_widget_sets_angles_and_refuses_mismatch(make_napari_viewer):
    from napari_aet.widgets import TiltSeriesWidget

    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((5, 16, 16), np.float32), name="raw")
    w = TiltSeriesWidget(viewer)
    w.layer.value = layer
    w.angles.value = "-60:60:20"  # 7 angles for 5 images
    assert w.apply() is False
    assert "7 tilt angles but the stack has 5" in w.status.value
    assert "angles_deg" not in layer.metadata
    w.angles.value = "-60:60:30"
    w.pixel_size.value = 0.5
    assert w.apply() is True
    assert layer.metadata["angles_deg"] == [-60, -30, 0, 30, 60]
    assert tuple(layer.scale) == (0.5, 0.5, 0.5)


def test_simulate_widget_adds_a_tilt_series(make_napari_viewer, qtbot):
    from napari_aet.widgets import SimulateWidget

    viewer = make_napari_viewer()
    w = SimulateWidget(viewer)
    w.radius.value = 5.0
    w.size_px.value = 48
    w.angles.value = "-60:60:60"
    w.add_truth.value = True
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    img = viewer.layers["simulated fcc"]
    assert img.data.shape == (3, 48, 48)
    assert img.metadata["angles_deg"] == [-60.0, 0.0, 60.0]
    assert len(viewer.layers["true atoms"].data) > 10
    w.angles.value = "-60, oops"
    assert w.run() is None and "Not started" in w.status.value


def test_widgets_pick_up_the_previous_steps_layer(make_napari_viewer):
    from napari_aet.widgets import ReconWidget, ReviewWidget, StructureWidget, TraceWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((3, 16, 16)), name="raw", metadata={"napari_aet_type": "tilt_series"})
    recon, trace = ReconWidget(viewer), TraceWidget(viewer)
    structure, review = StructureWidget(viewer), ReviewWidget(viewer)
    viewer.add_image(np.zeros((8, 8, 8)), name="other")
    aligned = viewer.add_image(
        np.zeros((3, 16, 16)), name="raw aligned", metadata={"napari_aet_type": "tilt_series"}
    )
    tomo = viewer.add_image(
        np.zeros((16, 16, 16)), name="tomo", metadata={"napari_aet_type": "tomogram"}
    )
    atoms = viewer.add_points(
        np.zeros((3, 3)), name="atoms", metadata={"napari_aet_type": "atom_model"}
    )
    assert recon.layer.value is aligned
    assert trace.layer.value is tomo and review.tomogram.value is tomo
    assert structure.layer.value is atoms and review.atoms.value is atoms


def test_session_keeps_a_widget_made_colormap_by_its_colours(make_napari_viewer, tmp_path):
    """A strain map's '(transparent centre)' colormap is not registered in a fresh napari:
    the session stores its colours (and rebuilds it from the name in older files)."""
    from napari.utils.colormaps.colormap_utils import ensure_colormap

    from napari_aet.session import layer_tuples, read_session, write_session
    from napari_aet.widgets._strain import diverging_colormap

    viewer = make_napari_viewer()
    cmap = diverging_colormap()
    viewer.add_image(np.random.default_rng(0).random((4, 5, 6)), name="map", colormap=cmap)
    path = write_session(tmp_path / "s.aet.h5", layer_tuples(viewer.layers))
    ((_, attrs, _),) = read_session(path)
    assert attrs["colormap"]["name"] == cmap.name
    np.testing.assert_allclose(attrs["colormap"]["colors"], cmap.colors, atol=1e-6)
    # a file of an earlier version kept only the name: rebuilt from it
    img = np.zeros((2, 3, 4), np.float32)
    old = write_session(
        tmp_path / "old.aet.h5", [(img, {"name": "m", "colormap": cmap.name}, "image")]
    )
    ((_, attrs, _),) = read_session(old)
    rebuilt = ensure_colormap(attrs["colormap"])
    assert rebuilt.name == cmap.name and rebuilt.colors[0][3] > 0.9 > rebuilt.colors[128][3]
    viewer2 = make_napari_viewer()
    viewer2.open(str(path), plugin="napari-aet")
    assert viewer2.layers["map"].colormap.name == cmap.name


_FRESH = r"""
import json, sys
import napari
from qtpy.QtWidgets import QApplication
from napari_aet.widgets import TraceWidget

viewer = napari.Viewer(show=True)
viewer.open(sys.argv[1], plugin="napari-aet")
w = TraceWidget(viewer)
w.layer.value = viewer.layers["tomo"]
QApplication.processEvents()
out = {
    "layers": [la.name for la in viewer.layers],
    "colormaps": {la.name: la.colormap.name for la in viewer.layers if hasattr(la, "colormap")},
    "units": [str(u) for u in viewer.layers.extent.units or []],
    "taken_over": w.points is viewer.layers["tomo atoms"],
    "n_atoms": w.model.n_atoms,
    "n_removed_before": w.model.n_manual_removed,
}
w.remove_atom(0)  # editing goes on, on the reopened history
out["n_after"] = len(viewer.layers["tomo atoms"].data)
out["n_removed_after"] = w.model.n_manual_removed
print("RESULT" + json.dumps(out))
viewer.close()
"""


@pytest.mark.slow
def test_session_with_every_layer_kind_reopens_in_a_fresh_napari(make_napari_viewer, tmp_path):
    """A session of a tilt series, a tomogram, an edited atoms layer and a strain map (a
    widget-made colormap) opened by File > Open in a new Python process (a napari that never
    saw the colormap): every layer back, colormaps included, one unit per axis, and Trace
    takes over the atoms and goes on editing."""
    import json
    import os
    import subprocess
    import sys

    from napari_aet._layers import atoms_layer_data, tilt_series_layer_data
    from napari_aet.core.atoms import AtomModel
    from napari_aet.session import layer_tuples, write_session
    from napari_aet.trace import EditableAtomModel
    from napari_aet.widgets._shared import publish
    from napari_aet.widgets._strain import diverging_colormap

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    ts = TiltSeries(rng.random((5, 16, 16), np.float32), np.linspace(-60, 60, 5), 0.4, "t", {})
    data, kw, _ = tilt_series_layer_data(ts, name="series")
    viewer.add_image(data, **kw)
    viewer.add_image(rng.random((16, 16, 16), np.float32), name="tomo", scale=(0.4,) * 3,
                     units=("angstrom",) * 3,
                     metadata={"napari_aet_type": "tomogram", "voxel_size_A": 0.4})  # fmt: skip
    pos = np.array([[z, y, x] for z in (1.0, 3.5) for y in (1.0, 3.5, 6.0) for x in (1.0, 3.5)])
    model = EditableAtomModel(AtomModel(pos))
    model.remove(0)
    pdata, pkw, _ = atoms_layer_data(model.model, name="tomo atoms")
    pts = viewer.add_points(pdata, **pkw)
    publish(pts, model)
    viewer.add_image(rng.normal(size=(6, 6, 6)), name="exx map", colormap=diverging_colormap(),
                     units=("angstrom",) * 3)  # fmt: skip
    path = write_session(tmp_path / "all.aet.h5", layer_tuples(viewer.layers))
    script = tmp_path / "fresh.py"
    script.write_text(_FRESH)
    proc = subprocess.run(
        [sys.executable, str(script), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NAPARI_AET_CACHE": str(tmp_path / "cache")},
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    assert line, proc.stderr[-3000:]
    out = json.loads(line[0][len("RESULT") :])
    assert out["layers"] == ["series", "tomo", "tomo atoms", "exx map"]
    assert out["colormaps"]["exx map"] == diverging_colormap().name
    assert out["units"] == ["angstrom"] * 3
    assert out["taken_over"] and out["n_atoms"] == 11 and out["n_removed_before"] == 1
    assert out["n_after"] == 10 and out["n_removed_after"] == 2
