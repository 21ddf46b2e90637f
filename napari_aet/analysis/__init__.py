"""Analyses of atom models (no Qt, no napari)."""

from ._amorphous import (
    amorphous_summary,
    motif_summary,
    radial_distribution,
    voronoi_indices,
)
from ._boo import classify_local_structure, steinhardt_q4_q6
from ._compare import (
    ModelComparison,
    compare_atom_models,
    compare_models,
    register_rigid,
    register_translation,
)
from ._crystal import fit_cluster_lattices
from ._depth import atom_depths, composition_by_depth
from ._grains import MULTIPLY_TWINNED, Grains, local_fcc_orientations, segment_grains
from ._orientation import in_plane_zone_axes
from ._orr import (
    OrrRelation,
    facet_summary,
    gaussian_map,
    orr_activity,
    read_orr_relation,
    smooth_per_atom,
)
from ._stacking import (
    StackingResult,
    analyze_stacking,
    find_stacking_direction,
    nearest_neighbour_distance,
)
from ._strain import StrainResult, strain_map
from ._structure import StructureAnalysis, analyze_structure
from ._validate import (
    STUDY_BLUR_SIGMA_A,
    FieldCoverage,
    RFactorResult,
    field_coverage,
    fit_blur_sigma,
    r_factor,
)

__all__ = [
    "MULTIPLY_TWINNED",
    "atom_depths",
    "composition_by_depth",
    "Grains",
    "local_fcc_orientations",
    "segment_grains",
    "amorphous_summary",
    "motif_summary",
    "radial_distribution",
    "voronoi_indices",
    "register_rigid",
    "register_translation",
    "OrrRelation",
    "facet_summary",
    "gaussian_map",
    "orr_activity",
    "read_orr_relation",
    "smooth_per_atom",
    "ModelComparison",
    "RFactorResult",
    "StackingResult",
    "StrainResult",
    "StructureAnalysis",
    "fit_cluster_lattices",
    "in_plane_zone_axes",
    "analyze_stacking",
    "analyze_structure",
    "classify_local_structure",
    "compare_atom_models",
    "compare_models",
    "find_stacking_direction",
    "nearest_neighbour_distance",
    "r_factor",
    "fit_blur_sigma",
    "field_coverage",
    "FieldCoverage",
    "STUDY_BLUR_SIGMA_A",
    "steinhardt_q4_q6",
    "strain_map",
]
