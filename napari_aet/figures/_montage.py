"""Montage of a tilt series with angles and a scale bar."""

from __future__ import annotations

import numpy as np


def add_scale_bar(
    ax, *, length_A: float, pixel_size_A: float, label: str | None = None, color: str = "white"
) -> None:
    """Draw a scale bar of ``length_A`` (white unless ``color``) in the lower left of an image
    axis."""
    from matplotlib.patches import Rectangle

    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    width_px = abs(x1 - x0)
    height_px = abs(y1 - y0)
    bar = length_A / pixel_size_A
    left = min(x0, x1) + 0.06 * width_px
    thick = 0.02 * height_px
    if y0 > y1:  # an image axis (y down): the bar near the bottom row, its label above it
        bottom = max(y0, y1) - 0.08 * height_px
        text_y = bottom - 0.015 * height_px
    else:  # y up: the bar near the lowest y, its label above it (higher y)
        bottom = min(y0, y1) + 0.06 * height_px
        text_y = bottom + thick + 0.015 * height_px
    ax.add_patch(Rectangle((left, bottom), bar, thick, color=color, lw=0, zorder=5))
    text = label or (f"{length_A / 10:g} nm" if length_A >= 10 else f"{length_A:g} Å")
    ax.text(
        left + bar / 2,
        text_y,
        text,
        color=color,
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


def volume_slices_figure(
    volumes: dict,
    *,
    voxel_size_A: float | None = None,
    center=None,
    thickness_px: int = 1,
    scale_bar_A: float = 10.0,
    title: str | None = None,
    panel_size_in: float = 2.2,
):
    """Central slices (xy, xz, yz) of several volumes side by side, one row per volume.

    Parameters
    ----------
    volumes : dict of name -> ndarray of shape (z, y, x)
        Volumes of the same shape (e.g. raw and augmented tomograms).
    voxel_size_A : float, optional
        Draws a ``scale_bar_A`` bar on the first panel of each row.
    center : (int, int, int), optional
        Voxel the slices go through; default the centre of mass of the first volume.
    thickness_px : int
        Slabs of this many voxels are averaged (1: single slices).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure
    from scipy import ndimage

    names = list(volumes)
    if not names:
        raise ValueError("no volumes to show")
    first = np.asarray(volumes[names[0]], np.float32)
    if center is None:
        w = np.clip(first, 0, None)
        c = ndimage.center_of_mass(w) if w.sum() > 0 else np.array(first.shape) / 2
        center = [int(round(v)) for v in c]
    cz, cy, cx = center
    h = max(0, thickness_px // 2)
    fig = Figure(figsize=(3 * panel_size_in, len(names) * panel_size_in), dpi=150)
    axes = fig.subplots(len(names), 3, squeeze=False)
    for r, name in enumerate(names):
        v = np.asarray(volumes[name], np.float32)
        if v.shape != first.shape:
            raise ValueError(f"{name!r} has shape {v.shape}, the first volume {first.shape}")
        views = {
            "xy (along z)": v[max(cz - h, 0) : cz + h + 1].mean(0),
            "xz (along y)": v[:, max(cy - h, 0) : cy + h + 1].mean(1),
            "yz (along x)": v[:, :, max(cx - h, 0) : cx + h + 1].mean(2),
        }
        for c, (view, img) in enumerate(views.items()):
            ax = axes[r, c]
            lo, hi = np.percentile(img, [1, 99.8])
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(view, fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
                if voxel_size_A:
                    add_scale_bar(ax, length_A=scale_bar_A, pixel_size_A=voxel_size_A)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
