"""Gatan DigitalMicrograph files (.dm3, .dm4): a tomography stack with its tilt-angle tags,
and a folder of one image per tilt with each image's stage tilt.

The files are written here byte by byte from the format's description (a big-endian header,
tag groups of named or unnamed tags, data tags after a ``%%%%`` delimiter, DM4 with 8-byte
lengths and each tag's size), the way DigitalMicrograph lays them out (a thumbnail before the
image, calibrations per dimension in nm) - not by the reader's library, which cannot write them.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from napari_aet.io import read_tilt_series

#: DigitalMicrograph's element types of tag data
_ETYPE = {np.dtype("int16"): 2, np.dtype("int32"): 3, np.dtype("uint16"): 4,
          np.dtype("uint32"): 5, np.dtype("float32"): 6, np.dtype("float64"): 7,
          np.dtype("uint8"): 10}  # fmt: skip
#: DigitalMicrograph's image data types
_IMAGE_TYPE = {np.dtype("int16"): 1, np.dtype("float32"): 2, np.dtype("uint8"): 6,
               np.dtype("int32"): 7, np.dtype("uint16"): 10, np.dtype("float64"): 12}  # fmt: skip


class _U32(int):
    """A tag value stored as an unsigned 32-bit integer (the image dimensions)."""


def _encode(value, version: int) -> bytes:
    """A tag's body: a group (dict: named tags, list: unnamed ones) or data."""
    n = ">Q" if version == 4 else ">I"
    if isinstance(value, (dict, list)):
        items = value.items() if isinstance(value, dict) else (("", v) for v in value)
        body = b"".join(_entry(k, v, version) for k, v in items)
        count = len(value)
        return b"\0\1" + struct.pack(n, count) + body
    if isinstance(value, str):
        arr = np.frombuffer(value.encode("utf-16-le"), "<u2")
        info = [20, 4, arr.size]
        payload = arr.astype("<u2").tobytes()
    elif isinstance(value, np.ndarray):
        info = [20, _ETYPE[value.dtype], value.size]
        payload = value.astype(value.dtype.newbyteorder("<")).tobytes()
    elif isinstance(value, _U32):
        info, payload = [5], struct.pack("<I", value)
    elif isinstance(value, (bool, np.bool_)):
        info, payload = [8], struct.pack("<B", bool(value))
    elif isinstance(value, (int, np.integer)):
        info, payload = [3], struct.pack("<i", int(value))
    else:
        info, payload = [7], struct.pack("<d", float(value))
    return b"%%%%" + struct.pack(n, len(info)) + b"".join(struct.pack(n, i) for i in info) + payload


def _entry(name: str, value, version: int) -> bytes:
    kind = 20 if isinstance(value, (dict, list)) else 21
    body = _encode(value, version)
    raw = name.encode("latin-1")
    head = struct.pack(">BH", kind, len(raw)) + raw
    if version == 4:
        if kind == 20:  # DM4 groups: size, then sorted/open and the count
            return head + struct.pack(">Q", len(body)) + body
        return head + struct.pack(">Q", len(body)) + body
    return head + body


def _image_group(data: np.ndarray, *, pixel_nm, name, tags) -> dict:
    dims = data.shape[::-1]  # DigitalMicrograph lists x, y, z
    calib = [{"Origin": 0.0, "Scale": float(pixel_nm), "Units": "nm"} for _ in range(2)]
    calib += [{"Origin": 0.0, "Scale": 1.0, "Units": ""} for _ in dims[2:]]
    return {
        "ImageData": {
            "Calibrations": {
                "Brightness": {"Origin": 0.0, "Scale": 1.0, "Units": "Counts"},
                "Dimension": calib,
                "DisplayCalibratedUnits": True,
            },
            "Data": np.ascontiguousarray(data).ravel(),
            "DataType": _IMAGE_TYPE[data.dtype],
            "Dimensions": [_U32(d) for d in dims],
            "PixelDepth": data.dtype.itemsize,
        },
        "ImageTags": tags,
        "Name": name,
        "UniqueID": {"0": 1, "1": 2, "2": 3, "3": 4},
    }


def write_dm(path, data, *, version=4, pixel_nm=0.04, name="HAADF", tags=None) -> None:
    """A DigitalMicrograph file of one image or image stack ``data`` (rows, cols) or
    (n, rows, cols), with a thumbnail first as DigitalMicrograph saves them, ``tags`` as the
    image's ``ImageTags``."""
    data = np.asarray(data)
    thumb = np.zeros((8, 8), np.uint8)
    root = {
        "ApplicationBounds": [0, 0, 800, 600],
        "ImageList": [
            _image_group(thumb, pixel_nm=1.0, name="", tags={}),
            _image_group(data, pixel_nm=pixel_nm, name=name, tags=tags or {}),
        ],
        "Thumbnails": [{"ImageIndex": 0, "SourceSize_Pixels": [0, 0]}],
    }
    body = _encode(root, version)
    n = ">Q" if version == 4 else ">I"
    header = struct.pack(">i", version) + struct.pack(n, len(body) + 8) + struct.pack(">i", 1)
    with open(path, "wb") as fh:
        fh.write(header + body + b"\0" * 8)


def tomography_tags(lo, hi, step) -> dict:
    """The tilt-angle tags Gatan's tomography acquisition writes into a stack."""
    return {
        "Tomography": {
            "Tomography setup": {
                "Tilt angles": {
                    "Minimum tilt angle (deg)": float(lo),
                    "Maximum tilt angle (deg)": float(hi),
                    "Tilt angle step (deg)": float(step),
                }
            }
        }
    }


def stage_tags(alpha_deg) -> dict:
    """The microscope tags DigitalMicrograph records with an image, its stage tilt included."""
    return {
        "Microscope Info": {
            "Illumination Mode": "STEM",
            "Voltage": 300000.0,
            "Stage Position": {"Stage Alpha": float(alpha_deg), "Stage Beta": 0.0},
        }
    }


@pytest.fixture(scope="module")
def stack():
    rng = np.random.default_rng(4)
    return rng.poisson(20.0, size=(5, 24, 20)).astype(np.float32)


@pytest.mark.parametrize("version", [3, 4])
def test_dm_tomography_stack_gives_images_angles_and_pixel_size(stack, tmp_path, version):
    path = tmp_path / f"tomo.dm{version}"
    write_dm(path, stack, version=version, pixel_nm=0.0358, tags=tomography_tags(-60, 60, 30))
    ts = read_tilt_series(path)
    np.testing.assert_array_equal(ts.data, stack)  # rows and columns not swapped, not the thumb
    np.testing.assert_allclose(ts.angles_deg, [-60, -30, 0, 30, 60])
    assert ts.pixel_size_A == pytest.approx(0.358)
    assert "DigitalMicrograph" in ts.metadata["format"]
    assert "tomography tags" in ts.metadata["angles_source"]


def test_dm_stack_whose_tags_do_not_fit_is_read_without_angles_and_says_why(stack, tmp_path):
    path = tmp_path / "tomo.dm4"
    write_dm(path, stack, tags=tomography_tags(-70, 70, 2))  # 71 angles for 5 images
    ts = read_tilt_series(path)
    assert ts.angles_deg is None
    from napari_aet.io import file_notes

    (note,) = file_notes(ts.metadata)
    assert "give 71 angles for 5 images" in note and "--angles" in note
    ts = read_tilt_series(path, angles="-60:60:30")  # given angles are taken
    np.testing.assert_allclose(ts.angles_deg, [-60, -30, 0, 30, 60])


def test_dm_file_that_is_not_one_says_so(tmp_path):
    path = tmp_path / "broken.dm4"
    path.write_bytes(struct.pack(">i", 7) + b"\0" * 64)  # version 7: not DigitalMicrograph 3/4
    with pytest.raises(ValueError, match="could not read .*broken.dm4"):
        read_tilt_series(path)
    half = tmp_path / "half.dm4"
    write_dm(half, np.ones((3, 8, 8), np.float32), tags=tomography_tags(-10, 10, 10))
    half.write_bytes(half.read_bytes()[:300])  # cut short in the tags
    with pytest.raises(ValueError, match="could not read .*half.dm4"):
        read_tilt_series(half)


def test_folder_of_dm_images_takes_each_files_stage_tilt(stack, tmp_path):
    """Tomo_001.dm4 ... numbered by acquisition (dose-symmetric), the angles in the headers."""
    angles = np.array([0.0, 30.0, -30.0, 60.0, -60.0])
    folder = tmp_path / "series"
    folder.mkdir()
    for k, (img, a) in enumerate(zip(stack, angles, strict=True)):
        write_dm(folder / f"Tomo_{k + 1:03d}.dm4", img, pixel_nm=0.04, tags=stage_tags(a))
    ts = read_tilt_series(folder)
    np.testing.assert_allclose(ts.angles_deg, angles)  # each image keeps its own tilt
    np.testing.assert_array_equal(ts.data, stack)
    assert ts.pixel_size_A == pytest.approx(0.4)
    assert ts.metadata["angles_source"] == "files' headers (stage tilts)"
    # an angles file in the folder wins; where it differs from the headers, that is noted
    (folder / "angles.tlt").write_text("\n".join(str(a + 0.5) for a in angles))
    ts = read_tilt_series(folder)
    np.testing.assert_allclose(ts.angles_deg, angles + 0.5)
    from napari_aet.io import file_notes

    assert any("differ" in n and "0.50 deg" in n for n in file_notes(ts.metadata))


def test_folder_of_dm_images_without_stage_tilts_asks_for_angles(stack, tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    for k, img in enumerate(stack):
        write_dm(folder / f"Tomo_{k + 1:03d}.dm3", img, version=3, tags={})
    ts = read_tilt_series(folder)
    assert ts.angles_deg is None  # an index in the names is not an angle; nothing guessed


def test_folder_of_dm_images_in_acquisition_order_reconstructs_and_traces(tmp_path, capsys):
    """A particle saved one DM4 file per tilt in dose-symmetric order (Tomo_001 at 0 deg,
    then +3, -3, ...), the angles only in each file's Stage Alpha: `napari-aet recon` and
    `trace` on the folder find every atom (angles put to the wrong images would not)."""
    from test_folder_series import assert_every_atom_traced

    from napari_aet.simulate import build_structure, simulate_tilt_series

    atoms = build_structure("fcc", radius_A=7.0, shape_px=(64, 64), pixel_size_A=0.4, seed=2)
    ang = np.arange(-87.0, 88.0, 3.0)
    order = np.argsort(np.abs(ang) - 0.1 * np.sign(ang), kind="stable")  # 0, +3, -3, +6, ...
    sim = simulate_tilt_series(atoms, ang, pixel_size_A=0.4, shape_px=(64, 64), seed=1)
    folder = tmp_path / "tomo"
    folder.mkdir()
    for k, i in enumerate(order):
        img = sim.data[i].astype(np.float32)
        write_dm(folder / f"Tomo_{k + 1:03d}.dm4", img, pixel_nm=0.04, tags=stage_tags(ang[i]))
    assert_every_atom_traced(folder, atoms, tmp_path, capsys)


def test_napari_opens_a_dm4_stack_as_a_tilt_series(make_napari_viewer, stack, tmp_path):
    """File > Open on a .dm4 goes to napari-aet's reader: one tilt-series layer with its
    angles and pixel size."""
    path = tmp_path / "tomo.dm4"
    write_dm(path, stack, pixel_nm=0.04, tags=tomography_tags(-60, 60, 30))
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_viewer._qt_open([str(path)], stack=False, plugin="napari-aet")
    assert [ly.name for ly in viewer.layers] == ["tomo"]
    layer = viewer.layers["tomo"]
    assert layer.data.shape == stack.shape
    assert layer.metadata["angles_deg"] == pytest.approx([-60, -30, 0, 30, 60])
    assert tuple(layer.scale) == pytest.approx((0.4,) * 3)


def write_velox(path, images: dict, *, pixel_m=0.4e-10, alpha_rad=0.0) -> None:
    """A Thermo Fisher Velox EMD file of one scan: ``images`` maps each detector's name to its
    image, stored as Velox lays them out (``Data/Image/<uuid>/Data`` of ``(rows, cols, 1)``,
    its ``Metadata`` a column of the JSON's bytes, the stage's alpha tilt in radians)."""
    import json
    import uuid

    import h5py

    with h5py.File(path, "w") as f:
        version = json.dumps({"format": "Velox", "version": "11"}).encode()
        f.create_dataset("Version", data=np.array([version]))
        for k, img in enumerate(images.values()):
            meta = {
                "Acquisition": {"AcquisitionStartDatetime": {"DateTime": "1700000000"}},
                "BinaryResult": {
                    "PixelSize": {"width": str(pixel_m), "height": str(pixel_m)},
                    "PixelUnitX": "m", "PixelUnitY": "m", "DetectorIndex": str(k),
                    "Offset": {"x": "0", "y": "0"},
                },
                "Detectors": {f"Detector-{j}": {"DetectorName": n, "DetectorType":
                              "ScanningDetector"} for j, n in enumerate(images)},
                "Scan": {"FrameTime": "2.0"},
                "Stage": {"AlphaTilt": repr(float(alpha_rad)), "BetaTilt": "0"},
            }  # fmt: skip
            g = f.create_group(f"Data/Image/{uuid.UUID(int=k + 1).hex}")
            g.create_dataset("Data", data=np.asarray(img)[:, :, None])
            raw = np.frombuffer(json.dumps(meta).encode(), np.uint8)
            g.create_dataset("Metadata", data=raw[:, None])


def test_folder_of_velox_files_takes_each_files_alpha_tilt_and_its_haadf(stack, tmp_path):
    """Velox saving each tilt's scan as its own .emd (HAADF and DF4 side by side), numbered by
    acquisition: the HAADF images, each with its AlphaTilt (radians) as its angle."""
    angles = np.array([0.0, 30.0, -30.0, 60.0, -60.0])
    folder = tmp_path / "velox"
    folder.mkdir()
    for k, (img, a) in enumerate(zip(stack, angles, strict=True)):
        write_velox(folder / f"Tomo_{k + 1:04d}.emd", {"HAADF": img.astype(np.uint16),
                    "DF4": 2 * img.astype(np.uint16)}, alpha_rad=np.deg2rad(a))  # fmt: skip
    ts = read_tilt_series(folder)
    np.testing.assert_allclose(ts.angles_deg, angles, atol=1e-9)
    np.testing.assert_array_equal(ts.data, stack)  # HAADF, not DF4
    assert ts.pixel_size_A == pytest.approx(0.4)
    assert ts.metadata["angles_source"] == "files' headers (stage tilts)"
    np.testing.assert_array_equal(read_tilt_series(folder, dataset="DF4").data, 2 * stack)
