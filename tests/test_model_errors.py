"""The atom-model fit's sandwich standard errors for noise that is uneven and correlated."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_aet.forward._model_errors import _local_b


def _variances(resample, draws=300, seed=0):
    """Monte Carlo variance of ``sum J r`` over Poisson noise draws (optionally resampled),
    and the mean local and pixel-wise estimates of it from single draws."""
    rng = np.random.default_rng(seed)
    n = 96
    dots = np.zeros((n, n))
    for r, c in rng.integers(20, 76, (120, 2)):
        dots[r, c] += 1.0
    atoms = ndimage.gaussian_filter(dots, 1.3)
    expected = 300.0 * atoms + 0.3  # counts: atoms on a nearly empty field
    jac = torch.tensor(np.gradient(atoms, axis=1))[None, None]  # a shift's derivative
    sums, local, pixelwise = [], [], []
    for _ in range(draws):
        noise = rng.poisson(expected) - expected
        if resample:  # sub-pixel shift by linear interpolation, as before a series is shared
            noise = ndimage.shift(noise, (0.5, 0.3), order=1, mode="nearest")
        r = torch.tensor(noise)[None]
        sums.append(float((jac[0, 0] * r[0]).sum()))
        local.append(float(_local_b(jac, r, torch)[0, 0, 0]))
        pixelwise.append(float(_local_b(jac, r, torch, weights=(1.0,))[0, 0, 0]))
    mc = float(np.var(sums))
    return np.mean(local) / mc, np.mean(pixelwise) / mc


@pytest.mark.parametrize("resample", [False, True])
def test_local_sandwich_follows_uneven_correlated_noise(resample):
    """Known answer by simulation: counting noise largest on the atoms, white or resampled by
    linear interpolation (neighbours correlated). The local estimate must match the variance
    over noise draws in both; the pixel-wise one (no neighbours) matches only white noise and gave a
    third of it after resampling (the periodogram's, a field average, an eighth)."""
    local, pixelwise = _variances(resample)
    assert 0.85 < local < 1.15, local
    if resample:
        assert pixelwise < 0.6, pixelwise
    else:
        assert 0.85 < pixelwise < 1.15, pixelwise
