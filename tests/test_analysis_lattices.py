"""Crystals other than fcc: bcc ones (W, Fe, Mo, ...) told from close-packed ones by their bond
order, analysed on their own lattice (no (111) stacking labels), strained against the bcc
reference; hcp ones (Co, Ru, ...) with their own faults (fcc-stacked layers) and no twins."""

import re

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from napari_aet.analysis import analyze_structure, classify_local_structure, steinhardt_q4_q6
from napari_aet.analysis._lattice import cubic_axes_from_bonds, fit_cubic_lattice
from napari_aet.cli import main
from napari_aet.core.atoms import AtomModel
from napari_aet.io import write_atoms
from napari_aet.simulate import build_structure, fcc_lattice, stacked_particle


def _noisy(model: AtomModel, sd_A: float, scale: float = 1.0, seed: int = 0) -> AtomModel:
    rng = np.random.default_rng(seed)
    c = model.positions.mean(axis=0)
    pos = c + scale * (model.positions - c) + rng.normal(0, sd_A, model.positions.shape)
    return AtomModel(pos, model.features.copy(), dict(model.metadata))


def test_bcc_particle_has_the_elements_lattice():
    w = build_structure("bcc", element="W", radius_A=10, jitter_A=0.0, seed=1)
    assert w.metadata["lattice_constant_A"] == pytest.approx(3.16, abs=0.01)
    d = np.linalg.norm(w.positions[:, None] - w.positions[None], axis=-1)
    d[d == 0] = np.inf
    # 8 nearest neighbours at a sqrt(3)/2, none nearer
    assert d.min() == pytest.approx(3.16 * np.sqrt(3) / 2, abs=1e-6)


def test_bond_order_labels_bcc_atoms_bcc():
    pts = fcc_lattice(3.16, 12.0, lattice="bcc")
    q4, q6 = steinhardt_q4_q6(pts, cutoff_A=1.235 * 3.16 * np.sqrt(3) / 2)
    lab, _ = classify_local_structure(q4, q6)
    interior = np.linalg.norm(pts, axis=1) < 7.0
    assert set(lab[interior]) == {"bcc"}


@pytest.mark.parametrize("seed", [0, 1])
def test_cubic_axes_from_bonds_orient_a_noisy_bcc_lattice(seed):
    rot = Rotation.random(random_state=seed).as_matrix()
    pts = fcc_lattice(3.16, 14.0, lattice="bcc", orientation=rot)
    pts = pts + np.random.default_rng(seed).normal(0, 0.12, pts.shape)
    axes = cubic_axes_from_bonds(pts, 3.16 * np.sqrt(3) / 2)
    # each found axis is one of the crystal's cubic axes (either sense)
    assert np.abs(axes.T @ rot).max(axis=1) == pytest.approx(np.ones(3), abs=0.02)
    fit = fit_cubic_lattice(pts, lattice_constant_A=2.9, rotation=axes, kind="bcc")
    assert len(fit.assigned) >= 0.98 * len(pts)
    assert fit.lattice_constant_A == pytest.approx(3.16, abs=0.01)


def test_bcc_particle_is_analysed_on_its_own_lattice():
    # W expanded by 1.5 %, 12 pm noise per axis: the strain is measured against bcc W
    w = _noisy(build_structure("bcc", element="W", radius_A=13, seed=2), 0.12, scale=1.015)
    res = analyze_structure(w, element="W", strain=True)
    s = res.summary
    assert s["lattice"] == "bcc"
    assert s["n_layers"] == 0 and s["faults"] == [] and s["twin_boundary_layers"] == []
    assert s["lattice_constant_A"] == pytest.approx(1.015 * 3.16, rel=0.002)
    assert s["reference_lattice_constant_A"] == pytest.approx(3.16, abs=0.01)
    assert s["local_structure_counts"]["bcc"] > 0.5 * s["n_atoms"]
    assert s["lattice_fits"][0]["assigned_fraction"] > 0.98
    ls = res.model.features["local_strain"].to_numpy(float)
    assert np.nanmedian(ls) == pytest.approx(0.015, abs=0.002)
    assert any("bcc crystal" in n for n in s["notes"])
    assert set(res.model.features["stacking"]) == {"other"}


def test_close_packed_and_amorphous_particles_are_not_taken_for_bcc():
    pt = _noisy(build_structure("twinned dumbbell", element="Pt", radius_A=10, seed=3), 0.1)
    s = analyze_structure(pt, element="Pt").summary
    assert s["lattice"] == "fcc" and len(s["twin_boundary_layers"]) == 2
    am = build_structure("amorphous", element="Pt", radius_A=12, seed=3)
    s = analyze_structure(am, element="Pt").summary
    assert s["lattice"] is None and s["amorphous"] is not None
    assert s["local_structure_counts"]["bcc"] < 0.1 * s["n_atoms"]


@pytest.mark.parametrize("noise_pm", [30, 45])
def test_a_noisy_bcc_particle_is_still_bcc_and_close_packed_ones_are_not(noise_pm):
    # 30-45 pm of noise (3D RMS, as traced atoms carry at low counts) blurs bcc's bond order
    # into hcp's and 'other' in the Q4/Q6 map (at 30 pm: 384 bcc, 719 hcp of 1,720); the bcc
    # lattice still takes nearly every atom (fcc and hcp particles: at most a fifth)
    sd = noise_pm / 100 / np.sqrt(3)
    w = build_structure("bcc", element="W", radius_A=18, seed=200)
    s = analyze_structure(_noisy(w, sd, seed=1), element="W").summary
    assert s["lattice"] == "bcc" and s["n_layers"] == 0, s["local_structure_counts"]
    assert s["lattice_constant_A"] == pytest.approx(w.metadata["lattice_constant_A"], rel=0.003)
    for kind, element, lattice in (("twinned dumbbell", "Pt", "fcc"), ("hcp", "Ru", "hcp")):
        m = build_structure(kind, element=element, radius_A=12, seed=3)
        s = analyze_structure(_noisy(m, sd, seed=1), element=element).summary
        assert s["lattice"] == lattice, (kind, s["local_structure_counts"])


def test_cli_analyze_reports_a_bcc_crystal(tmp_path, capsys):
    fe = _noisy(build_structure("bcc", element="Fe", radius_A=11, seed=4), 0.1)
    write_atoms(tmp_path / "fe.csv", fe)
    assert (
        main(["analyze", str(tmp_path / "fe.csv"), "--element", "Fe", "--out", str(tmp_path / "a")])
        == 0
    )
    out = capsys.readouterr().out
    found = re.search(r"a bcc crystal \(no \(111\) stacking\); lattice constant ([0-9.]+) A", out)
    assert found and float(found.group(1)) == pytest.approx(2.87, abs=0.005)  # Fe's bcc
    assert (tmp_path / "a" / "figures" / "q4_q6.png").exists()
    assert not (tmp_path / "a" / "figures" / "layer_rmsd.png").exists()


@pytest.mark.parametrize(
    ("sequence", "fault", "fcc_layers"),
    [
        ("ABABABABABABAB", None, 0),
        ("ABABABCBCBCBCB", "intrinsic I1", 1),
        ("ABABABABCACACA", "intrinsic I2", 2),
        ("ABABABCABABABA", "extrinsic", 3),
    ],
)
def test_hcp_crystal_has_its_own_faults_and_no_twins(sequence, fault, fcc_layers):
    # Co-like hcp (bond 2.507 A) in a random orientation, 6 pm noise per axis
    s = stacked_particle(sequence, lattice_constant_A=2.507 * np.sqrt(2), lateral_extent_A=14)
    rot = Rotation.random(random_state=4).as_matrix()
    pos = (s.positions - s.positions.mean(0)) @ rot.T
    pos = pos + np.random.default_rng(0).normal(0, 0.06, pos.shape)
    res = analyze_structure(AtomModel(pos), element="Co", strain=True)
    out = res.summary
    assert out["lattice"] == "hcp"
    assert out["twin_boundary_layers"] == [] and out["interface_layer"] is None
    assert out["lattice_constant_A"] == pytest.approx(2.507, abs=0.01)
    assert out["hcp_c_A"] == pytest.approx(2.507 * np.sqrt(8 / 3), abs=0.02)  # ideal c/a
    if fault is None:
        assert out["faults"] == []
    else:
        assert [f["type"] for f in out["faults"]] == [fault]
        assert len(out["faults"][0]["fcc_layers"]) == fcc_layers
    assert set(res.model.features["cluster"]) == {0}
    # the hcp lattice is fitted on each side of the fault: every atom on one but an extrinsic
    # fault's inserted layer (a lattice grown across the fault lost 37-50 % of them)
    assert len(out["lattice_fits"]) == (1 if fault is None else 2)
    assert all(f["assigned_fraction"] > 0.99 for f in out["lattice_fits"])
    no_strain = np.isnan(res.model.features["exx"].to_numpy()).mean()
    assert no_strain < (0.1 if fault == "extrinsic" else 0.01)
    assert out["lattice_constant_A"] == pytest.approx(2.507, rel=0.002)


@pytest.mark.parametrize(
    ("element", "a", "c"), [("Ru", 2.70, 2.70 * 1.584), ("Co", 2.51, 2.51 * 1.622)]
)
def test_an_hcp_metal_is_fitted_on_its_own_lattice(element, a, c):
    # a particle of the element's hcp lattice (c/a below the ideal 1.633: Ru's bonds between
    # layers are 2 % shorter than those in them), random orientation, 2.2 pm jitter
    m = build_structure("hcp", element=element, radius_A=9.0, shape_px=(128, 128), seed=1)
    pos = m.positions
    d, _ = cKDTree(pos).query(pos, k=2)
    assert np.median(d[:, 1]) < a  # the nearest neighbour is one between layers
    res = analyze_structure(m, element=element, strain=True)
    out = res.summary
    assert out["lattice"] == "hcp" and out["faults"] == []
    assert out["lattice_constant_source"] == "fitted hcp lattices"
    (fit,) = out["lattice_fits"]
    assert fit["assigned_fraction"] == 1.0 and fit["rmsd_A"] < 0.05  # jitter 3.8 pm in 3D
    assert out["lattice_constant_A"] == pytest.approx(a, rel=0.002)
    assert out["hcp_c_A"] == pytest.approx(c, rel=0.002)
    assert out["reference_lattice_constant_A"] == pytest.approx(a)
    ls = res.model.features["local_strain"].to_numpy()
    assert abs(np.nanmedian(ls)) < 0.001 and np.nanstd(ls) < 0.005  # the jitter's own spread
    # stretched 2 % along c and 1 % in the layers: a up by 1 %, c by 2 %, each atom's local
    # lattice constant 1 % over the element's
    n = np.asarray(out["stacking_normal_zyx"])
    ctr = pos.mean(axis=0)
    along = (pos - ctr) @ n
    stretched = ctr + 1.01 * (pos - ctr - np.outer(along, n)) + 1.02 * np.outer(along, n)
    res2 = analyze_structure(AtomModel(stretched), element=element, strain=True)
    out2 = res2.summary
    assert out2["lattice_constant_A"] == pytest.approx(1.01 * a, rel=0.002)
    assert out2["hcp_c_A"] == pytest.approx(1.02 * c, rel=0.002)
    assert out2["lattice_fits"][0]["c_over_a"] == pytest.approx(1.02 / 1.01 * c / a, rel=0.002)
    assert np.nanmedian(res2.model.features["local_strain"]) == pytest.approx(0.01, abs=0.002)
    # a reference the user gives is the one strains are measured against (no element given)
    res3 = analyze_structure(AtomModel(pos), strain=True, reference_lattice_constant_A=1.01 * a)
    assert res3.summary["reference_lattice_constant_A"] == pytest.approx(1.01 * a)
    ls3 = np.nanmedian(res3.model.features["local_strain"])
    assert ls3 == pytest.approx(1 / 1.01 - 1, abs=0.002)
    with pytest.raises(ValueError, match="blob"):
        build_structure("hcp", element=element, shape="convex")


def test_a_bcc_bicrystal_is_bcc_and_each_grain_fits_on_its_own():
    rng = np.random.default_rng(0)
    r1, r2 = (Rotation.random(random_state=k).as_matrix() for k in (1, 2))
    a = fcc_lattice(3.16, 14.0, lattice="bcc", orientation=r1)
    b = fcc_lattice(3.16, 14.0, lattice="bcc", orientation=r2)
    pos = np.vstack([a[a[:, 0] < 0], b[b[:, 0] >= 1.4]])
    pos = pos + rng.normal(0, 0.05, pos.shape)
    grain = (pos[:, 0] >= 0.7).astype(int)
    s = analyze_structure(AtomModel(pos), element="W").summary
    assert s["lattice"] == "bcc" and any("another grain" in n for n in s["notes"])
    assert 0.3 < s["lattice_fits"][0]["assigned_fraction"] < 0.8
    # the user's selection of the grains: each on its own bcc lattice
    s = analyze_structure(AtomModel(pos), element="W", clusters=grain).summary
    fits = s["lattice_fits"]
    assert [f["cluster"] for f in fits] == [0, 1]
    assert all(f["assigned_fraction"] > 0.95 for f in fits)
    assert all(f["lattice_constant_A"] == pytest.approx(3.16, abs=0.01) for f in fits)


def test_a_diamond_cubic_crystal_is_not_given_close_packed_labels():
    # diamond-cubic Si (a = 5.431 A): fcc and its copy shifted by a/4, 4 neighbours each; its
    # {111} double layers once gave 15 "(111) layers" and an "fcc lattice constant" of 3.80 A
    rot = Rotation.random(random_state=3).as_matrix()
    f = fcc_lattice(5.431, 16.0)
    pos = np.vstack([f, f + 5.431 / 4])
    pos = pos[np.linalg.norm(pos - pos.mean(0), axis=1) < 14.0] @ rot.T
    pos = pos + np.random.default_rng(0).normal(0, 0.04, pos.shape)
    s = analyze_structure(AtomModel(pos), element="Si").summary
    assert s["lattice"] is None and s["n_layers"] == 0 and s["lattice_constant_A"] is None
    assert any("4-coordinated" in n for n in s["notes"])
    # g(r) instead: its first peak at the Si-Si bond, 2.35 A
    assert s["amorphous"]["rdf_first_peak_A"] == pytest.approx(5.431 * np.sqrt(3) / 4, abs=0.05)
