"""Bond-orientational order (Steinhardt Q4, Q6 with Lechner-Dellago averaging) via freud."""

from __future__ import annotations

import functools

import numpy as np

from ..simulate import fcc_lattice, stacked_particle

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


#: The crystals whose ideal (Q4, Q6) points :func:`classify_local_structure` knows.
LOCAL_STRUCTURES = ("fcc", "hcp", "bcc")


@functools.cache
def _ideal(kind: str, average: bool) -> tuple[float, float]:
    """Q4, Q6 of the bulk of an ideal fcc, hcp or bcc crystal (computed, not tabulated), all
    with Pt's bond length (2.766 A) and the study's cutoff (3.416 A: 1.235 bond lengths, which
    holds a bcc atom's 8 nearest and 6 next-nearest neighbours, 1.155 bond lengths away)."""

    if kind == "bcc":
        pos = fcc_lattice(2.766 * 2.0 / np.sqrt(3.0), 14.0, lattice="bcc")
    else:
        seq = "ABCABCABCABC" if kind == "fcc" else "ABABABABABAB"
        pos = stacked_particle(seq, lattice_constant_A=3.912, lateral_extent_A=14.0).positions
    q4, q6 = steinhardt_q4_q6(pos, cutoff_A=STUDY_BOO_CUTOFF_A, average=average)
    centre = pos.mean(axis=0)
    core = np.linalg.norm(pos - centre, axis=1) < 4.0
    return float(np.median(q4[core])), float(np.median(q6[core]))


def classify_local_structure(q4, q6, *, average: bool = True, max_distance: float = 0.06):
    """``fcc``, ``hcp``, ``bcc`` or ``other`` by the nearest ideal point in the (Q4, Q6)
    plane.

    Ideal points come from perfect fcc, hcp and bcc crystals computed the same way (the
    cutoff must lie between the second and third neighbour shells of bcc, as the study's does
    for its bond length: 1.235 bond lengths); atoms farther than ``max_distance`` from every
    one (surface atoms, disorder) are ``other``.

    Returns
    -------
    labels : ndarray of str
    distance : ndarray of float
        Distance to the nearest ideal point.
    """
    q = np.stack([np.asarray(q4, float), np.asarray(q6, float)], axis=1)
    d = np.stack(
        [np.linalg.norm(q - np.array(_ideal(k, average)), axis=1) for k in LOCAL_STRUCTURES],
        axis=1,
    )
    nearest = np.argmin(np.nan_to_num(d, nan=np.inf), axis=1)
    lab = np.array(LOCAL_STRUCTURES, dtype=object)[nearest]
    dist = d[np.arange(len(q)), nearest]
    lab[~(dist <= max_distance)] = "other"  # NaN (no neighbours) too
    return lab.astype(str), dist
