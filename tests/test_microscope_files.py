"""Tilt series as the microscope's software writes them: angles and pixel size in an MRC file's
extended header (Thermo Fisher / FEI, SerialEM) or in SerialEM's .mdoc beside it, images in the
order they were acquired."""

import mrcfile
import mrcfile.dtypes
import numpy as np
import pytest

from napari_aet.cli import main
from napari_aet.io import find_angle_sidecar, read_angles, read_tilt_series

#: a dose-symmetric acquisition (Hagen et al. 2017): 0 first, then alternating sides outward
ANGLES = np.array([0.0, 3.0, -3.0, 6.0, -6.0, 9.0, -9.0, 12.0, -12.0])


@pytest.fixture
def data():
    return np.random.default_rng(0).poisson(3.0, (len(ANGLES), 40, 48)).astype(np.float32)


def _extra2(nint: int, nreal: int, order: str = "<") -> bytes:
    """The MRC header's bytes 112-195 with IMOD's ``nint`` and ``nreal`` (bytes 128-131)."""
    b = bytearray(84)
    b[16:18] = np.array(nint, order + "i2").tobytes()
    b[18:20] = np.array(nreal, order + "i2").tobytes()
    return bytes(b)


def _fei1_file(path, data, angles, pixel_m=0.358e-10):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)  # no voxel size in the header: Tomography writes it in the blocks
        dt = mrcfile.dtypes.get_ext_header_dtype(b"FEI1")
        ext = np.zeros(len(data), dt)
        ext["Metadata size"] = dt.itemsize
        ext["Alpha tilt"] = angles
        ext["Pixel size X"] = pixel_m
        ext["Tilt axis angle"] = 86.5
        ext["STEM Detector name"] = b"HAADF"
        m.set_extended_header(ext)
        m.header.exttyp = b"FEI1"


def test_fei1_extended_header_gives_angles_pixel_size_and_detector(tmp_path, data, capsys):
    path = tmp_path / "tomo.mrc"
    _fei1_file(path, data, ANGLES)
    ts = read_tilt_series(path)
    np.testing.assert_allclose(ts.angles_deg, ANGLES)  # in the file's (acquisition) order
    assert ts.pixel_size_A == pytest.approx(0.358)
    mic = ts.metadata["microscope"]
    assert mic["source"] == "MRC extended header (FEI1)"
    assert mic["detector"] == "HAADF" and mic["tilt_axis_deg_in_header"] == 86.5
    assert ts.metadata["angles_source"] == ts.metadata["pixel_size_source"] == mic["source"]
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "angles: 9 from -12 to 12 deg (MRC extended header (FEI1))" in out
    assert "0.358 A (MRC extended header (FEI1))" in out
    assert "detector: HAADF" in out and "86.5 deg" in out


@pytest.mark.parametrize("order", ["<", ">"])
def test_agard_extended_header_either_byte_order(tmp_path, data, order):
    # the FEI layout of Xplore3D / Tomography 4: 1,024 blocks of 32 floats whatever the count
    path = tmp_path / "tomo.st"
    ext = np.zeros((1024, 32), order + "f4")
    ext[: len(data), 0] = ANGLES
    ext[: len(data), 10] = -4.5
    ext[: len(data), 11] = 0.41e-10
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data.astype(order + "f4"))
        m.set_extended_header(np.frombuffer(ext.tobytes(), "V1"))
        m.header.extra2 = _extra2(0, 32, order)
    ts = read_tilt_series(path)
    np.testing.assert_allclose(ts.angles_deg, ANGLES)
    assert ts.pixel_size_A == pytest.approx(0.41)
    assert ts.metadata["microscope"]["tilt_axis_deg_in_header"] == -4.5


def test_serialem_extended_header_angles(tmp_path, data):
    path = tmp_path / "tilt.mrc"
    angles = np.array([0.01, 3.02, -2.98, 6.0, -6.01, 9.03, -8.99, 12.0, -12.02])
    ext = np.zeros((len(data), 4), "<i2")  # flags 1 | 4: angle * 100, then the stage (4 B)
    ext[:, 0] = np.round(angles * 100)
    ext[:, 1:3] = 1234
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = 0.5
        m.set_extended_header(np.frombuffer(ext.tobytes(), "V1"))
        m.header.extra2 = _extra2(8, 1 | 4)
        m.header.exttyp = b"SERI"
    ts = read_tilt_series(path)
    np.testing.assert_allclose(ts.angles_deg, angles, atol=1e-9)
    assert ts.pixel_size_A == 0.5 and ts.metadata["pixel_size_source"] == "file"


MDOC = """PixelSpacing = 0.3580
ImageFile = tilt.mrc
ImageSize = 48 40
DataMode = 2

[T = SerialEM: Digitized on a Titan Themis        04-Dec-26  09:01:02    ]

[T =     Tilt axis angle = 84.7, binning = 1  spot = 9  camera = 0]
"""


def _mdoc(angles) -> str:
    text = MDOC
    for k, a in enumerate(angles):
        text += f"\n[ZValue = {k}]\nTiltAngle = {a:.4f}\nStagePosition = 1.0 2.0\n"
        text += "PixelSpacing = 0.3580\nExposureDose = 0\n"
    return text


def test_serialem_mdoc_sidecar_gives_angles_pixel_size_and_axis(tmp_path, data):
    path = tmp_path / "tilt.mrc"
    with mrcfile.new(path) as m:
        m.set_data(data)  # no pixel size in the header
    (tmp_path / "tilt.mrc.mdoc").write_text(_mdoc(ANGLES))
    assert find_angle_sidecar(path) == tmp_path / "tilt.mrc.mdoc"
    ts = read_tilt_series(path)
    np.testing.assert_allclose(ts.angles_deg, ANGLES)
    assert ts.pixel_size_A == pytest.approx(0.358)
    assert ts.metadata["angles_source"] == "tilt.mrc.mdoc (SerialEM .mdoc)"
    assert ts.metadata["microscope"]["tilt_axis_deg_in_header"] == 84.7
    # given as the angles file, too
    np.testing.assert_allclose(read_angles(tmp_path / "tilt.mrc.mdoc"), ANGLES)


def test_a_tlt_beside_the_file_wins_and_the_difference_is_noted(tmp_path, data, capsys):
    # IMOD's .tlt (e.g. angles corrected by tiltalign) is what the analyst meant to use
    path = tmp_path / "tomo.mrc"
    _fei1_file(path, data, ANGLES)
    fixed = ANGLES + 0.4
    np.savetxt(tmp_path / "tomo.tlt", fixed)
    ts = read_tilt_series(path)
    np.testing.assert_allclose(ts.angles_deg, fixed)
    note = ts.metadata["microscope"]["angles_note"]
    assert note == (
        "the angles of tomo.tlt (used) differ from those in the MRC extended header (FEI1) "
        "by up to 0.40 deg"
    )
    assert main(["info", str(path)]) == 0
    assert "note:" in capsys.readouterr().out


def test_headers_that_say_nothing_usable_are_ignored(tmp_path, data):
    path = tmp_path / "still.mrc"
    _fei1_file(path, data, np.full(len(data), 0.0), pixel_m=0.0)  # no tilt, no pixel size
    ts = read_tilt_series(path)
    assert ts.angles_deg is None and ts.pixel_size_A is None
    assert "microscope" not in ts.metadata


def test_a_folder_of_single_fei_images_takes_each_files_alpha_tilt(tmp_path, data):
    """Velox/Tomography saving one MRC per tilt, numbered not by angle: each file's one
    Alpha tilt gives its angle; files whose tilts are all the same give none."""
    order = np.random.default_rng(1).permutation(len(ANGLES))
    folder = tmp_path / "tomo"
    folder.mkdir()
    for k, i in enumerate(order):
        _fei1_file(folder / f"tomo_{k:03d}.mrc", data[i : i + 1], ANGLES[i : i + 1])
    ts = read_tilt_series(folder)
    np.testing.assert_allclose(ts.angles_deg, ANGLES[order])
    np.testing.assert_array_equal(ts.data, data[order])
    assert ts.pixel_size_A == pytest.approx(0.358)
    flat = tmp_path / "flat"
    flat.mkdir()
    for k in range(3):
        _fei1_file(flat / f"still_{k:03d}.mrc", data[k : k + 1], np.zeros(1))
    assert read_tilt_series(flat).angles_deg is None


def test_bad_mdoc_is_refused_by_name(tmp_path, data):
    path = tmp_path / "tilt.mrc"
    with mrcfile.new(path) as m:
        m.set_data(data)
    text = _mdoc(ANGLES).replace("TiltAngle = 6.0000\n", "")
    (tmp_path / "tilt.mrc.mdoc").write_text(text)
    with pytest.raises(ValueError, match=r"images \[3\] have no TiltAngle.*--angles"):
        read_tilt_series(path)
    (tmp_path / "tilt.mrc.mdoc").write_text(MDOC)
    with pytest.raises(ValueError, match="no \\[ZValue"):
        read_tilt_series(path)


def test_a_series_in_acquisition_order_aligns_as_the_sorted_one():
    # the shift and axis steps (centre of mass, common line, axis search) do not read the
    # images' order: a dose-symmetric file gives each image the same correction as the sorted
    # one (the whole run: docs/benchmarks.md, "Images in acquisition order")
    from napari_aet.align import align_tilt_series
    from napari_aet.simulate import build_structure, simulate_tilt_series

    angles = np.linspace(-70, 70, 21)
    atoms = build_structure("fcc", radius_A=12, shape_px=(96, 96), pixel_size_A=0.358, seed=3)
    sim = simulate_tilt_series(
        atoms, angles, shape_px=(96, 96), seed=4, shift_error_px=3, tilt_axis_angle_deg=2.0
    )
    order = np.lexsort((angles < 0, np.abs(angles)))  # 0, 7, -7, 14, -14, ...
    kw = {"pixel_size_A": 0.358, "projection_matching": False}
    sorted_ = align_tilt_series(sim.data, angles, **kw)
    acquired = align_tilt_series(sim.data[order], angles[order], **kw)
    assert acquired.tilt_axis_angle_deg == pytest.approx(sorted_.tilt_axis_angle_deg, abs=1e-6)
    np.testing.assert_allclose(acquired.shifts_px, sorted_.shifts_px[order], atol=1e-3)
    np.testing.assert_allclose(acquired.data, sorted_.data[order], atol=1e-3)


def test_napari_opens_a_microscope_file_and_the_geometry_dock_names_its_sources(
    make_napari_viewer, tmp_path, data
):
    # napari's own open path (as File > Open, the plugin preselected), then Plugins > napari
    # AET > 1. Tilt-series geometry: its status says where the angles came from and that the
    # header's differ
    from qtpy.QtWidgets import QApplication
    from test_gui_workflow_defaults import _dock_widget, _menu_action

    from napari_aet.widgets import TiltSeriesWidget

    path = tmp_path / "tomo.mrc"
    _fei1_file(path, data, ANGLES)
    np.savetxt(tmp_path / "tomo.tlt", ANGLES + 0.4)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.window._qt_viewer._qt_open([str(path)], stack=False, plugin="napari-aet")
    layer = viewer.layers["tomo"]
    assert layer.metadata["angles_deg"] == pytest.approx(list(ANGLES + 0.4))
    assert tuple(layer.scale) == pytest.approx((0.358,) * 3)
    _menu_action(viewer.window, "Plugins", "napari AET", "1. Tilt-series geometry").trigger()
    QApplication.processEvents()
    geo = _dock_widget(viewer.window, TiltSeriesWidget)
    assert geo is not None and geo.layer.value is layer
    status = geo.status.value
    assert "angles set (from tomo.tlt)" in status and "pixel size 0.358 A" in status
    assert "note: " in status and "0.40 deg" in status  # the header's angles differ
    assert geo.pixel_size.value == pytest.approx(0.358)
    shot = viewer.screenshot(str(tmp_path / "geometry.png"), canvas_only=False)
    assert shot.shape[0] > 500 and shot[..., :3].std() > 5  # something drawn, not black
