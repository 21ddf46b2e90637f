"""Scan lines that recorded nothing (a band of one value inside an image) are found and the
image is left out with a note; fill at the edges, sparse counts and noise-free images are not
taken for them."""

import numpy as np
import pytest

from napari_aet.align import dead_scan_lines
from napari_aet.io import TiltSeries, write_tilt_series
from napari_aet.simulate import build_structure, simulate_tilt_series
from napari_aet.workflows import excluded_note, load_series

ANGLES = np.linspace(-60, 60, 9)


@pytest.fixture(scope="module")
def series():
    atoms = build_structure("fcc", radius_A=7.0, shape_px=(64, 64), seed=1)
    return simulate_tilt_series(atoms, ANGLES, shape_px=(64, 64), seed=2, background_counts=1)


def test_a_blank_band_is_found_and_nothing_else(series):
    data = series.data.copy()
    assert dead_scan_lines(data) == {}
    data[5, 30:38] = 0  # the beam blanked for 8 lines of image 5
    data[7, 20] = 0  # one lost line of image 7
    assert dead_scan_lines(data) == {5: [(30, 38)], 7: [(20, 21)]}
    # fill rows at the top and bottom of a series moved before it arrived are not lost lines
    data = series.data.copy()
    data[:, :3] = 0
    data[:, -2:] = 0
    assert dead_scan_lines(data) == {}
    # a detector's units: a blank band at the detector's offset, read noise elsewhere
    rng = np.random.default_rng(0)
    adc = (series.data * 20.0 + 100.0 + rng.normal(0, 2, series.data.shape)).astype(np.float32)
    adc[2, 40:44] = 100.0
    assert dead_scan_lines(adc) == {2: [(40, 44)]}
    # counts so sparse that a line of zeros is likely (0.02 per pixel: a line holds 1.3)
    sparse = rng.poisson(0.02, (4, 64, 64)).astype(np.float32)
    assert (np.ptp(sparse[:, 1:-1], axis=2) == 0).any()  # interior lines of zeros exist ...
    assert dead_scan_lines(sparse) == {}  # ... and are data
    # noise-free images: their vacuum lines touch the edges
    clean = simulate_tilt_series(
        build_structure("fcc", radius_A=7.0, shape_px=(64, 64), seed=1),
        ANGLES, shape_px=(64, 64), dose_e_per_A2=None,
    )  # fmt: skip
    assert dead_scan_lines(clean.data) == {}


def test_the_run_leaves_the_image_out_and_says_why(series, tmp_path, capsys):
    data = series.data.copy()
    data[4, 30:38] = 0
    path = tmp_path / "glitched.h5"
    write_tilt_series(path, TiltSeries(data, ANGLES, 0.358, "test", {}))
    ts = load_series(str(path))
    assert ts.n_tilts == 8
    np.testing.assert_allclose(ts.angles_deg, np.delete(ANGLES, 4))
    left = ts.metadata["excluded_images"]
    assert left["indices"] == [4] and left["reasons"]["4"].startswith("scan lines 30-37")
    note = excluded_note(ts.metadata)
    assert "left out image(s) [4] of 9 (at +0.0 deg)" in note and "scan lines 30-37" in note
    # with images the analyst leaves out as well: both, and only the detected one explained
    from napari_aet.workflows import SeriesSource

    ts = load_series(SeriesSource(str(path), exclude=(0,)))
    assert ts.metadata["excluded_images"]["indices"] == [0, 4]
    assert "image 0" not in excluded_note(ts.metadata)
    # napari-aet info says so before anything runs
    from napari_aet.cli import main

    assert main(["info", str(path)]) == 0
    assert "image 4: scan lines 30-37 hold one value" in capsys.readouterr().out


def test_align_widget_leaves_the_image_out_and_says_why(make_napari_viewer, qtbot, series):
    # real clicks: 'series arrives aligned' ticked, then Align pressed
    from qtpy.QtCore import Qt
    from test_align_cli_widget import docked_arriving_aligned

    data = series.data.copy()
    data[6, 20:26] = 0
    viewer = make_napari_viewer(show=True)
    w = docked_arriving_aligned(viewer, qtbot, TiltSeries(data, ANGLES, 0.358, "t", {}), "raw")
    qtbot.mouseClick(w.run_button.native, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.status.value.startswith("Aligned"), timeout=120000)
    assert viewer.layers["raw aligned"].data.shape[0] == len(ANGLES) - 1
    assert "image 6: scan lines 20-25 hold one value" in w.status.value
