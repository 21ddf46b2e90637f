"""In-plane orientations of close-packed layers: zone axes, and the twist between two clusters."""

from __future__ import annotations

import numpy as np

from ..core.geometry import in_plane_basis
from ._lattice import _FCC_STEPS
from ._stacking import (
    _check_positions,
    _circular_mean_60,
    _wrap60,
    bond_vectors,
    nearest_neighbour_distance,
)


def _bond_orientation(pos, normal, d_nn) -> float:
    """6-fold mean in-plane orientation [rad] of the nearest-neighbour bonds of ``pos``."""
    e1, e2 = in_plane_basis(normal)
    if len(pos) < 2:
        return float("nan")
    _, b = bond_vectors(pos, d_nn)
    b = b[np.abs(b @ normal) < 0.3 * d_nn]
    if not len(b):
        return float("nan")
    return _circular_mean_60(np.arctan2(b @ e2, b @ e1))


def in_plane_zone_axes(positions_A, normal, d_nn: float | None = None) -> dict[str, np.ndarray]:
    """The close-packed directions lying in the (111) layers: the views that show the layers,
    the interface and the twin boundaries edge-on, with the atom columns end-on.

    The in-plane nearest-neighbour bonds of an fcc (or hcp) stacking point along the three
    <110> directions of the layer (6-fold, so a (111) twin, a 60 deg turn about the normal,
    shares them); the <112> directions lie 30 deg from them. Found from the atoms' own bonds,
    so they hold for a particle in any orientation.

    Parameters
    ----------
    positions_A : ndarray of shape (N, 3)
        Atom positions ``(z, y, x)`` [A].
    normal : array-like of shape (3,)
        The stacking direction [111] (``StackingResult.normal``).
    d_nn : float, optional
        Nearest-neighbour distance [A]; measured from the atoms when omitted.

    Returns
    -------
    dict
        ``"<110>"`` and ``"<112>"``: arrays of shape (3, 3), three unit vectors ``(z, y, x)``
        each, perpendicular to ``normal``, 60 deg apart. ValueError when the atoms have no
        in-plane bonds (not a layered crystal).
    """
    pos = _check_positions(positions_A, minimum=3)
    n = np.asarray(normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    if d_nn is None:
        d_nn = nearest_neighbour_distance(pos)
    theta = _bond_orientation(pos, n, d_nn)
    if not np.isfinite(theta):
        raise ValueError(
            "no nearest-neighbour bonds lie in the (111) layers: the atoms do not form "
            "close-packed layers about this normal"
        )
    e1, e2 = in_plane_basis(n)
    out = {}
    for name, offset in (("<110>", 0.0), ("<112>", np.pi / 6)):
        t = theta + offset + np.arange(3) * np.pi / 3
        out[name] = np.cos(t)[:, None] * e1 + np.sin(t)[:, None] * e2
    return out


def cluster_rotation_deg(positions_A, normal, clusters, *, d_nn: float) -> float:
    """Rotation [degrees] of cluster 1's hexagonal nets relative to cluster 0's about ``normal``,
    from the 6-fold mean orientation of the in-plane nearest-neighbour bonds inside each."""
    pos = np.asarray(positions_A, float)
    clusters = np.asarray(clusters)
    means = [_bond_orientation(pos[clusters == c], normal, d_nn) for c in (0, 1)]
    if not all(np.isfinite(means)):
        return float("nan")
    return float(np.rad2deg(_wrap60(means[1] - means[0])))


def _net_orientation_of_fit(rotation, normal) -> tuple[float, float]:
    """In-plane orientation [rad, modulo 60 degrees] of a fitted fcc lattice's <110> bonds in
    its {111} plane closest to ``normal``, and the angle [deg] between that <111> and
    ``normal``."""
    r = np.asarray(rotation, float)
    n = np.asarray(normal, float)
    dirs = np.array([[i, j, 1] for i in (-1, 1) for j in (-1, 1)]) / np.sqrt(3)  # 4 <111> axes
    lab = dirs @ r.T
    c = lab @ n
    best = int(np.argmax(np.abs(c)))
    tilt = float(np.rad2deg(np.arccos(min(1.0, abs(c[best])))))
    steps = _FCC_STEPS / np.linalg.norm(_FCC_STEPS, axis=1, keepdims=True)
    inplane = steps[np.abs(steps @ dirs[best]) < 1e-9]  # the 6 bonds in that (111) plane
    v = inplane @ r.T
    e1, e2 = in_plane_basis(n)
    return _circular_mean_60(np.arctan2(v @ e2, v @ e1)), tilt


def lattice_twist_deg(rotation_0, rotation_1, normal) -> tuple[float, float]:
    """Rotation [degrees] of lattice 1 relative to lattice 0 about ``normal`` (their common
    [111]) from two fitted fcc lattices (``LatticeFit.rotation``), as the study measures the twist,
    and the largest angle [deg] between ``normal`` and either lattice's own [111].

    The sign is that of :func:`napari_aet.simulate.stacked_particle`'s ``twist_deg``: positive
    for a rotation of cluster 1 by ``+angle`` about ``normal`` (pointing from cluster 0 to
    cluster 1) as ``scipy.spatial.transform.Rotation.from_rotvec(angle * normal)`` applies it
    to ``(z, y, x)`` vectors. Twin variants (60 degrees about [111]) count as no rotation.
    """
    t0, tilt0 = _net_orientation_of_fit(rotation_0, normal)
    t1, tilt1 = _net_orientation_of_fit(rotation_1, normal)
    return float(np.rad2deg(_wrap60(t1 - t0))), max(tilt0, tilt1)
