"""GENFIRE's and RESIRE's projection geometry, brought to napari-aet's.

GENFIRE (MATLAB and Python) takes each image's orientation as Euler angles
``(phi, theta, psi)`` [deg] and an image's first index as its ``x``: the image pixel
``(X, Y)`` relative to the centre samples the object line ``M (X, Y, t)`` with
``M = Rz(phi) Ry(theta) Rz(psi)`` in the object's ``(x, y, z)`` (``x`` the volume's first
index). A single-axis series is ``(0, theta, 0)``: its tilt axis is the images' *second* index.

napari-aet's images are ``(rows, cols)`` with the tilt axis along the rows and the object
rotated by ``Rz(phi') Ry(theta') Rz(psi')`` (:doc:`conventions`). Taking GENFIRE's image
transposed (row = ``Y``, column = ``X``), the two agree exactly with the object frame unchanged
(napari-aet's ``(z, y, x)`` is GENFIRE's ``(x, y, z)`` read backwards, as its atom models are
read) when ``(phi', theta', psi') = (-psi, -theta, -phi)``. So:

- the tilt is ``-theta`` (the sign the conventions page warns of);
- ``psi`` is a turn of the image in its own plane: undone by turning each image back;
- ``phi`` turns the object about the beam before the tilt. A ``phi`` common to every image
  only turns the reconstruction (recorded, not undone); where ``phi`` varies, its part about
  the tilted beam (``cos theta``) is an in-plane turn and undone with ``psi``, its part across
  the tilt axis (``sin theta``) is not a single-axis geometry and is left (its size recorded).

Without this, a GENFIRE series read as it lies has its tilt axis horizontal, which the
alignment finds, but with either sense of the tilt: a reconstruction or its mirror image,
depending on which of the two equal answers the estimate lands on.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Turns of the image plane below this [deg] are not resampled.
MIN_TURN_DEG = 1e-3


def euler_triplets(a, n_images: int | None = None) -> np.ndarray | None:
    """``(n, 3)`` Euler triplets ``(phi, theta, psi)`` from an ``(n, 3)`` or ``(3, n)`` array,
    or None where the array is not one (one column or row of plain tilt angles)."""
    a = np.asarray(a, np.float64)
    if a.ndim != 2 or 1 in a.shape or 3 not in a.shape:
        return None
    if a.shape == (3, 3):
        return a.copy()  # three images: MATLAB's rows are images in GENFIRE's files
    if a.shape[1] == 3 and (n_images is None or a.shape[0] == n_images):
        return a.copy()
    return np.ascontiguousarray(a.T)


class MergedSeriesError(ValueError):
    """A GENFIRE-convention file that merges tilt series taken with the specimen turned about
    the beam between them (:func:`phi_groups`): ``groups`` holds each one's image indices,
    ``phi_deg`` its median ``phi``. Read one with ``phi_group``; ``napari-aet run`` and
    ``recon`` run a file of two as a dual-axis series."""

    def __init__(self, message: str, groups: list[np.ndarray], phi_deg: list[float]):
        super().__init__(message)
        self.groups = groups
        self.phi_deg = phi_deg


def select_phi_group(data, euler_deg, group: int):
    """The images and Euler triplets of ``phi`` group ``group`` (0 = the one holding the
    file's first image, :func:`phi_groups`' order) and their indices in the file; a file of
    one series has only group 0."""
    e = np.asarray(euler_deg, np.float64)
    groups = phi_groups(e[:, 0])
    if not 0 <= int(group) < len(groups):
        raise ValueError(
            f"phi group {group}: the file holds {len(groups)} tilt series (groups 0 to "
            f"{len(groups) - 1})"
        )
    idx = groups[int(group)]
    return np.asarray(data)[idx], e[idx], idx


def _wrap(d):
    return (np.asarray(d, np.float64) + 180.0) % 360.0 - 180.0


def from_genfire_geometry(data, euler_deg) -> tuple[np.ndarray, np.ndarray, dict]:
    """Images, tilt angles and a record of a GENFIRE-convention series in napari-aet's.

    Parameters
    ----------
    data : ndarray of shape (n, X, Y) or (n, frames, X, Y)
        The images as GENFIRE holds them (first image index ``x``).
    euler_deg : array-like of shape (n, 3)
        GENFIRE's ``(phi, theta, psi)`` per image [deg].

    Returns
    -------
    data : ndarray of shape (n, Y, X) or (n, frames, Y, X)
        Transposed, each image turned back by its in-plane turn (:func:`turn_back`).
    angles_deg : ndarray of shape (n,)
        The tilt angles, ``-theta``.
    record : dict
        ``convention``, ``object_turn_deg`` (the common ``phi``), ``quarter_turns``,
        ``in_plane_turn_deg`` (per image, undone), ``out_of_plane_deg`` (largest part of
        ``phi``'s variation that is not a single-axis tilt, left) and ``note``
        (:func:`genfire_note`).
    """
    e = np.asarray(euler_deg, np.float64)
    arr = np.asarray(data)
    if e.ndim != 2 or e.shape[1] != 3 or e.shape[0] != arr.shape[0]:
        raise ValueError(
            f"Euler angles of shape {e.shape} for {arr.shape[0]} images: give one "
            "(phi, theta, psi) triplet per image"
        )
    phi, theta, psi = e.T
    groups = phi_groups(phi)
    if len(groups) > 1 and min(len(g) for g in groups) >= 3:
        listed = ", ".join(
            f"phi {float(np.median(phi[g])):+.1f} deg ({len(g)} images from {int(g[0])})"
            for g in groups
        )
        raise MergedSeriesError(
            f"the Euler angles hold {len(groups)} tilt series turned apart about the beam "
            f"({listed}): napari-aet reads one single-axis series at a time. `napari-aet run` "
            "and `recon` run a file of two as a dual-axis series (each aligned on its own, "
            "reconstructed together); read one with --phi-group K (0 = the first listed), or "
            "save each group with its own angles and run A --second-axis B",
            groups,
            [float(np.median(phi[g])) for g in groups],
        )
    common = float(phi[0] + _wrap(phi - phi[0]).mean())
    dphi = _wrap(phi - common)
    th = np.deg2rad(theta)
    turn = _wrap(-psi - dphi * np.cos(th))
    out = np.swapaxes(arr, -1, -2)
    # a common turn by quarters (psi = 90, say: a tilt axis along the other image axis) is
    # undone exactly, by moving pixels (the image's shape turns with it); the rest by shears
    quarters = int(np.round(np.median(turn) / 90.0)) % 4
    if quarters:
        out = quarter_turn_back(out, quarters)
        turn = _wrap(turn - 90.0 * quarters)
    if np.abs(turn).max() > MIN_TURN_DEG:  # a C-ordered float copy, turned in place below
        out = np.ascontiguousarray(out, np.float32 if arr.dtype.itemsize <= 4 else np.float64)
        rows, cols = out.shape[-2:]
        c = np.array([rows // 2, cols // 2], np.float64)
        for i, g in enumerate(np.deg2rad(turn)):
            if abs(np.rad2deg(g)) <= MIN_TURN_DEG:
                continue
            planes = out[i].reshape(-1, rows, cols)
            for j in range(planes.shape[0]):
                planes[j] = turn_back(planes[j], g, c)
    else:
        out = np.ascontiguousarray(out)
    record = {
        "convention": "GENFIRE (phi, theta, psi): images transposed, tilt = -theta",
        "object_turn_deg": round(_wrap(common).item(), 4),
        "quarter_turns": quarters,
        "in_plane_turn_deg": [round(float(_wrap(t + 90.0 * quarters)), 4) for t in turn],
        "out_of_plane_deg": round(float(np.abs(dphi * np.sin(th)).max()), 4),
    }
    record["note"] = genfire_note(record)
    return np.ascontiguousarray(out), -theta, record


#: phi values further apart than this [deg], with no image between, are separate tilt series
PHI_GROUP_GAP_DEG = 10.0


def phi_groups(phi_deg) -> list[np.ndarray]:
    """The images' indices grouped by ``phi`` (GENFIRE's turn of the object about the beam):
    one group for a single-axis series (``phi`` refined by a degree or so), several where a
    file merges series taken with the specimen turned between them (``phi`` values more than
    :data:`PHI_GROUP_GAP_DEG` apart, none between)."""
    phi = _wrap(np.asarray(phi_deg, np.float64))
    order = np.argsort(phi, kind="stable")
    p = phi[order]
    gaps = np.diff(np.r_[p, p[0] + 360.0])  # circular: the last gap closes the circle
    cuts = np.flatnonzero(gaps > PHI_GROUP_GAP_DEG)
    if len(cuts) <= 1:
        return [np.arange(len(phi))]
    groups = []
    for a, b in zip(cuts, np.r_[cuts[1:], cuts[0] + len(p)], strict=True):
        idx = order[np.arange(a + 1, b + 1) % len(p)]
        groups.append(np.sort(idx))
    return sorted(groups, key=lambda g: int(g[0]))


def quarter_turn_back(stack: np.ndarray, quarters: int) -> np.ndarray:
    """Images ``(..., rows, cols)`` whose content sits turned by ``quarters`` x 90 deg
    (counter-clockwise as displayed) about their centre pixel ``(rows // 2, cols // 2)``,
    turned back exactly (whole pixels; an odd number of quarters gives ``(cols, rows)``
    images, centred on their own centre pixel; the one line a turn about an even-sized
    image's centre pixel brings in is its edge's copy)."""
    q = quarters % 4
    rows, cols = stack.shape[-2:]
    shape = (rows, cols) if q % 2 == 0 else (cols, rows)
    cos, sin = [(1, 0), (0, 1), (-1, 0), (0, -1)][q]
    rr, cc = np.indices(shape)
    dr, dc = rr - shape[0] // 2, cc - shape[1] // 2
    src_r = np.clip(cos * dr + sin * dc + rows // 2, 0, rows - 1)
    src_c = np.clip(-sin * dr + cos * dc + cols // 2, 0, cols - 1)
    return np.ascontiguousarray(stack[..., src_r, src_c])


def turn_back(img: np.ndarray, g: float, c) -> np.ndarray:
    """``img`` whose content sits turned by ``g`` [rad] (counter-clockwise as displayed) about
    pixel ``c = (row, col)``, turned back: ``out(p) = img(M (p - c) + c)`` with
    ``M = [[cos g, sin g], [-sin g, cos g]]`` on ``(row, col)``.

    Up to 45 deg by three shears, each a Fourier shift of every line (Unser, Thevenaz and
    Yaroslavsky 1995: exact for band-limited images, the noise left white and its variance
    kept, where a spline would smooth both); the image is padded with its edge values so that
    nothing wraps round. Larger turns by a cubic spline.
    """
    img = np.asarray(img)
    rows, cols = img.shape
    c = np.asarray(c, np.float64)
    if abs(g) > np.pi / 4:
        m = np.array([[np.cos(g), np.sin(g)], [-np.sin(g), np.cos(g)]])
        return ndimage.affine_transform(img, m, offset=c - m @ c, order=3, mode="nearest")
    a, b = np.tan(g / 2.0), -np.sin(g)  # M = Su(a) Sv(b) Su(a): u row, v col
    pad = int(np.ceil(abs(a) * max(rows, cols) + abs(b) * max(rows, cols) / 2)) + 4
    work = np.pad(img.astype(np.float64), pad, mode="edge")
    cu, cv = c[0] + pad, c[1] + pad
    u = np.arange(work.shape[0]) - cu
    v = np.arange(work.shape[1]) - cv

    def sample_at(arr, offsets, axis):  # each line along axis, sampled at x + its offset
        n = arr.shape[axis]
        k = np.fft.fftfreq(n) * n
        phase = np.exp(2j * np.pi * np.multiply.outer(offsets, k) / n)
        if axis == 0:
            phase = phase.T  # (n along axis 0, one column per offset)
        return np.fft.ifft(np.fft.fft(arr, axis=axis) * phase, axis=axis).real

    work = sample_at(work, a * v, axis=0)  # u + a v
    work = sample_at(work, b * u, axis=1)  # v + b u
    work = sample_at(work, a * v, axis=0)
    return work[pad : pad + rows, pad : pad + cols].astype(img.dtype, copy=False)


def genfire_note(record: dict) -> str:
    """One line for the reader's notes: what was taken from GENFIRE's convention."""
    turns = np.abs(_wrap(np.asarray(record["in_plane_turn_deg"]) - 90.0 * record["quarter_turns"]))
    parts = ["GENFIRE's convention: images transposed, tilt = -theta"]
    if record["quarter_turns"]:
        parts.append(f"images turned back by {90 * record['quarter_turns']} deg (psi)")
    if turns.max() > MIN_TURN_DEG:
        parts.append(f"in-plane turns up to {turns.max():.2f} deg undone (psi)")
    if abs(record["object_turn_deg"]) > MIN_TURN_DEG:
        parts.append(f"the object turned by phi = {record['object_turn_deg']:+.2f} deg kept")
    if record["out_of_plane_deg"] > 0.05:
        parts.append(
            f"phi's variation tilts images across the axis by up to "
            f"{record['out_of_plane_deg']:.2f} deg (not a single-axis geometry; not modelled)"
        )
    return "; ".join(parts)
