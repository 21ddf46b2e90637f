"""Microscope vendors' files read through RosettaSciIO: EMD (NCEM / Berkeley and Thermo Fisher
Velox), Gatan DigitalMicrograph (``.dm3``, ``.dm4``) and FEI / Thermo Fisher TIA (``.ser``
with its ``.emi``).

RosettaSciIO (the reader library of HyperSpy and of the microscope-file community) is an
optional dependency: ``pip install napari-aet[formats]``. A file may hold several signals
(a Velox file: HAADF and other detectors, spectra; a DigitalMicrograph file: the image and its
thumbnail); the 3D image stack is taken, a named one with ``dataset`` (the signal's title, e.g.
``HAADF``).

Where the angles come from:

- an NCEM EMD file: the stack axis when it is in angle units;
- a DigitalMicrograph stack from Gatan's tomography acquisition: its ``Tomography > Tomography
  setup > Tilt angles`` tags (minimum, maximum and step; the images taken from the minimum up,
  as ETSpy and HyperSpy users read them), used only where they count as many angles as there
  are images;
- one DigitalMicrograph image (a folder of one file per tilt): its ``Microscope Info > Stage
  Position > Stage Alpha`` tag, the stage's tilt when it was taken; one Velox image: its
  ``Stage > AlphaTilt`` (radians); one TIA image: the ``Stage A`` [deg] of the experimental
  description in its ``.emi`` file.

TIA writes each acquisition as ``name.emi`` (the microscope's settings) beside ``name_1.ser``
(the image or image series, ``name_2.ser`` for a second detector); a ``.ser`` is read with its
``.emi`` where that is beside it (without it: no stage tilt, the pixel size from the ``.ser``).

A Velox file records each detector's image (HAADF, DF4, BF, ...); where ``dataset`` names none
and one of them is the HAADF image, that one is read (ADF tomography's signal).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

EMD_SUFFIXES = (".emd",)
DM_SUFFIXES = (".dm3", ".dm4")
TIA_SUFFIXES = (".ser", ".emi")
RSCIIO_SUFFIXES = EMD_SUFFIXES + DM_SUFFIXES + TIA_SUFFIXES

_LENGTH_TO_A = {"m": 1e10, "mm": 1e7, "um": 1e4, "µm": 1e4, "nm": 10.0, "a": 1.0, "å": 1.0,
                "angstrom": 1.0, "pm": 0.01}  # fmt: skip
_ANGLE_UNITS = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "°": 1.0, "rad": 180.0 / np.pi}
_KIND = {".emd": ("emd", "EMD"), ".dm3": ("digitalmicrograph", "DigitalMicrograph"),
         ".dm4": ("digitalmicrograph", "DigitalMicrograph"), ".ser": ("tia", "TIA"),
         ".emi": ("tia", "TIA")}  # fmt: skip


def tia_emi(ser: Path) -> Path | None:
    """The ``.emi`` file TIA wrote beside ``ser`` (``name.emi`` for ``name_1.ser``), or
    None."""
    base = re.sub(r"_\d+$", "", ser.stem)
    for suffix in (".emi", ".EMI", ".Emi"):
        if (cand := ser.with_name(base + suffix)).is_file():
            return cand
    return None


def _signals(path: Path) -> tuple[list[dict], list[str]]:
    """The file's signals (RosettaSciIO's dicts) and the warnings its reader gave."""
    import warnings

    module, what = _KIND[path.suffix.lower()]
    try:
        import importlib

        file_reader = importlib.import_module(f"rsciio.{module}").file_reader
    except ImportError as err:
        raise ImportError(
            f"{path.name}: {what} files are read with RosettaSciIO, which is not installed; "
            "`pip install napari-aet[formats]` (or `pip install rosettasciio`), or export the "
            "series as TIFF/MRC"
        ) from err
    source, keep = path, None
    if path.suffix.lower() == ".ser" and (emi := tia_emi(path)) is not None:
        source, keep = emi, path.name  # the .emi brings the microscope's settings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sigs = file_reader(str(source))
        if keep is not None:
            sigs = [s for s in sigs if _original_filename(s) == keep] or file_reader(str(path))
    return sigs, list(dict.fromkeys(str(w.message) for w in caught))


def _original_filename(sig: dict) -> str:
    return str(sig.get("metadata", {}).get("General", {}).get("original_filename", ""))


def _title(sig: dict) -> str:
    """The signal's title, or its file's name where it has none (TIA: ``name_1.ser``,
    ``name_2.ser`` for a second detector)."""
    general = sig.get("metadata", {}).get("General", {})
    return str(general.get("title") or general.get("original_filename") or "")


def _key(name) -> str:
    """A tag's name without case, spaces, units' brackets or underscores: DigitalMicrograph's
    ``Tomography setup`` and HyperSpy's ``Tomography_setup`` alike."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _tag(tree, *names):
    """The value at the path ``names`` in a nested dict of tags, matched by :func:`_key`; None
    where a step is missing."""
    node = tree
    for name in names:
        if not isinstance(node, dict):
            return None
        found = [v for k, v in node.items() if _key(k) == _key(name)]
        if not found:
            return None
        node = found[0]
    return node


def _number(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _image_tags(sig: dict) -> dict:
    """A DigitalMicrograph signal's own ``ImageTags`` (RosettaSciIO keeps the file's tags in
    ``original_metadata``, the signal's image as ``ImageList > TagGroup0``)."""
    tags = _tag(sig.get("original_metadata", {}), "ImageList", "TagGroup0", "ImageTags")
    return tags if isinstance(tags, dict) else {}


def _dm_tomography_angles(sig: dict, n: int) -> tuple[np.ndarray | None, str | None]:
    """A Gatan tomography stack's angles from its minimum, maximum and step tags, and a note
    where the tags are there but do not fit the ``n`` images."""
    group = _tag(_image_tags(sig), "Tomography", "Tomography setup", "Tilt angles")
    if not isinstance(group, dict):
        return None, None
    values = {}
    for k, v in group.items():
        for part in ("minimum", "maximum", "step"):
            if part in _key(k) and _number(v) is not None:
                values[part] = _number(v)
    if len(values) < 3 or values["step"] == 0:
        return None, None
    lo, hi, step = values["minimum"], values["maximum"], abs(values["step"])
    count = int(round((hi - lo) / step)) + 1
    if count != n or lo >= hi:
        return None, (
            f"the file's tomography tags (minimum {lo:g}, maximum {hi:g}, step {step:g} deg) "
            f"give {count} angles for {n} images: not used; give the angles with --angles"
        )
    return lo + step * np.arange(n), None


def dm_stage_tilt(sig: dict) -> float | None:
    """The stage's alpha tilt [deg] a DigitalMicrograph image was taken at, or None."""
    alpha = _tag(_image_tags(sig), "Microscope Info", "Stage Position", "Stage Alpha")
    return _number(alpha)


def velox_stage_tilt(sig: dict) -> float | None:
    """The stage's alpha tilt [deg] a Velox image was taken at (its ``Stage > AlphaTilt``
    metadata, in radians), or None."""
    alpha = _number(_tag(sig.get("original_metadata", {}), "Stage", "AlphaTilt"))
    return None if alpha is None else float(np.degrees(alpha))


def tia_stage_tilt(sig: dict) -> float | None:
    """The stage's alpha tilt [deg] a TIA image was taken at (``Stage A`` in its ``.emi``
    file's experimental description), or None."""
    desc = _tag(sig.get("original_metadata", {}), "ObjectInfo", "ExperimentalDescription")
    if not isinstance(desc, dict):
        return None
    return _number(_tag(desc, "Stage A_deg"))


def read_rsciio_stack(path, dataset: str | None = None):
    """The image stack of an EMD, DigitalMicrograph or TIA file with what its axes and tags
    say.

    Returns
    -------
    data : ndarray of shape (n, rows, cols), or (rows, cols) for a file of one image
    pixel_size_A : float or None
        From the image axes' scale and length unit (square pixels required).
    angles_deg : ndarray or None
        From the stack axis when it is in angle units (an NCEM file written with its tilt
        angles as the first dimension), or a Gatan tomography stack's tags; for one image, the
        stage tilt it was taken at (DigitalMicrograph's Stage Alpha, Velox's AlphaTilt, TIA's
        Stage A), as a 1-element array.
    meta : dict
        ``format``, ``dataset`` (the signal's title), ``datasets`` (every image's title, where
        the file has several), the axes, ``angles_source``, an ``angles_note`` where the
        file's angles could not be used, and a ``reader_note`` with what the reader warned
        (TIA: the units it had to guess).
    """
    path = Path(path)
    what = _KIND[path.suffix.lower()][1]
    signals, warned = _signals(path)
    sigs = [s for s in signals if np.ndim(s["data"]) in (2, 3)]
    titles = [f"{_title(s) or '(untitled)'} {tuple(np.shape(s['data']))}" for s in sigs]
    if dataset is not None:
        sigs = [s for s in sigs if _title(s) == dataset]
    stacks = [s for s in sigs if np.ndim(s["data"]) == 3] or sigs
    haadf = [s for s in stacks if "haadf" in _title(s).lower()]
    if dataset is None and len(stacks) > 1 and len(haadf) == 1:
        stacks = haadf  # a Velox file's detectors side by side: ADF tomography's is HAADF
    if not stacks:
        kind = f"no image or image stack named {dataset!r}" if dataset else "no image stack"
        raise ValueError(
            f"{path.name}: {kind}; the file holds: {', '.join(titles) or 'nothing'} "
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
    meta = {"format": f"{what} (RosettaSciIO)", "dataset": _title(sig)}
    if warned:
        meta["reader_note"] = f"{path.name}: RosettaSciIO: " + "; ".join(warned)
    if len(axes) == data.ndim:
        scales = []
        for ax in axes[-2:]:
            unit = str(ax.get("units", "") or "").strip().lower()
            f = _LENGTH_TO_A.get(unit)
            scales.append(None if f is None else float(ax.get("scale", 1.0)) * f)
        if None not in scales and abs(scales[0] - scales[1]) <= 1e-3 * abs(scales[1]):
            px = abs(scales[1])
        t = axes[0]
        f = _ANGLE_UNITS.get(str(t.get("units", "") or "").strip().lower())
        if f is not None and data.ndim == 3:
            if t.get("axis") is not None:
                angles = np.asarray(t["axis"], float) * f
            else:
                n = data.shape[0]
                angles = (
                    float(t.get("offset", 0.0)) + float(t.get("scale", 1.0)) * np.arange(n)
                ) * f
            meta["angles_source"] = f"{path.name} (stack axis)"
    if angles is None and what == "DigitalMicrograph":
        if data.ndim == 3:
            angles, note = _dm_tomography_angles(sig, data.shape[0])
            if angles is not None:
                meta["angles_source"] = f"{path.name} (tomography tags)"
            elif note:
                meta["angles_note"] = note
        elif (alpha := dm_stage_tilt(sig)) is not None:
            angles = np.array([alpha])
            meta["angles_source"] = f"{path.name} (Stage Alpha)"
    if angles is None and data.ndim == 2 and (alpha := velox_stage_tilt(sig)) is not None:
        angles = np.array([alpha])
        meta["angles_source"] = f"{path.name} (Stage AlphaTilt)"
    if angles is None and data.ndim == 2 and (alpha := tia_stage_tilt(sig)) is not None:
        angles = np.array([alpha])
        meta["angles_source"] = f"{path.name} (Stage A)"
    if len(sigs) > 1:
        meta["datasets"] = [_title(s) for s in sigs]
    meta["axes"] = [
        {k: v for k, v in ax.items() if k in ("name", "units", "scale", "offset", "size")}
        for ax in axes
    ]
    return data, px, angles, meta
