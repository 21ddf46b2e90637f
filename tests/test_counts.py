"""Counts from a detector's units (napari_aet.core.counts): the Poisson-Gaussian noise model."""

import numpy as np
import pytest

from napari_aet.align import dose_denoise_choice
from napari_aet.core.counts import as_counts, estimate_noise_model

GAIN, OFFSET, READ = 37.3, 1000.0, 20.0


def _atom_images(peak: float, n: int = 8, size: int = 72, seed: int = 0) -> np.ndarray:
    """Expected counts of ``n`` images of blurred atoms (sigma 1.3 px, 2.8 px apart, in a
    disc) over a background of 1 count, the atoms' peak ``peak`` counts above it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(float)
    out = np.ones((n, size, size))
    c = size / 2
    for k in range(n):
        pts = np.mgrid[6 : size - 6 : 2.8, 6 : size - 6 : 2.8].reshape(2, -1).T
        pts = pts + rng.normal(0, 0.4, pts.shape)
        pts = pts[np.hypot(*(pts - c).T) < size / 3]
        img = np.zeros((size, size))
        for y, x in pts:
            img += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.3**2))
        out[k] += peak * img / img.max()
    return out


def _adc(counts, seed=1):
    rng = np.random.default_rng(seed)
    return (GAIN * counts + OFFSET + rng.normal(0, READ, counts.shape)).astype(np.float32)


@pytest.mark.parametrize("peak", [6.0, 40.0])
def test_gain_and_counts_of_a_detector_series(peak):
    lam = _atom_images(peak)
    counts = np.random.default_rng(0).poisson(lam).astype(np.float32)
    model = estimate_noise_model(_adc(counts))
    assert model.reliable
    assert abs(model.gain / GAIN - 1) < 0.15, model
    assert model.gain_se < 0.1 * model.gain
    # var = a * mean + b: b = read**2 - gain * offset
    assert model.offset_variance == pytest.approx(READ**2 - GAIN * OFFSET, rel=0.2)
    converted, info = as_counts(_adc(counts))
    assert info["units"] == "counts equivalent" and "converted" in info["why"]
    # the counts come back to within the gain's error (the brightest pixels' level)
    top = np.percentile(counts, 99.9)
    assert np.percentile(converted, 99.9) == pytest.approx(top, rel=0.2)
    # and the variance equals the mean, where the images are only background
    background = converted[:, :6, :]
    assert background.var() == pytest.approx(background.mean(), rel=0.25)


def test_integer_counts_are_kept_and_a_noiseless_series_is_not_counts():
    lam = _atom_images(10.0)
    counts = np.random.default_rng(0).poisson(lam).astype(np.float32)
    same, info = as_counts(counts)
    assert same is counts and info == {"units": "counts"}
    # an already denoised (here: noiseless) series in arbitrary units is left as it is
    clean = (lam / lam.max()).astype(np.float32)
    converted, info = as_counts(clean)
    assert converted is None and info["units"] == "unknown"
    assert dose_denoise_choice(clean)[0] is None


@pytest.mark.parametrize("peak", [6.0, 40.0])
def test_a_detectors_integer_units_are_not_taken_for_counts(peak):
    # a 16-bit ADC (integers over an offset) and an 8-bit export scaled to its range are
    # integers, but their noise is not that of counts: converted like any detector's units
    from napari_aet.core.counts import is_counts

    counts = np.random.default_rng(0).poisson(_atom_images(peak)).astype(np.float32)
    assert is_counts(counts)
    adc = np.round(_adc(counts)).astype(np.uint16)
    assert not is_counts(adc)
    converted, info = as_counts(adc)
    assert info["units"] == "counts equivalent"
    assert info["why"].startswith("the images are integers but their noise is not")
    assert np.percentile(converted, 99.9) == pytest.approx(np.percentile(counts, 99.9), rel=0.2)
    eight = np.clip(np.round(counts / np.percentile(counts, 99.9) * 230), 0, 255)
    assert not is_counts(eight.astype(np.uint8))
    # counts of two frames added (gain 1, integers) stay counts
    assert is_counts(counts + np.random.default_rng(1).poisson(_atom_images(peak)))


def test_zero_filled_borders_do_not_bias_the_gain():
    lam = _atom_images(10.0)
    adc = _adc(np.random.default_rng(0).poisson(lam))
    padded = adc.copy()
    padded[:, :, :12] = 0.0  # a shifted image's empty edge, as aligned series have
    padded[:, :9, :] = 0.0
    a0 = estimate_noise_model(adc).gain
    assert estimate_noise_model(padded).gain == pytest.approx(a0, rel=0.1)


def test_resampled_noise_gets_the_gain_of_its_whole_variance():
    """Sub-pixel shifts by interpolation take most of the noise's high frequencies, which the
    fourth difference measures: uncorrected, the gain came out several times low. Corrected by
    the noise's own autocorrelation, it is the slope of the whole variance on the mean (the
    detector's gain times the interpolation weights' sum of squares), and the converted
    series has its variance equal to its mean again (series aligned elsewhere can then be
    denoised as counts)."""
    from scipy import ndimage

    lam = _atom_images(10.0, n=12, size=96)
    adc = _adc(np.random.default_rng(0).poisson(lam))
    white = estimate_noise_model(adc)
    assert white.white and max(white.noise_correlation) < -0.78
    assert white.noise_acf is None and white.pass_factor is None
    rng = np.random.default_rng(2)
    frac = rng.uniform(0.2, 0.5, (len(adc), 2))
    shifted = np.stack([ndimage.shift(im, f, order=1) for im, f in zip(adc, frac, strict=True)])
    model = estimate_noise_model(shifted)
    assert not model.white and model.correlated and model.reliable
    assert model.pass_factor < 0.6  # what the fourth difference alone would have missed
    # linear interpolation: weights (1 - f, f) along each axis
    kept = np.prod((1 - frac) ** 2 + frac**2, axis=1)
    assert model.gain == pytest.approx(GAIN * kept.mean(), rel=0.2), (model.gain, kept)
    acf = np.asarray(model.noise_acf)
    assert acf.shape == (7, 7) and acf[3, 3] == 1.0 and acf[3, 4] > 0.2 and acf[4, 3] > 0.2
    converted, info = as_counts(shifted)
    assert info["units"] == "counts equivalent" and info["correlated"] is True
    assert "correlated between neighbouring pixels" in info["why"]
    background = converted[:, 8:14, 10:-10]  # inside the shifted images' zero-filled edges
    ratio = background.var(axis=(1, 2)) / background.mean(axis=(1, 2))
    assert np.median(ratio) == pytest.approx(1.0, abs=0.3), ratio


def test_images_with_their_own_offsets_and_scales_share_the_gain():
    """Each image background-subtracted or normalised on its own: levels that differ by far
    more than the noise (offsets of +-200, scales of 0.8-1.2) must not be read as the noise's
    dependence on the mean (pooled over the images, offsets of +-30 % gave a gain 7x low)."""
    lam = _atom_images(10.0, n=10)
    counts = np.random.default_rng(0).poisson(lam)
    rng = np.random.default_rng(4)
    offset = rng.uniform(-200, 200, len(lam))[:, None, None]
    shifted = _adc(counts) + offset
    model = estimate_noise_model(shifted)
    assert model.reliable and model.gain == pytest.approx(GAIN, rel=0.15), model.gain
    # each image's offset variance follows its own level: in each image's background the
    # counts' variance is their mean (1 count of background and the read noise's 0.3)
    converted, _ = as_counts(shifted)
    for k in range(len(lam)):
        bg = converted[k, :6]
        assert bg.var() == pytest.approx(bg.mean(), rel=0.3), k
        assert bg.mean() == pytest.approx(1.0 + (READ / GAIN) ** 2, rel=0.3), k
    scale = rng.uniform(0.8, 1.2, len(lam))[:, None, None]
    model = estimate_noise_model(shifted * scale)
    assert model.reliable and model.gain == pytest.approx(GAIN * scale.mean(), rel=0.15)


def test_images_normalised_one_by_one_get_their_own_gains():
    lam = _atom_images(40.0, n=8, size=128)
    counts = np.random.default_rng(0).poisson(lam)
    scale = np.linspace(0.6, 1.4, len(lam))[:, None, None]
    model = estimate_noise_model(_adc(counts) * scale)
    gains = np.asarray(model.image_gain) / GAIN
    assert np.corrcoef(gains, scale.ravel())[0, 1] > 0.9, gains
    left = np.sqrt(np.mean((gains / scale.ravel() / np.mean(gains / scale.ravel()) - 1) ** 2))
    spread = np.sqrt(np.mean((scale.ravel() / scale.mean() - 1) ** 2))
    assert left < 0.5 * spread, (left, spread)  # a common gain would leave all of it
