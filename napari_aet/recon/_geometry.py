"""Projection geometry: which object directions each image's rows and columns sample."""

from __future__ import annotations

import numpy as np


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def euler_to_matrix_xyz(phi_deg: float, theta_deg: float, psi_deg: float) -> np.ndarray:
    """Object rotation ``R = Rz(phi) Ry(theta) Rz(psi)`` acting on ``(x, y, z)`` columns.

    ``psi`` is applied first, then ``theta`` (the tilt about the vertical axis ``y``), then
    ``phi``; all are active, right-handed rotations about the lab axes. With
    ``phi = psi = 0`` this is the single-axis tilt of :doc:`conventions`:
    ``x' = x cos(theta) + z sin(theta)``.
    """
    return _rz(np.deg2rad(phi_deg)) @ _ry(np.deg2rad(theta_deg)) @ _rz(np.deg2rad(psi_deg))


def projection_axes(
    angles_deg=None, *, euler_deg=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors, in the object's ``(z, y, x)`` frame, of each image's row and column axes.

    Parameters
    ----------
    angles_deg : array-like of shape (P,), optional
        Single-axis tilt angles [degrees] about the vertical image axis.
    euler_deg : array-like of shape (P, 3), optional
        ``(phi, theta, psi)`` per image [degrees] for general geometry
        (:func:`euler_to_matrix_xyz`). Give one of the two.

    Returns
    -------
    row_dirs, col_dirs, beam_dirs : ndarray of shape (P, 3)
        ``(z, y, x)`` components. Image pixel ``(row, col)`` relative to the centre samples the
        object line ``row * row_dir + col * col_dir + t * beam_dir``.
    """
    if (angles_deg is None) == (euler_deg is None):
        raise ValueError("give either angles_deg (single-axis tilt) or euler_deg (P x 3)")
    if euler_deg is None:
        th = np.deg2rad(np.asarray(angles_deg, dtype=np.float64).ravel())
        eul = np.stack([np.zeros_like(th), np.rad2deg(th), np.zeros_like(th)], axis=1)
    else:
        eul = np.asarray(euler_deg, dtype=np.float64)
        if eul.ndim != 2 or eul.shape[1] != 3:
            raise ValueError(
                f"euler_deg must have shape (n_images, 3) holding (phi, theta, psi) in degrees; "
                f"got {eul.shape}"
            )
    rows, cols, beams = [], [], []
    for phi, theta, psi in eul:
        r = euler_to_matrix_xyz(phi, theta, psi)
        # image col = e_x . R r, row = e_y . R r, beam = e_z . R r; convert xyz -> zyx
        cols.append(r[0, ::-1])
        rows.append(r[1, ::-1])
        beams.append(r[2, ::-1])
    return np.array(rows), np.array(cols), np.array(beams)
