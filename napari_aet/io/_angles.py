"""Tilt angles: sidecar text files (.txt, .tlt, .rawtlt, SerialEM's .mdoc), typed-in lists
or ranges, and the checks that they can be a tilt series' angles."""

from __future__ import annotations

import re
import warnings
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


def repeated_images(angles) -> np.ndarray:
    """Indices of the images whose angle (to 1e-4 deg) an earlier image already has."""
    rounded = np.round(np.asarray(angles, np.float64).ravel(), 4)
    _, first = np.unique(rounded, return_index=True)
    return np.setdiff1d(np.arange(rounded.size), first)


def repeats_note(angles) -> str | None:
    """A note naming the images taken again at an angle of an earlier one (as a 0-degree image
    taken before and after a series to see what the beam did), or None."""
    ang = np.asarray(angles, np.float64).ravel()
    rep = repeated_images(ang)
    if not len(rep):
        return None
    pairs = []
    for i in rep[:5]:
        first = int(np.flatnonzero(np.round(ang, 4) == np.round(ang[i], 4))[0])
        pairs.append(f"image {int(i)} ({ang[i]:g} deg, as image {first})")
    return (
        f"{len(rep)} image(s) repeat an earlier angle: {', '.join(pairs)}; both are used as "
        f"images of the series. If the particle changed between them, leave one out "
        f"(--exclude-images {','.join(str(int(i)) for i in rep)})"
    )


def validate_angles(angles, n_images: int, *, where: str = "the angles") -> np.ndarray:
    """Check that there is one finite angle per image; return them as float64 [degrees].

    Any range is accepted (a limited -70..70 series, a full-range 0..180 one, a 360-degree
    needle series), in any order; a few images may repeat an angle (a 0-degree image taken
    again at the end; :func:`repeats_note`), a series taken twice (more than a fifth of the
    images, and more than 2) is refused, and values that look like radians give a warning."""
    ang = np.asarray(angles, dtype=np.float64).ravel()
    if ang.size != n_images:
        raise ValueError(
            f"{where} give {ang.size} tilt angles but the stack has {n_images} images; "
            "give exactly one angle per image, in stack order"
        )
    if not np.all(np.isfinite(ang)):
        raise ValueError(f"{where} contain NaN or infinite tilt angles")
    if np.any(np.abs(ang) > 360) or np.ptp(ang) > 360:
        raise ValueError(
            f"{where} span {ang.min():.1f}..{ang.max():.1f}: beyond a full turn; tilt angles "
            "are expected in degrees (any range up to 360, e.g. -70..70 or 0..177), not "
            "image indices"
        )
    if n_images > 1 and np.ptp(ang) < 1e-6:
        raise ValueError(
            f"{where} are all {ang[0]:g} degrees: a tilt series needs images at different "
            "angles; check the angles file (one angle per image, in stack order)"
        )
    repeats = repeated_images(ang)
    if len(repeats) > max(2, 0.2 * len(ang)):  # a series taken twice, not an image retaken
        dup = sorted({float(np.round(ang[i], 4)) for i in repeats})
        raise ValueError(
            f"{where} repeat {len(repeats)} of {len(ang)} angles ({dup[:5]} ... degrees): a "
            "series taken twice (a dual-axis series, or the same tilts again) must be split "
            "into single-axis series first (napari-aet run A --second-axis B for dual-axis)"
        )
    if n_images >= 5 and np.abs(ang).max() <= 1.6 and np.ptp(ang) > 0.3:
        warnings.warn(
            f"{where} span only {ang.min():.3f}..{ang.max():.3f}: they look like radians; "
            "napari-aet expects degrees (multiply by 57.2958)",
            stacklevel=2,
        )
    return ang
