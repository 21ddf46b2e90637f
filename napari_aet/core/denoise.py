"""Denoising of tilt series of counts: BM3D or non-local means on Anscombe-transformed
images, and the dose rule that decides when (``denoise_method="dose"`` of the align stage).

In ``core`` because both the align stage and the U-Net's training data (which must see what
the pipeline feeds the network) use it; :mod:`napari_aet.align` re-exports it.
"""

from __future__ import annotations

import numpy as np

from .counts import _subsample, is_counts  # noqa: F401 (is_counts re-exported)
from .progress import report


def check_stack(data) -> np.ndarray:
    """``data`` as a float32 (n_images, rows, cols) stack; a clear error for another shape or
    for NaN or infinite pixels."""
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"expected a tilt series (n_images, rows, cols); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            "the tilt series contains NaN or infinite pixels; read it with nan_policy='fill'"
        )
    return arr.astype(np.float32, copy=False)


def _anscombe(x):
    return 2.0 * np.sqrt(np.maximum(x, 0) + 3.0 / 8.0)


def _inverse_anscombe(y):
    """Closed-form approximation of the exact unbiased inverse (Makitalo & Foi 2011)."""
    y = np.maximum(y, 1e-3)
    s = np.sqrt(1.5)
    return y**2 / 4 + s / (4 * y) - 11 / (8 * y**2) + 5 * s / (8 * y**3) - 1 / 8


def bm3d_available() -> bool:
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


#: Counts at the brightest atomic column below which ``denoise_method="dose"`` denoises: the
#: Poisson noise there is then above a tenth of the signal (1 / sqrt(100)). The refine stage
#: then places the atoms on whichever of the denoised series and its counts a replicate with a
#: known truth shows to be better (:func:`napari_aet.trace.choose_position_source`), so a
#: denoiser that does not help costs time, not accuracy. On ten independent 128-px and 256-px
#: series of Pt, Pd, Ni and Au particles at 14-102 counts (a held-out seed; docs/benchmarks.md,
#: twenty-fifth session) denoising took the final RMSD from 2.8-17.5 pm to 2.5-8.4 pm (every
#: series better or equal: the amorphous particle's replicate chose its counts); the earlier
#: bar of 15 counts (noise above a quarter) left the series at 15-17 counts undenoised, and a
#: series at 16 came out 17.5 pm from the truth where one at 10 came out 11.9.
LOW_COUNTS = 100.0


def brightest_counts(data) -> float:
    """The counts at a series' brightest atomic columns: the 99.9th percentile of its pixels
    (background included), what :func:`dose_denoise_choice` judges by."""
    return float(np.percentile(_subsample(np.asarray(data)), 99.9))


def dose_denoise_choice(data, *, counts: bool | None = None) -> tuple[str | None, str]:
    """What ``denoise_method="dose"`` does with a raw series: ``(method or None, reason)``.

    Denoise (BM3D when installed, else non-local means, on Anscombe-transformed counts) when the
    images are counts whose brightest atomic column (the 99.9th percentile of the pixels) has
    fewer than :data:`LOW_COUNTS`; otherwise leave them. ``counts``: whether the images are
    counts (default: non-negative integers, :func:`is_counts`; a detector's images converted
    by :func:`napari_aet.core.counts.as_counts` are counts too).
    """
    arr = np.asarray(data)
    if not (is_counts(arr) if counts is None else counts):
        return None, (
            "the images are not counts (non-integer or negative, and no noise model was "
            "measured): not denoised"
        )
    peak = brightest_counts(arr)
    if peak >= LOW_COUNTS:
        return None, f"{peak:.0f} counts at the brightest columns: not denoised"
    method = "bm3d" if bm3d_available() else "nlmeans"
    return method, (
        f"{peak:.0f} counts at the brightest columns (< {LOW_COUNTS:.0f}): denoised with "
        f"{method} (Poisson)"
    )


def denoise(
    data,
    *,
    method: str = "auto",
    noise: str = "poisson",
    sigma: float | None = None,
    progress=None,
) -> tuple[np.ndarray, str]:
    """Denoise every image; returns ``(denoised, method_used)``.

    Parameters
    ----------
    method : {"auto", "bm3d", "nlmeans", "none"}
        ``"auto"`` uses BM3D (the study's choice; the ``bm3d`` package) when it imports and
        scikit-image's non-local means otherwise.
    noise : {"poisson", "gaussian"}
        ``"poisson"`` (counts): the Anscombe transform makes the noise Gaussian with unit
        variance before denoising, and the closed-form unbiased inverse maps back (Makitalo &
        Foi 2011). ``"gaussian"``: denoise directly with ``sigma``.
    sigma : float, optional
        Gaussian noise standard deviation; estimated from the data when None.

    Notes
    -----
    The ``bm3d`` package is free for non-commercial use only (see its license); install it with
    ``pip install napari-aet[bm3d]``. Non-local means is the fallback.
    """

    arr = check_stack(data)
    if method == "none":
        return arr.copy(), "none"
    if method == "auto":
        method = "bm3d" if bm3d_available() else "nlmeans"
    if method == "bm3d" and not bm3d_available():
        raise ImportError(
            "method='bm3d' needs the bm3d package: pip install bm3d (or use 'nlmeans')"
        )
    if method not in ("bm3d", "nlmeans"):
        raise ValueError("method must be 'auto', 'bm3d', 'nlmeans' or 'none'")
    if noise not in ("poisson", "gaussian"):
        raise ValueError("noise must be 'poisson' or 'gaussian'")
    from skimage.restoration import denoise_nl_means, estimate_sigma

    out = np.empty_like(arr)
    for i, img in enumerate(arr):
        x = _anscombe(img) if noise == "poisson" else img.astype(np.float64)
        s = 1.0 if noise == "poisson" else (sigma or float(estimate_sigma(x)))
        if method == "bm3d":
            import bm3d

            y = bm3d.bm3d(x, sigma_psd=s)
        else:
            y = denoise_nl_means(
                x, h=0.8 * s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True
            )
        out[i] = _inverse_anscombe(y) if noise == "poisson" else y
        report(progress, i + 1, len(arr), f"denoising image {i + 1}/{len(arr)} ({method})")
    return out, method


def recorded_denoiser(metadata):
    """The denoiser that a series' provenance records (the align stage's ``denoise`` step:
    method and noise model) as a function ``counts -> images``, to repeat it on other counts
    (the refine stage's replicate); None when the provenance names none. When the align
    stage denoised the counts before subtracting their background (``background_counts``,
    per image), the function does the same to background-subtracted counts, and carries the
    levels as its ``background_counts`` attribute."""
    step = ((metadata or {}).get("provenance") or {}).get("denoise") or {}
    method = step.get("method")
    if method in (None, "none"):
        return None
    noise = step.get("noise", "poisson")
    levels = step.get("background_counts")
    return _denoiser(method, noise, None if levels is None else np.asarray(levels, np.float32))


def _denoiser(method, noise, levels):
    """``counts -> images`` with ``method``; ``levels``: the per-image background added back
    before and taken off after (see :func:`recorded_denoiser`). Its ``take(index)`` is the same
    denoiser for those images of the series alone."""
    level = None if levels is None else levels[:, None, None]

    def run(counts):
        if level is None:
            return denoise(counts, method=method, noise=noise)[0]
        # the align stage denoised the counts before it subtracted their background (other
        # images than the series': its mean level)
        arr = np.asarray(counts, np.float32)
        b = level if len(arr) == len(level) else np.float32(level.mean())
        return denoise(arr + b, method=method, noise=noise)[0] - b

    #: the background that was subtracted (per image; counts drawn for a replicate need it)
    run.background_counts = None if level is None else level[:, 0, 0].copy()
    run.take = lambda index: _denoiser(
        method, noise, None if levels is None else levels[np.asarray(index)]
    )
    return run
