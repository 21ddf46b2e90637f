"""Tilt angles: sidecar text files (.txt, .tlt, .rawtlt, SerialEM's .mdoc) and typed-in lists
or ranges."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

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
    column is taken only when every line has the same count (e.g. ``angle dose``). A SerialEM
    ``.mdoc`` gives each image's ``TiltAngle`` (:func:`napari_aet.io._microscope.read_mdoc`),
    a ``.mat`` file its angle variable.
    """
    path = Path(path)
    if path.suffix.lower() == ".mat":
        return read_mat_angles(path)
    if path.suffix.lower() == ".mdoc":
        return read_mdoc(path).angles_deg
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise OSError(f"could not read tilt angles from {path}: {err}") from err
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    counts = {len(re.split(r"[,;\s]+", ln)) for ln in lines}
    try:
        if len(lines) > 1 and len(counts) == 1 and counts.pop() > 1:
            return parse_angles("\n".join(re.split(r"[,;\s]+", ln)[0] for ln in lines))
        return parse_angles("\n".join(lines))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def find_angle_sidecar(path: str | Path) -> Path | None:
    """Look next to a tilt-series file for its angles: ``stem.tlt``, ``stem.rawtlt``,
    ``stem.txt``, ``stem_angles.txt``, then SerialEM's ``name.mdoc`` (``tilt.mrc.mdoc``) or
    ``stem.mdoc``; None if there is none."""
    path = Path(path)
    stem = path.name
    for suffix in (".ome.tiff", ".ome.tif", *[s for s in [path.suffix] if s]):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    names = [*(stem + s for s in ANGLE_SUFFIXES), stem + "_angles.txt"]
    for cand in [*names, path.name + ".mdoc", stem + ".mdoc"]:
        p = path.with_name(cand)
        if p.exists() and p != path:
            return p
    return None


def write_angles(path: str | Path, angles_deg) -> None:
    """Write angles one per line (readable by IMOD as a ``.tlt`` file)."""
    arr = np.asarray(angles_deg, dtype=np.float64)
    Path(path).write_text("".join(f"{a:.4f}\n" for a in arr))
