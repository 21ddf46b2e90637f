"""FEI / Thermo Fisher TIA files (``name.emi`` beside ``name_1.ser``), as older STEMs write them:
the images, their pixel size and each image's stage tilt, read through RosettaSciIO."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rsciio")

from napari_aet.io import read_tilt_series  # noqa: E402


def write_ser(path: Path, images: np.ndarray, pixel_m: float) -> None:
    """A TIA ``.ser`` file (series version 0x0210: 4-byte offsets) of ``images`` (one image,
    or a series of them), as TIA lays it out (Boothroyd's description, as RosettaSciIO reads
    it): the header, one dimension (the series), the offset arrays, then each image's
    calibration, data (rows from the bottom) and time tag."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    n, rows, cols = images.shape
    dtype_id = {np.dtype("<u2"): 2, np.dtype("<f4"): 7}[images.dtype.newbyteorder("<")]
    desc = b"Number"
    dim = struct.pack("<Iddi", n, 0.0, 1.0, 0) + struct.pack("<I", len(desc)) + desc
    dim += struct.pack("<I", 0)  # no units: a series of images, not a scan
    offsets_at = 30 + len(dim)
    first = offsets_at + 8 * n
    element = 50 + rows * cols * images.dtype.itemsize + 8  # calibration, data, time tag
    data_offsets = [first + i * element for i in range(n)]
    tag_offsets = [o + element - 8 for o in data_offsets]
    out = struct.pack("<HHHIIII", 0x4949, 0x0197, 0x0210, 0x4122, 0x4152, n, n)
    out += struct.pack("<II", offsets_at, 1) + dim
    out += struct.pack(f"<{n}I", *data_offsets) + struct.pack(f"<{n}I", *tag_offsets)
    for i, img in enumerate(images):
        out += struct.pack("<ddiddi", 0.0, pixel_m, 0, 0.0, pixel_m, 0)
        out += struct.pack("<HII", dtype_id, cols, rows)
        out += np.ascontiguousarray(img[::-1], dtype=images.dtype.newbyteorder("<")).tobytes()
        out += struct.pack("<HHI", 0x4152, 0, 1_400_000_000 + i)
    path.write_bytes(out)


def write_emi(path: Path, stage_alpha_deg: float | None, *, mode: str = "STEM nP SA Zoom Image",
              detectors: int = 1):  # fmt: skip
    """A TIA ``.emi`` file as RosettaSciIO reads it: binary around one ``<ObjectInfo>`` XML
    block per detector (``name_1.ser``, ``name_2.ser``, ...) whose experimental description
    holds the stage's tilt."""
    rows = [("Microscope", "Titan 80-300", ""), ("Mode", mode, ""),
            ("High tension", "300", "kV")]  # fmt: skip
    if stage_alpha_deg is not None:
        rows += [("Stage A", f"{stage_alpha_deg:.2f}", "deg"), ("Stage B", "0.00", "deg")]
    data = "".join(
        f"<Data><Label>{k}</Label><Value>{v}</Value><Unit>{u}</Unit></Data>" for k, v, u in rows
    )
    xml = (
        "<ObjectInfo><AcquireDate>Thu Mar 12 10:00:00 2015</AcquireDate>"
        f"<ExperimentalDescription><Root>{data}</Root></ExperimentalDescription>"
        "<AcquireInfo><DwellTimePath>2e-05</DwellTimePath></AcquireInfo></ObjectInfo>"
    )
    path.write_bytes(b"\x00\x01TIA" + bytes(64) + (xml.encode() + bytes(16)) * detectors)


def write_tia(folder: Path, name: str, image: np.ndarray, pixel_m: float, alpha=None) -> Path:
    """``name.emi`` (when ``alpha`` is given) and ``name_1.ser``; the ``.ser``'s path."""
    ser = folder / f"{name}_1.ser"
    write_ser(ser, image, pixel_m)
    if alpha is not None:
        write_emi(folder / f"{name}.emi", alpha)
    return ser


def _images(n: int, shape=(40, 48), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 3000, size=(n, *shape)).astype(np.uint16)


def test_tia_image_with_its_emi_gives_pixels_pixel_size_and_stage_tilt(tmp_path):
    from napari_aet.io._rsciio import read_rsciio_stack

    img = _images(1)[0]
    img[0, :] = 9  # the top row marked: TIA stores rows from the bottom
    ser = write_tia(tmp_path, "scan", img, 0.358e-10, alpha=-12.5)
    data, px, angles, meta = read_rsciio_stack(ser)
    np.testing.assert_array_equal(data, img)
    assert px == pytest.approx(0.358)
    np.testing.assert_allclose(angles, [-12.5])
    assert "Stage A" in meta["angles_source"]
    # the .emi opened directly reads the same image
    data2, px2, angles2, _ = read_rsciio_stack(tmp_path / "scan.emi")
    np.testing.assert_array_equal(data2, img)
    np.testing.assert_allclose(angles2, [-12.5])


def test_folder_of_tia_files_takes_each_files_stage_tilt(tmp_path):
    """Names that say nothing of the angle (running numbers), written in acquisition order
    from 0 outwards: each image keeps the stage tilt its .emi file records."""
    tilts = [0.0, 10.0, -10.0, 20.0, -20.0, 30.0, -30.0]
    imgs = _images(len(tilts), seed=1)
    for k, (a, img) in enumerate(zip(tilts, imgs, strict=True)):
        write_tia(tmp_path, f"tomo{k + 1:03d}", img, 0.5e-10, alpha=a)
    ts = read_tilt_series(tmp_path)
    np.testing.assert_allclose(ts.angles_deg, tilts)
    np.testing.assert_array_equal(ts.data, imgs.astype(ts.data.dtype))
    assert ts.pixel_size_A == pytest.approx(0.5)
    assert ts.metadata["angles_source"] == "files' headers (stage tilts)"
    # without the .emi files there is no tilt to take: nothing guessed from the numbers
    for emi in tmp_path.glob("*.emi"):
        emi.unlink()
    assert read_tilt_series(tmp_path).angles_deg is None


def test_tia_series_in_one_ser_reads_as_a_stack_without_guessed_angles(tmp_path):
    imgs = _images(5, seed=2)
    ser = tmp_path / "series_1.ser"
    write_ser(ser, imgs, 0.4e-10)
    ts = read_tilt_series(ser, angles="-20:20:10")
    np.testing.assert_array_equal(ts.data, imgs.astype(ts.data.dtype))
    np.testing.assert_allclose(ts.angles_deg, [-20, -10, 0, 10, 20])
    assert ts.pixel_size_A == pytest.approx(0.4)
    assert read_tilt_series(ser).angles_deg is None  # the series axis is not in degrees


def test_tia_emi_without_the_detector_mode_notes_the_guessed_units(tmp_path):
    """An .emi that does not say the mode: RosettaSciIO guesses the pixel units; the reading
    says so instead of the warning getting lost (or failing a run)."""
    from napari_aet.io import file_notes

    imgs = _images(3, seed=3)
    ser = tmp_path / "old_1.ser"
    write_ser(ser, imgs, 0.3e-10)
    (tmp_path / "old.emi").write_bytes(
        b"\x00<ObjectInfo><ExperimentalDescription><Root><Data><Label>Stage A</Label>"
        b"<Value>5.0</Value><Unit>deg</Unit></Data></Root></ExperimentalDescription>"
        b"</ObjectInfo>\x00"
    )
    ts = read_tilt_series(ser, angles="-5:5:5")
    np.testing.assert_array_equal(ts.data, imgs.astype(ts.data.dtype))
    notes = " ".join(file_notes(ts.metadata))
    assert "units" in notes and "old_1.ser" in notes


def test_tia_names_with_angles_and_the_running_number(tmp_path):
    """``tilt_+10_1.ser``: the angle in the name is used (TIA's ``_1`` is not an angle), and
    where the stage tilts differ from it, that is noted."""
    from napari_aet.io import file_notes

    for a in (-20, -10, 0, 10, 20):
        img = _images(1, seed=a + 30)[0]
        write_tia(tmp_path, f"tilt_{a:+d}", img, 0.4e-10, alpha=a + 0.3)
    ts = read_tilt_series(tmp_path)
    np.testing.assert_allclose(ts.angles_deg, [-20, -10, 0, 10, 20])
    assert any("0.30 deg" in n for n in file_notes(ts.metadata))


def test_tia_emi_of_two_detectors_names_them_and_reads_the_one_chosen(tmp_path):
    """``scan.emi`` with ``scan_1.ser`` and ``scan_2.ser`` (two detectors of one scan):
    opening the .emi lists both by file, ``dataset`` picks one; the .ser opened directly is
    that detector's image with the .emi's stage tilt."""
    from napari_aet.io._rsciio import read_rsciio_stack

    a, b = _images(2, seed=4)
    write_ser(tmp_path / "scan_1.ser", a, 0.358e-10)
    write_ser(tmp_path / "scan_2.ser", b, 0.358e-10)
    write_emi(tmp_path / "scan.emi", 7.5, detectors=2)
    with pytest.raises(ValueError, match=r"scan_1\.ser.*scan_2\.ser.*--dataset"):
        read_rsciio_stack(tmp_path / "scan.emi")
    data, _, angles, _ = read_rsciio_stack(tmp_path / "scan.emi", dataset="scan_2.ser")
    np.testing.assert_array_equal(data, b)
    np.testing.assert_allclose(angles, [7.5])
    data, _, angles, _ = read_rsciio_stack(tmp_path / "scan_2.ser")
    np.testing.assert_array_equal(data, b)
    np.testing.assert_allclose(angles, [7.5])
