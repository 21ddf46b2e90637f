import numpy as np
import pytest

from napari_aet.core.atoms import AtomModel
from napari_aet.forward import project_positions, rotation_center_A
from napari_aet.simulate import simulate_tilt_series

PX = 0.4
SHAPE = (64, 64)


def _centroid(img):
    img = np.clip(img - np.median(img), 0, None)
    r, c = np.indices(img.shape)
    return np.array([(img * r).sum(), (img * c).sum()]) / img.sum()


def test_rotation_convention_single_atom():
    # An atom 4 A above the centre along the beam (z) and 2 A right (x): at tilt theta its
    # image column is centre + (2 cos(theta) + 4 sin(theta)) / px. Positive theta moves it
    # right: the reconstruction code must share this sign to avoid a mirrored tomogram.
    c = rotation_center_A(SHAPE, PX)
    atom = c + np.array([4.0, -3.0, 2.0])
    angles = np.array([-60.0, -30.0, 0.0, 30.0, 60.0])
    sim = simulate_tilt_series(
        atom[None], angles, pixel_size_A=PX, shape_px=SHAPE, dose_e_per_A2=None
    )
    for k, th in enumerate(np.deg2rad(angles)):
        row, col = _centroid(sim.data[k])
        assert row == pytest.approx(32 - 3.0 / PX, abs=0.05)
        assert col == pytest.approx(32 + (2 * np.cos(th) + 4 * np.sin(th)) / PX, abs=0.05)


def test_shifts_and_angle_errors_are_applied_and_reported():
    c = rotation_center_A(SHAPE, PX)
    atom = c + np.array([3.0, 1.0, -2.0])
    angles = np.linspace(-60, 60, 7)
    sim = simulate_tilt_series(
        atom[None],
        angles,
        pixel_size_A=PX,
        shape_px=SHAPE,
        dose_e_per_A2=None,
        shift_error_px=3.0,
        angle_error_deg=1.0,
        seed=4,
    )
    t = sim.truth
    assert np.all(np.abs(t.shifts_px) <= 3.0) and np.abs(t.shifts_px).max() > 1.0
    assert not np.allclose(t.angles_deg, angles)
    np.testing.assert_array_equal(sim.angles_deg, angles)
    for k in range(len(angles)):
        expect = project_positions(
            atom[None], t.angles_deg[k], shape_px=SHAPE, pixel_size_A=PX, shift_px=t.shifts_px[k]
        )[0]
        assert _centroid(sim.data[k]) == pytest.approx(expect, abs=0.05)


def test_projection_conserves_total_potential_and_noise_is_poisson():
    rng = np.random.default_rng(0)
    c = rotation_center_A(SHAPE, PX)
    pos = c + rng.uniform(-6, 6, size=(40, 3))
    sim = simulate_tilt_series(
        AtomModel(pos), np.linspace(-70, 70, 5), pixel_size_A=PX, shape_px=SHAPE, seed=1
    )
    sums = sim.truth.noiseless.sum(axis=(1, 2))
    assert sums == pytest.approx(np.full(5, sums.mean()), rel=2e-3)
    # Poisson: the variance of the residual equals the mean where the signal is.
    lam = sim.truth.noiseless
    hot = lam > 20
    z = (sim.data[hot] - lam[hot]) / np.sqrt(lam[hot])
    assert abs(z.mean()) < 0.05
    assert z.std() == pytest.approx(1.0, abs=0.05)


def test_tilt_axis_angle_rotates_the_image_plane():
    c = rotation_center_A(SHAPE, PX)
    atom = c + np.array([0.0, 6.0, 0.0])  # on the tilt axis, 6 A below centre
    sim = simulate_tilt_series(
        atom[None],
        [0.0, 40.0],
        pixel_size_A=PX,
        shape_px=SHAPE,
        dose_e_per_A2=None,
        tilt_axis_angle_deg=10.0,
    )
    for k in range(2):  # atoms on the axis stay on the (rotated) axis at every tilt
        row, col = _centroid(sim.data[k])
        a = np.deg2rad(10.0)
        assert row == pytest.approx(32 + 6 / PX * np.cos(a), abs=0.05)
        assert col == pytest.approx(32 + 6 / PX * np.sin(a), abs=0.05)


def test_sample_matches_the_issue(sample):
    assert sample.data.shape == (21, 256, 256)
    assert sample.pixel_size_A == pytest.approx(0.358)
    np.testing.assert_allclose(sample.angles_deg, np.linspace(-70, 70, 21))
    atoms = sample.truth.atoms
    assert 3000 <= atoms.n_atoms <= 3500
    f = atoms.features
    assert set(f["stacking"][f["layer"] == 0]) == {"fcc"}
    assert set(f["stacking"][f["layer"].abs() == 1]) == {"hcp"}
    assert set(f["cluster"]) == {0, 1}
    # dose-realistic: integer counts, peak columns of order 10^2 counts
    assert np.all(sample.data == np.round(sample.data))
    assert 50 < sample.data.max() < 2000


def test_bad_inputs():
    with pytest.raises(ValueError, match="angles_deg"):
        simulate_tilt_series(np.zeros((1, 3)), [np.nan])
    with pytest.raises(ValueError, match="pixel_size_A"):
        simulate_tilt_series(np.zeros((1, 3)), [0.0], pixel_size_A=0)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        simulate_tilt_series(np.zeros((4, 2)), [0.0])
    with pytest.raises(MemoryError, match="needs about"):
        simulate_tilt_series(np.zeros((1, 3)), np.zeros(50), shape_px=(100000, 100000))
