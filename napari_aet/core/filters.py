"""Image filters shared by the preprocessing of tilt series and the U-Net's training data."""

from __future__ import annotations

import numpy as np

#: The study's low-pass pass band [1/A] (Methods: a circular filter of 2.08 1/A diameter, edge
#: 0.05 1/A); the default of every low-pass in the project.
STUDY_LOWPASS_INV_A = 2.08


def lowpass_filter(
    data,
    *,
    pixel_size_A: float,
    cutoff_diameter_inv_A: float = STUDY_LOWPASS_INV_A,
    edge_width_inv_A: float = 0.05,
) -> np.ndarray:
    """Circular low-pass filter with a raised-cosine edge, in physical spatial frequency.

    Frequencies up to ``cutoff_diameter_inv_A / 2 - edge_width_inv_A / 2`` pass, those beyond
    ``cutoff_diameter_inv_A / 2 + edge_width_inv_A / 2`` are removed, with a cosine ramp between
    (the study: 2.08 1/A diameter, edge 0.05 1/A).
    """
    arr = np.asarray(data, np.float32)
    if arr.ndim != 3:
        raise ValueError(f"expected a stack of images (n, rows, cols); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("the images contain NaN or infinite pixels; fill or mask them first")
    if pixel_size_A <= 0 or cutoff_diameter_inv_A <= 0 or edge_width_inv_A < 0:
        raise ValueError(
            "pixel_size_A and cutoff_diameter_inv_A must be > 0, edge_width_inv_A >= 0"
        )
    n, rows, cols = arr.shape
    fr = np.fft.fftfreq(rows, d=pixel_size_A)
    fc = np.fft.rfftfreq(cols, d=pixel_size_A)
    f = np.hypot(fr[:, None], fc[None, :])
    r = cutoff_diameter_inv_A / 2.0
    lo, hi = r - edge_width_inv_A / 2.0, r + edge_width_inv_A / 2.0
    w = np.ones_like(f)
    if edge_width_inv_A > 0:
        ramp = (f > lo) & (f < hi)
        w[ramp] = 0.5 * (1 + np.cos(np.pi * (f[ramp] - lo) / (hi - lo)))
    w[f >= hi] = 0.0
    spec = np.fft.rfft2(arr, axes=(1, 2)) * w[None]
    return np.fft.irfft2(spec, s=(rows, cols), axes=(1, 2)).astype(np.float32)
