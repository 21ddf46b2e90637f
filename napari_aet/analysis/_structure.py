"""Structure analysis of an atom model: stacking, layers, clusters, twist and BOO, in one call."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from ..core.atoms import AtomModel
from ..core.geometry import in_plane_basis
from ..core.memory import check_memory
from ..core.progress import report
from ._amorphous import amorphous_summary
from ._boo import (
    LOCAL_STRUCTURES,
    STUDY_BOO_CUTOFF_A,
    _ideal,
    classify_local_structure,
    steinhardt_q4_q6,
)
from ._chemical_order import add_chemical_order, two_species
from ._crystal import (
    BOO_CUTOFF_PER_BOND,
    BOO_CUTOFF_PER_LATTICE_CONSTANT,
    _bcc_reference,
    _bcc_verdict,
    _composition,
    _hcp_reference,
    _is_element,
    _tetrahedral,
    fit_cluster_lattices,
    not_layered,
    reference_lattice_constant,
    surface_atoms,
)
from ._depth import add_composition_by_depth
from ._grains import fit_grain_lattices, grains_note, segment_grains
from ._lattice import CUBIC_LATTICES, DegenerateFit, fit_hexagonal_layer
from ._orientation import cluster_rotation_deg, lattice_twist_deg
from ._orr import OrrRelation, facet_summary, orr_activity, read_orr_relation, smooth_per_atom
from ._stacking import (
    _DUPLICATE_A,
    StackingResult,
    _check_positions,
    _wrap60,
    analyze_stacking,
    nearest_neighbour_distance,
)
from ._strain import strain_map
from ._surface import facet_sets, local_lattice_constants


@dataclass
class StructureAnalysis:
    """The model with its new features, the stacking details and a JSON-ready summary.

    ``summary["notes"]`` lists every quantity that could not be computed and why; such
    quantities are ``None`` in the summary and NaN (or empty) in the features.
    """

    model: AtomModel
    stacking: StackingResult
    summary: dict = field(default_factory=dict)


def _facets(features) -> dict:

    return facet_summary(features)


def _boo_distance(q4, q6, kind: str) -> float:
    ref = np.array(_ideal(kind, True))
    q = np.stack([q4, q6], 1)
    q = q[np.isfinite(q).all(axis=1)]
    if not len(q):
        return float("nan")
    return float(np.linalg.norm(q - ref, axis=1).mean())


def _clean(value):
    """JSON-safe copy: NaN and inf become None, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def _empty_stacking(n: int, notes: list) -> StackingResult:
    return StackingResult(
        np.full(3, np.nan),
        np.zeros(n, np.int64),
        np.full(n, "?"),
        np.full(n, "other"),
        np.zeros(n, np.int64),
        notes=notes,
    )


def _references(model, element, reference_lattice_constant_A, cutoff_A, notes: list):
    """The fcc reference lattice constant (None for a bcc or hcp metal or a non-fcc element),
    the bcc one (None unless a bcc metal), the hcp a (None unless an hcp metal) and the Q4/Q6
    cutoff (None: from the measured bonds)."""
    comp = _composition(model, element)
    # a bcc element's (W, Fe, Mo, ...) reference is its bcc lattice constant (or the one given),
    # an hcp element's (Co, Ru, Ti, ...) its hcp a
    a_ref_bcc = a_ref_hcp = None
    if _bcc_reference(element, None, comp) is not None:
        a_ref_bcc = _bcc_reference(element, reference_lattice_constant_A, comp)
        a_ref = None
    elif _hcp_reference(element) is not None:
        a_ref_hcp = _hcp_reference(element, reference_lattice_constant_A)
        a_ref = None
    else:
        try:
            a_ref = reference_lattice_constant(element, reference_lattice_constant_A, comp)
        except ValueError:
            if reference_lattice_constant_A is not None or not _is_element(element):
                raise
            a_ref = None  # not an fcc metal (Si, ...): no bulk fcc reference
            notes.append(
                f"{element} has no tabulated fcc lattice constant: no local strain against a "
                "reference (give --lattice-constant for one); the Q4/Q6 cutoff follows the "
                "measured bond length"
            )
    if cutoff_A is None and a_ref is not None:
        cutoff_A = BOO_CUTOFF_PER_LATTICE_CONSTANT * a_ref
    elif cutoff_A is None and a_ref_bcc is not None:
        cutoff_A = BOO_CUTOFF_PER_BOND * a_ref_bcc * np.sqrt(3.0) / 2.0
    elif cutoff_A is None and a_ref_hcp is not None:
        cutoff_A = BOO_CUTOFF_PER_BOND * a_ref_hcp
    elif cutoff_A is not None and not (math.isfinite(cutoff_A) and cutoff_A > 0):
        raise ValueError(f"the Q4/Q6 cutoff must be a positive length in A, got {cutoff_A}")
    return a_ref, a_ref_bcc, a_ref_hcp, cutoff_A


def _layer_lattice_fits(st: StackingResult, pos, surface, d_nn: float, notes: list) -> None:
    """A 2D hexagonal lattice fit of every (111) layer of 7 atoms or more: its RMSD (surface and
    core atoms apart), assigned fraction and bond length go into the layer's entry."""
    e1, e2 = in_plane_basis(st.normal)
    centre = pos.mean(axis=0)
    for L in st.layers:
        sel = np.nonzero(st.layer == L["index"])[0]
        L.update(
            rmsd_2d_A=None, rmsd_2d_surface_A=None, rmsd_2d_core_A=None, assigned_fraction_2d=None
        )
        if len(sel) < 7 or L["orientation_deg"] is None:
            continue
        xy = np.stack([(pos[sel] - centre) @ e1, (pos[sel] - centre) @ e2], axis=1)
        try:
            fit = fit_hexagonal_layer(
                xy, bond_A=d_nn, orientation_rad=np.deg2rad(L["orientation_deg"])
            )
        except DegenerateFit as err:
            notes.append(f"layer {L['index']}: no 2D lattice fit ({err})")
            continue
        surf = surface[sel][fit.assigned]
        r = fit.residuals_A
        L.update(
            rmsd_2d_A=fit.rmsd_A,
            rmsd_2d_surface_A=float(np.sqrt((r[surf] ** 2).mean())) if surf.any() else None,
            rmsd_2d_core_A=float(np.sqrt((r[~surf] ** 2).mean())) if (~surf).any() else None,
            assigned_fraction_2d=len(fit.assigned) / len(sel),
            bond_length_2d_A=fit.bond_length_A,
        )


def _hcp_segments(layer, faults) -> np.ndarray:
    """Which side of an hcp crystal's faults each atom is on (0 below the first, 1 above it,
    ...), -1 inside a fault. A fault's first fcc-stacked layer still sits on the lattice below
    it and its last on the lattice above (an intrinsic I1 fault's one layer on both: counted
    below); the layers between (an extrinsic fault's inserted layer) sit on neither."""
    layer = np.asarray(layer)
    seg = np.zeros(len(layer), np.int64)
    inside = np.zeros(len(layer), bool)
    for fault in faults:
        first, last = min(fault["fcc_layers"]), max(fault["fcc_layers"])
        seg += layer > first
        inside |= (layer > first) & (layer < last)
    seg[inside] = -1
    return seg


def _hcp_fits(pos, st: StackingResult, d_nn: float, notes: list):
    """The hcp lattice fits of an hcp crystal, one on each side of every fault (a lattice grown
    across a fault loses the atoms beyond it: a third to a half of a faulted particle); yields
    as :func:`fit_cluster_lattices` does, the segment as the cluster."""
    seg = _hcp_segments(st.layer, st.faults)
    keep = np.nonzero(seg >= 0)[0]
    if st.faults:
        notes.append(
            f"the hcp lattice is fitted on each side of the {len(st.faults)} fault(s) on its own "
            f"({len(np.unique(seg[keep]))} parts; {len(seg) - len(keep)} atoms inside faults "
            "are on neither)"
        )
    for cl, sel, fit in fit_cluster_lattices(
        pos[keep], st.normal, seg[keep], d_nn=d_nn, notes=notes, kind="hcp"
    ):
        yield cl, keep[sel], fit


def _hcp_c(fits: dict, spacing_A: float) -> float:
    """An hcp crystal's ``c`` [A]: from its fitted lattices (weighted by the atoms each takes),
    else twice the layer spacing."""
    if not fits:
        return 2.0 * spacing_A
    w = np.array([len(x.assigned) for x in fits.values()], float)
    return float(np.average([x.lattice_constant_A * x.c_over_a for x in fits.values()], weights=w))


def _in_plane_bond(layers, d_nn: float) -> float:
    """An hcp crystal's ``a``: the in-plane bond of its layers' 2D lattice fits (weighted by the
    atoms each fit takes), else the nearest-neighbour distance (which mixes in the bonds between
    layers, 2 % shorter for Ru's c/a of 1.58)."""
    fits = [
        (L["bond_length_2d_A"], L["n_atoms"] * L["assigned_fraction_2d"])
        for L in layers
        if L.get("bond_length_2d_A") is not None and L.get("assigned_fraction_2d")
    ]
    if not fits:
        return d_nn
    bond, weight = np.array(fits, float).T
    return float(np.average(bond, weights=weight))


def analyze_structure(
    model: AtomModel,
    *,
    cutoff_A: float | None = None,
    normal=None,
    clusters=None,
    strain: bool = False,
    strain_sigma_A: float = 2.7,
    strain_frame: str = "lab",
    element: str | None = None,
    reference_lattice_constant_A: float | None = None,
    orr_relation=None,
    structure: str = "auto",
    progress=None,
) -> StructureAnalysis:
    """Stacking layers, A/B/C and fcc/hcp labels, faults and twin boundaries, clusters, the
    twist between clusters, and Steinhardt Q4/Q6 for every atom.

    Adds the features ``layer`` (0 at the interface), ``abc``, ``stacking``, ``cluster``,
    ``q4``, ``q6``, ``local_structure`` (fcc/hcp/other from the Q4-Q6 map) and ``surface``
    to a copy of the model. The summary holds what ``analysis.json`` reports: the stacking
    direction, the nearest-neighbour distance (noise-corrected) and the lattice constant (from
    the fitted cluster lattices), every fault, the interface and twin-boundary layers,
    ``relative_rotation_deg`` between the two clusters' fitted lattices about [111], a table of
    layers, and the BOO distances the study quotes (twin boundaries to ideal hcp, interface and
    the other layers to ideal fcc).

    The reference lattice constant (strain and local strain are measured against it) is
    ``reference_lattice_constant_A``, else ``element``'s (default Pt, 3.912 A). ``cutoff_A``,
    the Q4/Q6 neighbour cutoff, defaults to the study's 3.416 A scaled to that lattice constant.

    With ``strain``, the six strain components (``exx`` ... ``eyz``; ``strain_frame`` "lab",
    or "crystal": on the cubic axes of each cluster's fitted lattice, ``exx`` along [100]) of
    every atom assigned to its cluster's lattice come from the displacements smoothed by a
    ``strain_sigma_A`` Gaussian (:func:`strain_map`); unassigned atoms get NaN. It also adds
    ``a_local`` (local fcc fit to each atom and its neighbours), ``local_strain`` against the
    reference lattice constant, ``local_strain_smoothed`` (averaged over all atoms with the
    ``strain_sigma_A`` Gaussian), ``facet`` (``100``, ``111`` or empty: surface atoms on or
    outside each cluster's outermost surface plane of more than 20 atoms) and
    ``facet_local_strain`` (the study's surface local strain: each facet atom's local strain
    averaged with the Gaussian over the atoms of the same facet kind; NaN off the facets).

    ``orr_relation`` (an :class:`OrrRelation` or the path of its CSV table), with ``strain``,
    adds ``orr_activity`` (log10 of j / j_Pt(111)) on {111} and {100} facet atoms; the summary
    then has per-facet means and spreads of local strain and activity under ``facets``.

    ``clusters`` (0/1 per atom), when given, replaces the split at the interface, e.g. a
    selection the user drew; the lattice fits and ``relative_rotation_deg`` then use it.

    Any finite positions give a result: what cannot be measured (too few atoms, no layering,
    a degenerate cluster) is ``None``/NaN with the reason in ``summary["notes"]``. A particle
    without close-packed layers (amorphous) gets, instead of crystal labels, the radial
    distribution function with its first peak and minimum and each atom's ``coordination``
    (``summary["amorphous"]``).

    ``structure`` overrides the decision: ``"amorphous"`` skips the crystal labels whatever the
    layering, ``"crystalline"`` labels layers however weak (a small or noisy crystal).

    An fcc particle's twin domains come from each atom's own orientation
    (:func:`~napari_aet.analysis.segment_grains`: feature ``grain``, ``summary["grains"]``).
    Where their twin planes are not parallel (a decahedron, an icosahedron) or a boundary is
    neither a twin nor low-angle, and their atoms are a tenth of the model or more, the grains
    are the clusters: each one's lattice is fitted from its own orientation and its strain
    measured on it, no twist between two clusters is given, and a note says so. A model of two
    elements (its ``element`` feature) gets its chemical order (``summary["chemical_order"]``,
    features ``chemical_order`` and ``order_variant``; :mod:`._chemical_order`).
    """
    if structure not in ("auto", "crystalline", "amorphous"):
        raise ValueError(
            f"structure {structure!r}: choose 'auto' (decided by the layering), 'crystalline' "
            "or 'amorphous'"
        )
    pos = _check_positions(model.positions, minimum=1)
    n_atoms = len(pos)
    if clusters is not None:
        clusters = np.asarray(clusters, dtype=np.int64).ravel()
        if clusters.shape != (n_atoms,) or not set(np.unique(clusters)) <= {0, 1}:
            raise ValueError("clusters must hold 0 or 1 for every atom")
    if strain_frame not in ("lab", "crystal"):
        raise ValueError("strain_frame must be 'lab' or 'crystal'")
    if not (math.isfinite(strain_sigma_A) and strain_sigma_A > 0):
        raise ValueError(f"strain_sigma_A must be a positive length in A, got {strain_sigma_A}")
    early_notes: list[str] = []
    a_ref, a_ref_bcc, a_ref_hcp, cutoff_A = _references(
        model, element, reference_lattice_constant_A, cutoff_A, early_notes
    )
    given_ref = (
        None if reference_lattice_constant_A is None else float(reference_lattice_constant_A)
    )
    # bonds, neighbour lists, Q4/Q6 and the feature table: about 10 kB per atom at the peak
    # (measured: 18,000 atoms add 200 MB)
    check_memory(
        1e4 * n_atoms,
        f"the structure analysis of {n_atoms:,} atoms",
        hint="analyse a subset (a cluster or a region) or use a machine with more memory",
    )
    notes: list[str] = list(early_notes)
    out = copy.deepcopy(model)
    f = out.features
    report(progress, 0, 3, "bonds")
    d_nn = float("nan")
    try:
        d_nn = nearest_neighbour_distance(pos)
    except ValueError as err:
        notes.append(f"no nearest-neighbour distance: {err}")
    if n_atoms >= 2:
        close, _ = cKDTree(pos).query(pos, k=2)
        n_dup = int((close[:, 1] < _DUPLICATE_A).sum())
        if n_dup:
            notes.append(
                f"{n_dup} atoms lie within {_DUPLICATE_A} A of another (an atom traced twice?): "
                "they count as one for the bond length but stay in every other measure"
            )
    if cutoff_A is None:  # no reference: between the first and second shells of the bonds
        cutoff_A = BOO_CUTOFF_PER_BOND * d_nn if math.isfinite(d_nn) else STUDY_BOO_CUTOFF_A
    report(progress, 1, 3, "bond orientational order")
    q4 = q6 = np.full(n_atoms, np.nan)
    if n_atoms >= 2:
        q4, q6 = steinhardt_q4_q6(pos, cutoff_A=cutoff_A)
    n_lonely = int((~np.isfinite(q4)).sum())
    if n_lonely:
        notes.append(f"{n_lonely} atoms have no neighbour within {cutoff_A:.3f} A: Q4, Q6 NaN")
    local, _ = classify_local_structure(q4, q6)
    # a bcc crystal has no close-packed layers: its own lattice, no stacking
    bcc_fit = None
    if structure != "amorphous" and normal is None:
        bcc_fit = _bcc_verdict(pos, local, d_nn, notes)
    tetrahedral = bcc_fit is None and normal is None and _tetrahedral(pos, d_nn)
    if tetrahedral:
        notes.append(
            "the atoms are 4-coordinated (a tetrahedral network: diamond-cubic or amorphous Si, "
            "Ge, C): the close-packed analysis (layers, stacking, fcc lattice fits) does not "
            "apply; g(r), coordination and Voronoi motifs instead"
        )
    lattice_kind = "bcc" if bcc_fit is not None else "fcc"
    st = None
    if bcc_fit is None and (n_atoms < 10 or not math.isfinite(d_nn)):
        notes.append(f"no stacking analysis: {n_atoms} atoms (needs at least 10 with bonds)")
    elif bcc_fit is None:
        try:
            st = analyze_stacking(pos, normal=normal, bond_A=d_nn)
        except ValueError as err:
            notes.append(f"no stacking analysis: {err}")
    # twin domains from each atom's own orientation: a multiply twinned particle (twin planes
    # not parallel: a decahedron, an icosahedron) has no single stacking normal to describe it
    grains = None
    if (
        bcc_fit is None
        and not tetrahedral
        and structure != "amorphous"
        and math.isfinite(d_nn)
        and n_atoms >= 13
    ):
        grains = segment_grains(pos, d_nn)
    multi = grains is not None and clusters is None and normal is None and grains.describe()
    # random points reach a score of about 1/sqrt(N) in any one direction, and a few times that
    # at the best of thousands; a small glass particle more: its layers need a crystal's order
    too_weak = (
        not_layered(st.layering_score, n_atoms, local, None if grains is None else grains.oriented)
        if st is not None and structure == "auto"
        else ""
    )
    if st is not None and normal is None and (too_weak or structure == "amorphous" or tetrahedral):
        if structure == "amorphous":
            notes.append("amorphous as asked (structure='amorphous'): no crystal labels")
        elif not tetrahedral and not multi:
            notes.append(too_weak)
        score = st.layering_score
        st = _empty_stacking(n_atoms, [])
        st.layering_score = score
    crystalline = st is not None and np.isfinite(st.normal).all()
    if crystalline and st.host == "hcp":
        lattice_kind = "hcp"
    if st is None:
        st = _empty_stacking(n_atoms, [])
    notes.extend(st.notes)
    f["layer"] = st.layer
    f["abc"] = st.abc
    f["stacking"] = st.stacking
    if clusters is not None:
        st.cluster = clusters
    f["cluster"] = st.cluster
    f["q4"] = q4
    f["q6"] = q6
    f["local_structure"] = local
    if clusters is not None and crystalline:
        st.relative_rotation_deg = cluster_rotation_deg(pos, st.normal, clusters, d_nn=d_nn)
    if grains is not None and lattice_kind == "hcp":
        grains = None  # fcc twin domains say nothing of an hcp crystal
    if grains is not None and (crystalline or multi):
        f["grain"] = grains.label
        notes.extend(grains.notes)
    if multi:
        notes.append(grains_note(grains, layered=crystalline))
        st.cluster = grains.label.copy()
        f["cluster"] = st.cluster
        st.relative_rotation_deg = float("nan")
    tb = np.isin(st.layer, st.twin_boundaries) & crystalline
    interface = (st.layer == 0) & (st.interface_layer is not None)
    others = ~tb & ~interface
    orient = {L["index"]: L["orientation_deg"] for L in st.layers}
    report(progress, 2, 3, "lattice fits")
    if math.isfinite(d_nn):
        surface, outward = surface_atoms(pos, d_nn, lattice_kind)
    else:
        surface, outward = np.ones(n_atoms, bool), np.zeros_like(pos)
    f["surface"] = surface.astype(np.int8)
    if crystalline:
        _layer_lattice_fits(st, pos, surface, d_nn, notes)
    assigned_flag = np.zeros(n_atoms, np.int8)
    fits_summary, fits = [], {}
    if strain:
        for name in ("exx", "eyy", "ezz", "exy", "exz", "eyz", "a_local", "local_strain"):
            f[name] = np.nan
        f["facet"] = ""
    if lattice_kind == "bcc":
        # strains of a bcc crystal against the bcc reference (or the one the user gave)
        a_ref = a_ref_bcc if a_ref_bcc is not None else given_ref
        if a_ref is None:
            notes.append(
                "a bcc crystal but no bcc reference lattice constant (the element is not a bcc "
                "metal): no local strain (give --lattice-constant for one)"
            )
        if clusters is not None:
            fit_iter = fit_cluster_lattices(pos, None, clusters, d_nn=d_nn, notes=notes, kind="bcc")
        else:
            fit_iter = [(0, np.arange(n_atoms), bcc_fit)]
    elif lattice_kind == "hcp":
        # strains of an hcp crystal against the element's hcp a (or the one the user gave)
        a_ref = a_ref_hcp if a_ref_hcp is not None else given_ref
        if a_ref is None:
            notes.append(
                "an hcp crystal but no hcp reference a (the element is not an hcp metal): no "
                "local strain (give --lattice-constant for one)"
            )
        fit_iter = _hcp_fits(pos, st, d_nn, notes)
    elif crystalline or multi:
        if a_ref_bcc is not None:
            notes.append(
                f"{element} is a bcc metal but these atoms form close-packed layers: no local "
                "strain against a reference (give --lattice-constant for an fcc one)"
            )
        if multi:
            fit_iter = fit_grain_lattices(pos, grains, d_nn=d_nn, notes=notes)
        else:
            fit_iter = fit_cluster_lattices(pos, st.normal, st.cluster, d_nn=d_nn, notes=notes)
    else:
        fit_iter = ()
    fit_atoms = {}
    for cl, sel, best in fit_iter:
        fits[cl] = best
        fit_atoms[cl] = (sel, best)
        assigned_flag[sel[best.assigned]] = 1
        if strain:
            _strain_of_cluster(
                f,
                pos,
                sel,
                best,
                (surface, outward),
                strain_sigma_A,
                strain_frame,
                a_ref,
                notes,
                cl,
            )
        fits_summary.append(
            {
                "cluster": int(cl),
                "n_atoms": int(len(sel)),
                "assigned_fraction": len(best.assigned) / len(sel),
                "rmsd_A": best.rmsd_A,
                "lattice_constant_A": best.lattice_constant_A,
                "rotation_crystal_to_lab": np.asarray(best.rotation).tolist(),
                **({"c_over_a": best.c_over_a} if best.kind == "hcp" else {}),
            }
        )
    f["lattice_assigned"] = assigned_flag
    chem = None
    species = two_species(f)
    if species is not None and lattice_kind == "fcc" and fit_atoms:
        chem = add_chemical_order(f, pos, species, d_nn, fit_atoms, st.cluster, grains=grains)
        notes.extend(chem.pop("notes", []))
    depth = add_composition_by_depth(f, pos, d_nn)
    notes.extend(depth.pop("notes") if depth else [])
    twist_source = "in-plane bond orientations" if clusters is not None else None
    if multi:
        twist_source = None
    elif 0 in fits and 1 in fits and crystalline and lattice_kind == "fcc":
        twist, tilt = lattice_twist_deg(fits[0].rotation, fits[1].rotation, st.normal)
        st.relative_rotation_deg = twist
        twist_source = "fitted fcc lattices of the two clusters"
        if tilt > 5.0:
            notes.append(
                f"a cluster's own [111] is {tilt:.1f} deg from the common stacking normal: the "
                "twist about it is approximate"
            )
    elif crystalline and st.interface_layer is not None:
        twist_source = "in-plane bond orientations (a cluster lattice could not be fitted)"
    if not multi and not np.isfinite(st.relative_rotation_deg) and st.interface_layer is not None:
        notes.append("no relative rotation: a cluster has no measurable lattice orientation")
    if strain:
        _facet_strain(f, pos, strain_sigma_A)
    orr_source = None
    if strain and orr_relation is not None:
        rel = (
            orr_relation
            if isinstance(orr_relation, OrrRelation)
            else read_orr_relation(orr_relation)
        )
        f["orr_activity"] = orr_activity(f, rel)
        orr_source = rel.source

    def _rot(a, b):
        if orient.get(a) is None or orient.get(b) is None:
            return None
        return float(np.rad2deg(_wrap60(np.deg2rad(orient[a] - orient[b]))))

    tbs = sorted(st.twin_boundaries)
    a_fit = float("nan")
    if fits:
        w = np.array([len(x.assigned) for x in fits.values()], float)
        a_fit = float(np.average([x.lattice_constant_A for x in fits.values()], weights=w))
    amorphous = None
    if (
        ((not crystalline and not multi) or structure == "amorphous")
        and lattice_kind != "bcc"
        and n_atoms >= 4
    ):
        amorphous, per_atom = amorphous_summary(pos)
        for k, v in per_atom.items():
            f[k] = v
        # the fcc neighbour count means nothing here: the surface is where cells open
        surface = per_atom["voronoi_index"] == ""
        f["surface"] = surface.astype(np.int8)
    if lattice_kind == "hcp" and not np.isfinite(a_fit):
        a_meas = _in_plane_bond(st.layers, d_nn)
    elif lattice_kind == "fcc" and not crystalline and not multi:
        a_meas = float("nan")  # no lattice (amorphous, a tetrahedral network): no constant
    else:
        a_meas = a_fit if np.isfinite(a_fit) else d_nn / CUBIC_LATTICES[lattice_kind][1]
    if a_ref is not None and np.isfinite(a_meas) and abs(a_meas / a_ref - 1) > 0.03:
        notes.append(
            f"the measured lattice constant {a_meas:.3f} A is {100 * (a_meas / a_ref - 1):+.1f} % "
            f"from the reference {a_ref:.3f} A: check the element (or --lattice-constant) and "
            "the pixel size"
        )
    summary = {
        "n_atoms": int(n_atoms),
        "stacking_normal_zyx": [float(v) for v in st.normal],
        "layering_score": st.layering_score,
        "layer_spacing_A": st.spacing_A,
        "nearest_neighbour_distance_A": d_nn,
        "lattice_constant_A": a_meas,
        "lattice_constant_source": f"fitted {lattice_kind} lattices"
        if np.isfinite(a_fit)
        else "in-plane bonds of the fitted layers (hcp a)"
        if lattice_kind == "hcp"
        else "nearest-neighbour distance",
        "hcp_c_A": _hcp_c(fits, st.spacing_A) if lattice_kind == "hcp" else None,
        "reference_lattice_constant_A": a_ref,
        "lattice": lattice_kind
        if lattice_kind != "fcc"
        else "fcc"
        if crystalline or multi
        else None,
        "local_structure_counts": {
            k: int(np.sum(local == k)) for k in (*LOCAL_STRUCTURES, "other")
        },
        "element": None if element is None else str(element),
        "n_layers": len(st.layers),
        "interface_layer": 0 if st.interface_layer is not None else None,
        "twin_boundary_layers": st.twin_boundaries,
        "faults": st.faults,
        "relative_rotation_deg": st.relative_rotation_deg,
        "relative_rotation_source": twist_source,
        "interface_rotation_deg": {
            "to_upper_twin_boundary": _rot(tbs[-1], 0) if tbs else None,
            "to_lower_twin_boundary": _rot(0, tbs[0]) if len(tbs) > 1 else None,
        },
        "layers": st.layers,
        "lattice_fits": fits_summary,
        "n_surface_atoms": int(surface.sum()),
        "boo": {
            "cutoff_A": cutoff_A,
            "twin_boundaries_to_hcp": _boo_distance(q4[tb], q6[tb], "hcp"),
            "interface_to_fcc": _boo_distance(q4[interface], q6[interface], "fcc"),
            "others_to_fcc": _boo_distance(q4[others], q6[others], "fcc"),
            "ideal_fcc_q4_q6": list(_ideal("fcc", True)),
            "ideal_hcp_q4_q6": list(_ideal("hcp", True)),
            "ideal_bcc_q4_q6": list(_ideal("bcc", True)),
        },
        "facets": _facets(f) if strain else {},
        "orr_relation_source": orr_source,
        "counts": {
            "fcc": int((st.stacking == "fcc").sum()),
            "hcp": int((st.stacking == "hcp").sum()),
            "other": int((st.stacking == "other").sum()),
        },
        "amorphous": amorphous,
        "grains": grains.summary() if grains is not None and (crystalline or multi) else None,
        "chemical_order": chem,
        "composition_by_depth": depth,
        "notes": list(dict.fromkeys(notes)),
    }
    summary = _clean(summary)
    out.metadata = {
        **out.metadata,
        "structure_analysis": {k: v for k, v in summary.items() if k != "layers"},
    }
    report(progress, 3, 3, "done")
    return StructureAnalysis(out, st, summary)


def _strain_of_cluster(f, pos, sel, best, surface, sigma_A, frame, a_ref, notes, cl) -> None:
    """Strain components, local lattice constants, local strain and facets of one cluster
    (``surface``: the whole particle's surface mask and outward directions)."""

    idx = sel[best.assigned]
    if len(idx) < 4:
        notes.append(f"cluster {cl}: {len(idx)} atoms on its lattice, too few for strain")
        return
    st_res = strain_map(
        pos[idx],
        best.displacements_A,
        sigma_A=sigma_A,
        rotation=best.rotation,
        frame=frame,
        grid_spacing_A=None,
    )
    for name, vals in st_res.per_atom.items():
        f.loc[idx, name] = vals
    a_loc = local_lattice_constants(
        pos[idx],
        best.sites,
        lattice_constant_A=best.lattice_constant_A,
        kind=best.kind,
        c_over_a=best.c_over_a,
    )
    f.loc[idx, "a_local"] = a_loc
    if a_ref is not None:
        f.loc[idx, "local_strain"] = (a_loc - a_ref) / a_ref
    if best.kind != "fcc":  # {111} and {100} facets (and the ORR relation) are fcc's
        notes.append(
            f"no {{111}}/{{100}} facets or ORR activity on the fitted {best.kind} lattice "
            "(fcc only)"
        )
        return
    fs = facet_sets(
        pos[sel],
        rotation=best.rotation,
        lattice_constant_A=best.lattice_constant_A,
        surface=surface[0][sel],
        outward=surface[1][sel],
    )
    # an atom on both (an edge between facets) goes to the facet it faces most
    out = surface[1][sel]
    a111 = np.einsum("ij,ij->i", np.nan_to_num(fs["normal_111"]), out)
    a100 = np.einsum("ij,ij->i", np.nan_to_num(fs["normal_100"]), out)
    both = fs["100"] & fs["111"]
    lab = np.where(fs["100"], "100", np.where(fs["111"], "111", "")).astype(object)
    lab[both & (a111 > a100)] = "111"
    f.loc[sel, "facet"] = lab.astype(str)


def _facet_strain(f, pos, sigma_A: float) -> None:
    """``local_strain_smoothed`` (all atoms) and ``facet_local_strain`` (the study's surface
    local strain: averaged over the atoms of the same facet kind) with a Gaussian."""

    ls = f["local_strain"].to_numpy(float)
    f["local_strain_smoothed"] = smooth_per_atom(pos, ls, sigma_A=sigma_A)
    facet = f["facet"].astype(str).to_numpy()
    out = np.full(len(pos), np.nan)
    for kind in ("111", "100"):
        sel = np.nonzero(facet == kind)[0]
        if len(sel):
            out[sel] = smooth_per_atom(pos[sel], ls[sel], sigma_A=sigma_A)
    f["facet_local_strain"] = out
