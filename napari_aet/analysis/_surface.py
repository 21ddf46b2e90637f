"""Facets from reference planes and per-atom local lattice constants (the study's procedures)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ._lattice import CUBIC_LATTICES, _hcp_steps, _umeyama, hcp_coordinates

_DIRS_111 = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]) / np.sqrt(3)
_DIRS_100 = np.vstack([np.eye(3), -np.eye(3)])


def facet_sets(
    positions_A,
    *,
    rotation,
    lattice_constant_A: float,
    min_plane_atoms: int = 20,
    surface=None,
    outward=None,
) -> dict[str, np.ndarray]:
    """Atoms of the {111} and {100} facets of a crystal.

    For each of the eight <111> and six <100> directions of the fitted lattice (``rotation``:
    crystal axes to lab), the atoms are sorted into the lattice planes normal to it (spacings
    ``a / sqrt(3)`` and ``a / 2``); the reference plane is the outermost plane holding more than
    ``min_plane_atoms`` atoms, and the facet is every atom on or outside it (the study's
    definition, with 20 atoms).

    ``surface`` (a mask of the surface atoms of the whole particle) and ``outward`` (unit
    vectors from each atom's neighbour centroid to the atom, from the whole particle) keep
    buried atoms out: facet atoms are surface atoms whose outward direction is within about
    70 degrees of the facet normal. A crystal that is part of a larger particle (a cluster of
    a twinned dumbbell) ends at an internal plane towards its neighbour; the atoms of that
    plane are either buried or face sideways at the neck, so they are no facet.

    Returns
    -------
    dict
        ``"111"`` and ``"100"``: boolean masks; ``"normal_111"``/``"normal_100"``: the facet
        normal (lab ``(z, y, x)``) of each atom in the set (NaN elsewhere).
    """
    p = np.asarray(positions_A, float)
    r = np.asarray(rotation, float)
    surf = np.ones(len(p), bool) if surface is None else np.asarray(surface, bool)
    if surf.shape != (len(p),):
        raise ValueError("surface must hold one flag per atom")
    if outward is not None:
        outward = np.asarray(outward, float)
        if outward.shape != p.shape:
            raise ValueError("outward must hold one (z, y, x) vector per atom")
    c = p.mean(axis=0)
    out = {}
    for name, dirs, spacing in (
        ("111", _DIRS_111, lattice_constant_A / np.sqrt(3)),
        ("100", _DIRS_100, lattice_constant_A / 2),
    ):
        mask = np.zeros(len(p), bool)
        normals = np.full((len(p), 3), np.nan)
        best = np.full(len(p), -np.inf)
        for d in dirs:
            n = r @ d
            h = (p - c) @ n
            phase = np.angle(np.exp(2j * np.pi * h / spacing).mean()) / (2 * np.pi) * spacing
            k = np.round((h - phase) / spacing).astype(int)
            counts = np.bincount(k - k.min())
            planes = np.nonzero(counts > min_plane_atoms)[0]
            if not len(planes):
                continue
            ref = planes.max() + k.min()
            on = (k >= ref) & surf
            if outward is not None:
                on &= outward @ n > 0.35
            beyond = (k - ref).astype(float)
            take = on & (beyond > best)
            normals[take] = n
            best[take] = beyond[take]
            mask |= on
        out[name] = mask
        out[f"normal_{name}"] = normals
    return out


def local_lattice_constants(
    positions_A, sites, *, lattice_constant_A: float, kind: str = "fcc", c_over_a=None
) -> np.ndarray:
    """Lattice constant [A] of a local fcc (``kind="bcc"``: bcc; ``"hcp"``: the hcp ``a`` at the
    global ``c_over_a``) fit to each atom and its nearest neighbours.

    ``sites`` are the atoms' lattice sites from the global fit (cubic units; hcp: ``(i, j, l)``,
    see :func:`napari_aet.analysis._lattice.hcp_coordinates`). For each atom, the assigned
    atoms on its 12 (bcc: 8) nearest-neighbour sites and itself are fitted by a similarity
    transform (origin, orientation, lattice constant); atoms with fewer than 4 such neighbours
    get NaN.
    """
    p = np.asarray(positions_A, float)
    s = np.asarray(sites, float)
    tree = cKDTree(p)
    if kind == "hcp":
        if c_over_a is None:
            raise ValueError("an hcp lattice's local fits need its c_over_a")
        xyz = hcp_coordinates(s, c_over_a)
        near = tree.query_ball_point(p, 1.3 * lattice_constant_A)

        def steps_of(site):
            return {tuple(v) for v in _hcp_steps(site).astype(int)}

    else:
        nn_steps, bond_per_a = CUBIC_LATTICES[kind]
        xyz = s
        near = tree.query_ball_point(p, 1.3 * lattice_constant_A * bond_per_a)
        cubic = {tuple(np.round(v * 2).astype(int)) for v in nn_steps}

        def steps_of(site):
            return cubic

    scale2 = 1 if kind == "hcp" else 2  # hcp sites are integers, cubic ones halves
    out = np.full(len(p), np.nan)
    for i in range(len(p)):
        steps = steps_of(s[i])
        nb = [
            j
            for j in near[i]
            if j != i and tuple(np.round((s[j] - s[i]) * scale2).astype(int)) in steps
        ]
        if len(nb) < 4:
            continue
        idx = [i, *nb]
        scale, _, _ = _umeyama(xyz[idx] - xyz[i], p[idx])
        out[i] = scale
    return out
