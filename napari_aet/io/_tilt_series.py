"""Read and write tilt series (TIFF/OME-TIFF, MRC, HDF5, NPY, MATLAB, microscope vendors'
files, a folder of one image per tilt) with angles and pixel size; the single-file stack
readers are in ``_stacks.py``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.files import replace_when_done
from ._angles import (
    find_angle_sidecar,
    parse_angles,
    read_angle_file,
    repeats_note,
    validate_angles,
    write_angles,
)
from ._folder import FolderError, angle_file_in, read_image_folder
from ._genfire import (
    MergedSeriesError,
    euler_triplets,
    from_genfire_geometry,
    select_phi_group,
)
from ._matlab import mat_tilt_series, save_mat
from ._microscope import read_mdoc
from ._rsciio import RSCIIO_SUFFIXES, read_rsciio_stack
from ._stacks import TiltSeriesFileError, read_hdf5_stack, read_mrc_stack, read_tiff_stack

TIFF_SUFFIXES = (".tif", ".tiff")
MRC_SUFFIXES = (".mrc", ".mrcs", ".st", ".ali", ".rec", ".map")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs")
NPY_SUFFIXES = (".npy",)
MAT_SUFFIXES = (".mat",)
TILT_SERIES_SUFFIXES = (
    TIFF_SUFFIXES + MRC_SUFFIXES + HDF5_SUFFIXES + NPY_SUFFIXES + MAT_SUFFIXES + RSCIIO_SUFFIXES
)


@dataclass
class TiltSeries:
    """A tilt series with its geometry.

    Attributes
    ----------
    data : ndarray of float32, shape (n_tilts, rows, cols)
        The images; the tilt axis is (nominally) the vertical image axis. Read with
        ``keep_frames``, a file of several frames per tilt gives ``(n_tilts, n_frames, rows,
        cols)``.
    angles_deg : ndarray of shape (n_tilts,) or None
        Tilt angle of each image [degrees]; None when not known yet.
    pixel_size_A : float or None
        Pixel size [A]; None when not known yet.
    source : str
        Where the data came from.
    metadata : dict
        Provenance: file format, dataset path, where angles and pixel size came from.
    """

    data: np.ndarray
    angles_deg: np.ndarray | None = None
    pixel_size_A: float | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tilts(self) -> int:
        return int(self.data.shape[0])


def read_tilt_series(
    path: str | Path,
    *,
    dataset: str | None = None,
    angles=None,
    angles_dataset: str | None = None,
    pixel_size_A: float | None = None,
    nan_policy: str = "raise",
    keep_frames: bool = False,
    phi_group: int | None = None,
) -> TiltSeries:
    """Read a tilt series ``(n_tilts, rows, cols)`` with its tilt angles and pixel size.

    A file may hold several frames per tilt: a 4D stack ``(n_tilts, n_frames, rows, cols)``
    (or ``(n_frames, n_tilts, ...)`` where only the second axis matches the angles), or a 3D
    stack whose angles repeat, each the same number of times in a row. Such a series is
    refused (the message says how to register the frames) unless ``keep_frames``, which
    returns ``data`` as ``(n_tilts, n_frames, rows, cols)`` with one angle per tilt and
    ``metadata["frames"]`` saying how the file held them.

    Parameters
    ----------
    path : str or Path
        A TIFF/OME-TIFF, MRC (``.mrc .mrcs .st .ali``), HDF5 (``.h5 .hdf5``), NPY, MATLAB
        (``.mat``), EMD (``.emd``: NCEM and Velox) or DigitalMicrograph (``.dm3``, ``.dm4``;
        both through RosettaSciIO) file, or a folder of one TIFF, MRC or DigitalMicrograph file
        per tilt (:mod:`napari_aet.io._folder`: ordered by the number in the names, which give
        the angles where they are angles; else an angles file in the folder or beside it, else
        each file's own stage tilt).
    dataset : str, optional
        HDF5: path of the image stack inside the file; MATLAB: the variable; EMD and
        DigitalMicrograph: the signal's title (e.g. ``HAADF``). Default: a 3D dataset named like
        ``tilt_series``/``data``, or the only 3D dataset.
    angles : str, Path, sequence of float or None
        Tilt angles [degrees]: a text file, a typed string (``"-70:70:7"``), or numbers. Default:
        from the HDF5 or MATLAB file, else from a sidecar ``stem.tlt``/``stem.rawtlt``/
        ``stem.txt`` or SerialEM's ``name.mdoc``, else from an MRC file's extended header
        (Thermo Fisher / FEI, SerialEM), else left unknown (None). Where a sidecar's angles
        differ from the extended header's, ``metadata["microscope"]["angles_note"]`` says so.
    angles_dataset : str, optional
        HDF5 only: path of the angles inside the file.
    pixel_size_A : float, optional
        Pixel size [A]. Overrides the file's metadata when given; else read from OME-TIFF,
        ImageJ TIFF, MRC header (or its extended header, or a SerialEM ``.mdoc``) or HDF5
        attributes (``pixel_size_A``).
    nan_policy : {"raise", "fill"}
        What to do with NaN or infinite pixels: raise an error, or replace them by the median
        of their image.
    keep_frames : bool
        Return several frames per tilt as a 4D ``data`` instead of refusing them.
    phi_group : int, optional
        Of a GENFIRE-convention file that merges tilt series turned about the beam between
        them (refused without it: :class:`~napari_aet.io.MergedSeriesError`), the one to read
        (0 = the group of the file's first image); ``metadata["phi_group"]`` lists its images.

    Returns
    -------
    TiltSeries

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file cannot be read as a tilt series (wrong dimensionality, NaNs with
        ``nan_policy="raise"``, angle count that does not match the images).
    KeyError
        If a named HDF5 dataset is missing (the message lists those present).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"tilt-series file {path} does not exist")
    if nan_policy not in ("raise", "fill"):
        raise ValueError("nan_policy must be 'raise' or 'fill'")
    suffix = path.suffix.lower()
    file_angles = None
    euler = None  # GENFIRE's (phi, theta, psi) per image, where the angles came so
    microscope = None  # what an MRC file's extended header says (angles, pixel size)
    try:
        if path.is_dir():
            data, px, meta, file_angles, microscope = read_image_folder(
                path, lambda p: _read_one_image(p, dataset)
            )
        elif suffix in TIFF_SUFFIXES:
            data, px, meta = read_tiff_stack(path)
        elif suffix in MRC_SUFFIXES:
            data, px, meta, microscope = read_mrc_stack(path)
        elif suffix in HDF5_SUFFIXES:
            data, px, meta, file_angles = read_hdf5_stack(path, dataset, angles_dataset)
        elif suffix in NPY_SUFFIXES:
            data, px, meta = np.load(path, allow_pickle=False), None, {"format": "NPY"}
        elif suffix in MAT_SUFFIXES:
            data, file_angles, meta, euler = mat_tilt_series(path, dataset)
            px = meta.pop("pixel_size_A", None)
        elif suffix in RSCIIO_SUFFIXES:
            data, px, file_angles, meta = read_rsciio_stack(path, dataset)
        else:
            raise TiltSeriesFileError(
                f"{path.name}: unsupported file type {suffix!r}; tilt series can be read from "
                f"{', '.join(TILT_SERIES_SUFFIXES)}"
            )
    except (KeyError, TiltSeriesFileError, FolderError, ImportError):
        raise
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one clear message
        raise ValueError(
            f"could not read {path} as a tilt series ({type(err).__name__}: {err}); "
            "is the file complete and of the type its suffix says?"
        ) from err

    data = np.asarray(data)
    angle_source = meta.get("angles_source")
    if angles is not None:
        euler = None
        if isinstance(angles, (str, Path)) and _is_file(angles):
            ang, euler = read_angle_file(angles)
            angle_source = str(angles)
        elif isinstance(angles, Path) or (
            isinstance(angles, str)
            and (re.search(r"[/\\]", angles) or re.search(r"\.[A-Za-z]+\s*$", angles))
        ):
            raise FileNotFoundError(
                f"angles file {angles} does not exist; give an existing file (.tlt, .rawtlt, "
                ".txt, .mdoc) or the angles themselves, e.g. '-70:70:7' or '-60,-30,0,30,60'"
            )
        elif isinstance(angles, str):
            ang = parse_angles(angles)
            angle_source = "typed"
        else:
            euler = euler_triplets(angles, data.shape[0])
            ang = np.asarray(angles, dtype=np.float64).ravel() if euler is None else euler[:, 1]
            angle_source = "given"
    elif file_angles is not None:
        ang = file_angles
    else:
        side = find_angle_sidecar(path)
        if side is None and path.is_dir():  # a folder series: its one angles file inside
            side = angle_file_in(path)
        if side is not None and side.suffix.lower() == ".mdoc":
            mdoc = read_mdoc(side)
            microscope = mdoc if microscope is None or microscope.angles_deg is None else microscope
            ang, angle_source = mdoc.angles_deg, mdoc.source
            if px is None and mdoc.pixel_size_A is not None:
                px, meta["pixel_size_source"] = mdoc.pixel_size_A, mdoc.source
        else:
            ang, euler = read_angle_file(side) if side is not None else (None, None)
            angle_source = str(side) if side is not None else None
    if microscope is not None:
        ang, angle_source, px = _with_microscope(microscope, ang, angle_source, px, meta)
    if (
        euler is None
        and ang is not None
        and str(meta.get("layout", "")).startswith("(rows, cols, n)")
        and str(angle_source or "").lower().endswith(".mat")
    ):  # a MATLAB stack with one column of angles from a .mat file: GENFIRE's (0, theta, 0)
        a = np.asarray(ang, np.float64).ravel()
        euler = np.stack([np.zeros_like(a), a, np.zeros_like(a)], axis=1)
    if euler is not None and phi_group is not None:  # one series of a merged file
        data, euler, idx = select_phi_group(data, euler, phi_group)
        meta["phi_group"] = {"group": int(phi_group), "images": [int(i) for i in idx]}
    elif phi_group not in (None, 0):
        raise ValueError(
            f"phi group {phi_group}: {path.name} is not a GENFIRE-convention file of several "
            "tilt series (only group 0)"
        )
    if euler is not None:  # GENFIRE's convention: transpose, tilt = -theta, undo psi
        data, ang, meta["genfire"] = from_genfire_geometry(data, euler)
    data, ang = _frames_layout(data, ang, path, meta)
    if data.ndim == 4 and not keep_frames:
        m = data.shape[1]
        raise TiltSeriesFileError(
            f"{path} holds {m} frames per tilt ({meta['frames']['layout']}): napari-aet run "
            "and align register them, undo the drift's scan distortion and add them; in "
            "Python read it with keep_frames=True and call "
            "napari_aet.align.register_frames, or add the frames elsewhere first"
        )
    data = _validate_stack(data, path, nan_policy, meta)
    if ang is not None:
        ang = validate_angles(ang, data.shape[0], where=angle_source or "the given angles")
        if note := repeats_note(ang):
            meta["repeats_note"] = note
    meta["angles_source"] = angle_source
    if pixel_size_A is not None:
        if not np.isfinite(pixel_size_A) or pixel_size_A <= 0:
            raise ValueError(
                f"pixel_size_A must be a positive number of Angstrom, got {pixel_size_A}"
            )
        meta["pixel_size_source"] = "given"
        if px is not None and abs(px - pixel_size_A) > 1e-6 * pixel_size_A:
            meta["pixel_size_in_file_A"] = px
        px = float(pixel_size_A)
    elif px is not None:
        meta.setdefault("pixel_size_source", "file")
    return TiltSeries(data, ang, None if px is None else float(px), str(path), meta)


def read_each_series(path: str | Path, **kwargs) -> list[tuple[float | None, TiltSeries]]:
    """The tilt series of ``path`` (:func:`read_tilt_series`'s ``kwargs``): ``[(None, ts)]``,
    or, for a GENFIRE-convention file that merges several turned about the beam between them
    (:class:`~napari_aet.io.MergedSeriesError`), each ``phi`` group's ``(phi, ts)``: what
    napari opens and ``info`` describes."""
    try:
        return [(None, read_tilt_series(path, **kwargs))]
    except MergedSeriesError as err:
        return [(phi, read_tilt_series(path, phi_group=k, **kwargs))
                for k, phi in enumerate(err.phi_deg)]  # fmt: skip


def file_notes(metadata: dict | None) -> list[str]:
    """What reading a series noted about its file (a header's angles that differ from those
    used, GENFIRE's convention applied), for the reader's notification, the geometry dock and
    the align stage's notes."""
    meta = metadata or {}
    notes = (
        (meta.get("microscope") or {}).get("angles_note"),
        (meta.get("genfire") or {}).get("note"),
        meta.get("angles_note"),
        meta.get("repeats_note"),
        meta.get("reader_note"),
    )
    return [n for n in notes if n]


def _read_one_image(path: Path, dataset: str | None = None):
    """One file of a folder series: its image (or one tilt's frames), pixel size, and the
    stage tilt its header says it was taken at (an MRC extended header, DigitalMicrograph's
    Stage Alpha, Velox's AlphaTilt, TIA's Stage A), or None. ``dataset``: an EMD or
    DigitalMicrograph file's signal (e.g. ``DF4``)."""
    suffix = path.suffix.lower()
    tilt = None
    if suffix in MRC_SUFFIXES:
        data, px, _, ext = read_mrc_stack(path)
        if ext is not None and ext.angles_deg is not None and ext.angles_deg.size == 1:
            tilt = float(ext.angles_deg[0])
        if px is None and ext is not None:
            px = ext.pixel_size_A
    elif suffix in RSCIIO_SUFFIXES:
        data, px, angles, _ = read_rsciio_stack(path, dataset)
        if angles is not None and np.ndim(data) == 2:
            tilt = float(angles[0])
    else:
        data, px, _ = read_tiff_stack(path)
    return data, px, tilt


def _with_microscope(microscope, ang, angle_source, px, meta: dict):
    """The angles and pixel size with a microscope file's own (an MRC extended header, a
    SerialEM .mdoc) filled in where nothing else gave them; where a sidecar or the caller gave
    other angles, theirs are kept and the difference is noted in ``meta``."""
    meta["microscope"] = {"source": microscope.source, **microscope.extra}
    own = microscope.angles_deg
    if own is not None:
        if ang is None:
            ang, angle_source = own, microscope.source
        elif angle_source != microscope.source:
            given = np.asarray(ang, np.float64).ravel()
            used = (
                Path(angle_source).name
                if angle_source not in (None, "typed", "given")
                else ("the given angles")
            )
            if given.shape != own.shape:
                meta["microscope"]["angles_note"] = (
                    f"{used} lists {given.size} angles (used), the {microscope.source} {own.size}"
                )
            elif np.abs(given - own).max() > 0.05:
                meta["microscope"]["angles_note"] = (
                    f"the angles of {used} (used) differ from those in the "
                    f"{microscope.source} by up to {np.abs(given - own).max():.2f} deg"
                )
    if px is None and microscope.pixel_size_A is not None:
        px = microscope.pixel_size_A
        meta["pixel_size_source"] = microscope.source
    return ang, angle_source, px


def _is_file(text) -> bool:
    """True for an existing file; a long typed list of angles is not a path (no OSError)."""
    try:
        return Path(str(text)).is_file()
    except OSError:
        return False


def _frames_layout(data: np.ndarray, angles, path, meta: dict):
    """``(data, angles)`` with several frames per tilt brought to ``(n_tilts, n_frames, rows,
    cols)`` and one angle per tilt, ``meta["frames"]`` saying how the file held them; other
    stacks as they are (singleton axes of a 4D or 5D array squeezed)."""
    if data.ndim > 3:
        squeezed = np.squeeze(data)
        if squeezed.ndim >= 3:
            data = squeezed
    ang = None if angles is None else np.asarray(angles, np.float64).ravel()
    if data.ndim == 4 and min(data.shape[2:]) >= 8 and min(data.shape[:2]) < min(data.shape[2:]):
        a, b = data.shape[:2]  # (not an RGB stack, whose last axis has 3 or 4 values)
        layout = "(n_tilts, n_frames, rows, cols)"
        if ang is not None and ang.size == b and ang.size != a:
            data, layout = np.swapaxes(data, 0, 1), "(n_frames, n_tilts, rows, cols)"
        meta["frames"] = {"layout": layout, "frames_per_tilt": int(data.shape[1])}
        return data, ang
    if data.ndim == 3 and ang is not None and ang.size == data.shape[0] > 2:
        starts = np.r_[0, np.nonzero(np.diff(ang) != 0)[0] + 1]
        runs = np.diff(np.r_[starts, ang.size])
        if len(runs) >= 2 and runs[0] >= 2 and np.all(runs == runs[0]):
            m = int(runs[0])
            meta["frames"] = {"layout": f"each angle {m} times in a row", "frames_per_tilt": m}
            return data.reshape(len(runs), m, *data.shape[1:]), ang[starts]
    return data, ang


def _validate_stack(data: np.ndarray, path, nan_policy: str, meta: dict) -> np.ndarray:
    if data.ndim == 4 and "frames" in meta:  # frames per tilt: each checked as an image
        n, m = data.shape[:2]
        flat = _validate_stack(data.reshape(n * m, *data.shape[2:]), path, nan_policy, meta)
        return flat.reshape(n, m, *data.shape[2:])
    if data.ndim == 2:
        raise ValueError(
            f"{path} holds a single 2D image of shape {data.shape}; a tilt series is a stack "
            "(n_tilts, rows, cols). Stack the images into one file (one image per tilt)"
        )
    if data.ndim != 3:
        raise ValueError(
            f"{path} holds an array of shape {data.shape}; a tilt series must be 3D "
            "(n_tilts, rows, cols)"
        )
    if not (np.issubdtype(data.dtype, np.number) and not np.iscomplexobj(data)):
        raise ValueError(f"{path}: tilt-series pixels must be real numbers, got {data.dtype}")
    if data.shape[0] < 2 or min(data.shape[1:]) < 8:
        raise ValueError(
            f"{path}: shape {data.shape} is not a tilt series (need >= 2 images of >= 8 x 8 "
            "pixels, stacked along the first axis)"
        )
    data = data.astype(np.float32, copy=False)
    bad = ~np.isfinite(data)
    if bad.any():
        which = np.nonzero(bad.any(axis=(1, 2)))[0]
        if nan_policy == "raise":
            raise ValueError(
                f"{path}: {int(bad.sum())} pixels are NaN or infinite (in images "
                f"{which.tolist()[:10]}); to replace them by each image's median, pass "
                "--fill-nans on the command line (nan_policy='fill' in Python), or fix the file"
            )
        data = data.copy()
        for i in which:
            good = data[i][~bad[i]]
            data[i][bad[i]] = np.median(good) if good.size else 0.0
        meta["nan_filled_pixels"] = int(bad.sum())
    flat = np.nonzero(np.ptp(data.reshape(len(data), -1), axis=1) == 0)[0]
    if len(flat):
        raise ValueError(
            f"{path}: image(s) {flat.tolist()[:10]} of {len(data)} are blank (every pixel "
            f"{float(data[flat[0]].flat[0]):g}): remove them and their angles, or check the "
            "file (a failed acquisition or export)"
        )
    return data


# ---------------------------------------------------------------------------------- writers


def write_tilt_series(
    path: str | Path,
    tilt_series: TiltSeries,
    *,
    provenance: dict | None = None,
) -> list[Path]:
    """Write a tilt series; returns the files written.

    ``.h5``/``.hdf5`` keep everything in one file (``tilt_series``, ``angles_deg``, attributes
    ``pixel_size_A`` and ``provenance`` JSON). ``.mrc``, ``.tif`` (ImageJ-compatible, pixel
    size in A) and ``.npy`` get the angles in a sidecar ``.tlt``. ``.mat`` is written as
    GENFIRE and RESIRE take a series (:mod:`napari_aet.io._genfire`): ``projections`` in
    MATLAB's ``(X, Y, n)`` with each image transposed, ``angles`` as ``3 x n`` Euler triplets
    ``(0, -angle, 0)``, and ``pixel_size_A``; reading it back gives the series again. Each
    file is written to a temporary name first, so a failure never leaves a half-written file
    over a good one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    data = np.asarray(tilt_series.data, dtype=np.float32)
    px = tilt_series.pixel_size_A
    ang = tilt_series.angles_deg
    prov = dict(provenance or tilt_series.metadata.get("provenance") or {})
    written = [path]
    if suffix not in TILT_SERIES_SUFFIXES or suffix in RSCIIO_SUFFIXES:
        raise ValueError(
            f"cannot write a tilt series as {suffix!r}; use one of .h5, .mrc, .tif, .npy, .mat"
        )

    def write(tmp: Path) -> None:
        if suffix in HDF5_SUFFIXES:
            import h5py

            with h5py.File(tmp, "w") as h5:
                d = h5.create_dataset("tilt_series", data=data, chunks=(1, *data.shape[1:]))
                d.attrs["axes"] = "tilt,row,col"
                if px is not None:
                    h5.attrs["pixel_size_A"] = px
                if ang is not None:
                    h5.create_dataset("angles_deg", data=np.asarray(ang, np.float64))
                h5.attrs["provenance"] = json.dumps(prov, default=str)
                h5.attrs["napari_aet_type"] = "tilt_series"
        elif suffix in MRC_SUFFIXES:
            import mrcfile

            with mrcfile.new(tmp, overwrite=True) as mrc:
                mrc.set_data(data)
                mrc.set_image_stack()
                if px is not None:
                    mrc.voxel_size = px
        elif suffix in TIFF_SUFFIXES:
            import tifffile

            kw = {}
            if px is not None:
                kw = {"resolution": (1.0 / px, 1.0 / px), "metadata": {"unit": "A", "axes": "ZYX"}}
            else:
                kw = {"metadata": {"axes": "ZYX"}}
            tifffile.imwrite(tmp, data, imagej=True, **kw)
        elif suffix in NPY_SUFFIXES:
            with open(tmp, "wb") as fh:
                np.save(fh, data)
        elif suffix in MAT_SUFFIXES:
            arrays = {"projections": np.moveaxis(np.swapaxes(data, 1, 2), 0, -1)}
            if ang is not None:  # GENFIRE's Euler triplets: its tilt turns the other way
                a = np.asarray(ang, np.float64)
                arrays["angles"] = np.stack([np.zeros_like(a), -a, np.zeros_like(a)])
            if px is not None:
                arrays["pixel_size_A"] = np.float64(px)
            save_mat(tmp, arrays)

    replace_when_done(path, write)
    if ang is not None and suffix not in HDF5_SUFFIXES + MAT_SUFFIXES:
        side = path.with_suffix(".tlt")
        write_angles(side, ang)
        written.append(side)
    return written
