"""The forward model: what an atom looks like in an ADF-STEM image, where it lands in each
projection, and the fit of an atom model and the tilt geometry to measured images. Shared by
simulate, align, trace and analysis; imports only ``core``."""

from ._held_out import held_out_comparison
from ._model_fit import (
    SPLAT_SIGMA_A,
    TAIL_WIDTHS_A,
    ModelRefinementResult,
    refine_atomic_model,
)
from ._noise_model import WEIGHTINGS
from ._potentials import (
    atomic_number,
    kirkland_parameters,
    profile_cutoff_radius,
    projected_potential_profile,
    scattering_factor,
)
from ._projection import (
    project_positions,
    render_projection,
    rotation_center_A,
    split_object_translation,
)
from ._restraints import BondRestraint, bond_restraint
from ._trust import (
    MAX_ATOM_SIGMA_A,
    MIN_MODEL_CORRELATION,
    signal_correlation,
    why_untrusted,
)

__all__ = [
    "MAX_ATOM_SIGMA_A",
    "MIN_MODEL_CORRELATION",
    "SPLAT_SIGMA_A",
    "TAIL_WIDTHS_A",
    "WEIGHTINGS",
    "BondRestraint",
    "ModelRefinementResult",
    "atomic_number",
    "bond_restraint",
    "held_out_comparison",
    "kirkland_parameters",
    "profile_cutoff_radius",
    "project_positions",
    "projected_potential_profile",
    "refine_atomic_model",
    "render_projection",
    "rotation_center_A",
    "scattering_factor",
    "signal_correlation",
    "split_object_translation",
    "why_untrusted",
]
