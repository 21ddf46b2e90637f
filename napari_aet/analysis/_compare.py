"""Comparison of two atom models: common atoms, identification error, precision."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class ModelComparison:
    """Result of :func:`compare_atom_models`.

    Attributes
    ----------
    pairs : ndarray of shape (K, 2)
        Indices ``(reference, test)`` of the common atoms.
    deviations_A : ndarray of shape (K, 3)
        ``test - reference`` positions of the common atoms [A].
    n_reference, n_test : int
    """

    pairs: np.ndarray
    deviations_A: np.ndarray
    n_reference: int
    n_test: int

    @property
    def n_common(self) -> int:
        return len(self.pairs)

    @property
    def found_fraction(self) -> float:
        """Share of reference atoms that have a partner in the test model."""
        return self.n_common / max(self.n_reference, 1)

    @property
    def false_fraction(self) -> float:
        """Share of test atoms without a partner (false atoms), relative to the reference."""
        return (self.n_test - self.n_common) / max(self.n_reference, 1)

    @property
    def identification_error(self) -> float:
        """Uncommon atoms of both models over the reference count (the study's definition)."""
        return (self.n_reference - self.n_common + self.n_test - self.n_common) / max(
            self.n_reference, 1
        )

    @property
    def rmsd_A(self) -> float:
        """Root-mean-square 3D deviation of the common atoms [A]."""
        if not len(self.deviations_A):
            return float("nan")
        return float(np.sqrt((self.deviations_A**2).sum(axis=1).mean()))


def compare_atom_models(
    reference_A: np.ndarray, test_A: np.ndarray, *, radius_A: float = 1.0
) -> ModelComparison:
    """Pair atoms of two models: mutual nearest neighbours closer than ``radius_A``.

    Parameters
    ----------
    reference_A, test_A : ndarray of shape (N, 3) and (M, 3)
        Positions ``(z, y, x)`` [A].
    radius_A : float
        Largest distance [A] between partners (half the nearest-neighbour distance or less).
    """
    ref = np.asarray(reference_A, np.float64).reshape(-1, 3)
    tst = np.asarray(test_A, np.float64).reshape(-1, 3)
    if not len(ref) or not len(tst):
        return ModelComparison(np.empty((0, 2), int), np.empty((0, 3)), len(ref), len(tst))
    d_rt, j = cKDTree(tst).query(ref, distance_upper_bound=radius_A)
    d_tr, i = cKDTree(ref).query(tst, distance_upper_bound=radius_A)
    ok = np.isfinite(d_rt)
    ref_idx = np.nonzero(ok)[0]
    mutual = i[j[ok]] == ref_idx
    pairs = np.stack([ref_idx[mutual], j[ok][mutual]], axis=1)
    dev = tst[pairs[:, 1]] - ref[pairs[:, 0]]
    return ModelComparison(pairs, dev, len(ref), len(tst))


def register_translation(reference_A, test_A, *, radius_A: float = 1.5, iterations: int = 10):
    """Translation [A] that best overlays ``test_A`` on ``reference_A``: the centroid offset,
    then the mean offset of the pairs within ``radius_A``, iterated."""
    ref = np.asarray(reference_A, np.float64).reshape(-1, 3)
    tst = np.asarray(test_A, np.float64).reshape(-1, 3)
    shift = ref.mean(0) - tst.mean(0)
    tree = cKDTree(ref)
    for _ in range(iterations):
        d, j = tree.query(tst + shift, distance_upper_bound=radius_A)
        ok = np.isfinite(d)
        if ok.sum() < 4:
            break
        shift = shift + (ref[j[ok]] - (tst[ok] + shift)).mean(0)
    return shift


def register_rigid(reference_A, test_A, *, radius_A: float = 1.0, iterations: int = 3):
    """``test_A`` moved by the rotation and translation (no scale) that overlay it on
    ``reference_A``, and the rotation angle [deg]: :func:`register_translation`, then the
    least-squares rotation of the mutual pairs within ``radius_A`` (Kabsch), iterated. A global
    rotation of a tomogram is a gauge freedom of the alignment (the mean tilt angle and the
    tilt-axis direction), so it is removed before positions are compared with a truth."""
    ref = np.asarray(reference_A, np.float64).reshape(-1, 3)
    moved = np.asarray(test_A, np.float64).reshape(-1, 3)
    moved = moved + register_translation(ref, moved)
    total = np.eye(3)
    for _ in range(iterations):
        c = compare_atom_models(ref, moved, radius_A=radius_A)
        if len(c.pairs) < 4:
            break
        a, b = moved[c.pairs[:, 1]], ref[c.pairs[:, 0]]
        r = _kabsch(a, b)
        moved = (moved - a.mean(0)) @ r.T + b.mean(0)
        total = r @ total
    return moved, _angle_deg(total)


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The least-squares rotation taking the centred points ``a`` onto the centred ``b``."""
    u, _, vt = np.linalg.svd((b - b.mean(0)).T @ (a - a.mean(0)))
    sg = np.eye(3)
    sg[2, 2] = np.sign(np.linalg.det(u @ vt))
    return u @ sg @ vt


def _angle_deg(r: np.ndarray) -> float:
    """The angle [deg] of the rotation matrix ``r``."""
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))


def _cube_turns(proper: bool) -> list[np.ndarray]:
    """The 24 turns of a cube (signed permutation matrices of determinant +1), or the 24
    turns combined with a mirror (determinant -1)."""
    import itertools

    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            if (np.linalg.det(m) > 0) == proper:
                out.append(m)
    out.sort(key=lambda m: -np.trace(m))  # the identity (or the plainest mirror) first
    return out


def compare_models(reference_A, test_A, *, register: str = "rigid", radius_A: float = 1.0) -> dict:
    """Two atom models side by side, as when a traced model is checked against a published one.

    ``register``: ``"rigid"`` (:func:`register_rigid` from each of the 24 quarter- and
    half-turns of a cube about the test model's centroid, the one pairing most atoms kept: two
    programs' frames may differ by such a turn, a half-turn about an axis across the beam
    where a tilt series' axis was taken with the other sense, say), ``"translation"`` or
    ``"none"`` (the same frame, as a GENFIRE series read in its own convention and the group's
    model are). Atoms pair one to one within ``radius_A``.

    The hand is checked too: the test model mirrored (about its centroid; with ``"rigid"`` in
    each of the 24 turns) is registered the same way; where a mirror image pairs clearly more
    atoms (by 2 % of the reference and at least 3, and more than half the reference: a crystal
    and its mirror image, turned, share most sites), the two models are of opposite hands
    (a tilt whose sign was read the other way) and ``mirror`` names the axis to mirror the
    test model through (before the turn that overlays it).

    Returns a dict: ``n_reference``, ``n_test``, ``n_common``, ``missed``, ``extra``,
    ``identification_error_pct``, ``rmsd_A``, ``mean_offset_A`` (``(z, y, x)`` of the pairs),
    ``rotation_deg`` (the whole turn applied), ``mirror`` (None or the axis),
    ``mirror_n_common`` and the ``comparison`` (:class:`ModelComparison`) with the ``moved``
    test positions.
    """
    if register not in ("rigid", "translation", "none"):
        raise ValueError("register must be 'rigid', 'translation' or 'none'")
    ref = np.asarray(reference_A, np.float64).reshape(-1, 3)
    tst = np.asarray(test_A, np.float64).reshape(-1, 3)
    if len(ref) < 4 or len(tst) < 4:
        raise ValueError(
            f"models of {len(ref)} and {len(tst)} atoms: at least 4 each are needed to compare"
        )
    centre = tst.mean(axis=0)

    def overlay(pos):
        if register == "rigid":
            return register_rigid(ref, pos, radius_A=radius_A)[0]
        if register == "translation":
            return pos + register_translation(ref, pos)
        return pos

    def best(starts):
        """The start (a matrix about the centroid) whose overlay pairs most atoms: its
        overlaid positions, comparison and the matrix. Many starts are ranked by a translation
        alone first, and the three best registered in full."""
        if len(starts) > 3:

            def shifted(m):
                pos = (tst - centre) @ m.T + centre
                moved = pos + register_translation(ref, pos)
                return compare_atom_models(ref, moved, radius_A=radius_A).n_common

            starts = sorted(starts, key=shifted, reverse=True)[:3]
        found = None
        for m in starts:
            moved = overlay((tst - centre) @ m.T + centre)
            c = compare_atom_models(ref, moved, radius_A=radius_A)
            if found is None or c.n_common > found[1].n_common:
                found = (moved, c, m)
        return found

    flips = [np.diag(v) for v in ((-1.0, 1, 1), (1, -1.0, 1), (1, 1, -1.0))]
    if register == "rigid":
        moved, c, _ = best(_cube_turns(proper=True))
        mirrored = best(_cube_turns(proper=False))
    else:
        moved, c, _ = best([np.eye(3)])
        mirrored = best(flips) if register != "none" else None
    mirror, mirror_n = None, 0
    if mirrored is not None:
        mirror_n = mirrored[1].n_common
        # the axis whose mirror leaves the plainest turn (the identity for a plain mirror)
        axis = int(np.argmax([np.trace(mirrored[2] @ f) for f in flips]))
        # a crystal's mirror image, turned, pairs most of its atoms too (a lattice is its own
        # mirror image): the hand is named where the mirror pairs clearly more than any turn
        if mirror_n > c.n_common + max(3, 0.02 * len(ref)) and mirror_n > 0.5 * len(ref):
            mirror = "zyx"[axis]
    return {
        "n_reference": len(ref),
        "n_test": len(tst),
        "n_common": c.n_common,
        "missed": len(ref) - c.n_common,
        "extra": len(tst) - c.n_common,
        "identification_error_pct": 100 * c.identification_error,
        "rmsd_A": c.rmsd_A,
        "mean_offset_A": c.deviations_A.mean(axis=0) if c.n_common else np.full(3, np.nan),
        "rotation_deg": _angle_deg(_kabsch(tst, moved)) if register == "rigid" else 0.0,
        "mirror": mirror,
        "mirror_n_common": mirror_n,
        "comparison": c,
        "moved": moved,
    }
