"""Volumes rendered from atom models (Gaussian atoms), e.g. ideal tomograms and training targets."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def render_atom_volume(
    positions_A,
    shape: tuple[int, int, int],
    *,
    voxel_size_A: float,
    sigma_A: float = 0.45,
    weights=None,
) -> np.ndarray:
    """A ``(z, y, x)`` volume with a normalised 3D Gaussian of ``sigma_A`` at every atom.

    Atoms are spread onto their eight neighbouring voxels (trilinear weights, so sub-voxel
    positions are kept) and the result is blurred with the Gaussian; each atom integrates to its
    weight (default 1).
    """
    pos = np.asarray(positions_A, np.float64).reshape(-1, 3) / voxel_size_A
    w = np.ones(len(pos)) if weights is None else np.asarray(weights, np.float64)
    vol = np.zeros(shape, np.float64)
    base = np.floor(pos).astype(np.int64)
    frac = pos - base
    lim = np.array(shape)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                ww = w.copy()
                ww *= frac[:, 0] if dz else 1 - frac[:, 0]
                ww *= frac[:, 1] if dy else 1 - frac[:, 1]
                ww *= frac[:, 2] if dx else 1 - frac[:, 2]
                idx = base + np.array([dz, dy, dx])
                ok = ((idx >= 0) & (idx < lim)).all(axis=1)
                np.add.at(vol, (idx[ok, 0], idx[ok, 1], idx[ok, 2]), ww[ok])
    return ndimage.gaussian_filter(vol, sigma_A / voxel_size_A).astype(np.float32)
