"""Structures, projected potentials and tilt-series synthesis (no Qt, no napari)."""

from ._build import LATTICE_CONSTANTS_A, STRUCTURES, build_structure, turn_about_beam
from ._errors import InjectedErrors, inject_model_errors
from ._independent import (
    IndependentImaging,
    IndependentSeries,
    adf_cross_section,
    at_counts,
    independent_tilt_series,
    poisson_counts,
)
from ._multislice import MultisliceSettings, multislice_tilt_series
from ._sample import SAMPLE_NAME, twinned_pt_nanodumbbell
from ._structures import (
    PT_LATTICE_CONSTANT_A,
    StackedStructure,
    amorphous_particle,
    apply_point_defects,
    blob_mask,
    convex_mask,
    faulted_particle,
    fcc_lattice,
    fcc_particle,
    random_stacking,
    stacked_particle,
    stacking_sequence,
    thermal_jitter,
    twinned_dumbbell,
)
from ._tilt_series import (
    STUDY_DOSE_PER_IMAGE_E_PER_A2,
    SimulatedTiltSeries,
    TiltSeriesTruth,
    simulate_tilt_series,
)
from ._volume import render_atom_volume

__all__ = [
    "turn_about_beam",
    "IndependentImaging",
    "IndependentSeries",
    "adf_cross_section",
    "at_counts",
    "independent_tilt_series",
    "poisson_counts",
    "InjectedErrors",
    "MultisliceSettings",
    "STUDY_DOSE_PER_IMAGE_E_PER_A2",
    "multislice_tilt_series",
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
    "blob_mask",
    "convex_mask",
    "fcc_lattice",
    "fcc_particle",
    "render_atom_volume",
    "simulate_tilt_series",
    "faulted_particle",
    "random_stacking",
    "stacked_particle",
    "stacking_sequence",
    "thermal_jitter",
    "twinned_dumbbell",
    "twinned_pt_nanodumbbell",
]
