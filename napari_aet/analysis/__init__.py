"""Analyses of atom models (no Qt, no napari)."""

from ._boo import classify_local_structure, steinhardt_q4_q6
from ._compare import ModelComparison, compare_atom_models
from ._orr import (
    OrrRelation,
    facet_summary,
    gaussian_map,
    orr_activity,
    read_orr_relation,
    smooth_per_atom,
)
from ._precision import (
    MultisliceSettings,
    PrecisionResult,
    multislice_tilt_series,
    plot_deviation_histogram,
    precision_analysis,
)
from ._stacking import (
    StackingResult,
    analyze_stacking,
    find_stacking_direction,
    nearest_neighbour_distance,
)
from ._strain import StrainResult, strain_map
from ._structure import StructureAnalysis, analyze_structure
from ._validate import RFactorResult, r_factor

__all__ = [
    "OrrRelation",
    "facet_summary",
    "gaussian_map",
    "orr_activity",
    "read_orr_relation",
    "smooth_per_atom",
    "MultisliceSettings",
    "PrecisionResult",
    "multislice_tilt_series",
    "plot_deviation_histogram",
    "precision_analysis",
    "ModelComparison",
    "RFactorResult",
    "StackingResult",
    "StrainResult",
    "StructureAnalysis",
    "analyze_stacking",
    "analyze_structure",
    "classify_local_structure",
    "compare_atom_models",
    "find_stacking_direction",
    "nearest_neighbour_distance",
    "r_factor",
    "steinhardt_q4_q6",
    "strain_map",
]
