"""The smooth part of two position fits' difference (what a denoiser takes from a strain
field), known answers on a constructed crystal; and the traced positions' share of the final
ones."""

import numpy as np
import pytest

from napari_aet.simulate import build_structure
from napari_aet.trace._counts_correction import smooth_difference


@pytest.fixture(scope="module")
def crystal():
    return build_structure("fcc", radius_A=12.0, shape="sphere", seed=2).positions


def test_a_smooth_field_is_kept_and_the_noise_averaged_away(crystal):
    # a radial strain (0 at the centre, 4 % at the surface, 24 pm there) under 10 pm of noise
    # per axis: what a denoiser's bias and the counts' noise look like in the difference
    d = crystal - crystal.mean(axis=0)
    r = np.linalg.norm(d, axis=1, keepdims=True)
    field = 0.02 * d * r / r.max()
    noise = np.random.default_rng(0).normal(0.0, 0.10, crystal.shape)
    smooth, info = smooth_difference(crystal, field + noise)
    err = np.sqrt(np.mean(np.sum((smooth - field) ** 2, axis=1)))
    raw = np.sqrt(np.mean(np.sum(noise**2, axis=1)))
    assert info["applied"] and 2.5 < info["sigma_A"] < 3.0  # one Pt neighbour distance
    assert err < 0.35 * raw, (err, raw)  # measured 0.29: about a dozen neighbours
    slope = np.sum(smooth * field) / np.sum(field**2)
    assert 0.9 < slope < 1.1, slope  # the field kept whole, also at the surface


def test_one_atoms_own_displacement_is_not_smooth(crystal):
    diff = np.zeros_like(crystal)
    i = int(np.argmin(np.linalg.norm(crystal - crystal.mean(axis=0), axis=1)))
    diff[i] = [0.2, 0.0, 0.0]
    far = crystal + 0.0
    diff_far = diff.copy()
    diff_far[(i + 1) % len(diff)] = [0.9, 0.0, 0.0]  # beyond MAX_DIFFERENCE_A: left out
    smooth, info = smooth_difference(crystal, diff)
    assert abs(smooth[i, 0]) < 0.3 * 0.2
    smooth_far, info_far = smooth_difference(far, diff_far)
    assert info_far["n_left_out"] == 1
    assert np.abs(smooth_far).max() < 0.3 * 0.2
    with pytest.raises(ValueError, match="positions but"):
        smooth_difference(crystal, diff[:-1])
    tiny, tinfo = smooth_difference(crystal[:3], diff[:3])
    assert not tinfo["applied"] and not tiny.any()


def test_the_noise_gain_is_what_the_local_fits_leave_of_independent_noise(crystal):
    rng = np.random.default_rng(1)
    left = []
    for _ in range(3):
        noise = rng.normal(0.0, 0.05, crystal.shape)
        smooth, info = smooth_difference(crystal, noise)
        left.append(np.sqrt(np.mean(smooth**2)) / 0.05)
    assert info["noise_gain"] == pytest.approx(np.mean(left), rel=0.15)
    assert 0.15 < info["noise_gain"] < 0.45


def test_the_noise_per_atom_is_measured_under_a_smooth_field(crystal):
    d = crystal - crystal.mean(axis=0)
    field = 0.01 * d  # a uniform 1 % strain: all smooth
    noise = np.random.default_rng(3).normal(0.0, 0.06, crystal.shape)  # 10.4 pm 3D RMS
    _, info = smooth_difference(crystal, field + noise)
    assert info["noise_per_atom_pm"] == pytest.approx(100 * np.sqrt(3) * 0.06, rel=0.15)


def test_the_correction_applies_only_above_the_noise_it_brings(crystal):
    from napari_aet.trace._counts_correction import counts_correction

    rng = np.random.default_rng(3)
    d = crystal - crystal.mean(axis=0)
    r = np.linalg.norm(d, axis=1, keepdims=True)
    field = 0.02 * d * r / r.max()
    smooth, info = counts_correction(crystal, field + rng.normal(0.0, 0.10, crystal.shape))
    assert info["applied"] and smooth is not None and info["signal_pm"] > info["noise_pm"]
    # noise alone: what the local fits keep of it is all there is; nothing is added
    none, info = counts_correction(crystal, rng.normal(0.0, 0.10, crystal.shape))
    assert none is None and not info["applied"] and "noise" in info["why"]


def test_traced_positions_share_the_final_ones_by_how_far_the_fit_moved_them():
    """Each traced atom goes back toward its traced position by TRACER_SHARE * (s / d)^2 (s the
    fit's error on the replicate, d the RMS of the fit's shifts), capped at TRACER_SHARE; added
    atoms keep their refined positions; no replicate, no change."""
    import pandas as pd

    from napari_aet.core.atoms import AtomModel
    from napari_aet.trace._post_fit import TRACER_SHARE, _with_tracer_share

    rng = np.random.default_rng(0)
    origin = build_structure("fcc", radius_A=9, seed=1, jitter_A=0.0).positions  # a crystal
    n = len(origin)
    shift = rng.normal(0, 0.2 / np.sqrt(3), (n, 3))  # about 20 pm RMS
    added = np.zeros(n, np.int8)
    added[-5:] = 1
    feats = pd.DataFrame({"refine_added": added, "refine_shift_A": np.linalg.norm(shift, axis=1)})
    model = AtomModel(origin + shift, feats, {})
    m = n - 5
    d = 100 * np.sqrt(np.mean(np.sum(shift[:m] ** 2, axis=1)))
    for fit_error, weight in ((d / 2, TRACER_SHARE / 4), (2 * d, TRACER_SHARE)):
        source = {"source": "counts", "replicate_rms_pm": {"counts": fit_error}}
        out, info = _with_tracer_share(model, {}, source, origin)
        assert info["tracer_share"]["weight"] == pytest.approx(weight)
        np.testing.assert_allclose(out.positions[:m], origin[:m] + (1 - weight) * shift[:m])
        np.testing.assert_allclose(out.positions[m:], model.positions[m:])  # added: as fitted
        np.testing.assert_allclose(
            out.features["refine_shift_A"], np.linalg.norm(out.positions - origin, axis=1)
        )
    same, info = _with_tracer_share(model, {}, None, origin)
    assert same is model and "tracer_share" not in info
    same, _ = _with_tracer_share(model, {"not_refined": "poor fit"}, source, origin)
    assert same is model


def test_a_glass_shares_its_traced_positions_like_a_crystal():
    """The traced positions' share does not depend on a lattice: a metallic glass's traced
    positions (the U-Net finds its atoms as well as a crystal's) get the same weight from the
    same errors, and the record says how crystalline the atoms are."""
    import pandas as pd

    from napari_aet.core.atoms import AtomModel
    from napari_aet.simulate import build_structure
    from napari_aet.trace._post_fit import TRACER_SHARE, _with_tracer_share

    rng = np.random.default_rng(1)
    crystal = {}
    for structure in ("glass", "fcc"):
        origin = build_structure(structure, radius_A=10, seed=2, jitter_A=0.0).positions
        shift = rng.normal(0, 0.3 / np.sqrt(3.0), origin.shape)  # 30 pm RMS
        feats = pd.DataFrame({"refine_added": np.zeros(len(origin), np.int8)})
        model = AtomModel(origin + shift, feats, {})
        source = {"source": "counts", "replicate_rms_pm": {"counts": 20.0}}
        out, info = _with_tracer_share(model, {}, source, origin)
        share = info["tracer_share"]
        moved = share["shift_rms_pm"]
        assert moved == pytest.approx(100 * np.sqrt(np.mean(np.sum(shift**2, axis=1))))
        assert share["weight"] == pytest.approx(TRACER_SHARE * (20.0 / moved) ** 2)
        np.testing.assert_allclose(out.positions, origin + (1 - share["weight"]) * shift)
        crystal[structure] = share["crystal_fraction"]
    assert crystal["glass"] < 0.1 < 0.5 < crystal["fcc"]
