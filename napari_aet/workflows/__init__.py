"""Typed workflows over the stages: one frozen settings dataclass per stage (the only home of
defaults), the run-folder layout, ``run_<stage>(inputs, settings, out, progress, cancel)``
that writes a stage's outputs and record, the pipeline and batch (Dask), and the precision
analysis. The CLI and the widgets call these; no Qt."""

from ._common import (
    StageResult,
    load_series,
    load_tomogram,
    parse_image_indices,
    without_images,
)
from .atom_stages import run_analyze, run_precision, run_refine, run_trace, run_validate
from .layout import STAGE_FILES, RunLayout, stage_file
from .pipeline import StageFailed, file_fingerprint, gather, run_batch, run_pipeline, stage_key
from .precision import PrecisionResult, precision_analysis
from .report import load_run, make_run_figures, run_figures, run_summary
from .settings import (
    REFINE_COUNTS,
    STAGES,
    STUDY_LOWPASS_INV_A,
    AlignSettings,
    AnalyzeSettings,
    AugmentSettings,
    FiguresSettings,
    PositionRefineSettings,
    PrecisionSettings,
    ReconSettings,
    RunSettings,
    SeriesSource,
    SimulateSettings,
    TraceSettings,
    ValidateSettings,
    VolumeSource,
    settings_dict,
)
from .stages import (
    align_notes,
    atom_model_builder,
    atom_model_trials,
    excluded_note,
    run_align,
    run_augment,
    run_recon,
    run_simulate,
)

__all__ = [
    "REFINE_COUNTS",
    "STAGES",
    "STAGE_FILES",
    "STUDY_LOWPASS_INV_A",
    "AlignSettings",
    "AnalyzeSettings",
    "AugmentSettings",
    "FiguresSettings",
    "PositionRefineSettings",
    "PrecisionResult",
    "PrecisionSettings",
    "ReconSettings",
    "RunLayout",
    "RunSettings",
    "SeriesSource",
    "SimulateSettings",
    "StageFailed",
    "StageResult",
    "TraceSettings",
    "ValidateSettings",
    "VolumeSource",
    "align_notes",
    "excluded_note",
    "atom_model_builder",
    "atom_model_trials",
    "file_fingerprint",
    "gather",
    "load_run",
    "load_series",
    "parse_image_indices",
    "without_images",
    "load_tomogram",
    "make_run_figures",
    "precision_analysis",
    "run_align",
    "run_analyze",
    "run_augment",
    "run_batch",
    "run_figures",
    "run_pipeline",
    "run_precision",
    "run_recon",
    "run_refine",
    "run_simulate",
    "run_summary",
    "run_trace",
    "run_validate",
    "settings_dict",
    "stage_file",
    "stage_key",
]
