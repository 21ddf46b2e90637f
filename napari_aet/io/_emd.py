"""EMD files (NCEM / Berkeley EMD and Thermo Fisher Velox) through RosettaSciIO.

RosettaSciIO (the reader library of HyperSpy and of the microscope-file community) is an
optional dependency: ``pip install napari-aet[formats]``. A file may hold several signals
(a Velox file: HAADF and other detectors, spectra); the 3D image stack is taken, a named one
with ``dataset`` (the signal's title, e.g. ``HAADF``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EMD_SUFFIXES = (".emd",)

_LENGTH_TO_A = {"m": 1e10, "mm": 1e7, "um": 1e4, "µm": 1e4, "nm": 10.0, "a": 1.0, "å": 1.0,
                "angstrom": 1.0, "pm": 0.01}  # fmt: skip
_ANGLE_UNITS = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "°": 1.0, "rad": 180.0 / np.pi}


def _signals(path: Path) -> list[dict]:
    try:
        from rsciio.emd import file_reader
    except ImportError as err:
        raise ImportError(
            f"{path.name}: EMD files are read with RosettaSciIO, which is not installed; "
            "`pip install napari-aet[formats]` (or `pip install rosettasciio`), or export the "
            "series as TIFF/MRC"
        ) from err
    return file_reader(str(path))


def _title(sig: dict) -> str:
    return str(sig.get("metadata", {}).get("General", {}).get("title", ""))


def read_emd_stack(path, dataset: str | None = None):
    """The 3D image stack of an EMD file with what its axes say.

    Returns
    -------
    data : ndarray of shape (n, rows, cols)
    pixel_size_A : float or None
        From the image axes' scale and length unit (square pixels required).
    angles_deg : ndarray or None
        From the stack axis when it is in angle units (an NCEM file written with its tilt
        angles as the first dimension); Velox stacks carry none (give them with --angles).
    meta : dict
        ``format``, ``dataset`` (the signal's title) and the axes.
    """
    path = Path(path)
    sigs = _signals(path)
    stacks = [s for s in sigs if np.ndim(s["data"]) == 3]
    titles = [f"{_title(s) or '(untitled)'} {tuple(np.shape(s['data']))}" for s in sigs]
    if dataset is not None:
        stacks = [s for s in stacks if _title(s) == dataset]
    if not stacks:
        what = f"no 3D image stack named {dataset!r}" if dataset else "no 3D image stack"
        raise ValueError(
            f"{path.name}: {what}; the file holds: {', '.join(titles) or 'nothing'} "
            "(choose one with --dataset TITLE)"
        )
    if len(stacks) > 1:
        raise ValueError(
            f"{path.name} holds several image stacks ({', '.join(titles)}); choose one with "
            "--dataset TITLE (e.g. HAADF)"
        )
    sig = stacks[0]
    data = np.asarray(sig["data"])
    axes = sorted(sig.get("axes", []), key=lambda a: a.get("index_in_array", 0))
    px = None
    angles = None
    if len(axes) == 3:
        scales = []
        for ax in axes[1:]:
            unit = str(ax.get("units", "") or "").strip().lower()
            f = _LENGTH_TO_A.get(unit)
            scales.append(None if f is None else float(ax.get("scale", 1.0)) * f)
        if None not in scales and abs(scales[0] - scales[1]) <= 1e-3 * abs(scales[1]):
            px = abs(scales[1])
        t = axes[0]
        f = _ANGLE_UNITS.get(str(t.get("units", "") or "").strip().lower())
        if f is not None:
            if t.get("axis") is not None:
                angles = np.asarray(t["axis"], float) * f
            else:
                n = data.shape[0]
                angles = (
                    float(t.get("offset", 0.0)) + float(t.get("scale", 1.0)) * np.arange(n)
                ) * f
    meta = {
        "format": "EMD (RosettaSciIO)",
        "dataset": _title(sig),
        "axes": [
            {k: v for k, v in ax.items() if k in ("name", "units", "scale", "offset", "size")}
            for ax in axes
        ],
    }
    if angles is not None:
        meta["angles_source"] = f"{path.name} (stack axis)"
    return data, px, angles, meta
