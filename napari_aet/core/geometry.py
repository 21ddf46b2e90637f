"""Small geometric helpers shared by the stages."""

from __future__ import annotations

import numpy as np

#: The 12 nearest-neighbour steps of an fcc lattice in cubic lattice units.
FCC_STEPS = (
    np.array(
        [[a, b, 0] for a in (-1, 1) for b in (-1, 1)]
        + [[a, 0, b] for a in (-1, 1) for b in (-1, 1)]
        + [[0, a, b] for a in (-1, 1) for b in (-1, 1)]
    )
    * 0.5
)


def median_nearest_distance(points, tree=None) -> float:
    """The median over ``points`` (N x 3, N >= 2) of each one's distance to its nearest other
    point: a quick bond length for the packing rules, not noise-corrected (see
    :func:`napari_aet.analysis.nearest_neighbour_distance`). ``tree``: the points' KD-tree when
    the caller has one."""
    from scipy.spatial import cKDTree

    points = np.asarray(points, float).reshape(-1, 3)
    if len(points) < 2:
        raise ValueError(f"{len(points)} point(s): a nearest-neighbour distance needs two or more")
    tree = cKDTree(points) if tree is None else tree
    return float(np.median(tree.query(points, k=2)[0][:, 1]))


def in_plane_basis(normal) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors ``(e1, e2)`` spanning the plane normal to ``normal`` (``e2 = n x e1``).

    The choice is deterministic for a given normal, so every stage that uses it (the twinned
    particle builder, the stacking analysis, the layer fits) agrees on in-plane angles.
    """
    n = np.asarray(normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    helper = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    e1 = np.cross(n, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(n, e1)


def images_and_angles(images, angles_deg, *, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """A tilt series ``(n_images, rows, cols)`` as ``dtype`` and its angles as a float64
    vector, with a clear error for another shape or another number of angles."""
    arr = np.asarray(images, dtype)
    if arr.ndim != 3:
        raise ValueError(f"expected a tilt series (n_images, rows, cols); got shape {arr.shape}")
    ang = np.asarray(angles_deg, np.float64).ravel()
    if len(ang) != len(arr):
        raise ValueError(f"{len(ang)} angles for {len(arr)} images; give one angle per image")
    return arr, ang
