"""Chemical order of a binary fcc alloy: L1_0 (FePt, CuAu), L1_2 (FePt3, Cu3Au) or disordered.

An fcc lattice is four simple-cubic sublattices (the cube's corners and its three face
centres). Chemical order puts the elements on them unevenly: L1_0 one element on two
sublattices and the other on the other two, (001) layers alternating along c (three variants,
c along x, y or z of the cube); L1_2 the minority element on one sublattice, the majority on
three. Both are measured two ways, as in Yang et al., Nature 542, 75 (2017):

- *long-range order* per grain: every atom the grain's fitted lattice assigned to a site is
  counted on its sublattice, and from the four sublattices' fractions of the first element
  ``S(L1_0) = |mean of one pair - mean of the other|`` for the best of the three pairings
  (1 for perfect order at 50:50, 0 for a random alloy) and ``S(L1_2) = |one - mean of the other
  three|`` for the best sublattice; the larger one names the grain's phase (a perfect L1_0 has
  S(L1_2) = 2/3, a perfect L1_2 S(L1_0) = 1/2), below :data:`MIN_ORDER` it is disordered (A1);
- *local order* per atom: its twelve neighbours, matched to the ideal fcc bonds by the atom's
  own orientation (:func:`local_fcc_orientations`), against the patterns each phase gives
  (L1_0: the 4 neighbours in the atom's (001) the same element, the 8 out of it the other;
  L1_2: a minority atom's 12 all the other element, a majority atom's 4 in-plane ones the other
  and its 8 out-of-plane ones the same); an atom whose neighbours follow a pattern in
  :data:`MIN_MATCHES` of 12 or more gets that phase and its variant, otherwise A1.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ._crystal import element_kinds
from ._grains import local_fcc_orientations

#: The four simple-cubic sublattices of fcc by the parities of twice a site's cubic
#: coordinates: the corner (0, 0, 0) and the face centres (0, 1, 1), (1, 0, 1), (1, 1, 0).
_SUBLATTICES = {(0, 0, 0): 0, (0, 1, 1): 1, (1, 0, 1): 2, (1, 1, 0): 3}
#: L1_0 with c along cubic axis k: the pairs of sublattices the two elements take.
_L10_PAIRS = {0: ((0, 1), (2, 3)), 1: ((0, 2), (1, 3)), 2: ((0, 3), (1, 2))}
#: A grain whose order parameters both stay below this is disordered (A1): a random alloy's
#: sublattice fractions differ by a few hundredths for hundreds of atoms.
MIN_ORDER = 0.3
#: Neighbours (of 12) that must follow an ordered phase's pattern for an atom to be called
#: ordered (a random 50:50 alloy matches one of the L1_0 variants by chance for about 1 % of
#: its atoms; species assigned 95 % right keep about 85 % of an ordered crystal's atoms).
MIN_MATCHES = 11


def sublattice_of(sites) -> np.ndarray:
    """The sublattice (0-3, see :data:`_SUBLATTICES`) of fcc sites in cubic units."""
    half = np.rint(2.0 * np.asarray(sites, float)).astype(int) % 2
    table = np.full((2, 2, 2), -1)
    for key, s in _SUBLATTICES.items():
        table[key] = s
    return table[half[:, 0], half[:, 1], half[:, 2]]


def long_range_order(sites, is_first) -> dict:
    """Sublattice fractions of the first element and the L1_0 / L1_2 order parameters of
    atoms at fcc ``sites`` (cubic units, one grain's lattice) whose element is the first where
    ``is_first``."""
    sub = sublattice_of(sites)
    is_first = np.asarray(is_first, bool)
    counts = np.array([(sub == s).sum() for s in range(4)])
    occ = np.array([is_first[sub == s].mean() if counts[s] else np.nan for s in range(4)])
    s10 = {k: abs(np.nanmean(occ[list(p)]) - np.nanmean(occ[list(q)]))
           for k, (p, q) in _L10_PAIRS.items()}  # fmt: skip
    s12 = {s: abs(occ[s] - np.nanmean(np.delete(occ, s))) for s in range(4)}
    k = max(s10, key=lambda i: s10[i] if np.isfinite(s10[i]) else -1)
    s = max(s12, key=lambda i: s12[i] if np.isfinite(s12[i]) else -1)
    best10, best12 = float(s10[k]), float(s12[s])
    if not (max(best10, best12) >= MIN_ORDER):
        phase = "A1"
    else:
        phase = "L1_0" if best10 >= best12 else "L1_2"
    return {
        "sublattice_atoms": [int(c) for c in counts],
        "sublattice_first_fraction": [None if not np.isfinite(v) else float(v) for v in occ],
        "S_L1_0": best10,
        "L1_0_axis": int(k),
        "S_L1_2": best12,
        "L1_2_sublattice": int(s),
        "phase": phase,
    }


def local_chemical_order(
    positions_A, species, d_nn: float, *, rotations=None, misfit=None, fallback_rotations=None
):
    """Each atom's local chemical order: ``(phase, axis, matches)`` arrays with phase
    ``"L1_0"``, ``"L1_2"``, ``"A1"`` or ``""`` (not measured), ``axis`` the lab direction of
    its c (L1_0) or of the cube axis normal to its minority neighbours' plane (an L1_2 majority
    atom), zero otherwise, and ``matches`` the neighbours (of 12, scaled) that follow the best
    pattern. An atom without twelve neighbours and an fcc orientation of its own (a surface,
    twin-plane or defect atom) is measured on its grain's lattice axes where
    ``fallback_rotations`` (per atom, NaN for none) gives them and it has six neighbours or
    more; else it is not measured."""
    pos = np.asarray(positions_A, float)
    species = np.asarray(species).astype(str)
    n = len(pos)
    if rotations is None or misfit is None:
        rotations, misfit = local_fcc_orientations(pos, d_nn)
    phase = np.full(n, "", dtype=object)
    axis = np.zeros((n, 3))
    matches = np.zeros(n, int)
    ok = np.isfinite(misfit)
    if not ok.any() or n < 13:
        return phase, axis, matches
    idx = np.nonzero(ok)[0]
    _, nb = cKDTree(pos).query(pos[idx], k=13)
    nb = nb[:, 1:]
    bonds = pos[nb] - pos[idx, None, :]
    bonds /= np.linalg.norm(bonds, axis=-1, keepdims=True)
    crystal = np.einsum("nab,nja->njb", rotations[idx], bonds)  # bonds on the atom's cube axes
    inplane = np.abs(crystal) < 0.35  # (n, 12, 3): in the (001) normal to each axis
    same = species[nb] == species[idx, None]
    first = np.unique(species)
    # majority and minority by the whole model's counts
    counts = {e: int((species == e).sum()) for e in first}
    minority = min(counts, key=counts.get) if len(counts) == 2 else None
    l10 = (inplane & same[:, :, None]).sum(1) + (~inplane & ~same[:, :, None]).sum(1)
    l12_major = (inplane & ~same[:, :, None]).sum(1) + (~inplane & same[:, :, None]).sum(1)
    l12_minor = (~same).sum(1)
    is_minor = species[idx] == minority
    best10 = l10.max(1)
    best12 = np.where(is_minor, l12_minor, l12_major.max(1))
    # at 50:50 no atom is a minority: L1_2 needs a majority and a minority
    skew = minority is not None and counts[minority] < 0.4 * n
    best12 = np.where(skew, best12, 0)
    is10 = (best10 >= MIN_MATCHES) & (best10 >= best12)
    is12 = (best12 >= MIN_MATCHES) & ~is10
    phase[idx] = "A1"
    phase[idx[is10]] = "L1_0"
    phase[idx[is12]] = "L1_2"
    matches[idx] = np.maximum(best10, best12)
    k10 = l10.argmax(1)
    k12 = l12_major.argmax(1)
    kk = np.where(is10, k10, k12)
    directions = rotations[idx, :, kk]  # the chosen cube axis in the lab
    use = is10 | (is12 & ~is_minor)
    axis[idx[use]] = directions[use]
    if fallback_rotations is not None:
        _surface_order(pos, species, d_nn, fallback_rotations, phase, axis, matches,
                       minority if skew else None)  # fmt: skip
    return phase, axis, matches


def _surface_order(pos, species, d_nn, fallback, phase, axis, matches, minority) -> None:
    """Atoms without an orientation of their own (surface, twin planes) but with their
    grain's (``fallback``, NaN rows for none): the same patterns over the neighbours they
    have (six or more), the same share of matches asked."""
    todo = np.nonzero((phase == "") & np.isfinite(fallback).all(axis=(1, 2)))[0]
    if not len(todo):
        return
    nbrs = cKDTree(pos).query_ball_point(pos[todo], 1.25 * d_nn)
    for i, nb in zip(todo, nbrs, strict=True):
        nb = np.array([j for j in nb if j != i])
        if len(nb) < 6:
            continue
        u = pos[nb] - pos[i]
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        c = u @ fallback[i]  # on the grain's cube axes
        inplane = np.abs(c) < 0.35
        same = (species[nb] == species[i])[:, None]
        l10 = (inplane & same).sum(0) + (~inplane & ~same).sum(0)
        l12 = (inplane & ~same).sum(0) + (~inplane & same).sum(0)
        minor = species[i] == minority
        b10 = l10.max()
        if minority is None:  # 50:50: no L1_2
            b12 = 0
        else:
            b12 = int((~same).sum()) if minor else int(l12.max())
        need = MIN_MATCHES / 12.0 * len(nb)
        matches[i] = int(max(b10, b12) * 12 / len(nb))
        if b10 >= need and b10 >= b12:
            phase[i], axis[i] = "L1_0", fallback[i][:, int(l10.argmax())]
        elif b12 >= need:
            phase[i] = "L1_2"
            if not minor:
                axis[i] = fallback[i][:, int(l12.argmax())]
        else:
            phase[i] = "A1"


def chemical_order_summary(species, fits, *, local_phase=None) -> dict:
    """The ``chemical_order`` part of ``analysis.json``: the elements and their fractions,
    each fitted grain's long-range order (``fits``: ``{grain: (atom indices, LatticeFit)}``),
    the counts of the atoms' local phases, and the phase most atoms in fitted grains are in."""
    species = np.asarray(species).astype(str)
    elements = sorted(set(species))
    out = {
        "elements": elements,
        "fractions": [float((species == e).mean()) for e in elements],
        "grains": [],
    }
    weights: dict[str, int] = {}
    for g, (sel, fit) in sorted(fits.items()):
        atoms = sel[fit.assigned]
        if len(atoms) < 20:
            continue
        lro = long_range_order(fit.sites, species[atoms] == elements[0])
        entry = {"grain": int(g), "n_atoms": int(len(atoms)), **lro}
        rot = np.asarray(fit.rotation, float)
        if lro["phase"] == "L1_0":
            c = rot[:, lro["L1_0_axis"]]
            entry["c_axis_zyx"] = [float(v) for v in c / np.linalg.norm(c)]
        out["grains"].append(entry)
        weights[lro["phase"]] = weights.get(lro["phase"], 0) + len(atoms)
    out["phase"] = max(weights, key=weights.get) if weights else None
    if local_phase is not None:
        lp = np.asarray(local_phase).astype(str)
        out["local_phase_atoms"] = {p: int((lp == p).sum()) for p in ("L1_0", "L1_2", "A1")}
        out["local_unmeasured_atoms"] = int((lp == "").sum())
    return out


def two_species(features) -> np.ndarray | None:
    """The ``element`` column of a model of exactly two elements, else None."""
    got = element_kinds(features)
    if got is None:
        return None
    species, kinds = got
    return species if len(kinds) == 2 and len(set(species)) == 2 else None


def add_chemical_order(f, pos, species, d_nn, fit_atoms, cluster, *, grains=None) -> dict:
    """Long-range order per fitted cluster or grain (``fit_atoms``: ``{cluster: (atom
    indices, LatticeFit)}``), each atom's local phase (feature ``chemical_order``) and which
    of its cluster lattice's cube axes its c is (``order_variant``, -1 where none), added to
    the feature table ``f``; returns the ``chemical_order`` part of ``analysis.json`` with its
    ``notes``. ``grains`` (:class:`~napari_aet.analysis.Grains`) lends the atoms'
    orientations it measured."""
    fallback = np.full((len(pos), 3, 3), np.nan)  # each atom's cluster lattice's axes
    for cl, (_, fit) in fit_atoms.items():
        fallback[np.asarray(cluster) == cl] = np.asarray(fit.rotation, float)
    own = {}
    if grains is not None and grains.atom_rotations is not None:
        own = {"rotations": grains.atom_rotations, "misfit": grains.misfit}
    phase, axis, _ = local_chemical_order(pos, species, d_nn, fallback_rotations=fallback, **own)
    f["chemical_order"] = phase.astype(str)
    variant = np.full(len(pos), -1, np.int64)
    for cl, (_, fit) in fit_atoms.items():
        sel = (np.asarray(cluster) == cl) & (np.abs(axis).sum(1) > 0)
        if sel.any():
            variant[sel] = np.argmax(np.abs(axis[sel] @ np.asarray(fit.rotation, float)), axis=1)
    f["order_variant"] = variant
    out = chemical_order_summary(species, fit_atoms, local_phase=phase)
    notes = []
    if out["phase"] in ("L1_0", "L1_2"):
        s_key = "S_L1_0" if out["phase"] == "L1_0" else "S_L1_2"
        best = max(g[s_key] for g in out["grains"] if g["phase"] == out["phase"])
        notes.append(
            f"chemically ordered: {out['phase']} (long-range order parameter up to {best:.2f}; "
            "'chemical_order' and 'order_variant' per atom)"
        )
    out["notes"] = notes
    return out
