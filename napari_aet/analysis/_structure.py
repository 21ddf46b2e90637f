"""Structure analysis of an atom model: stacking, layers, clusters, twist and BOO, in one call."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from .._geometry import in_plane_basis
from .._progress import report
from ..atoms import AtomModel
from ._boo import _ideal, classify_local_structure, steinhardt_q4_q6
from ._lattice import fcc_rotation_from_stacking, fit_fcc_lattice, fit_hexagonal_layer
from ._stacking import StackingResult, analyze_stacking, nearest_neighbour_distance


@dataclass
class StructureAnalysis:
    """The model with its new features, the stacking details and a JSON-ready summary."""

    model: AtomModel
    stacking: StackingResult
    summary: dict = field(default_factory=dict)


def _facets(features) -> dict:
    from ._orr import facet_summary

    return facet_summary(features)


def _boo_distance(q4, q6, kind: str) -> float:
    ref = np.array(_ideal(kind, True))
    if not len(q4):
        return float("nan")
    return float(np.linalg.norm(np.stack([q4, q6], 1) - ref, axis=1).mean())


def _bond_orientation(pos, normal, d_nn) -> float:
    """6-fold mean in-plane orientation [rad] of the nearest-neighbour bonds of ``pos``."""
    e1, e2 = in_plane_basis(normal)
    pairs = cKDTree(pos).query_pairs(1.2 * d_nn, output_type="ndarray")
    if not len(pairs):
        return float("nan")
    b = pos[pairs[:, 1]] - pos[pairs[:, 0]]
    b = b[np.abs(b @ normal) < 0.3 * d_nn]
    if not len(b):
        return float("nan")
    return float(np.angle(np.exp(6j * np.arctan2(b @ e2, b @ e1)).mean()) / 6)


def fit_cluster_lattices(pos, normal, cluster, *, d_nn: float):
    """Search-and-assign fcc fit of every cluster; yields ``(cluster, atom indices, FccFit)``.

    Each fit starts from the stacking normal and the cluster's in-plane bond orientation and
    tries both twin variants about [111], keeping the one that assigns more atoms.
    """
    e1, e2 = in_plane_basis(normal)
    for cl in np.unique(cluster):
        sel = np.nonzero(cluster == cl)[0]
        if len(sel) < 20:
            continue
        th = _bond_orientation(pos[sel], normal, d_nn)
        if not np.isfinite(th):
            continue
        best = None
        for extra in (0.0, np.pi / 3):  # the two twin variants about [111]
            e = np.cos(th + extra) * e1 + np.sin(th + extra) * e2
            fit = fit_fcc_lattice(
                pos[sel],
                lattice_constant_A=d_nn * np.sqrt(2),
                rotation=fcc_rotation_from_stacking(normal, e),
            )
            if best is None or len(fit.assigned) > len(best.assigned):
                best = fit
        yield int(cl), sel, best


def cluster_rotation_deg(positions_A, normal, clusters, *, d_nn: float) -> float:
    """Rotation [degrees] of cluster 1's hexagonal nets relative to cluster 0's about ``normal``,
    from the 6-fold mean orientation of the in-plane nearest-neighbour bonds inside each."""
    pos = np.asarray(positions_A, float)
    clusters = np.asarray(clusters)
    means = [_bond_orientation(pos[clusters == c], normal, d_nn) for c in (0, 1)]
    if not all(np.isfinite(means)):
        return float("nan")
    return float(np.rad2deg(np.angle(np.exp(6j * (means[1] - means[0]))) / 6))


def analyze_structure(
    model: AtomModel,
    *,
    cutoff_A: float = 3.416,
    normal=None,
    clusters=None,
    strain: bool = False,
    strain_sigma_A: float = 2.7,
    strain_frame: str = "lab",
    reference_lattice_constant_A: float = 3.912,
    orr_relation=None,
    progress=None,
) -> StructureAnalysis:
    """Stacking layers, A/B/C and fcc/hcp labels, interface and twin boundaries, clusters, the
    twist between clusters, and Steinhardt Q4/Q6 for every atom.

    Adds the features ``layer`` (0 at the interface), ``abc``, ``stacking``, ``cluster``,
    ``q4``, ``q6`` and ``local_structure`` (fcc/hcp/other from the Q4-Q6 map) to a copy of the
    model. The summary holds what ``analysis.json`` reports: the stacking direction, the
    nearest-neighbour distance and the lattice constant it implies, the interface and
    twin-boundary layers, ``relative_rotation_deg`` between the clusters about [111], a table of
    layers, and the BOO distances the study quotes (twin boundaries to ideal hcp, interface and
    the other layers to ideal fcc).

    With ``strain``, the six strain components (``exx`` ... ``eyz``; ``strain_frame`` "lab",
    or "crystal": on the cubic axes of each cluster's fitted lattice, ``exx`` along [100]) of
    every atom
    assigned to its cluster's lattice come from the displacements smoothed by a
    ``strain_sigma_A`` Gaussian (:func:`strain_map`); unassigned atoms get NaN. It also adds
    ``a_local`` (local fcc fit to each atom and its neighbours), ``local_strain`` against
    ``reference_lattice_constant_A`` (3.912 A: bulk Pt; give your metal's), the same averaged
    over the atoms with the ``strain_sigma_A`` Gaussian (``local_strain_smoothed``) and ``facet``
    (``100``, ``111`` or empty, from each cluster's reference planes).

    ``orr_relation`` (an :class:`OrrRelation` or the path of its CSV table), with ``strain``,
    adds ``orr_activity`` (log10 of j / j_Pt(111)) on {111} and {100} facet atoms; the summary
    then has per-facet means and spreads of local strain and activity under ``facets``.

    ``clusters`` (0/1 per atom), when given, replaces the split at the interface, e.g. a
    selection the user drew; the lattice fits and ``relative_rotation_deg`` then use it.
    """
    pos = model.positions
    if clusters is not None:
        clusters = np.asarray(clusters, dtype=np.int64).ravel()
        if clusters.shape != (model.n_atoms,) or not set(np.unique(clusters)) <= {0, 1}:
            raise ValueError("clusters must hold 0 or 1 for every atom")
    report(progress, 0, 3, "stacking")
    st = analyze_stacking(pos, normal=normal)
    report(progress, 1, 3, "bond orientational order")
    q4, q6 = steinhardt_q4_q6(pos, cutoff_A=cutoff_A)
    local, _ = classify_local_structure(q4, q6)
    out = copy.deepcopy(model)
    f = out.features
    f["layer"] = st.layer
    f["abc"] = st.abc
    f["stacking"] = st.stacking
    if clusters is not None:
        st.cluster = clusters
    f["cluster"] = st.cluster
    f["q4"] = q4
    f["q6"] = q6
    f["local_structure"] = local
    d_nn = nearest_neighbour_distance(pos)
    if clusters is not None:
        st.relative_rotation_deg = cluster_rotation_deg(pos, st.normal, clusters, d_nn=d_nn)
    tb = np.isin(st.layer, st.twin_boundaries)
    interface = (st.layer == 0) & (st.interface_layer is not None)
    others = ~tb & ~interface
    orient = {L["index"]: L["orientation_deg"] for L in st.layers}
    report(progress, 2, 3, "lattice fits")
    tree = cKDTree(pos)
    coordination = np.array([len(x) - 1 for x in tree.query_ball_point(pos, 1.2 * d_nn)])
    surface = coordination < 11  # fewer than 11 of the 12 fcc neighbours
    f["surface"] = surface.astype(np.int8)
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
        fit = fit_hexagonal_layer(xy, bond_A=d_nn, orientation_rad=np.deg2rad(L["orientation_deg"]))
        surf = surface[sel][fit.assigned]
        r = fit.residuals_A
        L.update(
            rmsd_2d_A=fit.rmsd_A,
            rmsd_2d_surface_A=float(np.sqrt((r[surf] ** 2).mean())) if surf.any() else None,
            rmsd_2d_core_A=float(np.sqrt((r[~surf] ** 2).mean())) if (~surf).any() else None,
            assigned_fraction_2d=len(fit.assigned) / len(sel),
            bond_length_2d_A=fit.bond_length_A,
        )
    assigned_flag = np.zeros(len(pos), np.int8)
    clusters = []
    for cl, sel, best in fit_cluster_lattices(pos, st.normal, st.cluster, d_nn=d_nn):
        assigned_flag[sel[best.assigned]] = 1
        if strain:
            from ._strain import strain_map

            st_res = strain_map(
                pos[sel[best.assigned]],
                best.displacements_A,
                sigma_A=strain_sigma_A,
                rotation=best.rotation,
                frame=strain_frame,
                grid_spacing_A=None,
            )
            for name, vals in st_res.per_atom.items():
                if name not in f.columns:
                    f[name] = np.nan
                f.loc[sel[best.assigned], name] = vals
            from ._surface import facet_sets, local_lattice_constants

            a_loc = local_lattice_constants(
                pos[sel[best.assigned]], best.sites, lattice_constant_A=best.lattice_constant_A
            )
            for name in ("a_local", "local_strain"):
                if name not in f.columns:
                    f[name] = np.nan
            f.loc[sel[best.assigned], "a_local"] = a_loc
            a_ref = reference_lattice_constant_A
            f.loc[sel[best.assigned], "local_strain"] = (a_loc - a_ref) / a_ref
            fs = facet_sets(
                pos[sel], rotation=best.rotation, lattice_constant_A=best.lattice_constant_A
            )
            if "facet" not in f.columns:
                f["facet"] = ""
            lab = np.where(fs["100"], "100", np.where(fs["111"], "111", ""))
            f.loc[sel, "facet"] = lab
        clusters.append(
            {
                "cluster": int(cl),
                "n_atoms": int(len(sel)),
                "assigned_fraction": len(best.assigned) / len(sel),
                "rmsd_A": best.rmsd_A,
                "lattice_constant_A": best.lattice_constant_A,
                "rotation_crystal_to_lab": np.asarray(best.rotation).tolist(),
            }
        )
    f["lattice_assigned"] = assigned_flag
    if strain and "local_strain" in f.columns:
        from ._orr import smooth_per_atom

        f["local_strain_smoothed"] = smooth_per_atom(pos, f["local_strain"], sigma_A=strain_sigma_A)
    orr_source = None
    if strain and orr_relation is not None:
        from ._orr import OrrRelation, orr_activity, read_orr_relation

        rel = (
            orr_relation
            if isinstance(orr_relation, OrrRelation)
            else read_orr_relation(orr_relation)
        )
        f["orr_activity"] = orr_activity(f, rel) if "facet" in f.columns else np.nan
        orr_source = rel.source

    def _rot(a, b):
        if orient.get(a) is None or orient.get(b) is None:
            return None
        d = np.deg2rad(orient[a] - orient[b])
        return float(np.rad2deg(np.angle(np.exp(6j * d)) / 6))

    tbs = sorted(st.twin_boundaries)
    summary = {
        "n_atoms": int(model.n_atoms),
        "stacking_normal_zyx": [float(v) for v in st.normal],
        "layering_score": st.layering_score,
        "layer_spacing_A": st.spacing_A,
        "nearest_neighbour_distance_A": d_nn,
        "lattice_constant_A": d_nn * np.sqrt(2.0),
        "n_layers": len(st.layers),
        "interface_layer": 0 if st.interface_layer is not None else None,
        "twin_boundary_layers": st.twin_boundaries,
        "relative_rotation_deg": st.relative_rotation_deg,
        "interface_rotation_deg": {
            "to_upper_twin_boundary": _rot(tbs[-1], 0) if tbs else None,
            "to_lower_twin_boundary": _rot(0, tbs[0]) if len(tbs) > 1 else None,
        },
        "layers": st.layers,
        "lattice_fits": clusters,
        "n_surface_atoms": int(surface.sum()),
        "boo": {
            "cutoff_A": cutoff_A,
            "twin_boundaries_to_hcp": _boo_distance(q4[tb], q6[tb], "hcp"),
            "interface_to_fcc": _boo_distance(q4[interface], q6[interface], "fcc"),
            "others_to_fcc": _boo_distance(q4[others], q6[others], "fcc"),
            "ideal_fcc_q4_q6": list(_ideal("fcc", True)),
            "ideal_hcp_q4_q6": list(_ideal("hcp", True)),
        },
        "facets": _facets(f) if strain else {},
        "orr_relation_source": orr_source,
        "counts": {
            "fcc": int((st.stacking == "fcc").sum()),
            "hcp": int((st.stacking == "hcp").sum()),
            "other": int((st.stacking == "other").sum()),
        },
    }
    out.metadata = {
        **out.metadata,
        "structure_analysis": {k: v for k, v in summary.items() if k != "layers"},
    }
    report(progress, 3, 3, "done")
    return StructureAnalysis(out, st, summary)
