"""Bond-orientational order (Steinhardt Q4, Q6 with Lechner-Dellago averaging) via freud."""

from __future__ import annotations

import functools

import numpy as np

from ..simulate import stacked_particle

#: The study's Q4/Q6 neighbour cutoff [A] for Pt (between the first and second neighbour shells).
STUDY_BOO_CUTOFF_A = 3.416


def _box_and_points(positions_A: np.ndarray, r_max: float):
    import freud

    pos = np.asarray(positions_A, np.float64)
    centre = (pos.max(axis=0) + pos.min(axis=0)) / 2
    extent = float(np.ptp(pos, axis=0).max()) + 4 * r_max + 1.0
    box = freud.box.Box.cube(2 * extent)  # big enough that nothing wraps
    return box, (pos - centre).astype(np.float32)


def steinhardt_q4_q6(positions_A, *, cutoff_A: float = STUDY_BOO_CUTOFF_A, average: bool = True):
    """Per-atom Q4 and Q6 (Steinhardt et al. 1983), averaged over the first shell
    (Lechner & Dellago 2008) when ``average``, with neighbours within ``cutoff_A``.

    The study's cutoff, 3.416 A, lies between the nearest and next-nearest neighbour distances
    of Pt. Computed with freud's ``Steinhardt`` in a non-periodic (large) box.

    Returns
    -------
    q4, q6 : ndarray of shape (N,)
        NaN for atoms with no neighbour within the cutoff.
    """
    import freud

    box, pts = _box_and_points(positions_A, cutoff_A)
    st = freud.order.Steinhardt(l=[4, 6], average=average)
    st.compute((box, pts), neighbors={"r_max": float(cutoff_A)})
    q = np.asarray(st.particle_order, dtype=np.float64)
    # an atom without neighbours within the cutoff has no bond order: NaN, never 0
    from scipy.spatial import cKDTree

    counts = cKDTree(pts).query_ball_point(pts, float(cutoff_A), return_length=True)
    lonely = counts <= 1
    q[lonely] = np.nan
    return q[:, 0], q[:, 1]


@functools.cache
def _ideal(kind: str, average: bool) -> tuple[float, float]:
    """Q4, Q6 of the bulk of an ideal fcc or hcp crystal (computed, not tabulated)."""

    seq = "ABCABCABCABC" if kind == "fcc" else "ABABABABABAB"
    s = stacked_particle(seq, lattice_constant_A=3.912, lateral_extent_A=14.0)
    q4, q6 = steinhardt_q4_q6(s.positions, cutoff_A=STUDY_BOO_CUTOFF_A, average=average)
    centre = s.positions.mean(axis=0)
    core = np.linalg.norm(s.positions - centre, axis=1) < 4.0
    return float(np.median(q4[core])), float(np.median(q6[core]))


def classify_local_structure(q4, q6, *, average: bool = True, max_distance: float = 0.06):
    """``fcc``, ``hcp`` or ``other`` by the nearest ideal point in the (Q4, Q6) plane.

    Ideal points come from perfect fcc and hcp crystals computed the same way; atoms farther
    than ``max_distance`` from both (surface atoms, disorder) are ``other``.

    Returns
    -------
    labels : ndarray of str
    distance : ndarray of float
        Distance to the nearest ideal point.
    """
    f = np.array(_ideal("fcc", average))
    h = np.array(_ideal("hcp", average))
    q = np.stack([np.asarray(q4), np.asarray(q6)], axis=1)
    df = np.linalg.norm(q - f, axis=1)
    dh = np.linalg.norm(q - h, axis=1)
    lab = np.where(df <= dh, "fcc", "hcp").astype(object)
    dist = np.minimum(df, dh)
    lab[~(dist <= max_distance)] = "other"  # NaN (no neighbours) too
    return lab.astype(str), dist
