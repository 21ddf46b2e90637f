"""The stack readers of one file each: TIFF/OME-TIFF, MRC (with what its extended header says)
and HDF5 (the dataset found or named, its angles and pixel size); :func:`read_tilt_series`
(``_tilt_series.py``) dispatches to them and checks what they return."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ._microscope import MicroscopeMetadata, mrc_extended_metadata

#: Dataset names tried, in order, when an HDF5 file has several 3D datasets.
HDF5_DATA_NAMES = ("tilt_series", "data", "projections", "images", "tiltseries")
HDF5_ANGLE_NAMES = ("angles_deg", "angles", "tilt_angles", "tilt_angles_deg", "theta")

_UNIT_TO_A = {
    "a": 1.0,
    "å": 1.0,
    "angstrom": 1.0,
    "\\u00c5": 1.0,
    "nm": 10.0,
    "nanometer": 10.0,
    "um": 1e4,
    "µm": 1e4,
    "micron": 1e4,
    "micrometer": 1e4,
    "pm": 0.01,
    "m": 1e10,
    "angstroms": 1.0,
    "ångström": 1.0,
    "nanometre": 10.0,
    "nanometres": 10.0,
    "nanometers": 10.0,
    "micrometre": 1e4,
    "picometer": 0.01,
    "picometre": 0.01,
}


class TiltSeriesFileError(ValueError):
    """A file that exists but is not a usable tilt series; the message says why and what to do."""


def _unit_factor(unit: str | None) -> float | None:
    if unit is None:
        return None
    return _UNIT_TO_A.get(str(unit).strip().lower())


# ---------------------------------------------------------------------------------- readers


def read_tiff_stack(path: Path) -> tuple[np.ndarray, float | None, dict]:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        data = tf.asarray()
        declared = int((tf.imagej_metadata or {}).get("images", 0) or 0)
        n_read = data.shape[0] if data.ndim >= 3 else 1
        if declared > n_read:
            raise TiltSeriesFileError(
                f"{path} looks truncated: its header declares {declared} images but only "
                f"{n_read} can be read; copy or export the file again"
            )
        px = None
        meta: dict[str, Any] = {"format": "TIFF"}
        if tf.is_ome and tf.ome_metadata:
            meta["format"] = "OME-TIFF"
            px = _ome_pixel_size(tf.ome_metadata)
        if px is None and tf.imagej_metadata is not None:
            ij = tf.imagej_metadata
            unit = ij.get("unit")
            page = tf.pages[0]
            res = page.tags.get("XResolution")
            factor = _unit_factor(unit)
            if res is not None and factor is not None:
                num, den = res.value
                if num > 0:
                    px = den / num * factor
    return data, px, meta


def _ome_pixel_size(xml: str) -> float | None:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.endswith("Pixels") and "PhysicalSizeX" in el.attrib:
            unit = el.attrib.get("PhysicalSizeXUnit", "µm")
            factor = _unit_factor(unit)
            if factor is None:
                return None
            return float(el.attrib["PhysicalSizeX"]) * factor
    return None


def read_mrc_stack(path: Path) -> tuple[np.ndarray, float | None, dict, MicroscopeMetadata | None]:
    """The stack, the header's pixel size, provenance, and what the extended header says
    (:func:`napari_aet.io._microscope.mrc_extended_metadata`)."""
    import mrcfile

    with mrcfile.open(path, permissive=True, mode="r") as mrc:
        if mrc.data is None:
            raise TiltSeriesFileError(f"{path}: the MRC file has no data block")
        data = np.array(mrc.data)  # a writable copy, not the file's buffer
        vx = float(mrc.voxel_size.x)
        n = data.shape[0] if data.ndim == 3 else 1
        ext = mrc_extended_metadata(mrc, n)
    return data, (round(vx, 6) if vx > 0 else None), {"format": "MRC"}, ext


def _list_datasets(h5) -> list[tuple[str, tuple]]:
    import h5py

    out = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out.append((name, obj.shape))

    h5.visititems(visit)
    return out


def read_hdf5_stack(path: Path, dataset: str | None, angles_dataset: str | None):
    import h5py

    with h5py.File(path, "r") as h5:
        sets = _list_datasets(h5)
        listing = ", ".join(f"'{n}' {s}" for n, s in sets) or "none"
        if dataset is None:  # a stack of images, or of several frames per tilt
            three_d = [n for n, s in sets if len(s) == 3] or [n for n, s in sets if len(s) == 4]
            named = [n for n in three_d if n.split("/")[-1].lower() in HDF5_DATA_NAMES]
            if named:
                dataset = named[0]
            elif len(three_d) == 1:
                dataset = three_d[0]
            elif not three_d:
                raise TiltSeriesFileError(
                    f"{path} holds no 3D dataset that could be a tilt series (datasets: "
                    f"{listing}); pass dataset='path/in/file' to choose one"
                )
            else:
                raise TiltSeriesFileError(
                    f"{path} holds several 3D datasets ({', '.join(three_d)}); pass "
                    "dataset='path/in/file' to say which is the tilt series"
                )
        if dataset not in h5 or not isinstance(h5[dataset], h5py.Dataset):
            raise KeyError(
                f"dataset {dataset!r} is not in {path}; datasets in the file: {listing}. "
                "Pass dataset= with one of those paths"
            )
        dset = h5[dataset]
        data = dset[()]
        px = None
        for obj in (dset, h5):
            for key in ("pixel_size_A", "pixel_size_angstrom", "pixel_size"):
                if key in obj.attrs:
                    factor = 1.0
                    if key == "pixel_size":
                        unit = obj.attrs.get("pixel_size_unit", "A")
                        unit = unit.decode() if isinstance(unit, bytes) else unit
                        factor = _unit_factor(unit)
                        if factor is None:
                            raise ValueError(
                                f"{path}: unknown pixel_size_unit {unit!r}; use one of "
                                f"{', '.join(sorted(set(_UNIT_TO_A)))} (or give the pixel "
                                "size in A with --pixel-size / the pixel_size_A attribute)"
                            )
                    px = float(np.asarray(obj.attrs[key]).ravel()[0]) * factor
                    break
            if px is not None:
                break
        angles = None
        angle_src = None
        if angles_dataset is not None:
            if angles_dataset not in h5:
                raise KeyError(
                    f"angles dataset {angles_dataset!r} is not in {path}; datasets: {listing}"
                )
            angles = np.asarray(h5[angles_dataset][()], dtype=np.float64).ravel()
            angle_src = f"{path}:{angles_dataset}"
        else:
            for obj in (dset, h5):
                for key in HDF5_ANGLE_NAMES:
                    if key in obj.attrs:
                        angles = np.asarray(obj.attrs[key], dtype=np.float64).ravel()
                        angle_src = f"{path}:@{key}"
                        break
                if angles is not None:
                    break
            if angles is None:
                parent = dataset.rsplit("/", 1)[0] if "/" in dataset else ""
                for key in HDF5_ANGLE_NAMES:
                    for cand in (f"{parent}/{key}" if parent else key, key):
                        if cand in h5 and isinstance(h5[cand], h5py.Dataset):
                            angles = np.asarray(h5[cand][()], dtype=np.float64).ravel()
                            angle_src = f"{path}:{cand}"
                            break
                    if angles is not None:
                        break
        prov = {}
        if "provenance" in h5.attrs:
            try:
                prov = json.loads(h5.attrs["provenance"])
            except (TypeError, ValueError):
                prov = {}
    meta = {"format": "HDF5", "dataset": dataset, "provenance": prov}
    if angle_src:
        meta["angles_source"] = angle_src
    return data, px, meta, angles
