"""Series in GENFIRE's convention (Euler triplets, first image index x) come out right-handed.

The images here are drawn with GENFIRE's own projection formula (its rotation matrix written
out, not napari-aet's geometry), so a transposed, mirrored or turned reading cannot pass.
"""

import numpy as np
import pytest
import scipy.io as sio

from napari_aet.analysis import compare_atom_models, compare_models
from napari_aet.cli import main
from napari_aet.forward import rotation_center_A
from napari_aet.io import from_genfire_geometry, read_angle_file, read_atoms, read_tilt_series
from napari_aet.simulate import amorphous_particle


def genfire_matrix(phi, theta, psi):
    """GENFIRE's rotation (MATLAB ``calculate3Dprojection_interp``): object ``(x, y, z)`` to
    image ``(X, Y, beam)``, angles in degrees."""
    cf, sf = np.cos(np.deg2rad(phi)), np.sin(np.deg2rad(phi))
    ct, st = np.cos(np.deg2rad(theta)), np.sin(np.deg2rad(theta))
    cs, ss = np.cos(np.deg2rad(psi)), np.sin(np.deg2rad(psi))
    return np.array(
        [
            [cs * ct * cf - ss * sf, cs * ct * sf + ss * cf, -cs * st],
            [-ss * ct * cf - cs * sf, -ss * ct * sf + cs * cf, ss * st],
            [st * cf, st * sf, ct],
        ]
    )


def genfire_images(xyz_A, euler, shape_xy, pixel_A, sigma_A=0.45):
    """Gaussian atoms projected as GENFIRE projects: ``(n, X, Y)``, centre ``dim // 2``."""
    nx, ny = shape_xy
    out = np.empty((len(euler), nx, ny))
    gx, gy = np.arange(nx) - nx // 2, np.arange(ny) - ny // 2
    s = sigma_A / pixel_A
    for i, e in enumerate(euler):
        xy = (genfire_matrix(*e) @ xyz_A.T)[:2] / pixel_A
        wx = np.exp(-((gx[None, :] - xy[0][:, None]) ** 2) / (2 * s * s))
        wy = np.exp(-((gy[None, :] - xy[1][:, None]) ** 2) / (2 * s * s))
        out[i] = 100.0 * wx.T @ wy
    return out


def test_the_conversion_reproduces_genfire_projections_of_points():
    """Where GENFIRE puts an atom in image i, napari-aet's single-axis model of the converted
    image puts it too: exactly for psi and a common phi, to the stated residual where phi
    varies."""
    rng = np.random.default_rng(3)
    p = rng.uniform(-8, 8, (40, 3))  # GENFIRE (x, y, z) [A] from the centre
    theta = np.arange(-69.0, 70.0, 3.0)
    for phi_spread, tol in ((0.0, 1e-4), (0.4, None)):
        euler = np.stack(
            [7.0 + rng.uniform(-phi_spread, phi_spread, theta.size) if phi_spread else
             np.full(theta.size, 7.0), theta, rng.uniform(-3, 3, theta.size)], axis=1,
        )  # fmt: skip
        blank = np.zeros((theta.size, 4, 4))
        _, ang, rec = from_genfire_geometry(blank, euler)
        np.testing.assert_allclose(ang, -theta)
        assert rec["object_turn_deg"] == pytest.approx(7.0, abs=0.2)
        # napari-aet's object: GENFIRE's turned by -phi (common) about z; (x, y, z) kept
        turn = np.deg2rad(-rec["object_turn_deg"])
        rz = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0],
                       [0, 0, 1]])  # fmt: skip
        q = p @ rz.T
        worst = 0.0
        for i, e in enumerate(euler):
            xg, yg = (genfire_matrix(*e) @ p.T)[:2]
            row, col = yg, xg  # the image transposed
            g = np.deg2rad(rec["in_plane_turn_deg"][i])  # content turned by g: turned back
            r0 = np.cos(g) * row - np.sin(g) * col
            c0 = np.sin(g) * row + np.cos(g) * col
            t = np.deg2rad(ang[i])  # napari-aet: col = x cos t + z sin t, row = y
            worst = max(worst, np.abs(c0 - (q[:, 0] * np.cos(t) + q[:, 2] * np.sin(t))).max(),
                        np.abs(r0 - q[:, 1]).max())  # fmt: skip
        if tol is not None:
            assert worst < tol  # the record rounds turns to 1e-4 deg
        else:  # phi's variation across the axis is left: 0.4 deg at <= 14 A from the centre
            assert rec["out_of_plane_deg"] > 0.1
            assert worst < np.deg2rad(rec["out_of_plane_deg"]) * 14.0 + 0.01


@pytest.mark.parametrize("psi", [5.0, -4.0, 90.0, -178.5])
def test_psi_turns_are_undone_image_by_image(psi):
    """GENFIRE's images at psi turned back come out as its images at psi = 0 (to 0.2 % of the
    peak; turned the wrong way they differ by a third of it); quarter turns exactly."""
    xyz = amorphous_particle(radius_A=7.0, min_distance_A=2.4, seed=0)
    xyz = xyz - xyz.mean(axis=0)
    theta = np.array([-60.0, -20.0, 0.0, 30.0, 65.0])
    turned = np.stack([np.zeros(5), theta, np.full(5, psi)], axis=1)
    plain = np.stack([np.zeros(5), theta, np.zeros(5)], axis=1)
    a, _, rec = from_genfire_geometry(genfire_images(xyz, turned, (60, 60), 0.4, 0.8), turned)
    b, _, _ = from_genfire_geometry(genfire_images(xyz, plain, (60, 60), 0.4, 0.8), plain)
    assert rec["in_plane_turn_deg"] == [(-psi + 180.0) % 360.0 - 180.0] * 5
    assert rec["quarter_turns"] == {5.0: 0, -4.0: 0, 90.0: 3, -178.5: 2}[psi]
    inner = (slice(None), slice(3, -3), slice(3, -3))  # a quarter turn brings in one edge line
    assert np.abs(a - b)[inner].max() < 0.002 * b.max()


def test_turning_back_keeps_the_signal_and_the_noise():
    """The Fourier-shear turn agrees with a cubic spline on a smooth image (0.3 % of its peak
    away from the edges) and keeps white noise's variance, which the spline lowers by a
    quarter."""
    from scipy import ndimage

    from napari_aet.io._genfire import turn_back

    rng = np.random.default_rng(0)
    smooth = ndimage.gaussian_filter(rng.uniform(0, 1, (60, 70)), 3)
    c = np.array([30.0, 35.0])
    for deg in (3.0, -2.0, 20.0):
        g = np.deg2rad(deg)
        m = np.array([[np.cos(g), np.sin(g)], [-np.sin(g), np.cos(g)]])
        spline = ndimage.affine_transform(smooth, m, offset=c - m @ c, order=3, mode="nearest")
        diff = np.abs(turn_back(smooth, g, c) - spline)[12:-12, 12:-12]
        assert diff.max() < 0.003 * smooth.max()
    noise = rng.normal(0, 1, (96, 96))
    g = np.deg2rad(1.0)
    m = np.array([[np.cos(g), np.sin(g)], [-np.sin(g), np.cos(g)]])
    inner = (slice(10, -10), slice(10, -10))
    assert turn_back(noise, g, [48, 48])[inner].var() > 0.95
    assert ndimage.affine_transform(noise, m, order=3)[inner].var() < 0.8


def test_genfire_text_triplets_are_read_as_euler_angles(tmp_path):
    """GENFIRE-Python's angle files: 'phi theta psi' per line; the tilt is the middle one."""
    theta = np.arange(-60.0, 61.0, 6.0)
    rows = "".join(f"0.0 {t:g} 0\n" for t in theta)
    (tmp_path / "euler.txt").write_text(rows)
    ang, trip = read_angle_file(tmp_path / "euler.txt")
    np.testing.assert_array_equal(ang, theta)
    assert trip.shape == (theta.size, 3)
    # an IMOD-style 'angle dose exposure' table is not mistaken for triplets
    table = "".join(f"{t:g} {2.0 * k:g} 1.5\n" for k, t in enumerate(theta))
    (tmp_path / "dose.txt").write_text(table)
    ang, trip = read_angle_file(tmp_path / "dose.txt")
    assert trip is None
    np.testing.assert_array_equal(ang, theta)
    np.save(tmp_path / "e.npy", np.stack([0 * theta, theta, 0 * theta], 1))
    assert read_angle_file(tmp_path / "e.npy")[1].shape == (theta.size, 3)


def test_a_genfire_series_beside_its_triplets_is_turned_to_napari_aet(tmp_path, capsys):
    """A .npy stack in GENFIRE's (n, X, Y) with an Euler sidecar: transposed, tilt negated."""
    data = np.random.default_rng(0).uniform(1, 2, (21, 30, 40)).astype(np.float32)
    theta = np.arange(-60.0, 61.0, 6.0)
    np.save(tmp_path / "p.npy", data)
    (tmp_path / "p_angles.txt").write_text("".join(f"0 {t:g} 0\n" for t in theta))
    ts = read_tilt_series(tmp_path / "p.npy")
    np.testing.assert_array_equal(ts.data, np.swapaxes(data, 1, 2))
    np.testing.assert_array_equal(ts.angles_deg, -theta)
    assert "transposed" in ts.metadata["genfire"]["note"]
    assert main(["info", str(tmp_path / "p.npy")]) == 0
    assert "geometry: GENFIRE's convention" in capsys.readouterr().out


def test_two_series_merged_in_one_file_are_refused_with_the_fix(tmp_path):
    """A file merging two tilt series taken with the specimen turned 90 deg about the beam
    between them (GENFIRE's phi 0 and 90): not one single-axis series (read as one, each
    image would be turned by up to 45 deg); refused, naming the groups and the dual-axis run.
    A single image's phi apart, or phi refined by a degree, stays one series."""
    data = np.random.default_rng(0).uniform(1, 2, (20, 30, 30)).astype(np.float32)
    theta = np.r_[np.arange(-57.0, 60.0, 12.0), np.arange(-51.0, 60.0, 12.0)]
    phi = np.r_[np.zeros(10), np.full(10, 90.0)]
    np.save(tmp_path / "p.npy", data)
    np.save(tmp_path / "p_angles.npy", np.stack([phi, theta, 0 * phi], axis=1))
    with pytest.raises(ValueError, match=r"2 tilt series turned apart.*phi \+90.0 deg \(10 "
                       r"images from 10\).*--second-axis"):  # fmt: skip
        read_tilt_series(tmp_path / "p.npy")
    phi = np.r_[np.random.default_rng(1).normal(0, 0.7, 19), 25.0]  # refined, one outlier
    theta = np.arange(-57.0, 60.0, 6.0)
    np.save(tmp_path / "p_angles.npy", np.stack([phi, theta, 0 * phi], axis=1))
    assert read_tilt_series(tmp_path / "p.npy").data.shape == (20, 30, 30)


def test_a_file_of_two_genfire_series_runs_as_a_dual_axis_series(tmp_path, capsys):
    """GENFIRE's own kind of file for two tilt series of one particle, the specimen turned
    90 deg about the beam between them (phi 0 and 90; drawn by GENFIRE's formula):
    `napari-aet recon` takes it as a dual-axis series (each group its own series, the turn
    measured from their images) and the joint tomogram traces every atom where GENFIRE's frame
    puts it, with no registration, closer than the first series alone (`--phi-group 0`: 6.7
    pm against 3.3 when written); the second alone (`--phi-group 1`) comes out turned by its
    phi about the beam (a common phi is recorded, not undone) and matches after a rotation."""
    import json

    xyz = amorphous_particle(radius_A=8.0, min_distance_A=2.4, seed=2)  # GENFIRE (x, y, z)
    xyz = xyz - xyz.mean(axis=0)
    theta = np.arange(-60.0, 61.0, 6.0)
    euler = np.concatenate(
        [np.stack([np.full(theta.size, phi), theta, np.zeros(theta.size)], axis=1)
         for phi in (0.0, 90.0)]
    )  # fmt: skip
    n, px = 64, 0.4
    images = genfire_images(xyz, euler, (n, n), px)
    images += np.random.default_rng(7).normal(0, 2.0, images.shape)  # a peak of about 100
    sio.savemat(tmp_path / "projections.mat", {"projections": np.moveaxis(images, 0, -1)})
    sio.savemat(tmp_path / "angles.mat", {"angles": euler.T})
    truth = rotation_center_A((n, n), px) + xyz[:, ::-1]  # (z, y, x)
    rmsd = {}
    for name, extra in (("dual", []), ("first", ["--phi-group", "0"]),
                        ("second", ["--phi-group", "1"])):  # fmt: skip
        out = tmp_path / name
        rc = main(["recon", str(tmp_path / "projections.mat"), "--pixel-size", str(px),
                   "--iterations", "40", "--out", str(out / "r"), *extra])  # fmt: skip
        said = capsys.readouterr()
        assert rc == 0, said.err
        assert ("merges two tilt series" in said.err) == (name == "dual")
        rec = json.loads((out / "r" / "recon.json").read_text())
        assert ("dual_axis" in rec) == (name == "dual")
        assert main(["-q", "trace", str(out / "r" / "tomogram.h5"), "--out", str(out / "t")]) == 0
        traced = read_atoms(out / "t" / "atoms.csv").positions
        c = compare_atom_models(truth, traced, radius_A=0.8)
        if name == "dual":
            assert rec["dual_axis"]["n_images"] == [21, 21]
            assert abs(abs(rec["dual_axis"]["rotation_deg"]) - 90.0) < 0.5
        if name == "second":
            assert c.n_common < 0.3 * len(xyz)  # turned by 90 deg about the beam
            turned = compare_models(truth, traced)
            assert turned["n_common"] >= len(xyz) - 1
            assert abs(turned["rotation_deg"] - 90.0) < 1.0
        else:
            assert c.n_common >= len(xyz) - 1 and len(traced) <= len(xyz) + 1
        rmsd[name] = c.rmsd_A
    assert rmsd["dual"] < 0.75 * rmsd["first"]
    assert main(["info", str(tmp_path / "projections.mat")]) == 0
    said = capsys.readouterr().out
    assert "2 tilt series turned about the beam" in said and "phi group 1 (phi +90.0 deg)" in said
    from napari_aet._reader import napari_get_reader

    layers = napari_get_reader(str(tmp_path / "projections.mat"))(str(tmp_path / "projections.mat"))
    assert [kw["name"] for _, kw, _ in layers] == ["projections phi +0", "projections phi +90"]
    assert all(data.shape == (21, n, n) for data, _, _ in layers)
    assert read_tilt_series(tmp_path / "projections.mat", phi_group=1).angles_deg.size == 21
    with pytest.raises(ValueError, match="2 tilt series"):
        read_tilt_series(tmp_path / "projections.mat", phi_group=2)


def test_a_genfire_series_reconstructs_right_handed(tmp_path, capsys):
    """An amorphous (chiral) particle drawn by GENFIRE's formula over 0..177 deg with psi
    turning each image by up to 2 deg and phi wobbling 0.3 deg, in a MATLAB file as GENFIRE's
    examples ship it (projections.mat beside angles.mat, 3 x n): traced where GENFIRE's frame
    puts the atoms, with no registration; its mirror image is not what comes out."""
    rng = np.random.default_rng(5)
    xyz = amorphous_particle(radius_A=7.0, min_distance_A=2.4, seed=0)  # GENFIRE (x, y, z)
    xyz = xyz - xyz.mean(axis=0)
    theta = np.arange(0.0, 178.0, 3.0)
    euler = np.stack(
        [rng.uniform(-0.3, 0.3, theta.size), theta, rng.uniform(-2, 2, theta.size)], axis=1
    )
    nx, ny, px = 56, 64, 0.4  # not square: a transposed reading cannot pass
    images = genfire_images(xyz, euler, (nx, ny), px)
    sio.savemat(tmp_path / "projections.mat", {"projections": np.moveaxis(images, 0, -1)})
    sio.savemat(tmp_path / "angles.mat", {"angles": euler.T})
    rc = main(["-q", "recon", str(tmp_path / "projections.mat"), "--pixel-size", str(px),
               "--iterations", "30", "--out", str(tmp_path / "r")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    rc = main(["-q", "trace", str(tmp_path / "r" / "tomogram.h5"), "--out", str(tmp_path / "t")])
    assert rc == 0, capsys.readouterr().err
    traced = read_atoms(tmp_path / "t" / "atoms.csv").positions
    centre = rotation_center_A((ny, nx), px)  # images (rows, cols) = (Y, X)
    truth = centre + xyz[:, ::-1]  # (z, y, x): GENFIRE's (x, y, z) read backwards
    c = compare_atom_models(truth, traced, radius_A=0.8)
    assert c.n_common >= 0.95 * len(xyz) and len(traced) <= 1.05 * len(xyz)
    assert c.rmsd_A < 0.15
    mirror = centre + xyz[:, ::-1] * np.array([1.0, 1.0, -1.0])
    assert compare_atom_models(mirror, traced, radius_A=0.8).n_common < 0.3 * len(xyz)


def test_the_geometry_dock_applies_a_genfire_angles_file(make_napari_viewer, qtbot, tmp_path):
    """A stack opened in napari, then GENFIRE's triplets chosen in Plugins > napari AET >
    1. Tilt-series geometry by typing the file's path and clicking Apply: the layer's images
    are transposed, the tilts negated, and the status says so."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication
    from test_gui_workflow_defaults import _dock_widget, _menu_action

    from napari_aet.widgets import TiltSeriesWidget

    xyz = amorphous_particle(radius_A=7.0, min_distance_A=2.4, seed=0)
    theta = np.arange(-60.0, 61.0, 6.0)
    euler = np.stack([np.zeros(theta.size), theta, np.full(theta.size, 2.0)], axis=1)
    images = genfire_images(xyz - xyz.mean(axis=0), euler, (56, 64), 0.4, 0.8)
    np.save(tmp_path / "proj.npy", images.astype(np.float32))
    (tmp_path / "euler.txt").write_text("".join(f"{p:g} {t:g} {s:g}\n" for p, t, s in euler))
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.window._qt_viewer._qt_open([str(tmp_path / "proj.npy")], stack=False,
                                      plugin="napari-aet")  # fmt: skip
    layer = viewer.layers["proj"]
    assert layer.data.shape == (21, 56, 64) and layer.metadata.get("angles_deg") is None
    step = viewer.dims.current_step[0]
    _menu_action(viewer.window, "Plugins", "napari AET", "1. Tilt-series geometry").trigger()
    QApplication.processEvents()
    geo = _dock_widget(viewer.window, TiltSeriesWidget)
    assert geo.layer.value is layer
    field = geo.angles_file.line_edit.native
    qtbot.mouseClick(field, Qt.LeftButton)
    qtbot.keyClicks(field, str(tmp_path / "euler.txt"))
    qtbot.keyClick(field, Qt.Key_Return)
    qtbot.mouseClick(geo.apply_button.native, Qt.LeftButton)
    QApplication.processEvents()
    assert layer.data.shape == (21, 64, 56)
    assert layer.metadata["angles_deg"] == pytest.approx(list(-theta))
    assert "GENFIRE's convention" in geo.status.value
    assert "in-plane turns up to 2.00 deg undone" in geo.status.value
    # the same image stays shown (a new scale would move the slider to the last one), whole
    assert viewer.dims.current_step[0] == step
    canvas = viewer.screenshot(canvas_only=True)
    assert canvas[..., :3].std() > 20  # the particle, not a black canvas
    viewer.screenshot(str(tmp_path / "genfire-geometry.png"), canvas_only=False)


def test_series_and_models_written_for_genfire_read_back(tmp_path):
    """A series written as .mat is in GENFIRE's convention (its first index x, Euler triplets
    with its tilt sign) and reads back as it was; an atom model as GENFIRE's 3 x N x, y, z."""
    from napari_aet.core.atoms import AtomModel
    from napari_aet.io import TiltSeries, write_atoms, write_tilt_series

    rng = np.random.default_rng(0)
    data = rng.uniform(0, 1, (9, 30, 40)).astype(np.float32)
    ang = np.linspace(-60, 60, 9)
    write_tilt_series(tmp_path / "s.mat", TiltSeries(data, ang, 0.35, "x", {}))
    raw = sio.loadmat(tmp_path / "s.mat")
    assert raw["projections"].shape == (40, 30, 9)  # (X, Y, n): each image transposed
    np.testing.assert_array_equal(raw["projections"][:, :, 2], data[2].T)
    np.testing.assert_allclose(raw["angles"], np.stack([0 * ang, -ang, 0 * ang]))
    back = read_tilt_series(tmp_path / "s.mat")
    np.testing.assert_array_equal(back.data, data)
    np.testing.assert_allclose(back.angles_deg, ang)
    assert back.pixel_size_A == pytest.approx(0.35)
    model = AtomModel(rng.uniform(0, 20, (30, 3)))
    write_atoms(tmp_path / "m.mat", model)
    np.testing.assert_allclose(sio.loadmat(tmp_path / "m.mat")["model"], model.positions[:, ::-1].T)
    np.testing.assert_allclose(read_atoms(tmp_path / "m.mat").positions, model.positions)


def test_napari_saves_a_tilt_series_and_atoms_as_mat(make_napari_viewer, tmp_path):
    """File > Save Selected Layers with a .mat name: napari hands it to napari-aet's writers."""
    from napari_aet._layers import tilt_series_layer_data
    from napari_aet.io import TiltSeries

    data = np.random.default_rng(0).uniform(0, 1, (5, 12, 16)).astype(np.float32)
    ts = TiltSeries(data, np.array([-20.0, -10, 0, 10, 20]), 0.3, "x", {})
    viewer = make_napari_viewer()
    arr, kwargs, _ = tilt_series_layer_data(ts, name="series")
    viewer.add_image(arr, **kwargs)
    viewer.layers.save(str(tmp_path / "series.mat"), selected=False, plugin="napari-aet")
    back = read_tilt_series(tmp_path / "series.mat")
    np.testing.assert_array_equal(back.data, data)
    np.testing.assert_allclose(back.angles_deg, ts.angles_deg)
    viewer.layers.clear()
    pts = viewer.add_points(np.random.default_rng(1).uniform(0, 9, (7, 3)))
    viewer.layers.save(str(tmp_path / "atoms.mat"), plugin="napari-aet")
    np.testing.assert_allclose(read_atoms(tmp_path / "atoms.mat").positions, pts.data)


def test_a_published_genfire_reconstruction_traces_in_its_own_frame(tmp_path, capsys):
    """A reconstruction as GENFIRE's results hold it, ``(x, y, z)`` in a .mat file with no voxel
    size, drawn here directly in that layout: `napari-aet trace rec.mat --voxel-size` finds
    every atom where GENFIRE's model (x, y, z read backwards) has it."""
    from napari_aet.io import read_volume, write_volume

    xyz = amorphous_particle(radius_A=7.0, min_distance_A=2.4, seed=1)
    xyz = xyz - xyz.mean(axis=0)
    n, vx, s = (48, 44, 40), 0.4, 0.45  # not a cube: an axis mix-up cannot pass
    grids = [(np.arange(k) - k // 2) * vx for k in n]
    vol = np.zeros(n)
    for p in xyz:
        g = [np.exp(-((gr - c) ** 2) / (2 * s * s)) for gr, c in zip(grids, p, strict=True)]
        vol += g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :]
    sio.savemat(tmp_path / "GENFIRE_rec.mat", {"GENFIRE_rec": vol})
    back, size, _ = read_volume(tmp_path / "GENFIRE_rec.mat")
    assert back.shape == n[::-1] and size is None
    rc = main(["-q", "trace", str(tmp_path / "GENFIRE_rec.mat"), "--voxel-size", str(vx),
               "--out", str(tmp_path / "t")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    traced = read_atoms(tmp_path / "t" / "atoms.csv").positions
    truth = (xyz + np.array([k // 2 for k in n]) * vx)[:, ::-1]  # (z, y, x) from the corner
    c = compare_atom_models(truth, traced, radius_A=0.5)
    assert c.n_common == len(xyz) == len(traced) and c.rmsd_A < 0.05
    # written back for GENFIRE's users: the same (x, y, z) array
    write_volume(tmp_path / "again.mat", back, voxel_size_A=vx)
    again = sio.loadmat(tmp_path / "again.mat")["tomogram"]  # float32, as every volume
    np.testing.assert_allclose(again, vol, rtol=1e-6, atol=1e-6 * vol.max())
    assert read_volume(tmp_path / "again.mat")[1] == pytest.approx(vx)


def test_napari_opens_a_published_reconstruction_as_a_tomogram(
    make_napari_viewer, tmp_path, capsys
):
    """File > Open of GENFIRE's results (.mat, (x, y, z), a voxel size beside it): one tomogram
    layer in (z, y, x) that the tracing docks take, not a 'tilt series' of its z slices."""
    from napari_aet._layers import tomogram_voxel_size_A
    from napari_aet.io import is_mat_volume

    vol = np.random.default_rng(0).uniform(0, 1, (20, 18, 16))
    sio.savemat(tmp_path / "rec.mat", {"GENFIRE_rec": vol, "voxel_size_A": 0.347})
    sio.savemat(tmp_path / "series.mat", {"projections": vol, "angles": np.arange(16.0)})
    assert is_mat_volume(tmp_path / "rec.mat") and not is_mat_volume(tmp_path / "series.mat")
    viewer = make_napari_viewer()
    viewer.window._qt_viewer._qt_open([str(tmp_path / "rec.mat")], stack=False,
                                      plugin="napari-aet")  # fmt: skip
    layer = viewer.layers["rec"]
    np.testing.assert_array_equal(layer.data, vol.transpose(2, 1, 0))
    assert layer.metadata["napari_aet_type"] == "tomogram"
    assert tomogram_voxel_size_A(layer) == pytest.approx(0.347)
    assert main(["info", str(tmp_path / "rec.mat")]) == 0
    assert "reconstruction (16, 18, 20) (z, y, x)" in capsys.readouterr().out


def test_the_align_stage_records_how_a_genfire_file_was_read(tmp_path):
    """The run's notes and alignment.json say that the series was read in GENFIRE's
    convention (the reader's record), not only the reader's notification."""
    import json

    from napari_aet.workflows import AlignSettings, SeriesSource, run_align

    xyz = amorphous_particle(radius_A=7.0, min_distance_A=2.4, seed=0)
    theta = np.arange(-60.0, 61.0, 6.0)
    euler = np.stack([np.zeros(theta.size), theta, np.full(theta.size, 1.5)], axis=1)
    images = genfire_images(xyz - xyz.mean(axis=0), euler, (56, 64), 0.4, 0.8)
    sio.savemat(tmp_path / "projections.mat", {"projections": np.moveaxis(images, 0, -1)})
    sio.savemat(tmp_path / "angles.mat", {"angles": euler.T})
    settings = AlignSettings(denoise="none", projection_matching=False)
    src = SeriesSource(str(tmp_path / "projections.mat"), pixel_size_A=0.4)
    res = run_align(src, settings, tmp_path / "align")
    assert any(n.startswith("read: GENFIRE's convention") for n in res.notes)
    rec = json.loads((tmp_path / "align" / "alignment.json").read_text())
    assert rec["genfire"]["in_plane_turn_deg"] == [-1.5] * theta.size
