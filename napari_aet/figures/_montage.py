"""Montage of a tilt series with angles and a scale bar."""

from __future__ import annotations

import numpy as np


def add_scale_bar(ax, *, length_A: float, pixel_size_A: float, label: str | None = None) -> None:
    """Draw a white scale bar of ``length_A`` in the lower left of an image axis."""
    from matplotlib.patches import Rectangle

    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    width_px = abs(x1 - x0)
    height_px = abs(y1 - y0)
    bar = length_A / pixel_size_A
    left = min(x0, x1) + 0.06 * width_px
    bottom = max(y0, y1) - 0.08 * height_px
    ax.add_patch(Rectangle((left, bottom), bar, 0.02 * height_px, color="white", lw=0, zorder=5))
    text = label or (f"{length_A / 10:g} nm" if length_A >= 10 else f"{length_A:g} Å")
    ax.text(
        left + bar / 2,
        bottom - 0.015 * height_px,
        text,
        color="white",
        ha="center",
        va="bottom",
        fontsize=7,
        zorder=5,
    )


def tilt_series_montage(
    data: np.ndarray,
    angles_deg,
    *,
    pixel_size_A: float | None = None,
    ncols: int = 7,
    panel_size_in: float = 1.6,
    scale_bar_A: float = 20.0,
    title: str | None = None,
    cmap: str = "gray",
):
    """Every image of a tilt series in a grid, labelled with its angle, with a scale bar.

    Parameters
    ----------
    data : ndarray of shape (n_tilts, rows, cols)
    angles_deg : array-like of shape (n_tilts,)
        Tilt angles [degrees] for the labels.
    pixel_size_A : float, optional
        Pixel size [A]; draws a ``scale_bar_A`` bar on the first panel when given.
    ncols : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    data = np.asarray(data)
    n = data.shape[0]
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(ncols * panel_size_in, nrows * panel_size_in + (0.3 if title else 0)))
    lo, hi = np.percentile(data, [0.5, 99.8])
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= n:
            continue
        ax.imshow(data[k], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        if angles_deg is not None:
            ax.text(
                0.96,
                0.96,
                f"{float(angles_deg[k]):+.1f}°",
                color="white",
                ha="right",
                va="top",
                fontsize=7,
                transform=ax.transAxes,
            )
        if k == 0 and pixel_size_A:
            add_scale_bar(ax, length_A=scale_bar_A, pixel_size_A=pixel_size_A)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.01, top=0.93 if title else 0.99, wspace=0.03, hspace=0.03
    )
    return fig
