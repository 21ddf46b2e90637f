"""Analyses of atom models (no Qt, no napari)."""

from ._boo import classify_local_structure, steinhardt_q4_q6
from ._compare import ModelComparison, compare_atom_models
from ._stacking import (
    StackingResult,
    analyze_stacking,
    find_stacking_direction,
    nearest_neighbour_distance,
)
from ._structure import StructureAnalysis, analyze_structure

__all__ = [
    "ModelComparison",
    "StackingResult",
    "StructureAnalysis",
    "analyze_stacking",
    "analyze_structure",
    "classify_local_structure",
    "compare_atom_models",
    "find_stacking_direction",
    "nearest_neighbour_distance",
    "steinhardt_q4_q6",
]
