import numpy as np
import pytest

from napari_aet.analysis import r_factor
from napari_aet.simulate import build_structure, simulate_tilt_series

PX = 0.358
ANGLES = np.linspace(-70, 70, 7)


@pytest.fixture(scope="module")
def model_and_series():
    m = build_structure("fcc", radius_A=9, shape_px=(96, 96), pixel_size_A=PX, seed=0)
    clean = simulate_tilt_series(m, ANGLES, shape_px=(96, 96), dose_e_per_A2=None)
    noisy = simulate_tilt_series(m, ANGLES, shape_px=(96, 96), seed=1)
    return m, clean, noisy


def test_true_model_on_noiseless_series_has_zero_r(model_and_series):
    m, clean, _ = model_and_series
    res = r_factor(m.positions, clean.data, ANGLES, pixel_size_A=PX)
    assert res.r_mean < 1e-6
    # the scale is the counts per unit of potential the simulator used
    np.testing.assert_allclose(res.scales, res.scales[0], rtol=1e-6)  # float32 images
    assert np.abs(res.residuals).max() < 1e-3 * clean.data.max()


def test_noise_and_model_errors_raise_r(model_and_series):
    m, _, noisy = model_and_series
    good = r_factor(m.positions, noisy.data, ANGLES, pixel_size_A=PX)
    # shot noise alone: the R-factor is the mean absolute Poisson deviation over the mean
    lam = noisy.truth.noiseless
    expected = (np.sqrt(2 / np.pi) * np.sqrt(lam)).sum(axis=(1, 2)) / lam.sum(axis=(1, 2))
    np.testing.assert_allclose(good.r_per_image, expected, rtol=0.15)
    rng = np.random.default_rng(3)
    displaced = m.positions + rng.normal(scale=0.3, size=m.positions.shape)
    missing = m.positions[: int(0.9 * m.n_atoms)]
    worse = r_factor(displaced, noisy.data, ANGLES, pixel_size_A=PX)
    fewer = r_factor(missing, noisy.data, ANGLES, pixel_size_A=PX)
    assert worse.r_mean > good.r_mean + 0.02
    assert fewer.r_mean > good.r_mean + 0.02
    shared = r_factor(m.positions, noisy.data, ANGLES, pixel_size_A=PX, per_image_scale=False)
    assert np.ptp(shared.scales) == 0


def test_bad_input(model_and_series):
    m, clean, _ = model_and_series
    with pytest.raises(ValueError, match="one angle per image"):
        r_factor(m.positions, clean.data, ANGLES[:-1], pixel_size_A=PX)
    with pytest.raises(ValueError, match="n_images"):
        r_factor(m.positions, clean.data[0], ANGLES, pixel_size_A=PX)


def test_cli_validate(model_and_series, tmp_path):
    import json

    from napari_aet.cli import main
    from napari_aet.io import TiltSeries, write_atoms, write_tilt_series

    m, clean, _ = model_and_series
    atoms = write_atoms(tmp_path / "atoms.csv", m)
    series = write_tilt_series(tmp_path / "s.h5", TiltSeries(clean.data, ANGLES, PX))[0]
    out = tmp_path / "val"
    assert main(["-q", "validate", str(atoms), str(series), "--out", str(out)]) == 0
    info = json.loads((out / "rfactor.json").read_text())
    assert info["r_mean"] < 1e-4 and len(info["r_per_image"]) == len(ANGLES)
    assert (out / "figures" / "r_factor.png").stat().st_size > 5000
    assert (out / "projections.h5").exists()


def test_field_coverage_finds_the_atoms_a_tilt_carries_out_of_the_field():
    """Known answers from the projection geometry: 64-px images of 0.5 A (the rotation centre
    at column 32; columns 2 to 61 are more than 1 A inside the edges), an atom 15.5 A from the
    centre along the beam projects to column 32 +- 31 sin(tilt): out at +-80 deg (62.5 and
    1.5), in at +-60 deg (58.8 and 5.2); an atom at the top row is cut in every image; one at
    the centre never."""
    from napari_aet.analysis import field_coverage
    from napari_aet.forward import rotation_center_A

    c = rotation_center_A((64, 64), 0.5)
    atoms = np.array([c, c + [15.5, 0, 0], [c[0], 0.2, c[2]]])
    ang = np.array([-80.0, -60.0, 0.0, 60.0, 80.0])
    cover = field_coverage(atoms, ang, shape_px=(64, 64), pixel_size_A=0.5)
    np.testing.assert_array_equal(cover.images_outside, [0, 2, 5])
    np.testing.assert_array_equal(cover.atoms_outside, [2, 1, 1, 1, 2])
    assert cover.n_atoms == 2
    note = cover.note(ang)
    assert note.startswith("2 of 3 atoms") and "in 5 of 5 images" in note
    inside = field_coverage(atoms[:1], ang, shape_px=(64, 64), pixel_size_A=0.5)
    assert inside.n_atoms == 0 and inside.note(ang) is None


def test_validate_says_when_the_images_cut_the_particle(tmp_path, capsys):
    """A particle 50 A long along the beam in a 38-A field: from about 50 deg of tilt the
    images cut it. `napari-aet validate` of the true atoms says which images and how many atoms
    (no R-factor shows it: the cut images agree with the model's projection inside them)."""
    import json

    from napari_aet.cli import main
    from napari_aet.core.atoms import AtomModel
    from napari_aet.forward import rotation_center_A
    from napari_aet.io import TiltSeries, write_atoms, write_tilt_series

    n, px = 96, 0.4
    big = build_structure("fcc", radius_A=30.0, shape="convex", shape_px=(n, n), pixel_size_A=px,
                          seed=3)  # fmt: skip
    d = big.positions - rotation_center_A((n, n), px)
    rod = (d[:, 0] / 25.0) ** 2 + (d[:, 1] / 8.0) ** 2 + (d[:, 2] / 8.0) ** 2 <= 1
    pos = big.positions[rod]
    ang = np.arange(-70.0, 70.1, 14.0)
    sim = simulate_tilt_series(pos, ang, pixel_size_A=px, shape_px=(n, n), dose_e_per_A2=None)
    atoms = write_atoms(tmp_path / "atoms.csv", AtomModel(pos))
    series = write_tilt_series(tmp_path / "s.h5", TiltSeries(sim.data, ang, px))[0]
    out = tmp_path / "val"
    assert main(["validate", str(atoms), str(series), "--out", str(out)]) == 0
    info = json.loads((out / "rfactor.json").read_text())["outside_field"]
    # the geometry's own count (docs/conventions.md): column n/2 + (x cos + z sin) / px, cut
    # within 1 A of either edge (the rod's rows stay well inside)
    dz = pos - rotation_center_A((n, n), px)
    th = np.deg2rad(ang)[:, None]
    col = n // 2 + (dz[:, 2] * np.cos(th) + dz[:, 0] * np.sin(th)) / px
    cut = (col < 1.0 / px) | (col > n - 1 - 1.0 / px)
    assert info["images"] == [int(i) for i in np.flatnonzero(cut.any(axis=1))]
    assert set(np.abs(np.asarray(info["angles_deg"]))) == {56.0, 70.0}
    assert info["n_atoms"] == int(cut.any(axis=0).sum()) > 20
    said = capsys.readouterr()
    assert "atoms lie outside the field" in said.out + said.err


def test_rigid_registration_recovers_a_known_rotation_and_shift():
    from scipy.spatial.transform import Rotation

    from napari_aet.analysis import compare_atom_models, register_rigid, register_translation
    from napari_aet.simulate import fcc_particle

    ref = fcc_particle(radius_A=10, shape="sphere", seed=1) + 30.0
    rot = Rotation.from_euler("zyx", [0.4, -0.3, 0.2], degrees=True).as_matrix()
    c = ref.mean(0)
    test = (ref - c) @ rot.T + c + np.array([0.3, -0.2, 0.25])
    assert np.allclose(register_translation(ref, ref + 0.4), -0.4, atol=1e-9)
    moved, angle = register_rigid(ref, test)
    expected = np.degrees(Rotation.from_matrix(rot).magnitude())
    assert angle == pytest.approx(expected, abs=0.01)
    cmp = compare_atom_models(ref, moved, radius_A=1.0)
    assert cmp.n_common == len(ref) and cmp.rmsd_A < 1e-6


@pytest.mark.parametrize("blur", [0.3, 0.6])
def test_the_blur_the_images_show_is_found(model_and_series, blur):
    from napari_aet.analysis import fit_blur_sigma

    m, _, _ = model_and_series
    s = simulate_tilt_series(m, ANGLES, shape_px=(96, 96), seed=2, blur_sigma_A=blur)
    sigma, r_fit = fit_blur_sigma(m.positions, s.data, ANGLES, pixel_size_A=PX)
    assert sigma == pytest.approx(blur, abs=0.03)
    study = r_factor(m.positions, s.data, ANGLES, pixel_size_A=PX, blur_sigma_A=0.45).r_mean
    assert r_fit < study - 0.01  # the study's width misfits these images
