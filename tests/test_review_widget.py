import numpy as np
from scipy.spatial import cKDTree

from napari_aet.simulate import build_structure, render_atom_volume

PX = 0.4


def test_review_walks_the_doubtful_items_with_keys(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, press_key
):
    monkeypatch.setenv("NAPARI_AET_CACHE", str(tmp_path))
    from napari_aet.widgets import ReviewWidget

    truth = build_structure(
        "fcc", radius_A=11, shape_px=(80, 80), pixel_size_A=PX, seed=2, jitter_A=0.0
    ).positions
    vol = render_atom_volume(truth, (80, 80, 80), voxel_size_A=PX, sigma_A=0.5)
    c = truth.mean(axis=0)
    inner = np.argsort(np.linalg.norm(truth - c, axis=1))
    removed, duplicated = inner[3], inner[10]
    keep = np.setdiff1d(np.arange(len(truth)), [removed])
    atoms = np.vstack([truth[keep], truth[duplicated] + [0.0, 0.0, 1.1]])
    viewer = make_napari_viewer()
    viewer.add_image(vol, name="tomo", scale=(PX, PX, PX))
    viewer.add_points(atoms, name="atoms", size=1.0)
    w = ReviewWidget(viewer)
    w.tomogram.value = viewer.layers["tomo"]
    w.atoms.value = viewer.layers["atoms"]
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    assert "reviewed 0 /" in w.status.value
    kinds = w.items["kind"].tolist()[:4]
    assert "missing" in kinds  # the empty site is among the first items
    press_key(viewer, "Shift-N")  # to the first item; each decision moves on to the next
    for _ in range(4):
        item = w.items.iloc[w.current]
        p = np.array([item["z"], item["y"], item["x"]])
        np.testing.assert_allclose(viewer.camera.center, p)
        if item["kind"] == "missing":
            press_key(viewer, "Shift-H")
        elif np.linalg.norm(p - (truth[duplicated] + [0, 0, 1.1])) < 0.1:
            press_key(viewer, "Shift-X")
        else:
            press_key(viewer, "Shift-K")
    m = w.model
    assert m.n_manual_added == 1 and m.n_manual_removed == 1
    assert m.model.metadata["n_reviewed"] == 4
    d, _ = cKDTree(m.positions).query(truth)
    assert d.max() < 0.1  # every true atom is there again, the duplicate gone
    assert len(m.positions) == len(truth)
    assert {e["action"] for e in m.edit_log} >= {"add", "remove", "accept"}
    assert m.autosave_path.exists()
    assert len(viewer.layers["atoms"].data) == len(truth)


def _tomogram_and_atoms(viewer):
    """A small fcc particle's rendered tomogram ('tomo') and true atoms ('atoms')."""
    truth = build_structure("fcc", radius_A=8, shape_px=(64, 64), pixel_size_A=PX, seed=1).positions
    viewer.add_image(render_atom_volume(truth, (64,) * 3, voxel_size_A=PX), name="tomo",
                     scale=(PX, PX, PX))  # fmt: skip
    viewer.add_points(truth, name="atoms", size=1.0)
    return truth


def _review_in_3d(w, viewer, qtbot):
    """Rank the items, switch to 3D with a 6 A slab and go to the first item."""
    w.tomogram.value, w.atoms.value = viewer.layers["tomo"], viewer.layers["atoms"]
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    viewer.dims.ndisplay = 3
    w.slab.value = 6.0
    w.next()


def test_review_shows_a_slab_around_the_item_in_3d(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    monkeypatch.setenv("NAPARI_AET_CACHE", str(tmp_path))
    from napari_aet.widgets import ReviewWidget

    viewer = make_napari_viewer()
    _tomogram_and_atoms(viewer)
    w = ReviewWidget(viewer)
    _review_in_3d(w, viewer, qtbot)
    item = w.items.iloc[w.current]
    p = np.array([item["z"], item["y"], item["x"]])
    planes = viewer.layers["tomo"].experimental_clipping_planes
    assert len(planes) == 2
    # the two planes sit 3 A (7.5 voxels) either side of the item along the line of sight
    pos = np.array([pl.position for pl in planes]) * PX
    np.testing.assert_allclose(np.linalg.norm(pos - p, axis=1), 3.0, atol=1e-6)
    assert len(viewer.layers["atoms"].experimental_clipping_planes) == 2
    # a ring marks the item, and the view is zoomed in on it (16 A across the canvas)
    marker = viewer.layers["review: current item"]
    np.testing.assert_allclose(marker.data, [p])
    canvas = viewer.window._qt_viewer.canvas.native
    assert viewer.camera.zoom >= min(canvas.width(), canvas.height()) / 16.0 - 1e-6
    assert viewer.layers.selection.active is not marker
    # a session saved now does not keep the marker (a widget's helper, not data)
    from napari_aet.session import layer_tuples, read_session, write_session

    saved = read_session(write_session(tmp_path / "s.aet.h5", layer_tuples(viewer.layers)))
    assert [a["name"] for _, a, _ in saved] == ["tomo", "atoms"]
    w.slab.value = 0.0
    w.next()
    assert len(viewer.layers["tomo"].experimental_clipping_planes) == 0


def test_closing_the_review_dock_ends_its_clipping(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    """The slab must not outlive the dock: later 3D views and saved figures show everything."""
    monkeypatch.setenv("NAPARI_AET_CACHE", str(tmp_path))
    viewer = make_napari_viewer(show=True)
    _tomogram_and_atoms(viewer)
    dock, w = viewer.window.add_plugin_dock_widget("napari-aet", "4b. Review atoms")
    _review_in_3d(w, viewer, qtbot)
    assert len(viewer.layers["tomo"].experimental_clipping_planes) == 2
    dock.close()  # the dock's close button
    qtbot.waitUntil(lambda: not viewer.layers["tomo"].experimental_clipping_planes, timeout=5000)
    assert len(viewer.layers["atoms"].experimental_clipping_planes) == 0
    assert "review: current item" not in viewer.layers  # the marker goes with the dock
