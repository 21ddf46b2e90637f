"""Convergence curves of iterative reconstructions."""

from __future__ import annotations

import numpy as np


def plot_recon_errors(errors, rfree=None, *, ax=None, title: str | None = "GENFIRE convergence"):
    """Plot the Fourier error and R-free against the iteration number.

    Parameters
    ----------
    errors : array-like of shape (iterations,)
    rfree : array-like of shape (iterations,), optional
        NaN entries (R-free disabled) are not drawn.
    ax : matplotlib Axes, optional
        Drawn into when given; otherwise a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(4.2, 3.0), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    e = np.asarray(errors, dtype=float)
    it = np.arange(1, len(e) + 1)
    ax.plot(it[1:], e[1:], label="error (enforced points)", color="#1f77b4")
    if rfree is not None and np.isfinite(np.asarray(rfree, float)[1:]).any():
        ax.plot(it[1:], np.asarray(rfree, float)[1:], label="R-free (held out)", color="#d62728")
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative Fourier error")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_trace_histogram(intensities, threshold: float, *, ax=None, bins: int = 80):
    """Histogram of candidate intensities with the atom / non-atom threshold.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(4.2, 3.0), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    v = np.asarray(intensities, float)
    ax.hist(
        v[v < threshold], bins=bins, range=(v.min(), v.max()), color="#8d99ae", label="non-atoms"
    )
    ax.hist(v[v >= threshold], bins=bins, range=(v.min(), v.max()), color="#3a86ff", label="atoms")
    ax.axvline(threshold, color="#d62728", lw=1.5, label=f"threshold {threshold:.3g}")
    ax.set_xlabel("integrated intensity")
    ax.set_ylabel("candidates")
    ax.legend(frameon=False, fontsize=8)
    return fig
