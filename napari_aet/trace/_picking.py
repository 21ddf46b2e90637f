"""Picking atoms for manual edits: the intensity maximum along a view ray or near a point."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._tracer import fit_peaks


def _refine(volume: np.ndarray, pos_vox: np.ndarray, search_vox: int = 1) -> np.ndarray:
    """Hill-climb to the nearest voxel maximum, then a sub-voxel Gaussian fit."""
    shape = np.array(volume.shape)
    p = np.clip(np.round(pos_vox).astype(int), 1, shape - 2)
    for _ in range(20):
        lo = np.maximum(p - search_vox, 0)
        hi = np.minimum(p + search_vox + 1, shape)
        box = volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        q = lo + np.array(np.unravel_index(np.argmax(box), box.shape))
        if np.array_equal(q, p):
            break
        p = np.clip(q, 1, shape - 2)
    sub, _, _ = fit_peaks(volume, p[None])
    return sub[0]


def pick_along_ray(
    volume,
    start_vox,
    end_vox,
    *,
    step_vox: float = 0.25,
    occupied_vox=None,
    exclude_radius_vox: float = 0.0,
) -> np.ndarray | None:
    """Sub-voxel position [voxels] of the intensity maximum along the segment start-end.

    The tomogram is sampled (trilinear) every ``step_vox`` along the ray, the brightest sample is
    climbed to its voxel maximum and refined by a Gaussian fit. Samples within
    ``exclude_radius_vox`` of an ``occupied_vox`` position (the atoms already there) are
    skipped, so a ray that grazes an existing atom finds the empty site behind or before it.
    None if the ray misses the volume (or every sample is occupied).
    """
    vol = np.asarray(volume, np.float32)
    a = np.asarray(start_vox, np.float64)
    b = np.asarray(end_vox, np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return None
    n = max(int(np.linalg.norm(b - a) / step_vox) + 1, 2)
    pts = a[None] + np.linspace(0, 1, n)[:, None] * (b - a)[None]
    inside = ((pts >= 0) & (pts <= np.array(vol.shape) - 1)).all(axis=1)
    if not inside.any():
        return None
    pts = pts[inside]
    if occupied_vox is not None and len(occupied_vox) and exclude_radius_vox > 0:
        from scipy.spatial import cKDTree

        d, _ = cKDTree(np.asarray(occupied_vox, np.float64)).query(pts)
        pts = pts[d > exclude_radius_vox]
        if not len(pts):
            return None
    vals = ndimage.map_coordinates(vol, pts.T, order=1)
    return _refine(vol, pts[int(np.argmax(vals))])


def pick_near_point(volume, point_vox, *, radius_vox: float = 3.0) -> np.ndarray:
    """Sub-voxel position [voxels] of the intensity maximum within ``radius_vox`` of a point."""
    vol = np.asarray(volume, np.float32)
    c = np.round(np.asarray(point_vox, np.float64)).astype(int)
    r = int(np.ceil(radius_vox))
    lo = np.maximum(c - r, 0)
    hi = np.minimum(c + r + 1, vol.shape)
    box = vol[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    g = np.stack(np.meshgrid(*[np.arange(lo[k], hi[k]) for k in range(3)], indexing="ij"), -1)
    far = ((g - np.asarray(point_vox)) ** 2).sum(-1) > radius_vox**2
    box = np.where(far, -np.inf, box)
    q = lo + np.array(np.unravel_index(np.argmax(box), box.shape))
    return _refine(vol, q)


def _ray_distances(positions, start, end) -> tuple[np.ndarray, np.ndarray]:
    """Each position's distance along the ray from ``start`` and its perpendicular distance."""
    p = np.asarray(positions, np.float64).reshape(-1, 3)
    a = np.asarray(start, np.float64)
    d = np.asarray(end, np.float64) - a
    d /= np.linalg.norm(d) + 1e-30
    rel = p - a
    along = rel @ d
    return along, np.linalg.norm(rel - np.outer(along, d), axis=1)


def front_most_on_ray(positions, start, end, *, radius: float) -> int | None:
    """Index of the atom the user sees under the cursor: of the positions within ``radius``
    (perpendicular distance, the drawn point's radius) of the line start-end, the one nearest
    ``start`` (the camera side), or None. A click anywhere on a drawn atom picks that atom, not
    one hidden behind it."""
    along, dist = _ray_distances(positions, start, end)
    hit = np.nonzero(dist <= radius)[0]
    if not len(hit):
        return None
    return int(hit[np.argmin(along[hit])])
