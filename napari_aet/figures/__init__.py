"""Figures for papers: montages, panels, colour and scale bars (matplotlib, no Qt)."""

from ._curves import (
    STUDY_LAYER_COLORS,
    layer_groups,
    plot_layer_rmsd,
    plot_q4_q6,
    plot_r_factors,
    plot_recon_errors,
    plot_trace_histogram,
)
from ._montage import add_scale_bar, tilt_series_montage, volume_slices_figure

__all__ = [
    "STUDY_LAYER_COLORS",
    "layer_groups",
    "plot_layer_rmsd",
    "plot_q4_q6",
    "plot_r_factors",
    "add_scale_bar",
    "plot_recon_errors",
    "plot_trace_histogram",
    "tilt_series_montage",
    "volume_slices_figure",
]
