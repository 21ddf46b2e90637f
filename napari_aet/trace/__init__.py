"""Atom tracing and the editable atom model (no Qt, no napari)."""

from ._angle_check import check_angles, checked_angles
from ._editable import EditableAtomModel, default_autosave_path
from ._picking import front_most_on_ray, pick_along_ray, pick_near_point
from ._position_source import choose_position_source
from ._refine import refine_atom_positions
from ._review import DOUBT_WEIGHTS, ReviewList, doubt_scores, review_atoms
from ._tracer import TraceResult, classify_species, fit_peaks, trace_atoms
from ._trials import residual_trials
from ._verdicts import REFINE_FEATURES

__all__ = [
    "DOUBT_WEIGHTS",
    "REFINE_FEATURES",
    "ReviewList",
    "doubt_scores",
    "review_atoms",
    "EditableAtomModel",
    "TraceResult",
    "default_autosave_path",
    "fit_peaks",
    "front_most_on_ray",
    "pick_along_ray",
    "pick_near_point",
    "refine_atom_positions",
    "check_angles",
    "checked_angles",
    "residual_trials",
    "trace_atoms",
    "classify_species",
    "choose_position_source",
]
