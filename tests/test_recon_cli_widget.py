import numpy as np
import pytest

from napari_aet.cli import main
from napari_aet.forward import rotation_center_A
from napari_aet.io import TiltSeries, read_volume, write_tilt_series
from napari_aet.simulate import simulate_tilt_series

N = 40
PX = 0.5


@pytest.fixture(scope="module")
def small_series(tmp_path_factory):
    atoms = rotation_center_A((N, N), PX) + np.array([[3.0, -2.0, 2.5], [-4.0, 4.0, -1.0]])
    angles = np.linspace(-70, 70, 21)
    sim = simulate_tilt_series(atoms, angles, pixel_size_A=PX, shape_px=(N, N), seed=0)
    path = tmp_path_factory.mktemp("series") / "tilts.mrc"
    write_tilt_series(path, TiltSeries(sim.data, angles, PX))
    return path, atoms, sim


def test_cli_recon_writes_tomogram_with_provenance(small_series, tmp_path):
    path, atoms, _ = small_series
    out = tmp_path / "rec"
    rc = main(
        ["-q", "recon", str(path), "--iterations", "15", "--support", "box", "--out", str(out)]
    )
    assert rc == 0
    vol, vx, prov = read_volume(out / "tomogram.h5")
    assert vol.shape == (N, N, N) and vx == pytest.approx(PX)
    assert prov["iterations"] == 15 and prov["command"] == "recon"
    assert len(prov["angles_deg"]) == 21
    peak = np.unravel_index(np.argmax(vol), vol.shape)
    d = np.linalg.norm(atoms - np.array(peak) * PX, axis=1).min()
    assert d <= PX * 1.5
    errors = np.loadtxt(out / "recon_errors.csv", delimiter=",", skiprows=1)
    assert errors.shape == (15, 3) and errors[-1, 1] < errors[1, 1]
    assert (out / "figures" / "recon_errors.png").stat().st_size > 5000


def test_cli_recon_needs_angles(tmp_path, capsys):
    p = tmp_path / "noangles.npy"
    np.save(p, np.random.default_rng(0).random((5, 16, 16), np.float32))
    assert main(["recon", str(p), "--pixel-size", "0.4", "--out", str(tmp_path / "o")]) == 1
    assert "--angles" in capsys.readouterr().err
    assert not (tmp_path / "o" / "tomogram.h5").exists()


@pytest.fixture
def recon_on_series(make_napari_viewer, small_series):
    """A viewer with the small series as a tilt-series layer and a ReconWidget on it."""
    from napari_aet._layers import tilt_series_layer_data
    from napari_aet.io import read_tilt_series
    from napari_aet.widgets import ReconWidget

    viewer = make_napari_viewer()
    data, kw, _ = tilt_series_layer_data(read_tilt_series(small_series[0]), name="tilts")
    viewer.add_image(data, **kw)
    w = ReconWidget(viewer)
    w.layer.value = viewer.layers["tilts"]
    return viewer, w


def test_recon_widget_adds_tomogram(recon_on_series, qtbot):
    viewer, w = recon_on_series
    w.iterations.value = 10
    w.support.value = "box"
    w.interpolation.value = "dft"
    assert w.radius.value == pytest.approx(0.1)
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    tomo = viewer.layers["tilts GENFIRE"]
    assert tomo.data.shape == (N, N, N)
    assert tuple(tomo.scale) == pytest.approx((PX, PX, PX))
    assert tomo.metadata["recon_settings"]["interpolation"] == "dft"
    assert len(w._figure.axes[0].lines) == 2  # error and R-free curves
    assert "Done" in w.status.value


def test_recon_widget_refuses_layer_without_angles(make_napari_viewer):
    from napari_aet.widgets import ReconWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 16, 16), np.float32), name="raw")
    w = ReconWidget(viewer)
    w.layer.value = viewer.layers["raw"]
    assert w.run() is None
    assert "needs its tilt angles and pixel size" in w.status.value
    assert len(viewer.layers) == 1


def test_recon_widget_cancel_adds_nothing(recon_on_series, qtbot):
    viewer, w = recon_on_series
    w.iterations.value = 100000
    w.support.value = "box"
    worker = w.run()
    qtbot.waitUntil(lambda: "iteration" in w.status.value, timeout=30000)
    with qtbot.waitSignal(worker.finished, timeout=30000):
        w.cancel()
    qtbot.waitUntil(lambda: "Cancelled" in w.status.value, timeout=5000)
    assert [layer.name for layer in viewer.layers] == ["tilts"]


def test_recon_widget_says_when_the_support_fell_back_to_the_box(make_napari_viewer, qtbot):
    """A series left unaligned (the particle 12 px left and right in turn): the foregrounds
    share no voxel, the box is the support, and the status line says so after the click."""
    from qtpy.QtCore import Qt

    from napari_aet._layers import tilt_series_layer_data
    from napari_aet.widgets import ReconWidget

    atoms = rotation_center_A((N, N), PX) + np.array([[3.0, -2.0, 2.5], [-4.0, 4.0, -1.0]])
    angles = np.linspace(-70, 70, 21)
    sim = simulate_tilt_series(atoms, angles, pixel_size_A=PX, shape_px=(N, N), seed=0)
    moved = np.stack([np.roll(im, 12 if i % 2 else -12, axis=1) for i, im in enumerate(sim.data)])
    viewer = make_napari_viewer(show=True)
    data, kw, _ = tilt_series_layer_data(TiltSeries(moved, angles, PX), name="unaligned")
    viewer.add_image(data, **kw)
    w = ReconWidget(viewer)
    viewer.window.add_dock_widget(w, name="Reconstruct")
    w.layer.value = viewer.layers["unaligned"]
    w.iterations.value = 10
    qtbot.mouseClick(w.run_button.native, Qt.LeftButton)
    qtbot.waitUntil(lambda: "Done" in w.status.value, timeout=120000)
    assert "Support: the images' foregrounds share" in w.status.value
    assert viewer.layers["unaligned GENFIRE"].data.max() > 0


def test_an_empty_tomogram_fails_by_name_and_adds_nothing(
    make_napari_viewer, qtbot, tmp_path, capsys, monkeypatch
):
    """A GENFIRE run that returns no voxel above zero (the images' foregrounds shared no
    voxel before the box fallback existed): the CLI stage fails by name and writes no
    tomogram, the widget adds no layer."""
    from dataclasses import replace

    import napari_aet.widgets._recon as recon_widget
    import napari_aet.workflows.stages as stages
    from napari_aet._layers import tilt_series_layer_data
    from napari_aet.recon import genfire
    from napari_aet.widgets import ReconWidget

    def zeroed(*args, **kwargs):
        res = genfire(*args, **kwargs)
        return replace(res, volume=np.zeros_like(res.volume))

    monkeypatch.setattr(stages, "genfire", zeroed)
    monkeypatch.setattr(recon_widget, "genfire", zeroed)
    angles = np.linspace(-70, 70, 11)
    atoms = rotation_center_A((N, N), PX) + np.array([[3.0, -2.0, 2.5]])
    sim = simulate_tilt_series(atoms, angles, pixel_size_A=PX, shape_px=(N, N), seed=0)
    path = tmp_path / "tilts.mrc"
    write_tilt_series(path, TiltSeries(sim.data, angles, PX))
    out = tmp_path / "o"
    assert main(["recon", str(path), "--iterations", "5", "--out", str(out)]) == 1
    assert "empty tomogram" in capsys.readouterr().err
    assert not (out / "tomogram.h5").exists()
    viewer = make_napari_viewer()
    data, kw, _ = tilt_series_layer_data(TiltSeries(sim.data, angles, PX), name="tilts")
    viewer.add_image(data, **kw)
    w = ReconWidget(viewer)
    w.layer.value = viewer.layers["tilts"]
    w.iterations.value = 5
    with qtbot.waitSignal(w.run().finished, timeout=60000):
        pass
    assert w.status.value.startswith("Failed: GENFIRE gave an empty tomogram")
    assert len(viewer.layers) == 1


def test_recon_widget_reconstructs_two_series_of_a_genfire_file_together(
    make_napari_viewer, qtbot, tmp_path
):
    """A GENFIRE file of two series (phi 0 and 90) opened in napari gives one layer each; in
    the Reconstruct dock the second is chosen as the second axis by keys on its box, and one
    click reconstructs both: the turn found (-90 deg), 21 + 21 images, said in the status."""
    import scipy.io as sio
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication
    from test_genfire_convention import genfire_images

    from napari_aet.simulate import amorphous_particle
    from napari_aet.widgets import ReconWidget

    xyz = amorphous_particle(radius_A=7.0, min_distance_A=2.4, seed=1)
    theta = np.arange(-60.0, 61.0, 6.0)
    euler = np.concatenate([np.stack([np.full(21, p), theta, np.zeros(21)], 1) for p in (0, 90)])
    images = genfire_images(xyz - xyz.mean(0), euler, (56, 56), 0.4)
    path = tmp_path / "projections.mat"
    sio.savemat(path, {"projections": np.moveaxis(images, 0, -1), "pixel_size_A": 0.4})
    sio.savemat(tmp_path / "angles.mat", {"angles": euler.T})
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin="napari-aet")
    assert [layer.name for layer in viewer.layers] == ["projections phi +0", "projections phi +90"]
    w = ReconWidget(viewer)
    viewer.window.add_dock_widget(w, name="Reconstruct")
    w.layer.value = viewer.layers["projections phi +0"]
    w.iterations.value = 30
    combo = w.second.native
    combo.setFocus()
    for _ in range(combo.count()):  # the choices: none, then the layers
        if w.second.value is viewer.layers["projections phi +90"]:
            break
        qtbot.keyClick(combo, Qt.Key_Down)
        QApplication.processEvents()
    assert w.second.value is viewer.layers["projections phi +90"]
    qtbot.mouseClick(w.run_button.native, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.result is not None and w.run_button.enabled, timeout=120000)
    dual = w.result.settings["dual_axis"]
    assert dual["n_images"] == [21, 21] and abs(dual["rotation_deg"] + 90.0) < 0.5
    assert "Dual-axis: 21 + 21 images" in w.status.value
    tomo = viewer.layers[-1]
    assert tomo.data.shape == (56, 56, 56)
    assert tomo.metadata["recon_settings"]["dual_axis"]["rotation_deg"] == dual["rotation_deg"]
