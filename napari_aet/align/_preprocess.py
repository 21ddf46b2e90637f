"""Preprocessing of tilt series: background subtraction, denoising, low-pass filtering.

The low-pass filter and the denoiser live in :mod:`napari_aet.core` (the U-Net's training data
uses them too) and are re-exported here.
"""

from __future__ import annotations

import numpy as np

from ..core.denoise import (  # noqa: F401 (re-exported)
    LOW_COUNTS,
    bm3d_available,
    check_stack,
    denoise,
    dose_denoise_choice,
    is_counts,
    recorded_denoiser,
)
from ..core.filters import STUDY_LOWPASS_INV_A, lowpass_filter  # noqa: F401 (re-exported)
from ..recon._support import projection_masks


def subtract_background(
    data,
    *,
    method: str = "plane",
    mask_margin_px: float = 8.0,
    clip_sigma: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Subtract a robust background fitted outside the particle, image by image.

    The particle is each image's foreground (Li threshold of a smoothed copy) widened by
    ``mask_margin_px``; the background is a plane ``a + b row + c col`` (``method="plane"``) or a
    constant (``"offset"``), fitted to the remaining pixels by least squares with iterative
    ``clip_sigma`` rejection so that stray bright pixels do not bias it.

    Returns
    -------
    corrected : ndarray of float32, shape like ``data``
    params : ndarray of shape (n_images, 3)
        ``(a, b, c)`` per image (``b = c = 0`` for ``"offset"``), in the data's units.
    """

    arr = check_stack(data)
    if method not in ("plane", "offset"):
        raise ValueError("method must be 'plane' or 'offset'")
    masks = projection_masks(arr, smooth_px=2.0, margin_px=mask_margin_px)
    n, rows, cols = arr.shape
    rr, cc = np.mgrid[0:rows, 0:cols].astype(np.float64)
    rr -= rows // 2
    cc -= cols // 2
    out = np.empty_like(arr)
    params = np.zeros((n, 3))
    for i in range(n):
        bg = ~masks[i]
        if bg.sum() < 50:  # the particle fills the image: nothing to fit
            bg = np.ones_like(bg)
        v = arr[i][bg].astype(np.float64)
        if method == "offset":
            keep = np.ones(v.size, bool)
            for _ in range(3):
                # centred on the clipped mean: at low dose the median of the counts (0) is
                # not their level
                center = float(np.mean(v[keep])) if keep.any() else float(np.median(v))
                keep = np.abs(v - center) <= clip_sigma * _robust_spread(v[keep])
            p = np.array([np.mean(v[keep]), 0.0, 0.0])
        else:
            a = np.column_stack([np.ones(v.size), rr[bg], cc[bg]])
            keep = np.ones(v.size, bool)
            for _ in range(3):
                p, *_ = np.linalg.lstsq(a[keep], v[keep], rcond=None)
                res = v - a @ p
                keep = np.abs(res) <= clip_sigma * _robust_spread(res[keep])
        params[i] = p
        out[i] = arr[i] - (p[0] + p[1] * rr + p[2] * cc)
    return out, params


def _robust_spread(values) -> float:
    """The spread of ``values``: the larger of the median absolute deviation scaled to a
    standard deviation and the standard deviation of the values between their 2nd and 98th
    percentiles. For noise of continuous values the first is the larger; raw
    counts of a dark background at low dose are mostly 0, their median absolute deviation
    (nearly) 0, which would reject every pixel."""
    v = np.asarray(values, np.float64)
    if not v.size:
        return 1e-12
    mad = 1.4826 * float(np.median(np.abs(v - np.median(v))))
    lo, hi = np.percentile(v, [2, 98])
    core = v[(v >= lo) & (v <= hi)]
    return max(mad, float(np.std(core)) if core.size > 1 else 0.0) + 1e-12
