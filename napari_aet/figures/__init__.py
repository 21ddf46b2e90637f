"""Figures for papers: montages, panels, colour and scale bars (matplotlib, no Qt)."""

from ._curves import (
    STUDY_LAYER_COLORS,
    layer_groups,
    plot_layer_rmsd,
    plot_q4_q6,
    plot_r_factors,
    plot_rdf,
    plot_recon_errors,
    plot_trace_histogram,
)
from ._montage import add_scale_bar, tilt_series_montage, volume_slices_figure
from ._panels import (
    ABC_COLORS,
    atoms_3d_figure,
    crystal_direction_projections,
    diverging_limit,
    facet_map_figure,
    measured_vs_reprojected_figure,
    project_model_along,
    save_figure,
    stacking_layers_figure,
    strain_slices_figure,
    transparent_centre_rgba,
    values_to_rgba,
)
from ._report import RUN_FIGURES, load_run, make_figures, make_run_figures, write_html_report

__all__ = [
    "ABC_COLORS",
    "RUN_FIGURES",
    "atoms_3d_figure",
    "crystal_direction_projections",
    "diverging_limit",
    "transparent_centre_rgba",
    "values_to_rgba",
    "facet_map_figure",
    "load_run",
    "make_figures",
    "make_run_figures",
    "measured_vs_reprojected_figure",
    "project_model_along",
    "save_figure",
    "stacking_layers_figure",
    "strain_slices_figure",
    "write_html_report",
    "STUDY_LAYER_COLORS",
    "layer_groups",
    "plot_layer_rmsd",
    "plot_rdf",
    "plot_q4_q6",
    "plot_r_factors",
    "add_scale_bar",
    "plot_recon_errors",
    "plot_trace_histogram",
    "tilt_series_montage",
    "volume_slices_figure",
]
