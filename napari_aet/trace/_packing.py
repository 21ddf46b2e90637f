"""The packing rules of the images' verdicts (:mod:`._verdicts`): where a traced atom or a
trial stands among the others, counted in the atoms' median nearest-neighbour distance: a full
site of the lattice, a trial hanging off the particle, a faint atom held by the lattice, two
atoms in one place, a crystal or a glass."""

from __future__ import annotations

import numpy as np

from ..core.geometry import first_shell, median_nearest_distance
from ._tracer import SITE_NEIGHBOUR_RADIUS, held_by_the_lattice
from ._trials import TRIAL_SPACING, off_lattice_of_close_pairs

#: An alloy crystal's trial joins only where at least this many of the atoms kept stand within
#: :data:`~._tracer.SITE_NEIGHBOUR_RADIUS` nearest-neighbour distances of it: a site of the
#: particle's own packing (a surface site of a facet has 6-9, an edge's 7, a vertex's 6) and not
#: the hollow above a facet (3 on a {111} facet, 4 on a {100} one), where the image model's
#: misfit of the surface's heavy atoms leaves density that clears the significance bar by
#: chance. The atom-by-atom join holds also where the verdicts on the traced atoms wait
#: (:data:`~._verdicts.HELD_VERDICT_SIGNIFICANCE`): a trial judged by its own significance is
#: not a coin flip because the median atom is. Independent 128-px Fe-Pt series
#: (docs/benchmarks.md, fifty-fourth session): of the trials at >= 5 standard errors and above
#: the add bar, the real Fe atoms had 4-12 such neighbours (two with 4 lost), the false ones
#: 2-3. Not in an amorphous particle (:data:`~._verdicts.TRACER_SHARE_MIN_CRYSTAL`): a random
#: Ni-Pd-Pt packing at the study's counts lost 23 real Ni atoms to it (12.02 -> 18.99 %).
ALLOY_TRIAL_MIN_NEIGHBOURS = 5
#: A full site: at least this many atoms within :data:`~._tracer.SITE_NEIGHBOUR_RADIUS`
#: nearest-neighbour distances (12 inside an fcc or hcp crystal, 14 in bcc's first two shells,
#: 7-9 on a facet) holds an atom unless the images show nearly nothing there
#: (:data:`~._verdicts.FULL_SITE_AMPLITUDE`) ...
FULL_SITE_NEIGHBOURS = 10
#: ... and where the fit left it within this many nearest-neighbour distances of the site: a
#: faint atom the fit took off its site (1.9 A on an independent Ru series at a tenth of the
#: counts) is not at the full site any more.
FULL_SITE_SHIFT = 0.25
#: One element in a dense packing: a trial joins only with at least this many of the atoms
#: kept within :data:`~._tracer.SITE_NEIGHBOUR_RADIUS` nearest-neighbour distances of where
#: the fit put it (an adatom in a hollow of a {111} facet has 3): a metal atom does not hang
#: off a particle by one or two bonds, or float beside it, where the image model's misfit of
#: the surface leaves a fraction of an atom (:func:`_hanging_trials`) ...
TRIAL_MIN_NEIGHBOURS = 3
#: ... when the kept atoms' median count of such neighbours is at least this (8-12 in every
#: crystal traced from the independent series, 3 in an amorphous particle, whose shorter
#: median bond leaves fewer atoms inside the radius, and in a model that misses half the
#: atoms: there a real atom's neighbours may be missing). Final models of independent runs
#: (docs/benchmarks.md, fifty-eighth session): in 63 of one element with a dense packing,
#: the refinement had added 65 atoms with fewer than 3 such neighbours, every one false (21
#: on a faulted 256-px dumbbell); in the 5 sparse ones (amorphous particles, a 256-px one at
#: a tenth of the counts) 104 of 178 were real.
DENSE_MEDIAN_NEIGHBOURS = 6
#: One element in a dense packing: an atom with at most this many neighbours within
#: :data:`~._tracer.SITE_NEIGHBOUR_RADIUS` first-shell bonds in the final positions (under
#: half a shell: an adatom, an atom on a step's edge, or one hanging beside a facet) stays only
#: at the amplitude a trial joins at (:func:`_sparse_faint_atoms`): where the packing does not
#: vouch for an atom, the images must show it as clearly as a new one. Bonds counted from the
#: first shell (:func:`~napari_aet.core.geometry.first_shell`), not the median nearest
#: distance, which a model's position noise shortens (2.52 against 2.85 A on a 256-px
#: icosahedron at a third of the counts, whose real facet atoms then had too few
#: neighbours). Final models of independent runs (docs/benchmarks.md, sixty-seventh
#: session): a faulted 256-px dumbbell at a third of the counts had 9 false and 2 real such
#: atoms under 0.6 of the median atom, the icosahedron 19 false and none real, six other
#: 128-px and 256-px finals none; a Ta glass at a tenth lost 2 false atoms to it, no real one.
SPARSE_SITE_NEIGHBOURS = 5
#: Two kept atoms closer than this many nearest-neighbour distances are one (the fainter goes).
DUPLICATE_SPACING = 0.6
#: An atom that only an alloy crystal's lower drop bar keeps (under
#: :data:`~._verdicts.DROP_AMPLITUDE`; :func:`~._verdicts._faint_drop_bar`) stays only with
#: at least this many neighbours over that bar within :data:`~._tracer.SITE_NEIGHBOUR_RADIUS`
#: nearest-neighbour distances of where it started: an atom inside the crystal or on a facet
#: (a {111} facet's atom has 9, a {100} one's 8, an edge's 7), not one just outside the
#: surface, where the image model's misfit of the surface leaves a fraction of an atom.
#: Independent 128-px series (docs/benchmarks.md, fifty-fifth session): a Pd-Pt crystal at a
#: third of the study's counts kept 7 false atoms one bond outside its surface under the
#: fixed bar (amplitudes 0.26-0.34 of the median Pd, 3-6 such neighbours where they ended),
#: a random Fe-Pt at the study's counts 2 real Fe (0.07-0.3, 9 each).
FAINT_KEEP_MIN_NEIGHBOURS = 7


def _squeezed_atoms(positions) -> np.ndarray:
    """Which atoms of a dense packing stand too close to another to both be there and off
    the lattice their neighbours' bonds predict: :func:`~._trials.off_lattice_of_close_pairs`
    on the positions alone (pairs closer than :data:`~._trials.CLOSE_PAIR` nearest-neighbour
    distances; the less supported one goes where the support differs by at least
    :data:`~._trials.SUPPORT_MARGIN`). None when the atoms' median count of neighbours within
    :data:`~._tracer.SITE_NEIGHBOUR_RADIUS` nearest-neighbour distances is under
    :data:`DENSE_MEDIAN_NEIGHBOURS` (a glass, whose atoms few bonds predict, or a model that
    misses many atoms). The amplitudes do not choose: the two share one atom's density (on
    an independent 256-px Pt icosahedron the false ones fit at 0.65 of the median atom, their
    real partners at 0.86), and the fainter of each pair was as often real as false."""
    pos = np.asarray(positions, float).reshape(-1, 3)
    if _dense_packing_radius(pos) is None:
        return np.zeros(len(pos), bool)
    return off_lattice_of_close_pairs(pos)


def _sparse_faint_atoms(positions, amplitudes, bar: float) -> np.ndarray:
    """Which atoms of a dense packing (:func:`_dense_packing_radius`) have at most
    :data:`SPARSE_SITE_NEIGHBOURS` others within :data:`~._tracer.SITE_NEIGHBOUR_RADIUS`
    first-shell bonds and an amplitude (over the median atom's) under ``bar``; an atom
    without an amplitude (NaN) stays."""
    from scipy.spatial import cKDTree

    pos = np.asarray(positions, float).reshape(-1, 3)
    tree = cKDTree(pos) if len(pos) else None
    if _dense_packing_radius(pos, tree) is None:
        return np.zeros(len(pos), bool)
    bond, _ = first_shell(pos, tree)
    n = tree.query_ball_point(pos, SITE_NEIGHBOUR_RADIUS * bond, return_length=True) - 1
    return (n <= SPARSE_SITE_NEIGHBOURS) & (np.asarray(amplitudes, float) < bar)


def _dense_packing_radius(points, tree=None) -> float | None:
    """The neighbour radius (:data:`~._tracer.SITE_NEIGHBOUR_RADIUS` median nearest-neighbour
    distances) of ``points`` when they are a dense packing (their median count of neighbours
    within it at least :data:`DENSE_MEDIAN_NEIGHBOURS`); None otherwise, or for fewer than
    twice that many points. ``tree``: the points' KD-tree when the caller has one."""
    from scipy.spatial import cKDTree

    pts = np.asarray(points, float).reshape(-1, 3)
    if len(pts) < 2 * DENSE_MEDIAN_NEIGHBOURS:
        return None
    tree = cKDTree(pts) if tree is None else tree
    radius = SITE_NEIGHBOUR_RADIUS * median_nearest_distance(pts, tree)
    n = tree.query_ball_point(pts, radius, return_length=True) - 1
    return radius if np.median(n) >= DENSE_MEDIAN_NEIGHBOURS else None


def _full_sites(start, n0: int, site_trials: bool, fitted=None) -> np.ndarray:
    """Which of ``start`` (``n0`` atoms, then trials) stand at a full site of the atoms'
    packing: at least :data:`FULL_SITE_NEIGHBOURS` of the ``n0`` atoms within
    :data:`~._tracer.SITE_NEIGHBOUR_RADIUS` of their median nearest-neighbour distance and
    none closer than :data:`~._trials.TRIAL_SPACING` of it (not a pair squeezed into one
    site), and, given the ``fitted`` positions, whose fit stayed within
    :data:`FULL_SITE_SHIFT` of it (an atom the fit took off its site is not held there).
    Trials count only when they are empty sites of the lattice (``site_trials``)."""
    from scipy.spatial import cKDTree

    start = np.asarray(start, float).reshape(-1, 3)
    full = np.zeros(len(start), bool)
    atoms = start[:n0]
    if n0 < FULL_SITE_NEIGHBOURS + 1:
        return full
    tree = cKDTree(atoms)
    d_atoms = tree.query(atoms, k=2)[0][:, 1]  # each atom's nearest other atom
    d_nn = float(np.median(d_atoms))
    points = start if site_trials else atoms
    n_near = np.asarray(
        tree.query_ball_point(points, SITE_NEIGHBOUR_RADIUS * d_nn, return_length=True), int
    )
    n_near[:n0] -= 1  # an atom is not its own neighbour
    nearest = np.r_[d_atoms, tree.query(points[n0:])[0]]
    full[: len(points)] = (n_near >= FULL_SITE_NEIGHBOURS) & (nearest >= TRIAL_SPACING * d_nn)
    if fitted is not None:
        moved = np.linalg.norm(np.asarray(fitted, float).reshape(-1, 3) - start, axis=1)
        full &= moved <= FULL_SITE_SHIFT * d_nn
    return full


def _hanging_trials(positions, keep, n0: int) -> np.ndarray:
    """Which kept trials (``positions[n0:]``) hang off a dense packing: fewer than
    :data:`TRIAL_MIN_NEIGHBOURS` kept atoms within :data:`~._tracer.SITE_NEIGHBOUR_RADIUS`
    of their median nearest-neighbour distance, peeled until none is left (two or three
    floating trials do not hold each other up). None when the kept atoms' median count of
    such neighbours is under :data:`DENSE_MEDIAN_NEIGHBOURS` (a glass, or a model that misses
    many atoms)."""
    from scipy.spatial import cKDTree

    positions = np.asarray(positions, float).reshape(-1, 3)
    keep = np.asarray(keep, bool).copy()
    out = np.zeros(len(positions), bool)
    radius = _dense_packing_radius(positions[keep])
    if radius is None:
        return out
    while True:
        idx = np.nonzero(keep)[0]
        n = cKDTree(positions[idx]).query_ball_point(positions[idx], radius, return_length=True)
        hang = idx[(idx >= n0) & (n - 1 < TRIAL_MIN_NEIGHBOURS)]
        if not len(hang):
            return out
        keep[hang] = False
        out[hang] = True


def _held_under_the_bar(positions, amplitudes, kept, bar: float) -> np.ndarray:
    """Which ``kept`` atoms stay: those at or above ``bar`` (the fixed drop bar), and those
    under it (kept by an alloy crystal's lower bar, :func:`_faint_drop_bar`) with at least
    :data:`FAINT_KEEP_MIN_NEIGHBOURS` neighbours among the atoms over it where they started
    (:func:`~._tracer.held_by_the_lattice`: those so held counting for each other)."""
    out = np.asarray(kept, bool).copy()
    under = out & (np.asarray(amplitudes) < bar)
    sure = out & ~under
    if sure.sum() >= 4:  # too few over the bar to tell a lattice: every kept atom stays
        out[under] = held_by_the_lattice(
            positions[sure], positions[under], FAINT_KEEP_MIN_NEIGHBOURS
        )
    return out


def _nearest_atom_of_trials(atoms_A, trials_A) -> np.ndarray:
    """Each of ``trials_A``'s distance to its nearest of ``atoms_A``, in the atoms' median
    nearest-neighbour distances (infinities for fewer than 4 atoms)."""
    from scipy.spatial import cKDTree

    trials = np.asarray(trials_A, float).reshape(-1, 3)
    atoms = np.asarray(atoms_A, float).reshape(-1, 3)
    if len(atoms) < 4 or not len(trials):
        return np.full(len(trials), np.inf)
    tree = cKDTree(atoms)
    d_nn = median_nearest_distance(atoms, tree)
    return tree.query(trials)[0] / d_nn


def _on_the_lattice(atoms_A, trials_A, candidate) -> np.ndarray:
    """Which of the ``candidate`` trials stand on the atoms' packing: with at least
    :data:`ALLOY_TRIAL_MIN_NEIGHBOURS` neighbours (:func:`~._tracer.held_by_the_lattice`) among
    ``atoms_A`` and the trials already on it, grown until none joins (missed atoms come in
    patches: a missed surface atom's neighbours are often missed too)."""
    trials = np.asarray(trials_A, float).reshape(-1, 3)
    candidate = np.asarray(candidate, bool)
    on = np.zeros(len(trials), bool)
    on[candidate] = held_by_the_lattice(atoms_A, trials[candidate], ALLOY_TRIAL_MIN_NEIGHBOURS)
    return on


def _without_duplicates(positions, amplitudes, keep) -> np.ndarray:
    """Of two kept atoms closer than :data:`DUPLICATE_SPACING` nearest-neighbour distances,
    the fainter goes."""
    from scipy.spatial import cKDTree

    idx = np.nonzero(keep)[0]
    out = np.ones(len(positions), bool)
    if len(idx) < 4:
        return out
    pts = positions[idx]
    d_nn = median_nearest_distance(pts)
    for i, j in sorted(
        cKDTree(pts).query_pairs(DUPLICATE_SPACING * d_nn),
        key=lambda p: -max(amplitudes[idx[p[0]]], amplitudes[idx[p[1]]]),
    ):
        a, b = idx[i], idx[j]
        if out[a] and out[b]:
            out[a if amplitudes[a] < amplitudes[b] else b] = False
    return out


def _crystal_fraction(positions) -> float:
    """Fraction of the atoms whose bond order (Q4, Q6 with the study's cutoff per bond length)
    is nearest an ideal fcc, hcp or bcc point
    (:func:`napari_aet.analysis.classify_local_structure`)."""
    from ..analysis import classify_local_structure, nearest_neighbour_distance, steinhardt_q4_q6
    from ..analysis._crystal import BOO_CUTOFF_PER_BOND

    try:
        d_nn = nearest_neighbour_distance(positions)
    except ValueError:
        return 0.0
    q4, q6 = steinhardt_q4_q6(positions, cutoff_A=BOO_CUTOFF_PER_BOND * d_nn)
    labels, _ = classify_local_structure(q4, q6)
    return float(np.mean(labels != "other"))
