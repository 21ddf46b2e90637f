"""Angle corrections on noisy images judged by two halves of their counts (known answers)."""

import numpy as np
import pytest

from napari_aet.align import STUDY_LOWPASS_INV_A, lowpass_filter, subtract_background
from napari_aet.align._split_counts import count_halves, split_half_angles
from napari_aet.simulate import build_structure, simulate_tilt_series
from napari_aet.workflows import atom_model_builder

PX = 0.358
ANGLES = np.linspace(-70, 70, 21)


def test_count_halves_are_two_independent_poisson_halves():
    rng = np.random.default_rng(1)
    lam = rng.uniform(0.5, 30.0, (4, 64, 64))
    counts = rng.poisson(lam).astype(np.float32)
    a, b = count_halves(counts)
    np.testing.assert_array_equal(a + b, counts)  # every count goes to one half
    assert a.min() >= 0 and b.min() >= 0
    # each half is Poisson with half the mean: its variance about lam / 2 equals lam / 2
    for h in (a, b):
        assert np.mean(h - lam / 2) == pytest.approx(0.0, abs=0.02)
        assert np.mean((h - lam / 2) ** 2) / np.mean(lam / 2) == pytest.approx(1.0, abs=0.03)
    # and the halves' noise is independent (binomial thinning of Poisson counts)
    r = np.corrcoef((a - lam / 2).ravel(), (b - lam / 2).ravel())[0, 1]
    assert abs(r) < 0.02
    # counts converted from a detector's units are not integers: rounded at random, the
    # mean is kept (plain rounding would lose 0.2 of every count here)
    frac = counts + 0.3
    a, b = count_halves(frac)
    assert np.mean(a + b) == pytest.approx(np.mean(frac), abs=0.01)
    # and the split is reproducible
    np.testing.assert_array_equal(count_halves(frac)[0], a)


@pytest.fixture(scope="module")
def particle():
    return build_structure("fcc", radius_A=10, shape_px=(96, 96), pixel_size_A=PX, seed=3)


def _halves(particle, errors, seed, peak=20.0):
    """The particle at ``peak`` counts on its brightest column over a background of 1 count,
    recorded at the nominal angles plus ``errors``; the four arrays that
    :func:`split_half_angles` takes (each half low-pass filtered for its tomogram, as the
    alignment does)."""
    clean = simulate_tilt_series(
        particle, ANGLES + errors, shape_px=(96, 96), dose_e_per_A2=None, seed=seed
    ).data
    counts = np.random.default_rng(seed).poisson(clean / clean.max() * peak + 1.0)
    a, b = (subtract_background(h)[0] for h in count_halves(counts))
    lp = dict(pixel_size_A=PX, cutoff_diameter_inv_A=STUDY_LOWPASS_INV_A, edge_width_inv_A=0.05)
    return lowpass_filter(a, **lp), a, lowpass_filter(b, **lp), b


@pytest.mark.parametrize("angle_sd_deg", [0.6, 0.0])
def test_halves_of_the_counts_measure_how_well_the_angles_are_established(particle, angle_sd_deg):
    errors = np.random.default_rng(0).normal(0, angle_sd_deg, len(ANGLES))
    errors -= errors.mean()
    res, note = split_half_angles(
        _halves(particle, errors, 0 if angle_sd_deg else 1), ANGLES, np.zeros((len(ANGLES), 2)),
        0.0, pixel_size_A=PX, builder=atom_model_builder(), max_angle_change_deg=1.0,
        recon_iterations=15, device="cpu",
    )  # fmt: skip
    assert res is not None, note
    ca, cb = res.corrections_deg
    diff = ca - cb
    assert np.all(res.spread_deg >= np.abs(diff) / 2 - 1e-12)
    # the standard error is that of the whole series' estimate (here the halves' mean):
    # at most one image of 21 beyond 3 of them
    both = res.corrections_deg.mean(axis=0)
    assert np.sum(np.abs(both - errors) > 3 * res.spread_deg) <= 1
    if angle_sd_deg:
        # each half finds the angle errors (measured: 0.87 and 0.70 correlated with them),
        # so the halves agree, and the standard error is below the errors (measured: 0.23
        # and 0.29 deg for errors of sd 0.50 with two draws of the halves; the split is
        # random and at 10 counts per half noisy, see docs/methods.md)
        for c in (ca, cb):
            assert np.corrcoef(c, errors)[0, 1] > 0.6
        assert res.agreement > 0.5
        assert np.median(res.spread_deg) < 0.65 * errors.std()
    else:
        # the halves' corrections are their own noise: they do not agree
        assert abs(res.agreement) < 0.5
