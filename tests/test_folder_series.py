"""A folder of one image per tilt (Velox/DM exports, Tomviz, GENFIRE-Python's numbered files)."""

import numpy as np
import pytest
import tifffile

from napari_aet.cli import main
from napari_aet.io import TiltSeriesFileError, read_tilt_series

ANGLES = np.arange(-60.0, 61.0, 10.0)


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(0, 1, (ANGLES.size, 20, 24)).astype(np.float32)


def _imagej(path, img, px=0.4):
    tifffile.imwrite(
        path, img, imagej=True, resolution=(1 / px, 1 / px), metadata={"unit": "angstrom"}
    )


def test_angles_and_order_from_the_file_names(tmp_path, images, capsys):
    # written in a shuffled order: the names, not the file system, give the order
    for k in np.random.default_rng(1).permutation(ANGLES.size):
        _imagej(tmp_path / f"HAADF_{ANGLES[k]:+.1f}deg.tif", images[k])
    (tmp_path / "notes.csv").write_text("not an image")
    ts = read_tilt_series(tmp_path)
    np.testing.assert_array_equal(ts.angles_deg, ANGLES)
    np.testing.assert_array_equal(ts.data, images)
    assert ts.pixel_size_A == pytest.approx(0.4)
    assert ts.metadata["angles_source"] == "file names"
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "13 from -60 to 60 deg (file names)" in out


def test_numbered_files_are_ordered_naturally_and_take_an_angles_file(tmp_path, images):
    """GENFIRE-Python's proj1.tif, proj2.tif, ... proj13.tif: proj10 after proj9, the angles
    from the one angles file in the folder."""
    for k, img in enumerate(images):
        tifffile.imwrite(tmp_path / f"proj{k + 1}.tif", img)
    np.savetxt(tmp_path / "tilts.tlt", ANGLES)
    ts = read_tilt_series(tmp_path)
    np.testing.assert_array_equal(ts.data, images)
    np.testing.assert_array_equal(ts.angles_deg, ANGLES)
    assert "proj1.tif first" in ts.metadata["order"]


def test_unsigned_angles_in_names_are_angles_not_an_index(tmp_path, images):
    full = np.arange(0.0, 180.0, 15.0)  # a full-range series named 0, 15, 30, ...
    for a, img in zip(full, images[: full.size], strict=True):
        tifffile.imwrite(tmp_path / f"tilt_{a:03.0f}.tif", img)
    ts = read_tilt_series(tmp_path)
    np.testing.assert_array_equal(ts.angles_deg, full)


def test_one_file_of_frames_per_tilt(tmp_path, images):
    for a, img in zip(ANGLES, images, strict=True):
        tifffile.imwrite(tmp_path / f"t{a:+.0f}.tif", np.stack([img, img, img]))
    ts = read_tilt_series(tmp_path, keep_frames=True)
    assert ts.data.shape == (ANGLES.size, 3, 20, 24)
    with pytest.raises(TiltSeriesFileError, match="3 frames per tilt"):
        read_tilt_series(tmp_path)


def test_folders_that_are_not_a_series_say_why(tmp_path, images):
    a = tmp_path / "sizes"
    a.mkdir()
    tifffile.imwrite(a / "t-10.tif", images[0])
    tifffile.imwrite(a / "t+10.tif", images[1][:10])
    with pytest.raises(ValueError, match="must have the same size"):
        read_tilt_series(a)
    b = tmp_path / "names"
    b.mkdir()
    tifffile.imwrite(b / "first.tif", images[0])
    tifffile.imwrite(b / "second.tif", images[1])
    with pytest.raises(ValueError, match="do not carry one number each"):
        read_tilt_series(b)
    c = tmp_path / "empty"
    c.mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        read_tilt_series(c)
    # napari's reader leaves such folders to other plugins
    from napari_aet._reader import napari_get_reader

    assert napari_get_reader(str(b)) is None and napari_get_reader(str(c)) is None


def test_napari_opens_a_folder_as_one_series(make_napari_viewer, tmp_path, images):
    """File > Open Folder: napari hands the folder to napari-aet's reader, one layer comes."""
    folder = tmp_path / "tilts"
    folder.mkdir()
    for a, img in zip(ANGLES, images, strict=True):
        _imagej(folder / f"HAADF_{a:+.1f}deg.tif", img)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_viewer._qt_open([str(folder)], stack=False, plugin="napari-aet")
    assert [ly.name for ly in viewer.layers] == ["tilts"]
    layer = viewer.layers["tilts"]
    assert layer.data.shape == images.shape
    assert layer.metadata["angles_deg"] == pytest.approx(list(ANGLES))
    assert tuple(layer.scale) == pytest.approx((0.4,) * 3)


def test_a_folder_series_reconstructs_and_traces_from_the_cli(tmp_path, capsys):
    """A simulated particle exported one TIFF per tilt (angles and pixel size in the files):
    `napari-aet recon` and `trace` on the folder find every atom."""
    from napari_aet.simulate import build_structure, simulate_tilt_series

    atoms = build_structure("fcc", radius_A=7.0, shape_px=(64, 64), pixel_size_A=0.4, seed=2)
    ang = np.arange(0.0, 178.0, 3.0)
    sim = simulate_tilt_series(atoms, ang, pixel_size_A=0.4, shape_px=(64, 64), seed=1)
    folder = tmp_path / "tilts"
    folder.mkdir()
    for a, img in zip(ang, sim.data, strict=True):
        _imagej(folder / f"tilt_{a:+06.1f}.tif", img.astype(np.float32))
    assert_every_atom_traced(folder, atoms, tmp_path, capsys)


def test_a_zero_degree_image_taken_again_at_the_end_is_used_and_named(tmp_path, capsys):
    """As the study did to see what the beam did, a series with its 0-degree image taken
    before and after: read (not refused), named in the notes with the --exclude that leaves it
    out, and reconstructed and traced with both images."""
    from napari_aet.io import TiltSeries, file_notes, write_tilt_series
    from napari_aet.simulate import build_structure, simulate_tilt_series

    atoms = build_structure("fcc", radius_A=7.0, shape_px=(64, 64), pixel_size_A=0.4, seed=2)
    ang = np.r_[0.0, np.arange(-70.0, 71.0, 7.0), 0.0]
    sim = simulate_tilt_series(atoms, ang, pixel_size_A=0.4, shape_px=(64, 64), seed=1)
    write_tilt_series(tmp_path / "s.h5", TiltSeries(sim.data, ang, 0.4))
    ts = read_tilt_series(tmp_path / "s.h5")
    assert len(ts.angles_deg) == 23
    (note,) = file_notes(ts.metadata)
    assert "image 11 (0 deg, as image 0)" in note and "image 22" in note
    assert "--exclude-images 11,22" in note
    assert main(["info", str(tmp_path / "s.h5")]) == 0
    assert "image 22 (0 deg, as image 0)" in capsys.readouterr().out
    assert_every_atom_traced(tmp_path / "s.h5", atoms, tmp_path, capsys, rmsd_A=0.2)  # +-70


def assert_every_atom_traced(series, atoms, tmp_path, capsys, rmsd_A=0.1):
    """`napari-aet recon` (30 iterations) and `trace` on ``series`` find each of ``atoms``
    (to ``rmsd_A`` RMSD) and no other."""
    from napari_aet.analysis import compare_atom_models
    from napari_aet.io import read_atoms

    rc = main(["-q", "recon", str(series), "--iterations", "30", "--out", str(tmp_path / "r")])
    assert rc == 0, capsys.readouterr().err
    rc = main(["-q", "trace", str(tmp_path / "r" / "tomogram.h5"), "--out", str(tmp_path / "t")])
    assert rc == 0, capsys.readouterr().err
    traced = read_atoms(tmp_path / "t" / "atoms.csv")
    c = compare_atom_models(atoms.positions, traced.positions)
    assert c.n_common == atoms.n_atoms == traced.n_atoms and c.rmsd_A < rmsd_A


def test_a_run_resumes_a_folder_series_until_a_file_in_it_changes(tmp_path, images):
    from napari_aet.workflows.pipeline import file_fingerprint

    for a, img in zip(ANGLES, images, strict=True):
        tifffile.imwrite(tmp_path / f"t{a:+.0f}.tif", img)
    before = file_fingerprint(tmp_path)
    assert file_fingerprint(tmp_path) == before and before["files"] == ANGLES.size
    tifffile.imwrite(tmp_path / "t+0.tif", images[0] + 1)
    assert file_fingerprint(tmp_path)["sha256_ends"] != before["sha256_ends"]
