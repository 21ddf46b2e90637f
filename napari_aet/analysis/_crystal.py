"""Which lattice the atoms form, what it is measured against, and its fit per cluster.

The bulk reference lattice constants (fcc, bcc, alloys), the verdicts that tell a bcc crystal
or a tetrahedral network from a close-packed one, the cluster lattice fits and the surface
atoms of either cubic lattice.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

from ..core.atoms import AtomModel
from ..core.elements import (
    FCC_LATTICE_CONSTANTS_A,
    element_data,
    fcc_reference_A,
    mean_bond_length_A,
    parse_elements,
)
from ..core.geometry import in_plane_basis
from ._boo import STUDY_BOO_CUTOFF_A
from ._lattice import (
    DegenerateFit,
    cubic_axes_from_bonds,
    fcc_rotation_from_stacking,
    fit_cubic_lattice,
    fit_hcp_lattice,
)
from ._orientation import _bond_orientation

#: The study's Q4/Q6 cutoff (3.416 A) as a fraction of its lattice constant (Pt, 3.912 A).
BOO_CUTOFF_PER_LATTICE_CONSTANT = STUDY_BOO_CUTOFF_A / 3.912

#: The study's cutoff per bond length (3.416 / 2.766 A): between the first and second shells of
#: fcc, between the second and third of bcc.
BOO_CUTOFF_PER_BOND = STUDY_BOO_CUTOFF_A / 2.766

#: A particle is analysed as a bcc crystal when more of its atoms are bcc than fcc or hcp in
#: the Q4/Q6 map, at least this fraction of them are, and a bcc lattice grown from its centre
#: takes at least :data:`BCC_MIN_ASSIGNED` of them.
BCC_MIN_FRACTION = 0.2
BCC_MIN_ASSIGNED = 0.3  # a bicrystal of two grains gives about half; amorphous atoms no bcc
#: Where the Q4/Q6 map is blurred (noisy positions), a bcc lattice must take this fraction of
#: the atoms on its own: bcc particles with 30-50 pm of noise give 0.88-1.00, fcc and hcp ones
#: at most 0.21, amorphous ones none.
BCC_FIT_ALONE = 0.6


def reference_lattice_constant(
    element: str | None = None, lattice_constant_A=None, fractions=None
) -> float:
    """The bulk fcc lattice constant [A] strains are measured against.

    ``lattice_constant_A`` when given, else the element's room-temperature value
    (:data:`napari_aet.core.elements.FCC_LATTICE_CONSTANTS_A`, else ASE's), for an alloy
    (``"Pt,Ni"``) the Vegard average with the atom ``fractions`` (default equal), else Pt's
    3.912 A (the study's).
    """

    if lattice_constant_A is not None:
        return _given_constant(lattice_constant_A, "fcc lattice constant", "3.912 for Pt")
    els = parse_elements("Pt" if element is None else element)
    a = fcc_reference_A(els, fractions)
    if a is None:
        raise ValueError(
            f"no tabulated fcc lattice constant for element {element!r} (fcc metals: "
            f"{', '.join(sorted(FCC_LATTICE_CONSTANTS_A))}, ...); give --lattice-constant in "
            "Angstrom"
        )
    return float(a)


def _given_constant(value, what: str, example: str) -> float:
    """A lattice constant the user gave [A], checked to be a metal's (1.5-8 A)."""
    a = float(value)
    if not (math.isfinite(a) and 1.5 < a < 8.0):
        raise ValueError(
            f"lattice constant {value!r} A is not a metal's {what} (1.5-8 A); give it in "
            f"Angstrom, e.g. {example}"
        )
    return a


def _elements_of_structure(element, structure: str) -> list[str] | None:
    """The elements of ``element`` when every one of them is ``structure`` (bcc, hcp, ...)."""
    if element is None or not _is_element(element):
        return None
    els = parse_elements(element)
    return els if all(element_data(e).structure == structure for e in els) else None


def _is_element(symbol) -> bool:
    """True for one or several chemical symbols (``Si``, ``Fe``, ``Pt,Ni``)."""
    try:
        parse_elements(symbol)
    except ValueError:
        return False
    return True


def _bcc_reference(element, lattice_constant_A=None, fractions=None) -> float | None:
    """The bcc lattice constant [A] strains of a bcc crystal are measured against: the one given,
    else, when every element of ``element`` is bcc (W, Fe, Mo, Cr, ...), the one whose bond
    is their (Vegard) mean bond length; None otherwise."""
    if lattice_constant_A is not None:
        return _given_constant(lattice_constant_A, "bcc lattice constant", "3.165 for W")
    els = _elements_of_structure(element, "bcc")
    return None if els is None else mean_bond_length_A(els, fractions) * 2.0 / np.sqrt(3.0)


def _hcp_reference(element, lattice_constant_A=None) -> float | None:
    """The hcp ``a`` [A] strains of an hcp crystal are measured against: the one given, else
    the mean ``a`` of ``element`` when every element of it is hcp (Co, Ru, Ti, ...: ASE's
    reference states), else None."""
    if lattice_constant_A is not None:
        return _given_constant(lattice_constant_A, "hcp a", "2.70 for Ru")
    els = _elements_of_structure(element, "hcp")
    return None if els is None else float(np.mean([element_data(e).bond_length_A for e in els]))


#: what an atom's ``element`` feature holds where no element was given
UNSET_ELEMENTS = frozenset({"", "nan", "None"})


def element_kinds(features) -> tuple[np.ndarray, set] | None:
    """``(species, kinds)``: a feature table's ``element`` column as strings and the elements
    it names (:data:`UNSET_ELEMENTS` left out); None without the column."""
    if "element" not in features.columns:
        return None
    species = features["element"].astype(str).to_numpy()
    return species, set(species) - UNSET_ELEMENTS


def _composition(model: AtomModel, element) -> list[float] | None:
    """Atom fractions of an alloy's elements from the model's ``element`` feature."""
    try:
        els = parse_elements(element)
    except ValueError:
        return None
    if len(els) < 2 or "element" not in model.features:
        return None
    col = model.features["element"].astype(str).to_numpy()
    counts = np.array([(col == e).sum() for e in els], float)
    return list(counts / counts.sum()) if counts.sum() > 0 else None


def fit_cluster_lattices(
    pos, normal, cluster, *, d_nn: float, notes: list | None = None, kind: str = "fcc"
):
    """Search-and-assign fcc fit of every cluster; yields ``(cluster, atom indices, LatticeFit)``.

    Each fit starts from the stacking normal and the cluster's in-plane bond orientation and
    tries both twin variants about [111], keeping the one that assigns more atoms. A cluster
    that cannot be fitted (fewer than 20 atoms, no in-plane bonds, a degenerate fit) is
    skipped, with the reason appended to ``notes``. ``kind="bcc"`` fits a bcc lattice instead,
    started from the cubic axes its second-neighbour bonds follow (``normal`` unused);
    ``kind="hcp"`` an hcp lattice with c along ``normal``, its ``c / a`` fitted too.
    """
    notes = [] if notes is None else notes
    if kind == "bcc":
        yield from _fit_bcc_clusters(pos, cluster, d_nn=d_nn, notes=notes)
        return
    e1, e2 = in_plane_basis(normal)
    for cl in np.unique(cluster):
        sel = np.nonzero(cluster == cl)[0]
        if len(sel) < 20:
            notes.append(f"cluster {cl}: {len(sel)} atoms, too few for an {kind} lattice fit")
            continue
        th = _bond_orientation(pos[sel], normal, d_nn)
        if not np.isfinite(th):
            notes.append(f"cluster {cl}: no in-plane bonds, so no lattice orientation to fit")
            continue
        best, why = None, ""
        # the two twin variants about [111] (hcp: the two ways to stack B on A)
        for extra in (0.0, np.pi / 3):
            e = np.cos(th + extra) * e1 + np.sin(th + extra) * e2
            try:
                if kind == "hcp":
                    fit = fit_hcp_lattice(pos[sel], a_A=d_nn, rotation=_hcp_rotation(normal, e))
                else:
                    fit = fit_cubic_lattice(
                        pos[sel],
                        lattice_constant_A=d_nn * np.sqrt(2),
                        rotation=fcc_rotation_from_stacking(normal, e),
                    )
            except DegenerateFit as err:
                why = str(err)
                continue
            if best is None or len(fit.assigned) > len(best.assigned):
                best = fit
        if best is None:
            notes.append(f"cluster {cl}: no {kind} lattice fit ({why})")
            continue
        yield int(cl), sel, best


def _hcp_rotation(normal, bond) -> np.ndarray:
    """Crystal-to-lab rotation of an hcp lattice: x along the in-plane ``bond``, z along
    ``normal`` (the c axis)."""
    z = np.asarray(normal, float) / np.linalg.norm(normal)
    x = np.asarray(bond, float) - (np.asarray(bond, float) @ z) * z
    x = x / np.linalg.norm(x)
    r = np.stack([x, np.cross(z, x), z], axis=1)
    if np.linalg.det(r) < 0:  # (z, y, x) lab axes: keep it a proper rotation
        r[:, 1] *= -1
    return r


def _fit_bcc_clusters(pos, cluster, *, d_nn: float, notes: list):
    """:func:`fit_cluster_lattices` for bcc crystals."""
    for cl in np.unique(cluster):
        sel = np.nonzero(cluster == cl)[0]
        if len(sel) < 20:
            notes.append(f"cluster {cl}: {len(sel)} atoms, too few for a bcc lattice fit")
            continue
        axes = cubic_axes_from_bonds(pos[sel], d_nn)
        if axes is None:
            notes.append(f"cluster {cl}: too few second-neighbour bonds to orient a bcc lattice")
            continue
        try:
            fit = fit_cubic_lattice(
                pos[sel], lattice_constant_A=d_nn * 2.0 / np.sqrt(3.0), rotation=axes, kind="bcc"
            )
        except DegenerateFit as err:
            notes.append(f"cluster {cl}: no bcc lattice fit ({err})")
            continue
        yield int(cl), sel, fit


#: A tetrahedral network's 5th-nearest neighbour lies in its second shell (1.63 bond lengths in
#: diamond-cubic crystals, about 1.5 in amorphous Si): the 5th over the 4th neighbour's distance
#: of at least this for a quarter of the atoms (75th percentile) marks one. Close-packed and bcc
#: crystals and random packings give 1.00-1.10, a gas of random points 1.13.
TETRAHEDRAL_GAP = 1.25


def _tetrahedral(pos, d_nn: float) -> bool:
    """True for a tetrahedral network (4 nearest neighbours, then a gap: see
    :data:`TETRAHEDRAL_GAP`)."""
    if len(pos) < 20 or not math.isfinite(d_nn):
        return False
    d, _ = cKDTree(pos).query(pos, k=6)
    gap = d[:, 5] / np.maximum(d[:, 4], 1e-9)
    return float(np.percentile(gap, 75)) >= TETRAHEDRAL_GAP


def _bcc_verdict(pos, local, d_nn: float, notes: list):
    """The particle's bcc lattice fit when its atoms form one, else None (a note says why a
    bcc-looking particle is not taken for one).

    Two ways in: the Q4/Q6 map says bcc (see :data:`BCC_MIN_FRACTION`) and a bcc lattice takes
    :data:`BCC_MIN_ASSIGNED` of the atoms; or the map is blurred (fewer than half the atoms
    near one ideal point, or a fifth of them bcc but more hcp: positions noisier than about
    25 pm blur bcc's bond order into hcp's and 'other') and a bcc lattice alone takes
    :data:`BCC_FIT_ALONE` of them.
    """
    n = len(pos)
    n_bcc = int(np.sum(local == "bcc"))
    n_close = int(np.sum((local == "fcc") | (local == "hcp")))
    if n < 20 or not math.isfinite(d_nn):
        return None
    by_map = n_bcc > n_close and n_bcc >= BCC_MIN_FRACTION * n
    largest = max(int(np.sum(local == k)) for k in ("fcc", "hcp", "bcc"))
    blurred = largest < 0.5 * n or n_bcc >= BCC_MIN_FRACTION * n
    if not (by_map or blurred):  # the map is clear, and not bcc
        return None
    fits = list(_fit_bcc_clusters(pos, np.zeros(n, np.int64), d_nn=d_nn, notes=[]))
    share = len(fits[0][2].assigned) / n if fits else 0.0
    if share < (BCC_MIN_ASSIGNED if by_map else BCC_FIT_ALONE):
        if by_map:
            notes.append(
                f"{n_bcc} of {n} atoms look bcc in the Q4/Q6 map, but a bcc lattice takes only "
                f"{100 * share:.0f} % of them: analysed as close-packed or amorphous"
            )
        return None
    why = (
        f"{n_bcc} of {n} atoms bcc in the Q4/Q6 map, {n_close} fcc or hcp"
        if by_map
        else f"the Q4/Q6 map is blurred: {n_bcc} of {n} atoms bcc, {n_close} fcc or hcp, the "
        "others near no ideal point (noisy positions?)"
    )
    notes.append(
        f"a bcc crystal ({why}; the bcc lattice takes {100 * share:.0f} %): no close-packed "
        "(111) layers, so no stacking labels, faults or twin boundaries; strain and local "
        "lattice constants on the bcc lattice"
    )
    if share < 0.8:
        notes.append(
            f"the bcc lattice grown from the centre takes only {100 * share:.0f} % of the atoms: "
            "the others sit on another grain (a twin or a polycrystal?) or off any lattice; "
            "select a grain as cluster 1 to fit each on its own"
        )
    return fits[0][2]


def surface_atoms(positions_A, d_nn: float, kind: str = "fcc") -> tuple[np.ndarray, np.ndarray]:
    """Surface atoms and their outward directions.

    Surface atoms have fewer than 11 of the 12 fcc neighbours within the midpoint of the first
    and second shells (``(1 + sqrt 2) / 2`` bonds, so that noise does not move atoms across;
    ``kind="bcc"``: fewer than 13 of the 14 first and second neighbours within the midpoint of
    the second and third shells, 1.39 bonds); the outward direction is the unit vector from the
    centroid of an atom's neighbours to the atom (zero without neighbours).
    """
    pos = np.asarray(positions_A, float)
    tree = cKDTree(pos)
    if kind == "bcc":
        r, full = 0.5 * (2.0 / np.sqrt(3.0) + np.sqrt(8.0 / 3.0)) * d_nn, 14
    else:
        r, full = 0.5 * (1 + np.sqrt(2.0)) * d_nn, 12
    near = tree.query_ball_point(pos, r)
    coordination = np.array([len(x) - 1 for x in near])
    outward = np.zeros_like(pos)
    for i, nb in enumerate(near):
        if len(nb) > 1:
            outward[i] = pos[i] - pos[nb].mean(axis=0)  # the atom itself is in nb
    norm = np.linalg.norm(outward, axis=1, keepdims=True)
    outward = np.divide(outward, norm, out=np.zeros_like(outward), where=norm > 1e-9)
    return coordination < full - 1, outward


#: A layering score below this (or below ``4 / sqrt(N)`` for N atoms, what random points reach
#: by chance) means the atoms do not form close-packed layers (amorphous, polycrystalline, or
#: too noisy): no stacking labels are given.
MIN_LAYERING_SCORE = 0.3
#: Below this layering score the layers must also show in the atoms' own order: a metallic
#: glass's dense first shell and its surface layer make a small glass particle look layered
#: (quenched Pt glasses of 46-230 atoms scored 0.36-0.62, with 0-45 pm of noise on every
#: atom), where single crystals of 50-340 atoms scored 0.70-1.00 with 45 pm of noise (fcc,
#: hcp, a twinned dumbbell; a 10-A decahedron 0.36-0.43, an icosahedron about 0.2).
GLASS_LAYERING_SCORE = 0.65
#: ... and that order: at least this fraction of the atoms with a measurable fcc orientation
#: (:func:`~napari_aet.analysis.segment_grains`; twelve neighbours that fit an fcc cell) or
#: a crystal's Q4/Q6. The same glasses: 0.00-0.04 oriented, at most 0.04 by Q4/Q6; the
#: decahedron 0.08-0.18 oriented; crystals 0.10-0.43 oriented or up to 1.00 by Q4/Q6.
MIN_ORDERED_FRACTION = 0.06


def not_layered(score: float, n_atoms: int, local, oriented) -> str:
    """Why atoms whose stacking analysis found ``score`` do not form close-packed layers ('' when
    they do): a score that random points reach (:data:`MIN_LAYERING_SCORE`, ``4 / sqrt(N)``), or
    one that a glass reaches (:data:`GLASS_LAYERING_SCORE`) without the crystal order of
    :data:`MIN_ORDERED_FRACTION` of the atoms (``local``: each atom's Q4/Q6 class;
    ``oriented``: whether each atom has a measurable fcc orientation, None if not measured).
    """
    min_score = max(MIN_LAYERING_SCORE, 4.0 / np.sqrt(max(n_atoms, 1)))
    if not score >= min_score:
        return (
            f"the atoms do not form close-packed layers (layering score {score:.2f} < "
            f"{min_score:.2f}): no layers, stacking labels, faults or lattice fits (an amorphous "
            "or polycrystalline particle, or positions too noisy)"
        )
    ordered = float(np.mean(np.asarray(local) != "other")) if len(local) else 0.0
    oriented = float(np.mean(oriented)) if oriented is not None and len(oriented) else 0.0
    if score < GLASS_LAYERING_SCORE and max(ordered, oriented) < MIN_ORDERED_FRACTION:
        return (
            f"the atoms do not form close-packed layers: their layering (score {score:.2f}, below "
            f"{GLASS_LAYERING_SCORE}) is what a dense amorphous packing's first shell and surface "
            f"make, and no crystal order backs it ({100 * oriented:.0f} % of the atoms with an "
            f"fcc orientation, {100 * ordered:.0f} % with a crystal's Q4/Q6; "
            f"{100 * MIN_ORDERED_FRACTION:.0f} % needed): no layers, stacking labels, faults or "
            "lattice fits (an amorphous particle, or positions too noisy)"
        )
    return ""
