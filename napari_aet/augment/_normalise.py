"""Intensity normalisation of tomograms for the U-Net: atom peaks at about 1.

GENFIRE tomograms carry the detector's arbitrary units, so the network sees every volume on
one scale: the background (median) is subtracted and the result is divided by the typical
height of an atom. That height is the median of the local maxima that stand clearly above the
noise (Otsu's threshold of the local-maximum heights separates atoms from noise peaks), so the
scale does not depend on how much of the box the particle fills, on the dose or on the
detector's gain. Training inputs and inference inputs go through the same function.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..simulate import render_atom_volume


def atom_peak_scale(volume: np.ndarray, *, voxel_size_A: float, min_distance_A: float = 2.0):
    """``(offset, scale)`` such that ``(volume - offset) / scale`` has atom peaks near 1.

    Parameters
    ----------
    volume : ndarray of shape (z, y, x)
    voxel_size_A : float
        Voxel size [A]; sets the neighbourhood of a local maximum (``min_distance_A``).
    min_distance_A : float
        Smallest distance between two atoms [A].

    Raises
    ------
    ValueError
        When the volume is flat (no peaks above the background).
    """
    from skimage.filters import threshold_otsu

    vol = np.asarray(volume, np.float32)
    if vol.ndim != 3:
        raise ValueError(f"a tomogram must be 3D (z, y, x); got shape {vol.shape}")
    if not np.all(np.isfinite(vol)):
        raise ValueError("the tomogram contains NaN or infinite values")
    # subsample the median on big volumes: it only sets the background level
    flat = vol.ravel()
    offset = float(np.median(flat[:: max(1, flat.size // 2_000_000)]))
    size = max(3, int(round(min_distance_A / voxel_size_A)) | 1)
    peaks = vol[(vol == ndimage.maximum_filter(vol, size=size)) & (vol > offset)] - offset
    if peaks.size < 2 or float(peaks.max()) <= 0:
        raise ValueError("the tomogram has no peaks above its background: is it empty?")
    peaks = np.sort(peaks)[-200_000:]  # the brightest are all that matter
    cut = threshold_otsu(peaks) if np.ptp(peaks) > 0 else 0.0
    scale = float(np.median(peaks[peaks > cut])) if np.any(peaks > cut) else float(peaks.max())
    return offset, scale


def normalise_tomogram(volume: np.ndarray, *, voxel_size_A: float) -> np.ndarray:
    """``(volume - background) / atom_peak`` as float32 (see :func:`atom_peak_scale`)."""
    offset, scale = atom_peak_scale(volume, voxel_size_A=voxel_size_A)
    return ((np.asarray(volume, np.float32) - offset) / scale).astype(np.float32)


def gaussian_target(positions_A, shape, *, voxel_size_A: float, sigma_A: float = 0.45):
    """Training target: a Gaussian of ``sigma_A`` and peak 1 at every atom ``(z, y, x)`` [A]."""

    vol = render_atom_volume(positions_A, shape, voxel_size_A=voxel_size_A, sigma_A=sigma_A)
    # render_atom_volume integrates each atom to 1; its discrete peak is (2 pi s^2)^(-3/2)
    s = sigma_A / voxel_size_A
    return (vol * (2 * np.pi * s * s) ** 1.5).astype(np.float32)
