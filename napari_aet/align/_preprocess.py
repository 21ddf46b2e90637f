"""Preprocessing of tilt series: background subtraction, denoising, low-pass filtering.

The low-pass filter and the denoiser live in :mod:`napari_aet.core` (the U-Net's training data
uses them too) and are re-exported here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core.denoise import (  # noqa: F401 (re-exported)
    LOW_COUNTS,
    bm3d_available,
    brightest_counts,
    check_stack,
    denoise,
    dose_denoise_choice,
    is_counts,
    recorded_denoiser,
)
from ..core.filters import STUDY_LOWPASS_INV_A, lowpass_filter  # noqa: F401 (re-exported)
from ..recon._support import disk_footprint, li_foreground


def subtract_background(
    data,
    *,
    method: str = "plane",
    mask_margin_px: float = 8.0,
    clip_sigma: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Subtract a robust background fitted outside the particle, image by image.

    The particle is each image's foreground (Li threshold of a smoothed copy; of its connected
    parts only those that rise significantly above the background, :func:`_particle_masks`)
    widened by ``mask_margin_px``; a series aligned elsewhere has a fill outside its recorded
    field (0, or a constant), which is left out as well (:func:`fill_masks`: after a 3-degree
    turn and shifts of up to 3 px, 4 % of a 256-px field was 0 where the background was 3
    counts, and the plane came out 0.15 counts low, a pedestal over the particle). The
    background is a plane ``a + b row + c col`` (``method="plane"``) or a constant
    (``"offset"``), fitted to the remaining pixels by least
    squares with iterative ``clip_sigma`` rejection so that stray bright pixels do not bias it.
    The symmetric cut clips the long upper tail of Poisson counts (0.06-0.07 counts low over a
    background of 3 counts per pixel); a cut at the Poisson tail instead kept the dim halo of a
    large particle in the fit (10 % high on the low-dose Si series, which then lost a tenth of
    its atoms: over-subtraction costs the reconstruction's positivity more than a pedestal), so
    the symmetric cut stays.

    Returns
    -------
    corrected : ndarray of float32, shape like ``data``
    params : ndarray of shape (n_images, 3)
        ``(a, b, c)`` per image (``b = c = 0`` for ``"offset"``), in the data's units.
    """

    arr = check_stack(data)
    if method not in ("plane", "offset"):
        raise ValueError("method must be 'plane' or 'offset'")
    masks = _particle_masks(arr, margin_px=mask_margin_px)
    fills = fill_masks(arr)
    for i in np.flatnonzero(fills.any(axis=(1, 2))):
        # a fill at the background's own level is no bias (vacuum recorded as 0 counts, a
        # background-subtracted series filled with 0), and leaving it out of sparse counts
        # would keep only the pixels that happen to have counts
        rest = arr[i][~masks[i] & ~fills[i]].astype(np.float64)
        level = float(np.median(arr[i][fills[i]]))
        if rest.size >= 50 and abs(level - rest.mean()) > rest.std():
            masks[i] |= fills[i]
    n, rows, cols = arr.shape
    rr, cc = np.mgrid[0:rows, 0:cols].astype(np.float64)
    rr -= rows // 2
    cc -= cols // 2
    params = np.zeros((n, 3))
    for i in range(n):
        bg = ~masks[i]
        if bg.sum() < 50:  # the particle fills the image: nothing to fit
            bg = np.ones_like(bg)
        v = arr[i][bg].astype(np.float64)
        if method == "offset":
            a = np.ones((v.size, 1))
        else:
            a = np.column_stack([np.ones(v.size), rr[bg], cc[bg]])
        keep = np.ones(v.size, bool)
        for _ in range(3):
            # at low dose the median of the counts (0) is not their level: the fit is a mean
            p, *_ = np.linalg.lstsq(a[keep], v[keep], rcond=None)
            res = v - a @ p
            keep = np.abs(res) <= clip_sigma * _robust_spread(res[keep])
        params[i, : p.size] = p
    return arr - background_planes(params, arr.shape), params


def fill_masks(arr, reach_px: int = 2) -> np.ndarray:
    """Each image's fill: where a series shifted or turned by interpolation before it arrived
    has no recorded field (0, or some constant): constant 3 x 3 patches that join into a
    region on the image's edge of at least a quarter of its side in pixels, and the
    ``reach_px`` pixels beside them that the interpolation mixed with the fill. At very low
    counts single patches of zeros are common (a tenth of 3 x 3 patches at 0.3 counts per
    pixel) and are data: they lie anywhere and stay small."""
    out = np.zeros(arr.shape, bool)
    for i, img in enumerate(np.asarray(arr)):
        flat = ndimage.maximum_filter(img, 3) == ndimage.minimum_filter(img, 3)
        if not flat.any():
            continue
        lab, n = ndimage.label(flat)
        edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        sizes = ndimage.sum(flat, lab, index=np.arange(n + 1))
        keep = [k for k in edge if k and sizes[k] >= max(img.shape) // 4]
        if keep:
            out[i] = ndimage.binary_dilation(np.isin(lab, keep), iterations=1 + reach_px)
    return out


def background_planes(params, shape) -> np.ndarray:
    """The background planes ``a + b row + c col`` of :func:`subtract_background`'s ``params``
    as images of ``shape`` ``(n, rows, cols)`` (float32; rows and columns from the centre
    pixel)."""
    p = np.asarray(params, np.float64)
    n, rows, cols = shape
    rr = (np.arange(rows) - rows // 2)[None, :, None]
    cc = (np.arange(cols) - cols // 2)[None, None, :]
    planes = p[:, 0, None, None] + p[:, 1, None, None] * rr + p[:, 2, None, None] * cc
    return planes.astype(np.float32)


def _particle_masks(arr, *, margin_px: float, smooth_px: float = 2.0, k: float = 3.0):
    """Each image's particle: Li's foreground of the smoothed image (:func:`li_foreground`),
    of its connected parts only those whose brightest smoothed pixel stands ``k`` noise
    deviations above the median (else the largest), widened by ``margin_px``. At a few counts
    per pixel Li's threshold cuts through the noise, and leaving out the smoothed noise's
    bright patches as "particle" set the background of the rest low (0.06 counts at 1 count
    per pixel)."""
    out = np.empty(arr.shape, bool)
    disk = disk_footprint(margin_px)
    for i, img in enumerate(arr):
        sm = ndimage.gaussian_filter(np.asarray(img, np.float64), smooth_px)
        fg = li_foreground(sm)
        med = float(np.median(sm))
        low = sm[sm <= med] - med  # the lower half: noise about the background (mostly)
        sd = float(np.sqrt(np.mean(low**2))) if low.size else 0.0
        lab, nl = ndimage.label(fg)
        if nl:
            peaks = ndimage.maximum(sm, lab, index=np.arange(1, nl + 1))
            keep = np.flatnonzero(peaks > med + k * sd)
            if not keep.size:  # none stands out (a particle over most of the field): the largest
                keep = [int(np.argmax(ndimage.sum(fg, lab, index=np.arange(1, nl + 1))))]
            m = np.isin(lab, 1 + np.asarray(keep))
        else:
            m = fg
        if margin_px > 0 and m.any():
            m = ndimage.binary_dilation(m, structure=disk)
        out[i] = m
    return out


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
