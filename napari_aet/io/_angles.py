"""Tilt angles: sidecar text files (.txt, .tlt, .rawtlt, SerialEM's .mdoc) and typed-in lists
or ranges."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ._genfire import euler_triplets
from ._matlab import read_mat_angles
from ._microscope import read_mdoc

ANGLE_SUFFIXES = (".tlt", ".rawtlt", ".txt")


def parse_angles(text: str) -> np.ndarray:
    """Parse typed-in tilt angles [degrees].

    Accepts numbers separated by commas, spaces, semicolons or new lines, ``#`` comments, and
    inclusive ranges ``start:stop:step`` (``"-70:70:7"`` gives 21 angles).

    Raises
    ------
    ValueError
        If a token is not a number or a range, or nothing is given.
    """
    values: list[float] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for tok in re.split(r"[,;\s]+", line.strip()):
            if not tok:
                continue
            if ":" in tok:
                parts = tok.split(":")
                if len(parts) != 3:
                    raise ValueError(f"range {tok!r} must be start:stop:step, e.g. -70:70:7")
                try:
                    start, stop, step = (float(p) for p in parts)
                except ValueError as err:
                    raise ValueError(f"range {tok!r} has a part that is not a number") from err
                if step == 0 or (stop - start) / step < 0:
                    raise ValueError(f"range {tok!r} never reaches its stop with that step")
                n = int(np.floor((stop - start) / step + 1e-9)) + 1
                values.extend((start + step * np.arange(n)).tolist())
            else:
                try:
                    values.append(float(tok))
                except ValueError as err:
                    raise ValueError(
                        f"{tok!r} is not a tilt angle; give numbers in degrees separated by "
                        "commas or spaces, or a range start:stop:step"
                    ) from err
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no tilt angles were given")
    if not np.all(np.isfinite(arr)):
        raise ValueError("tilt angles must be finite numbers (found NaN or inf)")
    return arr


def read_angles(path: str | Path) -> np.ndarray:
    """Read tilt angles [degrees] from a text file: one per line (IMOD ``.tlt``/``.rawtlt``) or
    any mix of separators; ``#`` starts a comment.

    If a line holds several numbers and the file has one such line per image, the first
    column is taken only when every line has the same count (e.g. ``angle dose``); three
    numbers per line whose middle one carries the tilt are GENFIRE's Euler triplets
    ``(phi, theta, psi)``, of which ``theta`` is returned (:func:`read_angle_file` gives the
    triplets, which :func:`napari_aet.io.read_tilt_series` turns into napari-aet's convention).
    A SerialEM ``.mdoc`` gives each image's ``TiltAngle``
    (:func:`napari_aet.io._microscope.read_mdoc`), a ``.mat`` file its angle variable, a
    ``.npy`` file its array (GENFIRE's Python version keeps angles so).
    """
    return read_angle_file(path)[0]


def read_angle_file(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The tilt angles [deg] of a file (:func:`read_angles`) and, where it holds GENFIRE's
    Euler triplets ``(phi, theta, psi)`` per image, the ``(n, 3)`` triplets (else None)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return read_mat_angles(path, triplets=True)
    if suffix == ".mdoc":
        return read_mdoc(path).angles_deg, None
    if suffix == ".npy":
        a = np.load(path, allow_pickle=False)
        trip = euler_triplets(a)
        if trip is not None:
            return trip[:, 1].copy(), trip
        if a.ndim > 2 or (a.ndim == 2 and 1 not in a.shape):
            raise ValueError(f"{path}: angles of shape {a.shape}; give one per image or (n, 3)")
        return np.asarray(a, np.float64).ravel(), None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise OSError(f"could not read tilt angles from {path}: {err}") from err
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    counts = {len(re.split(r"[,;\s]+", ln)) for ln in lines}
    try:
        if len(lines) > 1 and len(counts) == 1 and counts.pop() > 1:
            table = [re.split(r"[,;\s]+", ln) for ln in lines]
            if len(table[0]) == 3:
                trip = _triplet_table(table)
                if trip is not None:
                    return trip[:, 1].copy(), trip
            return parse_angles("\n".join(row[0] for row in table)), None
        return parse_angles("\n".join(lines)), None
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def _triplet_table(table) -> np.ndarray | None:
    """GENFIRE's ``phi theta psi`` lines: the middle column spans the tilts, the outer two are
    small turns (constant, or varying far less), and the first is not an image index."""
    try:
        a = np.array([[float(v) for v in row] for row in table])
    except ValueError:
        return None
    spread = np.ptp(a, axis=0)
    n = len(a)
    index = np.allclose(a[:, 0], np.arange(n)) or np.allclose(a[:, 0], np.arange(1, n + 1))
    small = max(spread[0], spread[2]) <= min(20.0, 0.25 * spread[1])
    if n >= 3 and spread[1] > 0 and small and not index and np.abs(a).max() <= 360:
        return a
    return None


def find_angle_sidecar(path: str | Path) -> Path | None:
    """Look next to a tilt-series file for its angles: ``stem.tlt``, ``stem.rawtlt``,
    ``stem.txt``, ``stem_angles.txt``, ``stem_angles.mat``, ``stem_angles.npy`` (and for a
    ``.mat`` stack ``angles.mat``, as GENFIRE's examples ship them), then SerialEM's
    ``name.mdoc`` (``tilt.mrc.mdoc``) or ``stem.mdoc``; None if there is none."""
    path = Path(path)
    stem = path.name
    for suffix in (".ome.tiff", ".ome.tif", *[s for s in [path.suffix] if s]):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    names = [*(stem + s for s in ANGLE_SUFFIXES), stem + "_angles.txt"]
    names += [stem + "_angles.mat", stem + "_angles.npy"]
    if path.suffix.lower() == ".mat":  # GENFIRE's examples: projections.mat beside angles.mat
        names.append("angles.mat")
    for cand in [*names, path.name + ".mdoc", stem + ".mdoc"]:
        p = path.with_name(cand)
        if p.exists() and p != path:
            return p
    return None


def write_angles(path: str | Path, angles_deg) -> None:
    """Write angles one per line (readable by IMOD as a ``.tlt`` file)."""
    arr = np.asarray(angles_deg, dtype=np.float64)
    Path(path).write_text("".join(f"{a:.4f}\n" for a in arr))
