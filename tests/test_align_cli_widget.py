import json

import numpy as np
import pytest

from napari_aet.align import gauge_free_shift_error
from napari_aet.cli import main
from napari_aet.io import TiltSeries, read_tilt_series, write_tilt_series
from napari_aet.simulate import STUDY_DOSE_PER_IMAGE_E_PER_A2, build_structure, simulate_tilt_series

PX = 0.358
ANGLES = np.linspace(-70, 70, 15)


@pytest.fixture(scope="module")
def shifted_series(tmp_path_factory):
    atoms = build_structure("fcc", radius_A=12, shape_px=(96, 96), pixel_size_A=PX, seed=1)
    sim = simulate_tilt_series(
        atoms,
        ANGLES,
        shape_px=(96, 96),
        seed=2,
        shift_error_px=3,
        tilt_axis_angle_deg=2.0,
        background_counts=10,
        # 1.5 times the study's dose: about 130 counts at the brightest columns, over the dose
        # rule's bar (BM3D, a second or more per image, only where a test is about it)
        dose_e_per_A2=1.5 * STUDY_DOSE_PER_IMAGE_E_PER_A2,
    )
    path = tmp_path_factory.mktemp("al") / "raw.h5"
    write_tilt_series(path, TiltSeries(sim.data, ANGLES, PX))
    return path, sim


def _rms_residual(est, truth):
    d = gauge_free_shift_error(est, truth, ANGLES)
    return float(np.sqrt((d**2).sum(axis=1).mean()))


@pytest.mark.slow
def test_cli_align_writes_series_and_corrections(shifted_series, tmp_path):
    path, sim = shifted_series
    out = tmp_path / "aligned"
    assert (
        main(
            [
                "-q",
                "align",
                str(path),
                "--rounds",
                "1",
                "--recon-iterations",
                "10",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    ts = read_tilt_series(out / "aligned_tilt_series.h5")
    assert ts.data.shape == sim.data.shape and ts.pixel_size_A == pytest.approx(PX)
    info = json.loads((out / "alignment.json").read_text())
    assert info["tilt_axis_angle_deg"] == pytest.approx(2.0, abs=0.5)
    assert _rms_residual(info["shifts_px_row_col"], sim.truth.shifts_px) < 0.4
    pm = info["projection_matching"]
    assert pm["refine_angles"] and pm["angle_method"] == "model" and "notes" in pm
    assert len(info["angles_refined_deg"]) == len(ANGLES)
    rows = (out / "alignment.csv").read_text().strip().splitlines()
    assert len(rows) == len(ANGLES) + 1 and rows[0].startswith("index,angle_in_deg")


def test_cli_align_rejects_bad_tilt_axis(shifted_series, tmp_path, capsys):
    path, _ = shifted_series
    assert main(["align", str(path), "--tilt-axis", "north", "--out", str(tmp_path / "x")]) == 1
    assert "--tilt-axis" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_align_widget_adds_aligned_layer_table_and_undo(make_napari_viewer, qtbot, shifted_series):
    from napari_aet._layers import tilt_series_layer_data
    from napari_aet.widgets import AlignWidget

    path, sim = shifted_series
    viewer = make_napari_viewer()
    data, kw, _ = tilt_series_layer_data(read_tilt_series(path), name="raw")
    viewer.add_image(data, **kw)
    w = AlignWidget(viewer)
    w.layer.value = viewer.layers["raw"]
    w.refine.value = False
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    assert "raw aligned" in viewer.layers
    aligned = viewer.layers["raw aligned"]
    assert aligned.metadata["angles_deg"] == pytest.approx(list(ANGLES))
    assert w.table.rowCount() == len(ANGLES)
    assert _rms_residual(w.result.shifts_px, sim.truth.shifts_px) < 0.5
    np.testing.assert_array_equal(viewer.layers["raw"].data, data)  # raw untouched
    w.undo()
    assert [layer.name for layer in viewer.layers] == ["raw"]
    assert w.table.rowCount() == 0


def docked_arriving_aligned(viewer, qtbot, series, name):
    """``series`` as a layer, the Align widget docked on it and its 'series arrives aligned'
    box clicked: the widget."""
    from qtpy.QtCore import QPoint, Qt

    from napari_aet._layers import tilt_series_layer_data
    from napari_aet.widgets import AlignWidget

    data, kw, _ = tilt_series_layer_data(series, name=name)
    viewer.add_image(data, **kw)
    w = AlignWidget(viewer)
    viewer.window.add_dock_widget(w, name="Align")
    w.layer.value = viewer.layers[name]
    box = w.arrives_aligned.native
    qtbot.mouseClick(box, Qt.LeftButton, pos=QPoint(8, box.height() // 2))  # on its box
    assert w.arrives_aligned.value
    return w


def _align_arriving_aligned(viewer, qtbot, series, name):
    """:func:`docked_arriving_aligned`, and the run waited for: the widget."""
    w = docked_arriving_aligned(viewer, qtbot, series, name)
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    return w


def test_align_widget_switch_for_a_series_that_arrives_aligned(
    make_napari_viewer, qtbot, shifted_series
):
    """A click on 'series arrives aligned' keeps every image where it is (preprocess only)."""
    path, _ = shifted_series
    viewer = make_napari_viewer(show=True)
    w = _align_arriving_aligned(viewer, qtbot, read_tilt_series(path), "raw")
    res = w.result
    assert np.all(res.shifts_px == 0) and np.all(res.angle_corrections_deg == 0)
    assert res.tilt_axis_angle_deg == 0 and "projection_matching" not in res.steps


def test_align_widget_says_a_detector_series_was_taken_in_counts(
    make_napari_viewer, qtbot, shifted_series, tmp_path
):
    """A series in a detector's units (gain, offset, read noise: floats) is converted to counts
    by its measured gain, and the status line says so, with the dose rule's verdict."""
    from qtpy.QtCore import Qt

    path, _ = shifted_series
    ts = read_tilt_series(path)
    rng = np.random.default_rng(5)
    adc = (37.3 * ts.data + 1000.0 + rng.normal(0, 20.0, ts.data.shape)).astype(np.float32)
    viewer = make_napari_viewer(show=True)
    w = _align_arriving_aligned(viewer, qtbot, TiltSeries(adc, ANGLES, PX), "detector")
    status = w.status.value
    assert "counts: the images are not integer counts: converted" in status, status
    assert "denoising:" in status
    gain = w.result.steps["counts"]["noise_model"]["gain"]
    assert gain == pytest.approx(37.3, rel=0.2)
    # the aligned layer is in counts (the background subtracted): it varies as the counts do,
    # not 37 times as much
    aligned = np.asarray(viewer.layers["detector aligned"].data)
    assert aligned.std() == pytest.approx(ts.data.std(), rel=0.3)
    shot = viewer.screenshot(str(tmp_path / "align_detector_units.png"), canvas_only=False)
    assert shot.std() > 0  # a drawn window, not a black one
    # the long status wraps over the dock's whole width (no empty label column beside it),
    # every line of it shown, and its text can be selected to copy
    label, button = w.status.native, w.run_button.native
    assert label.isVisible() and label.width() >= 0.95 * button.width()
    qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()) - 2, timeout=3000)
    assert label.textInteractionFlags() & Qt.TextSelectableByMouse


def test_images_left_out_of_a_series(shifted_series, tmp_path, capsys):
    """``--exclude-images`` leaves images out by their index in the file: the aligned series
    lacks them and their angles, alignment.json records which; a bad index or list is refused
    with a message that says what to give."""
    from napari_aet.align import blurred_images
    from napari_aet.workflows import file_image_indices, parse_image_indices, without_images

    path, sim = shifted_series
    ts = read_tilt_series(path)
    kept = without_images(ts, (5, 2, 5))
    assert kept.n_tilts == len(ANGLES) - 2
    # notes name an image by its index in the file: the aligned series' image 4 is the file's 6
    index = file_image_indices(kept)
    assert list(index) == [i for i in range(len(ANGLES)) if i not in (2, 5)]
    assert list(file_image_indices(ts)) == list(range(len(ANGLES)))
    widths = np.full(kept.n_tilts, 0.3)
    widths[4] = 0.6
    which, note = blurred_images(widths, kept.angles_deg, image_indices=index)
    assert list(which) == [4] and note.startswith("images blurred") and ": 6 (" in note, note
    np.testing.assert_array_equal(kept.data[2], ts.data[3])
    assert list(kept.angles_deg) == [a for i, a in enumerate(ANGLES) if i not in (2, 5)]
    assert kept.metadata["excluded_images"]["indices"] == [2, 5]
    with pytest.raises(ValueError, match="indexed 0 to 14"):
        without_images(ts, (15,))
    with pytest.raises(ValueError, match="at least 3"):
        without_images(ts, range(13))
    assert parse_image_indices(" 12, 15 ") == (12, 15) and parse_image_indices("") == ()
    with pytest.raises(ValueError, match="separated by commas"):
        parse_image_indices("12;x")

    out = tmp_path / "left_out"
    fast = ["--no-projection-matching", "--no-com", "--no-common-line", "--tilt-axis", "none"]
    argv = ["-q", "align", str(path), *fast, "--exclude-images", "2,5", "--out", str(out)]
    assert main(argv) == 0
    aligned = read_tilt_series(out / "aligned_tilt_series.h5")
    assert aligned.n_tilts == len(ANGLES) - 2
    assert aligned.angles_deg == pytest.approx([a for i, a in enumerate(ANGLES) if i not in (2, 5)])
    info = json.loads((out / "alignment.json").read_text())
    assert info["excluded_images"]["indices"] == [2, 5]
    assert info["excluded_images"]["angles_deg"] == pytest.approx([ANGLES[2], ANGLES[5]])
    bad = tmp_path / "bad"
    assert main(["align", str(path), *fast, "--exclude-images", "99", "--out", str(bad)]) == 1
    assert "the series has 15 images" in capsys.readouterr().err
    assert not bad.exists()
    with pytest.raises(SystemExit):
        main(["align", str(path), "--exclude-images", "two", "--out", str(bad)])
    assert "separated by commas" in capsys.readouterr().err


def test_align_widget_leaves_out_the_images_typed_in(make_napari_viewer, qtbot, shifted_series):
    """The analyst types the images to leave out (real key events) and runs the alignment:
    the aligned layer lacks them and the status line says which."""
    from qtpy.QtCore import Qt

    path, _ = shifted_series
    viewer = make_napari_viewer(show=True)
    w = docked_arriving_aligned(viewer, qtbot, read_tilt_series(path), "raw")
    field = w.exclude.native
    qtbot.mouseClick(field, Qt.LeftButton)
    qtbot.keyClicks(field, "0, 14")
    qtbot.keyClick(field, Qt.Key_Return)
    assert w.exclude.value == "0, 14"
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    aligned = viewer.layers["raw aligned"]
    assert aligned.data.shape[0] == len(ANGLES) - 2
    assert aligned.metadata["angles_deg"] == pytest.approx(list(ANGLES[1:-1]))
    assert "left out image(s) [0, 14]" in w.status.value
    # a typo is refused before anything runs
    qtbot.keyClicks(field, "x")
    assert w.run() is None and "separated by commas" in w.status.value


def test_a_denoised_alignment_gives_the_reconstruction_its_counts(
    make_napari_viewer, qtbot, shifted_series, tmp_path
):
    """At low counts the Align widget denoises, and adds the same alignment without the
    denoiser as a hidden second layer: the Reconstruct dock takes that one (as
    ``napari-aet run`` reconstructs the counts: a denoiser can paint the wrong lattice), the
    Trace dock's refinement the denoised one; Undo removes both."""
    from qtpy.QtCore import Qt

    from napari_aet.widgets import ReconWidget, TraceWidget

    path, _ = shifted_series
    ts = read_tilt_series(path)
    low = np.random.default_rng(3).poisson(0.1 * ts.data).astype(np.float32)
    assert np.percentile(low, 99.9) < 100  # the dose rule denoises
    viewer = make_napari_viewer(show=True)
    w = _align_arriving_aligned(viewer, qtbot, TiltSeries(low, ANGLES, PX), "low")
    assert "denoised with" in w.status.value, w.status.value
    names = [layer.name for layer in viewer.layers]
    assert names == ["low", "low aligned", "low aligned counts"], names
    counts, denoised = viewer.layers["low aligned counts"], viewer.layers["low aligned"]
    assert not counts.visible and denoised.visible
    assert viewer.layers.selection.active is denoised  # its controls, not the hidden one's
    np.testing.assert_array_equal(counts.data, w.result.undenoised)
    assert not np.allclose(counts.data, denoised.data, atol=0.1)
    assert counts.metadata["angles_deg"] == pytest.approx(list(ANGLES))
    recon, trace = ReconWidget(viewer), TraceWidget(viewer)
    viewer.window.add_dock_widget(recon, name="Reconstruct")
    assert recon.layer.value is counts
    assert trace.series.value is denoised
    shot = viewer.screenshot(str(tmp_path / "align_counts_layer.png"), canvas_only=False)
    assert shot.std() > 0  # a drawn window, not a black one
    qtbot.mouseClick(w.undo_button.native, Qt.LeftButton)
    assert [layer.name for layer in viewer.layers] == ["low"]
    # an alloy: the Reconstruct dock takes the denoised layer (a light element's faint atoms
    # stand out of the denoised series' tomogram; ReconSettings.series "auto")
    field = w.element.native
    qtbot.mouseClick(field, Qt.LeftButton)
    field.selectAll()
    qtbot.keyClicks(field, "Fe,Pt")
    qtbot.keyClick(field, Qt.Key_Return)
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    names = [layer.name for layer in viewer.layers]
    assert names == ["low", "low aligned counts", "low aligned"], names
    assert viewer.layers.selection.active is viewer.layers["low aligned"]
    assert not viewer.layers["low aligned counts"].visible
    assert ReconWidget(viewer).layer.value is viewer.layers["low aligned"]
