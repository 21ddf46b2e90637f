"""The refine stage's angle check: the tilt angles measured again with the refined atoms."""

import numpy as np
import pytest
from test_model_refinement import _angle_rms as _rms

from napari_aet.simulate import build_structure, simulate_tilt_series
from napari_aet.trace import check_angles

PX = 0.358
ANGLES = np.linspace(-70, 70, 21)


@pytest.fixture(scope="module")
def particle():
    return build_structure("fcc", radius_A=14, shape_px=(128, 128), pixel_size_A=PX, seed=3)


def test_angle_errors_left_by_the_alignment_are_found_and_applied(particle):
    """Known answer: a series made at angles off by up to 1 deg (what an alignment whose
    model missed a particle's core leaves), a refined model with 5 pm of error: the check
    keeps most corrections, which bring the angles within 0.15 deg RMS, and asks for a new
    refinement (they move the atoms at the radius by far more than 5 pm)."""
    errors = np.random.default_rng(4).uniform(-1.0, 1.0, len(ANGLES))
    sim = simulate_tilt_series(particle, ANGLES + errors, shape_px=(128, 128), seed=2)
    atoms = particle.positions + np.random.default_rng(5).normal(0, 0.05, particle.positions.shape)
    rec = check_angles(atoms, sim.data, ANGLES, pixel_size_A=PX, device="cpu")
    assert rec["applied"], rec.get("why")
    assert _rms(ANGLES, sim.truth.angles_deg) > 0.5
    assert _rms(rec["angles_deg"], sim.truth.angles_deg) < 0.15
    assert sum(rec["kept"]) >= 14 and rec["effect_A"] > 0.05
    assert rec["k_sigma"] >= 3.0


def test_a_series_at_its_true_angles_is_left_alone(particle, monkeypatch):
    """The same particle imaged at the nominal angles: no correction is applied (none beyond
    the bar, or too small to move the atoms by 5 pm), and the two slabs are not fitted (they
    can only take corrections away)."""
    from napari_aet.trace import _angle_check

    sim = simulate_tilt_series(particle, ANGLES, shape_px=(128, 128), seed=2)
    atoms = particle.positions + np.random.default_rng(5).normal(0, 0.05, particle.positions.shape)
    slabs = []
    real = _angle_check.slab_scatter
    monkeypatch.setattr(
        _angle_check, "slab_scatter", lambda *a, **k: slabs.append(1) or real(*a, **k)
    )
    rec = check_angles(atoms, sim.data, ANGLES, pixel_size_A=PX, device="cpu")
    assert not rec["applied"]
    assert rec["effect_A"] <= 0.05
    assert "why" in rec
    assert not slabs and rec["slabs"] == {}


def test_noise_fitted_at_a_tenth_of_the_dose_is_not_taken_for_angle_errors(particle):
    """Known answer: the particle at its true angles at a tenth of the study's dose (13 counts
    at the brightest column over 1 of background), the model 15 pm off the truth. The joint
    fit's standard errors count the images' noise with the atoms taken as right, and 3 or more
    of its angle changes clear the bar on them (the check used to apply 0.44 deg RMS of false
    corrections here, as on independent Fe, Co and Ni series at a tenth); the two slabs'
    scatter widens them and nothing is applied."""
    from napari_aet.simulate import STUDY_DOSE_PER_IMAGE_E_PER_A2 as dose

    sim = simulate_tilt_series(particle, ANGLES, shape_px=(128, 128), seed=2,
                               background_counts=1.0, dose_e_per_A2=dose / 10)  # fmt: skip
    atoms = particle.positions + np.random.default_rng(5).normal(0, 0.15, particle.positions.shape)
    rec = check_angles(atoms, sim.data, ANGLES, pixel_size_A=PX, device="cpu")
    fitted = np.abs(rec["corrections_deg"]) > rec["k_sigma"] * np.asarray(rec["sigma_fit_deg"])
    assert fitted.sum() >= 3  # what the fit's own errors would have kept
    assert rec["slabs"]["factor"] > 1.5
    assert rec["slabs"]["top"]["n_atoms"] + rec["slabs"]["bottom"]["n_atoms"] >= len(atoms)
    assert not rec["applied"] and sum(rec["kept"]) == 0
    assert "widened" in rec["why"]


def test_each_slab_alone_measures_the_angle_errors(particle):
    """Known answer: noise-free images at angles off by up to 1 deg, the exact atoms. Each
    slab fitted on its own rows finds the errors (within 0.12 deg RMS) and the two agree (the
    scatter factor near 1). Slabs cut at their own rows, without the rows beyond them, had
    0.5 deg RMS of false changes alike in both: the image model's Fourier blur wrapped the
    cut edge onto the far one."""
    from napari_aet.trace._angle_check import slab_scatter

    errors = np.random.default_rng(4).uniform(-1.0, 1.0, len(ANGLES))
    images = simulate_tilt_series(
        particle, ANGLES + errors, shape_px=(128, 128), dose_e_per_A2=None
    ).data
    rec = slab_scatter(particle.positions, images, ANGLES, np.full(len(ANGLES), 0.05),
                       pixel_size_A=PX, device="cpu")  # fmt: skip
    truth = errors - errors.mean()
    for name in ("top", "bottom"):
        c = np.asarray(rec[name]["corrections_deg"])
        assert np.sqrt(np.mean((c - truth) ** 2)) < 0.12
    assert rec["top"]["n_atoms"] + rec["bottom"]["n_atoms"] == len(particle.positions)
    assert rec["factor"] < 1.5


def test_too_few_images_or_atoms_are_not_checked(particle):
    sim = simulate_tilt_series(particle, ANGLES[:4], shape_px=(128, 128), seed=2)
    rec = check_angles(particle.positions, sim.data, ANGLES[:4], pixel_size_A=PX, device="cpu")
    assert not rec["applied"] and "too few" in rec["why"]


@pytest.mark.slow
def test_the_refine_stage_refines_again_at_the_corrected_angles(particle, tmp_path):
    """``run_refine`` on a series whose angles are off by up to 1 deg, the atoms given with 5
    pm of error: the angle check applies, the stage refines again at the corrected angles,
    writes them to angles.txt (within 0.15 deg RMS of the truth) and says so in a note; with
    ``check_angles=False`` nothing of the kind is written."""
    from napari_aet.core.atoms import AtomModel
    from napari_aet.io import TiltSeries, read_angle_file, write_atoms, write_tilt_series
    from napari_aet.workflows import PositionRefineSettings, SeriesSource
    from napari_aet.workflows.atom_stages import run_refine

    errors = np.random.default_rng(4).uniform(-1.0, 1.0, len(ANGLES))
    sim = simulate_tilt_series(particle, ANGLES + errors, shape_px=(128, 128), seed=2)
    path = tmp_path / "series.h5"
    write_tilt_series(path, TiltSeries(sim.data, ANGLES, PX, "simulated", {}))
    atoms = particle.positions + np.random.default_rng(5).normal(0, 0.05, particle.positions.shape)
    write_atoms(tmp_path / "atoms.csv", AtomModel(atoms))
    res = run_refine(tmp_path / "atoms.csv", SeriesSource(str(path)),
                     PositionRefineSettings(add_remove=False), tmp_path / "on")  # fmt: skip
    check = res.record["angle_check"]
    assert check["applied"] and "first_refinement" in res.record
    assert any("refined again at the corrected angles" in n for n in res.notes)
    written, _ = read_angle_file(tmp_path / "on" / "angles.txt")
    assert _rms(written, sim.truth.angles_deg) < 0.15
    res = run_refine(tmp_path / "atoms.csv", SeriesSource(str(path)),
                     PositionRefineSettings(add_remove=False, check_angles=False),
                     tmp_path / "off")  # fmt: skip
    assert "angle_check" not in res.record
    assert not (tmp_path / "off" / "angles.txt").exists()


def _checked_metadata(nominal, corrected, kept=None):
    corr = np.asarray(corrected) - np.asarray(nominal)
    kept = np.ones(len(corr), bool) if kept is None else np.asarray(kept)
    return {
        "provenance": {
            "command": "refine",
            "angle_check": {
                "applied": True,
                "angles_deg": [float(a) for a in np.where(kept, corrected, nominal)],
                "corrections_deg": [float(c) for c in corr],
                "kept": [bool(k) for k in kept],
            },
        }
    }


def test_checked_angles_only_for_the_series_the_check_started_from():
    from napari_aet.trace import checked_angles

    errors = np.random.default_rng(4).uniform(-1.0, 1.0, len(ANGLES))
    kept = np.abs(errors) > 0.3
    meta = _checked_metadata(ANGLES, ANGLES + errors, kept)
    got = checked_angles(meta, ANGLES)
    np.testing.assert_allclose(got, np.where(kept, ANGLES + errors, ANGLES))
    # the series already at the corrected angles (refine/angles.txt), another series, none
    assert checked_angles(meta, got) is None
    assert checked_angles(meta, ANGLES[:-1]) is None
    assert checked_angles(meta, ANGLES + 2.0) is None
    meta["provenance"]["angle_check"]["applied"] = False
    assert checked_angles(meta, ANGLES) is None
    assert checked_angles({}, ANGLES) is None


def test_validation_projects_a_checked_model_at_its_corrected_angles(particle):
    """Known answer: images made at angles off by up to 1 deg but labelled with the nominal
    ones; the model (the true atoms) says the refine stage's check corrected them. The
    validation projects it at the corrected angles, says so, and its R-factor is lower on
    every image whose label is off by more than 0.5 deg than the same model's without that
    record (which is projected at the labels)."""
    from napari_aet.core.atoms import AtomModel
    from napari_aet.io import TiltSeries
    from napari_aet.workflows import ValidateSettings
    from napari_aet.workflows.atom_stages import validate_atoms

    errors = np.random.default_rng(4).uniform(-1.0, 1.0, len(ANGLES))
    sim = simulate_tilt_series(particle, ANGLES + errors, shape_px=(128, 128), seed=2)
    ts = TiltSeries(sim.data, ANGLES, PX, "simulated", {})
    settings = ValidateSettings(element="Pt", blur_sigma_A=0.45)
    meta = _checked_metadata(ANGLES, sim.truth.angles_deg)
    checked = validate_atoms(AtomModel(particle.positions, metadata=meta), ts, settings)
    plain = validate_atoms(AtomModel(particle.positions), ts, settings)
    assert checked.angles_checked and not plain.angles_checked
    np.testing.assert_allclose(checked.angles_deg, sim.truth.angles_deg)
    np.testing.assert_allclose(plain.angles_deg, ANGLES)
    big = np.abs(errors) > 0.5  # the images' counting noise sets most of R: compare these
    assert (checked.result.r_per_image[big] < plain.result.r_per_image[big]).all()
    assert checked.result.r_mean < plain.result.r_mean - 0.002
