"""Elements beyond Pt: bond lengths, the tracer's minimum distance, alloys told apart by
contrast, every element of the scattering table simulated."""

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from napari_aet.analysis import compare_atom_models
from napari_aet.cli import main
from napari_aet.core.elements import (
    element_data,
    fcc_reference_A,
    parse_elements,
    tracer_min_distance_A,
)
from napari_aet.io import TiltSeries, read_atoms, write_tilt_series
from napari_aet.simulate import build_structure, simulate_tilt_series
from napari_aet.trace import classify_species


def test_bond_lengths_follow_each_elements_structure():
    assert element_data("Pt").bond_length_A == pytest.approx(3.912 / np.sqrt(2))  # fcc
    assert element_data("si").bond_length_A == pytest.approx(5.43 * np.sqrt(3) / 4)  # diamond
    assert element_data("Fe").bond_length_A == pytest.approx(2.87 * np.sqrt(3) / 2)  # bcc
    assert element_data("Co").bond_length_A == pytest.approx(2.51)  # hcp
    assert element_data("Fe").fcc_lattice_constant_A is None
    # the study's 2 A for Pt, scaled by the bond for the others
    assert tracer_min_distance_A("Pt") == pytest.approx(2.0, abs=1e-3)
    assert tracer_min_distance_A("Si") == pytest.approx(1.70, abs=0.01)
    assert tracer_min_distance_A("Pt,Ni") == tracer_min_distance_A("Ni")


def test_alloys_are_parsed_heaviest_first_and_averaged_by_vegard():
    assert parse_elements("ni, PT") == ("Pt", "Ni")
    assert parse_elements(["Ni", "Pt", "Ni"]) == ("Pt", "Ni")
    assert fcc_reference_A("Pt,Ni", [0.25, 0.75]) == pytest.approx(0.25 * 3.912 + 0.75 * 3.524)
    assert fcc_reference_A("Pt,Si") is None
    with pytest.raises(ValueError, match="not a chemical symbol"):
        parse_elements("Platinum")


def test_cli_refuses_an_unknown_element(capsys, tmp_path):
    assert main(["trace", "t.h5", "--out", str(tmp_path / "o"), "--element", "Xx"]) == 1
    assert "--element Xx: 'Xx' is not a chemical symbol" in capsys.readouterr().err


def test_species_are_classed_by_intensity_with_noise_apart():
    rng = np.random.default_rng(0)
    truth = np.r_[np.full(300, -1), np.zeros(200, int), np.ones(500, int)]
    centre = {-1: 0.05, 0: 1.0, 1: 0.3}  # noise, Pt, Ni (integrated intensity)
    v = np.array([centre[t] for t in truth]) * rng.normal(1, 0.12, len(truth))
    thr, centres, lab = classify_species(v, "Ni,Pt")
    assert (lab == truth).mean() > 0.99
    assert 0.1 < thr < 0.25 and centres[0] > centres[1]


@pytest.mark.parametrize("element", ["Fe", "Si", "U", "C"])
def test_every_element_simulates(element):
    atoms = build_structure("fcc", element=element, radius_A=6, jitter_A=0, seed=0)
    assert atoms.n_atoms > 10 and "not an fcc metal" in atoms.metadata["note"]
    d, _ = cKDTree(atoms.positions).query(atoms.positions, k=2)
    assert np.median(d[:, 1]) == pytest.approx(element_data(element).bond_length_A, rel=0.02)


def test_run_on_a_ptni_alloy_tells_the_species_apart(tmp_path):
    """A random Pt-Ni alloy (half and half) through ``run --element Pt,Ni``: every atom found
    and each one's species right from its intensity; the strain reference by Vegard's rule."""
    atoms = build_structure(
        "fcc", element="Pt,Ni", radius_A=8.0, shape_px=(64, 64), pixel_size_A=0.4, seed=2
    )
    ang = np.arange(-70, 71, 7.0)  # the study's 21 tilts
    sim = simulate_tilt_series(atoms, ang, pixel_size_A=0.4, shape_px=(64, 64), seed=1)
    write_tilt_series(tmp_path / "s.h5", TiltSeries(sim.data, ang, 0.4))
    # the series has no shifts or angle errors: no projection matching (a third of the run's
    # time; the species are the refine stage's)
    rc = main(["-q", "run", str(tmp_path / "s.h5"), "--element", "Ni,Pt", "--tilt-axis",
               "none", "--augment", "none", "--recon-iterations", "40", "--no-projection-matching",
               "--figure-formats", "png", "--figure-dpi", "100",
               "--out", str(tmp_path / "run")])  # fmt: skip
    assert rc == 0
    traced = read_atoms(tmp_path / "run" / "atoms.csv")
    c = compare_atom_models(atoms.positions, traced.positions)
    assert c.n_common == atoms.n_atoms == traced.n_atoms
    d, i = cKDTree(traced.positions).query(atoms.positions)
    truth = atoms.features["element"].to_numpy()
    assert (traced.features["element"].to_numpy()[i] == truth).mean() >= 0.97
    s = json.loads((tmp_path / "run" / "analysis.json").read_text())
    frac_pt = (traced.features["element"] == "Pt").mean()
    assert s["reference_lattice_constant_A"] == pytest.approx(
        frac_pt * 3.912 + (1 - frac_pt) * 3.524
    )
