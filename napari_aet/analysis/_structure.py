"""Structure analysis of an atom model: stacking, layers, clusters, twist and BOO, in one call."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .._progress import report
from ..atoms import AtomModel
from ._boo import _ideal, classify_local_structure, steinhardt_q4_q6
from ._stacking import StackingResult, analyze_stacking, nearest_neighbour_distance


@dataclass
class StructureAnalysis:
    """The model with its new features, the stacking details and a JSON-ready summary."""

    model: AtomModel
    stacking: StackingResult
    summary: dict = field(default_factory=dict)


def _boo_distance(q4, q6, kind: str) -> float:
    ref = np.array(_ideal(kind, True))
    if not len(q4):
        return float("nan")
    return float(np.linalg.norm(np.stack([q4, q6], 1) - ref, axis=1).mean())


def analyze_structure(
    model: AtomModel, *, cutoff_A: float = 3.416, normal=None, progress=None
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
    """
    pos = model.positions
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
    f["cluster"] = st.cluster
    f["q4"] = q4
    f["q6"] = q6
    f["local_structure"] = local
    d_nn = nearest_neighbour_distance(pos)
    tb = np.isin(st.layer, st.twin_boundaries)
    interface = (st.layer == 0) & (st.interface_layer is not None)
    others = ~tb & ~interface
    orient = {L["index"]: L["orientation_deg"] for L in st.layers}

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
        "boo": {
            "cutoff_A": cutoff_A,
            "twin_boundaries_to_hcp": _boo_distance(q4[tb], q6[tb], "hcp"),
            "interface_to_fcc": _boo_distance(q4[interface], q6[interface], "fcc"),
            "others_to_fcc": _boo_distance(q4[others], q6[others], "fcc"),
            "ideal_fcc_q4_q6": list(_ideal("fcc", True)),
            "ideal_hcp_q4_q6": list(_ideal("hcp", True)),
        },
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
