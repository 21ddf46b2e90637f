"""Structures, projected potentials and tilt-series synthesis (no Qt, no napari)."""

from ._build import LATTICE_CONSTANTS_A, STRUCTURES, build_structure
from ._errors import InjectedErrors, inject_model_errors
from ._potentials import (
    atomic_number,
    kirkland_parameters,
    projected_potential_profile,
    scattering_factor,
)
from ._sample import SAMPLE_NAME, twinned_pt_nanodumbbell
from ._structures import (
    PT_LATTICE_CONSTANT_A,
    StackedStructure,
    amorphous_particle,
    apply_point_defects,
    blob_mask,
    convex_mask,
    fcc_lattice,
    fcc_particle,
    stacked_particle,
    stacking_sequence,
    thermal_jitter,
    twinned_dumbbell,
)
from ._tilt_series import (
    SimulatedTiltSeries,
    TiltSeriesTruth,
    project_positions,
    rotation_center_A,
    simulate_tilt_series,
)
from ._volume import render_atom_volume

__all__ = [
    "InjectedErrors",
    "inject_model_errors",
    "LATTICE_CONSTANTS_A",
    "STRUCTURES",
    "build_structure",
    "PT_LATTICE_CONSTANT_A",
    "SAMPLE_NAME",
    "SimulatedTiltSeries",
    "StackedStructure",
    "TiltSeriesTruth",
    "amorphous_particle",
    "apply_point_defects",
    "atomic_number",
    "blob_mask",
    "convex_mask",
    "fcc_lattice",
    "fcc_particle",
    "kirkland_parameters",
    "project_positions",
    "render_atom_volume",
    "projected_potential_profile",
    "rotation_center_A",
    "scattering_factor",
    "simulate_tilt_series",
    "stacked_particle",
    "stacking_sequence",
    "thermal_jitter",
    "twinned_dumbbell",
    "twinned_pt_nanodumbbell",
]
