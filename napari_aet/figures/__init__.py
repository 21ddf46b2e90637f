"""Figures for papers: montages, panels, colour and scale bars (matplotlib, no Qt)."""

from ._curves import plot_recon_errors, plot_trace_histogram
from ._montage import add_scale_bar, tilt_series_montage

__all__ = ["add_scale_bar", "plot_recon_errors", "plot_trace_histogram", "tilt_series_montage"]
