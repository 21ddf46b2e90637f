"""``napari-aet compare``: a model against another, with the hand checked."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from napari_aet.analysis import compare_models
from napari_aet.cli import main
from napari_aet.core.atoms import AtomModel
from napari_aet.io import write_atoms
from napari_aet.simulate import amorphous_particle


@pytest.fixture(scope="module")
def models():
    """A chiral (amorphous) particle and a test model of it: turned 2 deg, moved 3 A, each atom
    jittered 5 pm per axis, 5 atoms lost and 3 made up."""
    rng = np.random.default_rng(0)
    truth = amorphous_particle(radius_A=10.0, min_distance_A=2.4, seed=3) + 20.0
    rot = Rotation.from_rotvec(np.deg2rad(2.0) * np.array([0.3, 0.8, 0.5]) / np.sqrt(0.98))
    test = rot.apply(truth - truth.mean(0)) + truth.mean(0) + [3.0, -1.0, 2.0]
    test = test + rng.normal(0, 0.05, test.shape)
    extra = truth.mean(0) + rng.uniform(-30, 30, (3, 3)) + 40.0  # far away
    test = np.vstack([test[5:], extra])
    return truth, test


def test_a_turned_moved_model_pairs_as_it_was_made(models):
    truth, test = models
    r = compare_models(truth, test)
    assert r["missed"] == 5 and r["extra"] == 3 and r["n_common"] == len(truth) - 5
    assert r["rmsd_A"] == pytest.approx(0.05 * np.sqrt(3), rel=0.15)
    assert r["rotation_deg"] == pytest.approx(2.0, abs=0.1)
    assert r["mirror"] is None
    # without registration few pair (by chance): the models are 3.7 A apart
    assert compare_models(truth, test, register="none")["n_common"] < 0.2 * len(truth)


def test_a_mirror_image_is_named(models):
    truth, test = models
    mirrored = test.copy()
    mirrored[:, 1] = 2 * mirrored[:, 1].mean() - mirrored[:, 1]
    r = compare_models(truth, mirrored)
    assert r["mirror"] == "y" and r["n_common"] < 0.4 * len(truth)
    assert r["mirror_n_common"] >= len(truth) - 5 - 2


def test_a_model_half_turned_across_the_beam_pairs_as_it_was_made(models):
    """A tilt series read with its axis's other sense gives the particle turned by 180 deg
    about an axis across the beam: the registration tries every quarter and half turn."""
    truth, test = models
    c = test.mean(0)
    turned = (test - c) * [-1.0, 1.0, -1.0] + c  # half a turn about y
    r = compare_models(truth, turned)
    assert r["n_common"] == len(truth) - 5 and r["mirror"] is None
    assert r["rotation_deg"] == pytest.approx(180.0, abs=2.5)
    assert r["rmsd_A"] == pytest.approx(0.05 * np.sqrt(3), rel=0.15)


def test_a_crystals_mirror_image_is_named_though_a_turn_pairs_most_of_it():
    """A twinned fcc dumbbell's mirror image, turned, shares most of its sites (the lattice is
    its own mirror image): the hand is still named, by the sites only the mirror pairs."""
    from napari_aet.simulate import build_structure

    for structure, seed in (("twinned dumbbell", 5), ("fcc", 4)):
        truth = build_structure(structure, radius_A=9.0, shape_px=(96, 96), seed=seed).positions
        mirrored = truth.copy()
        mirrored[:, 2] = 2 * mirrored[:, 2].mean() - mirrored[:, 2]
        r = compare_models(truth, mirrored)
        assert r["mirror"] == "x" and r["mirror_n_common"] == len(truth)
        assert 0.9 * len(truth) < r["n_common"] < len(truth)  # a turn pairs most sites
        assert compare_models(truth, truth)["mirror"] is None


def test_the_cli_prints_the_scores_and_writes_the_pairs(models, tmp_path, capsys):
    truth, test = models
    write_atoms(tmp_path / "published.csv", AtomModel(truth))
    write_atoms(tmp_path / "traced.mat", AtomModel(test))
    rc = main(["compare", str(tmp_path / "published.csv"), str(tmp_path / "traced.mat"),
               "--out", str(tmp_path / "pairs.csv")])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert f"{len(truth) - 5} common" in out and "missed: 5, extra: 3" in out
    assert "opposite hands" not in out
    pairs = np.loadtxt(tmp_path / "pairs.csv", delimiter=",", skiprows=1)
    assert pairs.shape == (len(truth) - 5, 6) and pairs[:, 5].max() < 0.5
