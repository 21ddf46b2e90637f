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
