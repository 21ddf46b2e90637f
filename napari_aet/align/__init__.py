"""Tilt-series preprocessing and alignment (no Qt, no napari)."""

from ._crop import ParticleCrop, particle_crop
from ._dual_axis import (
    DualAxisRegistration,
    dual_axis_euler,
    refine_second_axis_turn,
    register_second_axis,
)
from ._frames import (
    SCAN_DIRECTIONS,
    FrameRegistration,
    add_frames,
    frame_shifts,
    register_frames,
)
from ._glitches import dead_lines_reason, dead_scan_lines
from ._model_rounds import BLURRED_RATIO, blurred_images
from ._pipeline import (
    SIGNIFICANCE_K,
    AlignmentResult,
    align_tilt_series,
    coarse_shift_error,
    keep_significant,
)
from ._preprocess import (
    LOW_COUNTS,
    STUDY_LOWPASS_INV_A,
    bm3d_available,
    denoise,
    dose_denoise_choice,
    lowpass_filter,
    recorded_denoiser,
    subtract_background,
)
from ._projection_matching import ProjectionMatchingResult, projection_matching
from ._reproject import reproject
from ._shifts import (
    apply_alignment,
    axis_matrix,
    center_of_mass_offsets,
    common_line_offsets,
    estimate_tilt_axis_angle,
    gauge_free_shift_error,
)
from ._significance import significance_k

__all__ = [
    "ParticleCrop",
    "SCAN_DIRECTIONS",
    "FrameRegistration",
    "add_frames",
    "frame_shifts",
    "register_frames",
    "particle_crop",
    "dead_lines_reason",
    "dead_scan_lines",
    "BLURRED_RATIO",
    "blurred_images",
    "SIGNIFICANCE_K",
    "coarse_shift_error",
    "keep_significant",
    "significance_k",
    "DualAxisRegistration",
    "dual_axis_euler",
    "refine_second_axis_turn",
    "register_second_axis",
    "LOW_COUNTS",
    "dose_denoise_choice",
    "STUDY_LOWPASS_INV_A",
    "AlignmentResult",
    "ModelRefinementResult",
    "ProjectionMatchingResult",
    "align_tilt_series",
    "apply_alignment",
    "axis_matrix",
    "bm3d_available",
    "center_of_mass_offsets",
    "common_line_offsets",
    "denoise",
    "estimate_tilt_axis_angle",
    "gauge_free_shift_error",
    "lowpass_filter",
    "projection_matching",
    "refine_atomic_model",
    "why_untrusted",
    "recorded_denoiser",
    "reproject",
    "subtract_background",
]
