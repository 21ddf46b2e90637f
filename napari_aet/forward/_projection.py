"""Projection geometry of the volume frame: where an atom lands in each image, and the blurred
projected potentials rendered there (the convention of docs/conventions.md)."""

from __future__ import annotations

import numpy as np

from ._potentials import _profile_table, profile_cutoff_radius


def rotation_center_A(shape_px: tuple[int, int], pixel_size_A: float) -> np.ndarray:
    """Rotation centre ``(z, y, x)`` [A] of the volume frame: voxel ``n // 2`` on every axis.

    The volume is cubic with side ``cols`` (the beam-direction extent equals the width), and
    row ``rows // 2`` is the centre along the tilt axis.
    """
    rows, cols = shape_px
    return np.array([cols // 2, rows // 2, cols // 2], dtype=np.float64) * pixel_size_A


def project_positions(
    positions_A: np.ndarray,
    angle_deg: float,
    *,
    shape_px: tuple[int, int],
    pixel_size_A: float,
    shift_px=(0.0, 0.0),
    tilt_axis_angle_deg: float = 0.0,
) -> np.ndarray:
    """Image coordinates ``(row, col)`` [pixels] of atoms in the projection at ``angle_deg``.

    Convention (documented in docs/conventions.md): with ``(z, y, x)`` relative to the rotation
    centre, the object is rotated about the vertical axis ``y`` by ``theta``,
    ``x' = x cos(theta) + z sin(theta)``, and summed along ``z``; the image row is ``y`` and the
    column ``x'``. An in-plane tilt-axis angle then rotates ``(row, col)`` about the image centre,
    and the shift moves the content by ``(d_row, d_col)``.
    """
    center = rotation_center_A(shape_px, pixel_size_A)
    d = (np.asarray(positions_A, np.float64) - center) / pixel_size_A
    th = np.deg2rad(angle_deg)
    row = d[:, 1]
    col = d[:, 2] * np.cos(th) + d[:, 0] * np.sin(th)
    if tilt_axis_angle_deg:
        a = np.deg2rad(tilt_axis_angle_deg)
        row, col = np.cos(a) * row - np.sin(a) * col, np.sin(a) * row + np.cos(a) * col
    rc = np.array([shape_px[0] // 2, shape_px[1] // 2], np.float64)
    return np.stack([row, col], axis=1) + rc + np.asarray(shift_px, np.float64)


def render_projection(
    coords_px: np.ndarray,
    elements: np.ndarray,
    *,
    shape_px: tuple[int, int],
    pixel_size_A: float,
    blur_sigma_A: float,
    chunk: int = 8192,
) -> np.ndarray:
    """Sum the blurred projected potentials [V * A] of atoms at ``(row, col)`` pixel coordinates.

    Each atom's radial profile is tabulated once per element and evaluated exactly at every
    pixel within its cut-off radius (no gridding or interpolation of positions), so sub-pixel
    positions are honoured. The profile is interpolated linearly in its uniform table (as
    ``np.interp`` would, without the search), and only pixels within the cut-off are looked up.
    """
    rows, cols = shape_px
    image = np.zeros(rows * cols, dtype=np.float64)
    for el in np.unique(elements):
        sel = np.nonzero(elements == el)[0]
        r_cut = profile_cutoff_radius(str(el), blur_sigma_A=blur_sigma_A)
        r_tab, v_tab = _profile_table(str(el), float(blur_sigma_A), r_cut)
        step = r_tab[1] - r_tab[0]  # a uniform table from 0 (_profile_table)
        w = int(np.ceil(r_cut / pixel_size_A))
        off = np.arange(-w, w + 1)
        orr, occ = (o.ravel() for o in np.meshgrid(off, off, indexing="ij"))
        cut2 = (r_cut / pixel_size_A) ** 2
        for start in range(0, len(sel), chunk):
            c = coords_px[sel[start : start + chunk]]
            base = np.floor(c).astype(np.int64)
            pr = base[:, :1] + orr[None, :]
            pc = base[:, 1:] + occ[None, :]
            d2 = (pr - c[:, :1]) ** 2 + (pc - c[:, 1:]) ** 2
            ok = (d2 < cut2) & (pr >= 0) & (pr < rows) & (pc >= 0) & (pc < cols)
            t = np.sqrt(d2[ok]) * (pixel_size_A / step)
            i = np.minimum(t.astype(np.int64), len(v_tab) - 2)
            f = t - i
            vals = v_tab[i] * (1.0 - f) + v_tab[i + 1] * f
            image += np.bincount((pr * cols + pc)[ok], weights=vals, minlength=rows * cols)
    return image.reshape(rows, cols)


def split_object_translation(d_col, angles_deg) -> tuple[np.ndarray, np.ndarray]:
    """Column offsets [px] without the part a translation of the object explains, and that
    part's ``(tx, tz)`` [px]: ``d_col = rest + tx cos(theta) + tz sin(theta)`` in the least-
    squares sense. Such a part moves the reconstruction, not the images' errors."""
    th = np.deg2rad(np.asarray(angles_deg, np.float64))
    a = np.column_stack([np.cos(th), np.sin(th)])
    d = np.asarray(d_col, np.float64)
    coef, *_ = np.linalg.lstsq(a, d, rcond=None)
    return d - a @ coef, coef
