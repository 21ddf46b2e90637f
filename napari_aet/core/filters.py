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


def white_noise_variance(images, *, above_fraction: float = 0.8) -> np.ndarray:
    """Each image's white-noise variance, from its power beyond ``above_fraction`` of the
    Nyquist frequency (radially), where images of resolved atoms have next to no signal.

    Shot noise and detector read-out noise are white; an atom's image (width ~0.45 A) keeps
    under 1e-4 of its power beyond 0.8 Nyquist at 0.36 A pixels, so that band holds the noise
    alone: on Poisson counts the estimate is the mean count (measured 1.00-1.08 of it on
    independent series at 1-4 counts per pixel; 1.18 at the study's counts, where the noise
    matters little). Images already filtered, denoised or resampled have lost that band and
    give less: use it on images as recorded (less any background).

    Parameters
    ----------
    images : array-like of shape (n, rows, cols) or (rows, cols)
    above_fraction : float
        Lower edge of the band, as a fraction of the Nyquist frequency (0 < f < 1).

    Returns
    -------
    ndarray of shape (n,) (a float for one image)
    """
    arr = np.asarray(images, np.float64)
    if arr.ndim not in (2, 3) or min(arr.shape[-2:]) < 8:
        raise ValueError(f"expected images of at least 8 x 8 pixels; got shape {arr.shape}")
    if not 0.0 < above_fraction < 1.0:
        raise ValueError(f"above_fraction must lie in (0, 1); got {above_fraction}")
    rows, cols = arr.shape[-2:]
    k = np.hypot(np.fft.fftfreq(rows)[:, None] * 2.0, np.fft.fftfreq(cols)[None, :] * 2.0)
    band = k > above_fraction
    stack = arr.reshape(-1, rows, cols)
    out = np.empty(len(stack))
    for i, img in enumerate(stack):
        power = np.abs(np.fft.fft2(img - img.mean())) ** 2 / (rows * cols)
        out[i] = power[band].mean()
    return out if arr.ndim == 3 else float(out[0])
