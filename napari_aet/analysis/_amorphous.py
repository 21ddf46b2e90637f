"""What amorphous analyses report: the radial distribution function and coordination numbers.

For a particle that does not form close-packed layers (amorphous or polycrystalline), the
crystal labels mean nothing; the pair distribution and each atom's coordination describe its
short-range order instead (with Q4/Q6, computed for every model).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, cKDTree


def radial_distribution(positions_A, *, r_max_A: float = 10.0, dr_A: float = 0.05):
    """Radial distribution function ``g(r)`` of a finite particle.

    Pair distances are histogrammed and divided by what an ideal gas of the particle's number
    density would give in the same finite shape, estimated by the same histogram of points
    drawn uniformly inside the particle's convex hull (so the surface's missing neighbours do
    not pull ``g(r)`` down at large ``r``).

    Returns
    -------
    r : ndarray
        Bin centres [A].
    g : ndarray
        ``g(r)``; 1 for an ideal gas.
    """
    pos = np.asarray(positions_A, float)
    n = len(pos)
    edges = np.arange(0.0, r_max_A + dr_A, dr_A)
    r = 0.5 * (edges[1:] + edges[:-1])
    if n < 4:
        return r, np.full(len(r), np.nan)
    pairs = cKDTree(pos).query_pairs(r_max_A, output_type="ndarray")
    d = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1)
    hist = np.histogram(d, bins=edges)[0].astype(float)
    try:
        hull = ConvexHull(pos)
    except Exception:  # noqa: BLE001 - flat or degenerate sets have no volume
        return r, np.full(len(r), np.nan)
    rng = np.random.default_rng(0)
    lo, hi = pos.min(0), pos.max(0)
    eq = hull.equations
    m = min(max(4 * n, 2000), 20000)
    ref = np.empty((0, 3))
    while len(ref) < m:
        cand = rng.uniform(lo, hi, (4 * m, 3))
        inside = (cand @ eq[:, :3].T + eq[:, 3] <= 1e-9).all(axis=1)
        ref = np.vstack([ref, cand[inside]])
    ref = ref[:m]
    rp = cKDTree(ref).query_pairs(r_max_A, output_type="ndarray")
    rd = np.linalg.norm(ref[rp[:, 0]] - ref[rp[:, 1]], axis=1)
    ideal = np.histogram(rd, bins=edges)[0].astype(float) * (n * (n - 1)) / (m * (m - 1))
    g = np.divide(hist, ideal, out=np.full(len(r), np.nan), where=ideal > 0)
    return r, g


def first_shell(r, g, nearest_A: float | None = None) -> tuple[float, float]:
    """Position [A] of the first peak of ``g(r)`` and of the minimum after it.

    ``nearest_A`` (the median of each atom's closest distance) bounds the search for the peak
    to 0.8-1.4 times it, so a small particle's noisy ``g(r)`` at large ``r`` is not taken."""
    g = np.nan_to_num(np.asarray(g, float))
    r = np.asarray(r, float)
    if not g.any():
        return float("nan"), float("nan")
    k = max(len(g) // 200, 1)
    smooth = np.convolve(g, np.ones(2 * k + 1) / (2 * k + 1), mode="same")
    window = np.ones(len(r), bool)
    if nearest_A is not None and np.isfinite(nearest_A):
        window = (r >= 0.8 * nearest_A) & (r <= 1.4 * nearest_A)
        if not window.any():
            return float("nan"), float("nan")
    peak = int(np.argmax(np.where(window, smooth, -np.inf)))
    after = smooth[peak:]
    # the first local minimum after the peak (or the lowest point within 1.6 peak radii)
    within = r[peak:] < 1.6 * r[peak]
    j = int(np.argmin(np.where(within, after, np.inf)))
    return float(r[peak]), float(r[peak + j])


def amorphous_summary(positions_A) -> tuple[dict, np.ndarray]:
    """``g(r)``, its first peak and minimum, and each atom's coordination (neighbours within
    the first minimum): a summary dict for ``analysis.json`` and the per-atom coordination."""
    pos = np.asarray(positions_A, float)
    r, g = radial_distribution(pos)
    nearest, tree = None, cKDTree(pos) if len(pos) > 1 else None
    if tree is not None:
        d, _ = tree.query(pos, k=2)
        nearest = float(np.median(d[:, 1]))
    peak, cut = first_shell(r, g, nearest)
    coord = np.full(len(pos), -1, np.int64)
    if np.isfinite(cut) and tree is not None:
        coord = tree.query_ball_point(pos, cut, return_length=True) - 1
    values, counts = np.unique(coord[coord >= 0], return_counts=True)
    hist = {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}
    return (
        {
            "rdf_r_A": r.round(4).tolist(),
            "rdf_g": [None if not np.isfinite(v) else round(float(v), 5) for v in g],
            "rdf_first_peak_A": peak,
            "rdf_first_minimum_A": cut,
            "coordination_mean": float(coord[coord >= 0].mean()) if (coord >= 0).any() else None,
            "coordination_histogram": hist,
        },
        coord,
    )
