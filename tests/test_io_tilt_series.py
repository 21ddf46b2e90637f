import h5py
import mrcfile
import numpy as np
import pytest
import tifffile

from napari_aet.io import (
    TiltSeries,
    find_angle_sidecar,
    parse_angles,
    read_angles,
    read_tilt_series,
    write_tilt_series,
)


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    return rng.poisson(5.0, size=(5, 24, 32)).astype(np.float32)


ANGLES = np.array([-60.0, -30.0, 0.0, 30.0, 60.0])


@pytest.mark.parametrize("suffix", [".h5", ".mrc", ".tif", ".npy"])
def test_round_trip_every_format(tmp_path, stack, suffix):
    ts = TiltSeries(stack, ANGLES, 0.358)
    files = write_tilt_series(tmp_path / f"series{suffix}", ts)
    back = read_tilt_series(files[0])
    np.testing.assert_array_equal(back.data, stack)
    np.testing.assert_allclose(back.angles_deg, ANGLES)
    if suffix == ".npy":
        assert back.pixel_size_A is None  # NPY carries no metadata
        assert read_tilt_series(files[0], pixel_size_A=0.5).pixel_size_A == 0.5
    else:
        assert back.pixel_size_A == pytest.approx(0.358, rel=1e-6)


def test_ome_tiff_pixel_size_in_nm(tmp_path, stack):
    p = tmp_path / "series.ome.tif"
    tifffile.imwrite(
        p,
        stack,
        ome=True,
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.0358, "PhysicalSizeXUnit": "nm"},
    )
    (tmp_path / "series.tlt").write_text("\n".join(str(a) for a in ANGLES))
    ts = read_tilt_series(p)
    assert ts.metadata["format"] == "OME-TIFF"
    assert ts.pixel_size_A == pytest.approx(0.358)
    np.testing.assert_allclose(ts.angles_deg, ANGLES)


def test_mrc_header_pixel_size_and_rawtlt(tmp_path, stack):
    p = tmp_path / "tomo.st"
    with mrcfile.new(p) as m:
        m.set_data(stack)
        m.voxel_size = 0.42
    (tmp_path / "tomo.rawtlt").write_text("# IMOD\n" + "\n".join(f"{a:.2f}" for a in ANGLES))
    ts = read_tilt_series(p)
    assert ts.pixel_size_A == pytest.approx(0.42)
    assert find_angle_sidecar(p).name == "tomo.rawtlt"
    np.testing.assert_allclose(ts.angles_deg, ANGLES)


def test_hdf5_dataset_selection_and_angles(tmp_path, stack):
    p = tmp_path / "exp.h5"
    with h5py.File(p, "w") as h5:
        h5.create_dataset("raw/stack", data=stack)
        h5.create_dataset("raw/tilt_angles", data=ANGLES)
        h5.create_dataset("other/volume", data=np.zeros((4, 8, 8)))
        h5["raw/stack"].attrs["pixel_size"] = 0.0358
        h5["raw/stack"].attrs["pixel_size_unit"] = "nm"
    with pytest.raises(ValueError, match="several 3D datasets.*dataset="):
        read_tilt_series(p)
    ts = read_tilt_series(p, dataset="raw/stack")
    assert ts.pixel_size_A == pytest.approx(0.358)
    np.testing.assert_allclose(ts.angles_deg, ANGLES)
    with pytest.raises(KeyError, match="raw/stack"):  # the message lists what is there
        read_tilt_series(p, dataset="raw/missing")


def test_typed_angles_and_ranges():
    np.testing.assert_allclose(parse_angles("-70:70:7"), np.linspace(-70, 70, 21))
    np.testing.assert_allclose(parse_angles("-10, 0; 10\n20 # comment"), [-10, 0, 10, 20])
    with pytest.raises(ValueError, match="not a tilt angle"):
        parse_angles("-10, ten")
    with pytest.raises(ValueError, match="start:stop:step"):
        parse_angles("1:2")


def test_angle_file_with_extra_columns(tmp_path):
    p = tmp_path / "angles.txt"
    p.write_text("-60 1.2\n0 1.3\n60 1.1\n")
    np.testing.assert_allclose(read_angles(p), [-60, 0, 60])


# ------------------------------------------------------------------ bad input, one test each


def test_2d_file_is_refused(tmp_path):
    p = tmp_path / "single.tif"
    tifffile.imwrite(p, np.zeros((32, 32), np.float32))
    with pytest.raises(ValueError, match="single 2D image.*stack"):
        read_tilt_series(p)


def test_angle_count_mismatch(tmp_path, stack):
    p = tmp_path / "s.npy"
    np.save(p, stack)
    with pytest.raises(ValueError, match="give 3 tilt angles but the stack has 5 images"):
        read_tilt_series(p, angles=[-10, 0, 10])


def test_nans_raise_or_fill(tmp_path, stack):
    bad = stack.copy()
    bad[2, 3, 4] = np.nan
    p = tmp_path / "nan.npy"
    np.save(p, bad)
    with pytest.raises(ValueError, match="nan_policy='fill'"):
        read_tilt_series(p)
    ts = read_tilt_series(p, nan_policy="fill")
    assert np.isfinite(ts.data).all()
    assert ts.data[2, 3, 4] == np.median(np.delete(stack[2].ravel(), 3 * 32 + 4))


@pytest.mark.parametrize("suffix", [".mrc", ".h5", ".tif", ".npy"])
def test_unreadable_file(tmp_path, suffix):
    p = tmp_path / f"garbage{suffix}"
    p.write_bytes(b"this is not an image file at all" * 10)
    with pytest.raises(ValueError, match="could not read"):
        read_tilt_series(p)


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_tilt_series(tmp_path / "nope.mrc")
    p = tmp_path / "x.jpg"
    p.write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_tilt_series(p)


def test_hdf5_without_3d_dataset(tmp_path):
    p = tmp_path / "flat.h5"
    with h5py.File(p, "w") as h5:
        h5.create_dataset("image", data=np.zeros((8, 8)))
    with pytest.raises(ValueError, match="no 3D dataset.*'image'"):
        read_tilt_series(p)


def test_indices_are_refused_and_full_range_series_accepted(tmp_path, stack):
    p = tmp_path / "s.npy"
    np.save(p, stack)
    with pytest.raises(ValueError, match="beyond a full turn"):
        read_tilt_series(p, angles=[0, 100, 200, 300, 400])
    # a full-range series (0..177, as GENFIRE/RESIRE data sets ship) reads as it is
    ts = read_tilt_series(p, angles=[0, 45, 90, 135, 177])
    np.testing.assert_array_equal(ts.angles_deg, [0, 45, 90, 135, 177])


def test_failed_write_keeps_the_good_file(tmp_path, stack):
    p = tmp_path / "good.h5"
    write_tilt_series(p, TiltSeries(stack, ANGLES, 0.358))
    before = p.read_bytes()
    with pytest.raises(ValueError):
        write_tilt_series(p.with_suffix(".xyz"), TiltSeries(stack, ANGLES, 0.358))
    # fails half-way through the HDF5 write (angles that are not numbers)
    with pytest.raises(ValueError):
        write_tilt_series(p, TiltSeries(stack, np.array(["x"] * 5), 0.358))
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["good.h5"]
