"""A folder of one image per tilt, as many microscopes' software exports a series.

Velox, DigitalMicrograph scripts, Tomviz and GENFIRE's Python version write or read a tilt
series as one file per tilt: ``HAADF_-60.0deg.tif`` ... or ``proj1.tif``, ``proj2.tif`` ...
or ``Tomo_001.dm4`` ... The folder is read as one series: the files of its commonest image
type, each one image (or a stack of frames of the same tilt), ordered by the number their names
carry. Where that number is the tilt (signed, with decimals, named ``deg``, or not a run of
consecutive integers from 0 or 1), the names give the angles; a run of consecutive integers is
only the order (the angles then come from a file in the folder or beside it, or are given, or
else from the stage tilt each file's header records: DigitalMicrograph's Stage Alpha, Velox's
AlphaTilt, an MRC file's extended header).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ._angles import ANGLE_SUFFIXES
from ._microscope import MicroscopeMetadata, varying_angles

#: Image types read from a folder (one image, or one tilt's frames, per file).
FOLDER_IMAGE_SUFFIXES = (".tif", ".tiff", ".mrc", ".dm3", ".dm4", ".emd", ".ser")

_NUMBER = re.compile(r"(?<![0-9.])([-+]?\d+(?:[.p]\d+)?)(\s*(?:deg|°|degrees?)\b)?", re.I)


class FolderError(ValueError):
    """A folder that cannot be read as a tilt series; the message says why and what to do."""


def image_files(folder: Path) -> list[Path]:
    """The folder's image files of its commonest type (hidden files left out)."""
    files = [
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FOLDER_IMAGE_SUFFIXES
    ]
    if not files:
        return []
    kinds = [".tif" if p.suffix.lower() == ".tiff" else p.suffix.lower() for p in files]
    common = max(set(kinds), key=kinds.count)
    return [p for p, k in zip(files, kinds, strict=True) if k == common]


def _numbers(stem: str) -> list[tuple[float, bool]]:
    """Each number in a file name: its value and whether it is marked as an angle (a sign, a
    decimal point or 'deg' after it)."""
    out = []
    for m in _NUMBER.finditer(stem):
        text = m.group(1)
        value = float(text.replace("p", ".").replace("P", "."))
        marked = text[0] in "+-" or "." in text or "p" in text.lower() or bool(m.group(2))
        out.append((value, marked))
    return out


def _is_index(values: np.ndarray) -> bool:
    v = np.sort(values)
    return bool(
        np.allclose(v, np.round(v)) and np.all(np.diff(v) == 1) and v[0] in (0, 1) and len(v) > 2
    )


def order_and_angles(files: list[Path]) -> tuple[list[Path], np.ndarray | None, str]:
    """The files in tilt order, their angles from the names (or None) and how the names were
    read."""
    if len(files) < 2:
        raise FolderError("a folder series needs at least two image files, one per tilt")
    nums = [_numbers(p.stem) for p in files]
    counts = {len(n) for n in nums}
    if len(counts) != 1 or counts == {0}:
        raise FolderError(
            "the file names do not carry one number each in the same place (e.g. "
            "tilt_-60.0.tif, tilt_-57.0.tif, ... or proj1.tif, proj2.tif, ...): name the files "
            "by their tilt or their order, or give the series as one stack"
        )
    k = counts.pop()
    varying = [
        j for j in range(k) if len({n[j][0] for n in nums}) == len(files)
    ]  # a number that tells every file apart
    if not varying:
        raise FolderError(
            "no number in the file names tells every file apart: two files share their "
            "tilt or index"
        )
    marked = [j for j in varying if any(n[j][1] for n in nums)]
    j = marked[-1] if marked else varying[-1]
    values = np.array([n[j][0] for n in nums])
    order = np.argsort(values, kind="stable")
    files = [files[i] for i in order]
    values = values[order]
    if not marked and _is_index(values):
        return files, None, f"ordered by the number in the names ({files[0].name} first)"
    if np.abs(values).max() > 360:
        return files, None, "ordered by the number in the names (too large for angles)"
    return files, values, "the file names"


def read_image_folder(folder, read_one):
    """Images ``(n, rows, cols)`` (or ``(n, frames, rows, cols)``), pixel size [A] or None,
    provenance, angles from the names (or None), and the stage tilts the files' headers
    record (a :class:`MicroscopeMetadata`, or None where not every file has one or they do not
    vary) of a folder of one file per tilt; ``read_one(path) -> (image, pixel size or None,
    stage tilt [deg] or None)`` reads one file."""
    folder = Path(folder)
    files = image_files(folder)
    if not files:
        raise FolderError(
            f"{folder} holds no image files ({', '.join(FOLDER_IMAGE_SUFFIXES)}): a folder "
            "series is one image file per tilt"
        )
    files, angles, how = order_and_angles(files)
    images, px, tilts = [], None, []
    for p in files:
        img, size, tilt = read_one(p)
        img = np.asarray(img)
        if img.ndim == 3 and img.shape[0] == 1:
            img = img[0]
        if img.ndim not in (2, 3):
            raise FolderError(f"{p.name} holds an array of shape {img.shape}, not an image")
        if images and img.shape != images[0].shape:
            raise FolderError(
                f"{p.name} is {img.shape}, {files[0].name} {images[0].shape}: every tilt's "
                "image must have the same size"
            )
        images.append(img)
        tilts.append(tilt)
        px = px if px is not None else size
    data = np.stack(images)
    meta = {
        "format": f"folder of {len(files)} {files[0].suffix.lower()} files",
        "files": [p.name for p in files],
        "order": how,
    }
    if angles is not None:
        meta["angles_source"] = "file names"
    if data.ndim == 4:
        meta["frames_per_file"] = int(data.shape[1])
    own = None
    if all(t is not None for t in tilts) and varying_angles(tilts) is not None and len(tilts) > 1:
        own = MicroscopeMetadata("files' headers (stage tilts)", np.asarray(tilts, np.float64))
    return data, px, meta, angles, own


def is_image_folder(folder) -> bool:
    """True for a folder that reads as a series: two or more image files whose names give
    their order (napari's reader takes only such folders, leaving others to other plugins)."""
    try:
        files = image_files(folder)
        return len(files) >= 2 and bool(order_and_angles(files)[0])
    except (OSError, FolderError):
        return False


def angle_file_in(folder) -> Path | None:
    """The one angles file inside a folder series (``.tlt``, ``.rawtlt``, ``.txt``, ``.mdoc``),
    or None (none, or several)."""
    found = [
        p
        for p in Path(folder).iterdir()
        if p.is_file() and p.suffix.lower() in (*ANGLE_SUFFIXES, ".mdoc")
    ]
    return found[0] if len(found) == 1 else None
