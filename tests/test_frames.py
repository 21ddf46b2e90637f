"""Several frames per tilt: registration, the drift's scan distortion, files that hold
frames, and the align stage that reads them. The frames are made by the independent
simulator (abTEM potentials and probe), scanned row by row while the specimen drifts."""

import importlib.util
import json

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from napari_aet.align import register_frames
from napari_aet.forward import rotation_center_A
from napari_aet.io import TiltSeries, read_tilt_series, write_tilt_series
from napari_aet.simulate import IndependentImaging, build_structure, independent_tilt_series

needs_abtem = pytest.mark.skipif(
    importlib.util.find_spec("abtem") is None, reason="the independent simulator needs abTEM"
)
PX = 0.358
SHAPE = (72, 72)
ANGLES = np.arange(-60.0, 60.1, 20.0)


def _particle():
    atoms = build_structure("fcc", element="Pt", radius_A=8.0, shape="sphere", shape_px=SHAPE,
                            seed=2)  # fmt: skip
    c = rotation_center_A(SHAPE, PX)
    return (atoms.positions - c) @ Rotation.random(random_state=7).as_matrix().T + c


@pytest.fixture(scope="module")
def drifting():
    """Three frames per tilt at the study's counts (50 at the brightest column, summed),
    drifting up to 3 px per frame; and the same acquisition's noise-free image in one scan
    without drift."""
    pos = _particle()
    im = IndependentImaging(peak_counts=50.0, background_counts=1.0, frames=3, drift_px=3.0)
    s = independent_tilt_series(pos, "Pt", ANGLES, shape_px=SHAPE, imaging=im, seed=5)
    still = independent_tilt_series(pos, "Pt", ANGLES, shape_px=SHAPE, seed=5)
    return s, still


def _misfit(images, series, still) -> float:
    """Mean squared residual of each image against the noise-free, undistorted image at the
    specimen's place (a scale and an offset fitted), over the image's mean: about the
    Poisson noise alone (below 1 after resampling) when the image is right."""
    out = []
    for i, img in enumerate(images):
        ref = ndimage.shift(still.signal[i].astype(float), series.shifts_px[i], order=3)
        a = np.c_[ref.ravel(), np.ones(ref.size)]
        coef = np.linalg.lstsq(a, img.ravel().astype(float), rcond=None)[0]
        out.append(np.mean((img.ravel() - a @ coef) ** 2) / img.mean())
    return float(np.mean(out))


@needs_abtem
def test_frames_of_a_small_particle_in_a_large_field_are_registered_in_its_window(drifting):
    # a microscope's 320-px scan of the 72-px particle: the frames are registered in a window
    # about it (the vacuum carries only noise), to the places the particle's own field gives
    from napari_aet.align._frames import _particle_window

    s, _ = drifting
    n, m, rows, cols = s.frames.shape
    field = np.random.default_rng(1).poisson(1.0 / m, (n, m, 320, 320)).astype(np.float32)
    field[:, :, 200 : 200 + rows, 30 : 30 + cols] = s.frames
    box = _particle_window(field[0].sum(0))
    assert box is not None
    r, c = box
    assert r.start <= 200 and r.stop >= 200 + rows and c.start <= 30 and c.stop >= 30 + cols
    assert (r.stop - r.start) * (c.stop - c.start) < 0.2 * 320**2
    assert _particle_window(s.frames[0].sum(0)) is None  # the particle fills its own field
    truth = s.frame_drift_px[:, None, :] * np.arange(m)[None, :, None]
    truth -= truth.mean(1, keepdims=True)
    reg = register_frames(field)
    assert np.sqrt(np.mean((reg.shifts_px - truth) ** 2)) < 0.06  # measured 0.02 px
    np.testing.assert_allclose(reg.shifts_px, register_frames(s.frames).shifts_px, atol=0.05)


@needs_abtem
def test_frames_registered_and_scan_distortion_undone(drifting):
    s, still = drifting
    m = s.frames.shape[1]
    reg = register_frames(s.frames)
    truth = s.frame_drift_px[:, None, :] * np.arange(m)[None, :, None]
    truth -= truth.mean(1, keepdims=True)
    err = reg.shifts_px - truth
    # measured: 0.02 px rms, drift within 0.03 px
    assert np.sqrt(np.mean(err**2)) < 0.06, err
    np.testing.assert_allclose(reg.drift_px_per_frame, s.frame_drift_px, atol=0.1)
    assert reg.data.shape == (len(ANGLES), *SHAPE)
    # counts stay counts: the sum of the frames' counts is kept (a pixel's worth at the edges)
    np.testing.assert_allclose(reg.data.sum((1, 2)), s.frames.sum((1, 2, 3)), rtol=0.02)
    # the images: the registered, undistorted sum fits the specimen as it is; shifts alone
    # leave the scan's shear; rows taken in the wrong order double it; the plain sum smears
    # the drift over the image
    fits = {d: _misfit(register_frames(s.frames, scan_direction=d).data, s, still)
            for d in ("down", "none", "up")}  # fmt: skip
    plain = _misfit(s.data, s, still)
    assert fits["down"] < fits["none"] < fits["up"] < plain, (fits, plain)
    assert fits["down"] < 0.75 * plain, (fits, plain)
    rec = reg.record()
    assert rec["frames_per_image"] == 3 and rec["scan_distortion_corrected"]
    assert rec["drift_px_per_frame_max"] == pytest.approx(
        np.hypot(*s.frame_drift_px.T).max(), abs=0.1
    )
    json.dumps(rec)


@needs_abtem
def test_a_jump_between_frames_is_followed_and_named(drifting):
    """A fourth frame per tilt, one drift on from the third; in image 0 it jumped 2 px further
    (the stage): that frame is placed where it registered, not on the steady line, and the
    image gets a note; the others stay on their steady lines."""
    s, _ = drifting
    fourth = np.stack([ndimage.shift(s.frames[i, 2], s.frame_drift_px[i] + (i == 0) * np.array(
        [2.0, -1.0]), order=1, mode="nearest") for i in range(len(ANGLES))])  # fmt: skip
    frames = np.concatenate([s.frames, fourth[:, None]], axis=1)
    reg = register_frames(frames)
    step = reg.shifts_px[0, 3] - reg.shifts_px[0, 2]
    assert np.allclose(step, s.frame_drift_px[0] + (2.0, -1.0), atol=0.15), step
    assert reg.drift_nonlinearity_px[0] > 0.5 > reg.drift_nonlinearity_px[1:].max()
    assert [n.split(":")[0] for n in reg.notes] == ["image 0"], reg.notes
    others = reg.shifts_px[1:, 3] - reg.shifts_px[1:, 2]
    np.testing.assert_allclose(others, s.frame_drift_px[1:], atol=0.1)


@needs_abtem
def test_frames_too_faint_to_show_their_drift_are_added_as_recorded(drifting):
    """At a tenth of the study's counts (2 counts at a frame's brightest column) the places
    scatter by most of a pixel: a drift within three standard errors of none is left alone
    (the frames added as recorded), and the notes say why."""
    pos = _particle()
    im = IndependentImaging(peak_counts=5.0, background_counts=1.0, frames=3, drift_px=0.5)
    faint = independent_tilt_series(pos, "Pt", ANGLES, shape_px=SHAPE, imaging=im, seed=5)
    reg = register_frames(faint.frames)
    assert reg.place_scatter_px > 0.1
    assert len(reg.unregistered) >= len(ANGLES) // 2, reg.record()
    for i in reg.unregistered:
        np.testing.assert_allclose(reg.data[i], faint.frames[i].sum(0), rtol=1e-5)
    assert any("added as recorded" in n for n in reg.notes) == (reg.place_scatter_px > 0.25)


def test_register_frames_refuses_what_it_cannot_register():
    rng = np.random.default_rng(0)
    good = rng.poisson(3.0, (2, 3, 32, 32)).astype(float)
    with pytest.raises(ValueError, match="4D"):
        register_frames(good[0])
    with pytest.raises(ValueError, match="nothing to register"):
        register_frames(good[:, :1])
    with pytest.raises(ValueError, match="scan_direction"):
        register_frames(good, scan_direction="left")
    with pytest.raises(ValueError, match="below 1"):
        register_frames(good, frame_interval=0.5)
    blank = good.copy()
    blank[1, 2] = 4.0
    with pytest.raises(ValueError, match="frame 2 of image 1 is blank"):
        register_frames(blank)
    # two frames of a particle 12 px apart in a 32-px image: not frames of one tilt
    img = np.zeros((32, 32))
    img[6:12, 6:12] = 50.0
    far = np.stack([img, np.roll(img, (12, 12), axis=(0, 1))])[None].repeat(2, axis=0)
    with pytest.raises(ValueError, match="quarter of the image"):
        register_frames(far + 1.0)


def test_files_that_hold_frames(tmp_path):
    """4D stacks either way round, a 3D stack with each angle repeated, and what is not
    frames (an RGB stack, angles repeated unevenly)."""
    import h5py

    rng = np.random.default_rng(1)
    frames = rng.poisson(5.0, (4, 3, 24, 20)).astype(np.float32)
    angles = np.array([-30.0, -10.0, 10.0, 30.0])
    h5 = tmp_path / "frames.h5"
    with h5py.File(h5, "w") as f:
        f["data"] = frames
        f["angles"] = angles
    with pytest.raises(ValueError, match="3 frames per tilt.*keep_frames=True"):
        read_tilt_series(h5)
    ts = read_tilt_series(h5, keep_frames=True)
    assert ts.data.shape == (4, 3, 24, 20)
    np.testing.assert_array_equal(ts.angles_deg, angles)
    np.testing.assert_array_equal(ts.data, frames)
    assert ts.metadata["frames"]["layout"] == "(n_tilts, n_frames, rows, cols)"
    # frames outer: only the second axis matches the angles
    np.save(tmp_path / "outer.npy", np.swapaxes(frames, 0, 1))
    ts = read_tilt_series(tmp_path / "outer.npy", angles="-30,-10,10,30", keep_frames=True)
    np.testing.assert_array_equal(ts.data, frames)
    assert ts.metadata["frames"]["layout"] == "(n_frames, n_tilts, rows, cols)"
    # a 3D stack and a .tlt with each angle three times in a row
    write_tilt_series(tmp_path / "flat.mrc", TiltSeries(frames.reshape(12, 24, 20), None, PX))
    (tmp_path / "flat.tlt").write_text("".join(f"{a}\n" for a in np.repeat(angles, 3)))
    ts = read_tilt_series(tmp_path / "flat.mrc", keep_frames=True)
    np.testing.assert_array_equal(ts.data, frames)
    np.testing.assert_array_equal(ts.angles_deg, angles)
    assert ts.metadata["frames"]["layout"] == "each angle 3 times in a row"
    # uneven repeats are not frames: the angles' own error
    (tmp_path / "flat.tlt").write_text("".join(f"{a}\n" for a in [*np.repeat(angles, 3)[:-1], 50]))
    with pytest.raises(ValueError, match="a series taken twice"):
        read_tilt_series(tmp_path / "flat.mrc", keep_frames=True)
    # an RGB stack is not frames
    np.save(tmp_path / "rgb.npy", rng.random((4, 24, 20, 3)))
    with pytest.raises(ValueError, match="must be 3D"):
        read_tilt_series(tmp_path / "rgb.npy", angles=angles, keep_frames=True)


@needs_abtem
def test_align_reads_frames_registers_them_and_records_the_drift(tmp_path, drifting):
    """``napari-aet align`` on a 4D file: one aligned image per tilt, the drift in
    alignment.json, the frames' line in the stage's notes."""
    from napari_aet.cli import main

    s, _ = drifting
    path = tmp_path / "frames.h5"
    import h5py

    with h5py.File(path, "w") as f:
        f["tilt_series"] = s.frames
        f["tilt_series"].attrs["pixel_size_A"] = PX
        f["angles_deg"] = s.angles_deg
    out = tmp_path / "align"
    rc = main(["align", str(path), "--out", str(out), "--no-projection-matching",
               "--denoise", "none"])  # fmt: skip
    assert rc == 0
    rec = json.loads((out / "alignment.json").read_text())
    fr = rec["frames"]
    assert fr["frames_per_image"] == 3 and fr["layout"] == "(n_tilts, n_frames, rows, cols)"
    np.testing.assert_allclose(fr["drift_px_per_frame_row_col"], s.frame_drift_px, atol=0.1)
    assert fr["counts"] and rec["counts"]["units"] == "counts" and rec["counts"]["correlated"]
    aligned = read_tilt_series(out / "aligned_tilt_series.h5")
    assert aligned.data.shape[0] == len(ANGLES)
    # the frames' settings reach the record: shifts only
    out2 = tmp_path / "align2"
    rc = main(["align", str(path), "--out", str(out2), "--no-projection-matching",
               "--denoise", "none", "--scan-direction", "none"])  # fmt: skip
    assert rc == 0
    assert not json.loads((out2 / "alignment.json").read_text())["frames"][
        "scan_distortion_corrected"
    ]


def test_info_names_the_frames(tmp_path, capsys):
    from napari_aet.cli import main

    frames = np.random.default_rng(2).poisson(5.0, (3, 2, 16, 16)).astype(np.float32)
    np.save(tmp_path / "f.npy", frames)
    (tmp_path / "f.tlt").write_text("-20\n0\n20\n")
    assert main(["info", str(tmp_path / "f.npy")]) == 0
    out = capsys.readouterr().out
    assert "(3, 2, 16, 16)" in out and "frames: 2 per tilt" in out


@needs_abtem
def test_napari_reader_opens_frames_as_one_registered_image_per_tilt(tmp_path, drifting):
    from napari_aet._reader import napari_get_reader

    s, _ = drifting
    path = tmp_path / "frames.npy"
    np.save(path, s.frames)
    (tmp_path / "frames.tlt").write_text("".join(f"{a}\n" for a in s.angles_deg))
    ((data, kwargs, kind),) = napari_get_reader(str(path))(str(path))
    assert kind == "image" and data.shape == (len(ANGLES), *SHAPE)
    fr = kwargs["metadata"]["file_metadata"]["frames"]
    assert fr["frames_per_image"] == 3
    np.testing.assert_allclose(fr["drift_px_per_frame_row_col"], s.frame_drift_px, atol=0.1)
    np.testing.assert_allclose(data, register_frames(s.frames).data)


@needs_abtem
def test_open_frames_in_napari_and_align_with_the_crop_chosen_by_clicks(
    make_napari_viewer, qtbot, tmp_path
):
    """An analyst opens a 4D file of frames (a 40-px particle in a 256-px field), turns
    projection matching off, picks *none* for the denoiser (the dose rule's BM3D of the whole
    field is tested elsewhere and took most of this test's time), aligns with the crop on
    *auto* (the images cut to the particle),
    then picks *none* in the crop combo with the mouse and the keyboard and aligns again (the
    whole field): real Qt events on the dock's widgets; the status line names the frames."""
    import h5py
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtWidgets import QApplication

    from napari_aet.widgets import AlignWidget

    shape = (256, 256)
    atoms = build_structure("fcc", element="Pt", radius_A=8.0, shape="sphere", shape_px=shape,
                            seed=2)  # fmt: skip
    c = rotation_center_A(shape, PX)
    pos = (atoms.positions - c) @ Rotation.random(random_state=7).as_matrix().T + c
    im = IndependentImaging(peak_counts=50.0, background_counts=1.0, frames=3, drift_px=2.0)
    s = independent_tilt_series(pos, "Pt", ANGLES, shape_px=shape, imaging=im, seed=5)
    path = tmp_path / "frames.h5"
    with h5py.File(path, "w") as f:
        f["tilt_series"] = s.frames
        f["tilt_series"].attrs["pixel_size_A"] = PX
        f["angles_deg"] = ANGLES
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1000, 700)
    (layer,) = viewer.open(str(path), plugin="napari-aet")
    assert layer.data.shape == (len(ANGLES), *shape)
    w = AlignWidget(viewer)
    viewer.window.add_dock_widget(w, name="Align")
    w.layer.value = layer
    box = w.refine.native
    qtbot.mouseClick(box, Qt.LeftButton, pos=QPoint(8, box.height() // 2))
    assert not w.refine.value
    denoise = w.denoise.native
    qtbot.mouseClick(denoise, Qt.LeftButton)  # opens the list: dose, none, ...
    QApplication.processEvents()
    qtbot.keyClick(denoise.view(), Qt.Key_Down)
    qtbot.keyClick(denoise.view(), Qt.Key_Return)
    QApplication.processEvents()
    assert w.denoise.value == "none"
    qtbot.mouseClick(w.run_button.native, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.status.value.startswith(("Aligned", "Failed")), timeout=120000)
    assert "3 frames per image registered" in w.status.value, w.status.value
    assert "counts: sums of registered frames of counts" in w.status.value  # gain 1, kept
    cut = viewer.layers[f"{layer.name} aligned"]
    assert cut.data.shape[1] < shape[0] and "crop:" in w.status.value, (
        w.status.value,
        cut.metadata["alignment"]["steps"].get("crop"),
    )
    assert cut.metadata["alignment"]["frames"]["frames_per_image"] == 3
    qtbot.mouseClick(w.undo_button.native, Qt.LeftButton)
    combo = w.crop.native
    qtbot.mouseClick(combo, Qt.LeftButton)  # opens the list
    QApplication.processEvents()
    qtbot.keyClick(combo.view(), Qt.Key_Down)
    qtbot.keyClick(combo.view(), Qt.Key_Return)
    QApplication.processEvents()
    assert w.crop.value == "none"
    qtbot.mouseClick(w.run_button.native, Qt.LeftButton)
    qtbot.waitUntil(lambda: f"{layer.name} aligned" in viewer.layers, timeout=120000)
    qtbot.waitUntil(lambda: w.status.value.startswith(("Aligned", "Failed")), timeout=120000)
    whole = viewer.layers[f"{layer.name} aligned"]
    assert whole.data.shape[1:] == shape and "crop:" not in w.status.value
    label = w.status.native  # the whole status shows, wrapped: every line of it
    qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()) - 2, timeout=3000)
    shot = viewer.screenshot(str(tmp_path / "aligned.png"), canvas_only=False)
    assert shot.std() > 5  # drawn, not black


@needs_abtem
def test_a_pause_between_frames_is_given_by_the_frame_interval():
    """Frames with a pause as long as a scan between them (frame interval 2): the drift
    between frames is twice the drift over one scan. Given the interval, the distortion is
    undone at the right rate; taken as back to back (1), it is undone twice over."""
    pos = _particle()
    im = IndependentImaging(peak_counts=50.0, background_counts=1.0, frames=3, drift_px=3.0,
                            frame_interval=2.0)  # fmt: skip
    s = independent_tilt_series(pos, "Pt", ANGLES, shape_px=SHAPE, imaging=im, seed=5)
    still = independent_tilt_series(pos, "Pt", ANGLES, shape_px=SHAPE, seed=5)
    right = _misfit(register_frames(s.frames, frame_interval=2.0).data, s, still)
    wrong = _misfit(register_frames(s.frames).data, s, still)
    assert right < 0.93 * wrong, (right, wrong)
    assert register_frames(s.frames, frame_interval=2.0).record()["frame_interval"] == 2.0


@needs_abtem
def test_geometry_dock_registers_the_frames_again_as_chosen_by_clicks(
    make_napari_viewer, qtbot, tmp_path, drifting
):
    """A frames file opened in napari is registered with the defaults; in the geometry dock
    the analyst picks *shifts only* (mouse and keyboard on the combo) and clicks *Register
    frames again*: the layer's images become that registration's, its record says so. A
    layer that was not read from frames does not show the frames' fields."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    from napari_aet.widgets import TiltSeriesWidget

    s, _ = drifting
    path = tmp_path / "frames.npy"
    np.save(path, s.frames)
    (tmp_path / "frames.tlt").write_text("".join(f"{a}\n" for a in s.angles_deg))
    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(path), plugin="napari-aet")
    w = TiltSeriesWidget(viewer)
    viewer.window.add_dock_widget(w, name="geometry")
    w.layer.value = layer
    QApplication.processEvents()
    assert w.register_button.native.isVisible() and w.scan_direction.value == "down"
    assert "3 frames per image registered" in w.status.value
    combo = w.scan_direction.native
    qtbot.mouseClick(combo, Qt.LeftButton)
    QApplication.processEvents()
    qtbot.keyClick(combo.view(), Qt.Key_Down)
    qtbot.keyClick(combo.view(), Qt.Key_Down)
    qtbot.keyClick(combo.view(), Qt.Key_Return)
    QApplication.processEvents()
    assert w.scan_direction.value == "none"
    qtbot.mouseClick(w.register_button.native, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.status.value.startswith(("Registered", "Failed")), timeout=60000)
    assert "registered (shifts only)" in w.status.value, w.status.value
    np.testing.assert_allclose(
        np.asarray(layer.data), register_frames(s.frames, scan_direction="none").data
    )
    assert not layer.metadata["file_metadata"]["frames"]["scan_distortion_corrected"]
    plain = viewer.add_image(s.data, name="plain")
    w.layer.value = plain
    QApplication.processEvents()
    assert not w.register_button.native.isVisible()
