import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from napari_aet.analysis import analyze_stacking, analyze_structure, nearest_neighbour_distance
from napari_aet.cli import main
from napari_aet.core.atoms import AtomModel
from napari_aet.io import read_atoms, write_atoms
from napari_aet.simulate import (
    fcc_particle,
    stacked_particle,
    stacking_sequence,
    thermal_jitter,
    twinned_dumbbell,
)


def test_perfect_fcc_in_random_orientation():
    rot = Rotation.from_euler("zyx", [33, -21, 47], degrees=True).as_matrix()
    pts = fcc_particle(
        lattice_constant_A=3.912, radius_A=14, shape="sphere", orientation=rot, seed=0
    )
    st = analyze_stacking(pts)
    # the found normal is one of the crystal's four <111> directions
    normals = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]]) / np.sqrt(3) @ rot.T
    assert np.abs(normals @ st.normal).max() == pytest.approx(1.0, abs=1e-5)
    assert st.interface_layer is None and st.twin_boundaries == []
    inner = st.stacking[st.stacking != "other"]
    assert set(inner) == {"fcc"}
    assert nearest_neighbour_distance(pts) * np.sqrt(2) == pytest.approx(3.912, abs=0.001)


def test_hcp_crystal_is_labelled_hcp():
    s = stacked_particle("ABABABABAB", lattice_constant_A=3.912, lateral_extent_A=12)
    st = analyze_stacking(s.positions)
    inner = st.stacking[st.stacking != "other"]
    assert len(inner) > 0.6 * len(st.stacking) and set(inner) == {"hcp"}


@pytest.mark.parametrize("fault, n_tb", [("extrinsic", 2), ("twin", 1)])
def test_fault_layers_are_found_where_they_were_built(fault, n_tb):
    s = twinned_dumbbell(
        fault=fault,
        twist_deg=0.0,
        radius_bottom_A=14,
        radius_top_A=13,
        center_distance_A=22,
        seed=2,
    )
    st = analyze_stacking(s.positions)
    assert abs(st.normal @ s.normal) == pytest.approx(1.0, abs=1e-4)
    assert len(st.twin_boundaries) == n_tb
    # the analysis's layer 0 is the built interface layer, hcp exactly at the twin boundaries
    if fault == "extrinsic":
        sign = 1 if st.normal @ s.normal > 0 else -1
        np.testing.assert_array_equal(st.layer, sign * s.layer)
        assert sorted(st.twin_boundaries) == [-1, 1]
    hcp_layers = {int(v) for v in np.unique(st.layer[st.stacking == "hcp"])}
    assert hcp_layers == set(st.twin_boundaries)


def test_known_twist_is_recovered_with_jitter():
    s = twinned_dumbbell(twist_deg=1.6, seed=5)
    pos = thermal_jitter(s.positions, sigma_A=0.1, seed=1)
    st = analyze_stacking(pos)
    assert abs(st.relative_rotation_deg) == pytest.approx(1.6, abs=0.05)


def test_structure_analysis_on_the_sample_truth(sample, tmp_path):
    atoms = sample.truth.atoms
    res = analyze_structure(AtomModel(atoms.positions))
    f = res.model.features
    truth = atoms.features
    sign = 1 if np.corrcoef(f["layer"], truth["layer"])[0, 1] > 0 else -1
    assert (f["layer"].to_numpy() * sign == truth["layer"].to_numpy()).mean() == 1.0
    assert (f["stacking"].to_numpy() == truth["stacking"].to_numpy()).mean() >= 0.98
    assert res.summary["relative_rotation_deg"] == pytest.approx(1.6, abs=0.1)
    assert sorted(res.summary["twin_boundary_layers"]) == [-1, 1]
    assert res.summary["lattice_constant_A"] == pytest.approx(3.912, abs=0.01)
    boo = res.summary["boo"]
    assert boo["others_to_fcc"] < boo["interface_to_fcc"]
    assert {"q4", "q6", "local_structure", "abc", "cluster"} <= set(f.columns)
    # the CLI writes features into the atom files and the summary into analysis.json
    src = write_atoms(tmp_path / "in.csv", AtomModel(atoms.positions))
    assert main(["-q", "analyze", str(src), "--out", str(tmp_path / "an")]) == 0
    summary = json.loads((tmp_path / "an" / "analysis.json").read_text())
    assert summary["relative_rotation_deg"] == pytest.approx(1.6, abs=0.1)
    back = read_atoms(tmp_path / "an" / "atoms.csv")
    assert set(back.features["stacking"]) <= {"fcc", "hcp", "other"}
    assert (tmp_path / "an" / "figures" / "q4_q6.png").stat().st_size > 5000


def test_stacking_sequence_helper_matches_analysis_labels():
    seq = stacking_sequence(6, 6, fault="intrinsic")
    s = stacked_particle(seq, lattice_constant_A=3.912, lateral_extent_A=12)
    st = analyze_stacking(s.positions)
    assert len(st.twin_boundaries) == 2
    assert abs(st.twin_boundaries[1] - st.twin_boundaries[0]) == 1


def test_too_few_atoms():
    with pytest.raises(ValueError, match="at least 10"):
        analyze_stacking(np.zeros((3, 3)))


def test_fcc_lattice_fit_recovers_constant_orientation_and_noise():
    from napari_aet.analysis._lattice import fit_cubic_lattice

    rot = Rotation.from_euler("zyx", [33, -21, 47], degrees=True).as_matrix()
    pts = fcc_particle(
        lattice_constant_A=3.912, radius_A=14, shape="sphere", orientation=rot, seed=0
    )
    noisy = thermal_jitter(pts, sigma_A=0.03, seed=1)
    start = Rotation.from_rotvec([0.02, -0.01, 0.015]).as_matrix() @ rot
    fit = fit_cubic_lattice(noisy, lattice_constant_A=3.85, rotation=start)
    assert len(fit.assigned) == len(pts)
    assert fit.lattice_constant_A == pytest.approx(3.912, abs=0.002)
    assert fit.rmsd_A == pytest.approx(np.sqrt(3) * 0.03, rel=0.1)
    # exact data: exact lattice constant
    exact = fit_cubic_lattice(pts, lattice_constant_A=3.85, rotation=start)
    assert exact.lattice_constant_A == pytest.approx(3.912, abs=1e-6)


def test_hexagonal_layer_fit_and_2d_rmsd():
    from napari_aet.analysis._lattice import fit_hexagonal_layer

    b, th = 2.766, np.deg2rad(12.0)
    a1 = b * np.array([np.cos(th), np.sin(th)])
    a2 = b * np.array([np.cos(th + np.pi / 3), np.sin(th + np.pi / 3)])
    ij = np.array([[i, j] for i in range(-6, 7) for j in range(-6, 7) if abs(i + j) <= 6])
    pts = ij @ np.stack([a1, a2]) + np.array([1.0, -2.0])
    fit = fit_hexagonal_layer(pts, bond_A=2.7, orientation_rad=th + 0.02)
    assert len(fit.assigned) == len(pts)
    assert fit.bond_length_A == pytest.approx(b, abs=1e-9)
    assert fit.orientation_deg % 60 == pytest.approx(12.0, abs=1e-6)
    noisy = pts + np.random.default_rng(0).normal(scale=0.05, size=pts.shape)
    assert fit_hexagonal_layer(noisy, bond_A=2.7, orientation_rad=th).rmsd_A == pytest.approx(
        0.05 * np.sqrt(2), rel=0.15
    )


def test_sample_lattice_fits_and_layer_rmsd(sample):
    res = analyze_structure(AtomModel(sample.truth.atoms.positions))
    fits = {c["cluster"]: c for c in res.summary["lattice_fits"]}
    assert fits[1]["assigned_fraction"] > 0.99
    # the bottom cluster holds the fault layers, which sit off its fcc lattice
    assert 0.9 < fits[0]["assigned_fraction"] < 1.0
    for c in fits.values():
        assert c["lattice_constant_A"] == pytest.approx(3.912, abs=0.005)
        assert c["rmsd_A"] == pytest.approx(np.sqrt(3) * 0.05, rel=0.15)
    big = [L for L in res.summary["layers"] if L["n_atoms"] > 50]
    assert all(L["rmsd_2d_A"] == pytest.approx(0.05 * np.sqrt(2), rel=0.25) for L in big)
    assert res.model.features["surface"].sum() == res.summary["n_surface_atoms"] > 0


def test_user_selected_clusters(sample):
    atoms = sample.truth.atoms
    truth_cluster = atoms.features["cluster"].to_numpy()
    # a user selection equal to the truth gives the same twist as the automatic split
    res = analyze_structure(AtomModel(atoms.positions), clusters=truth_cluster)
    assert res.summary["relative_rotation_deg"] == pytest.approx(1.6, abs=0.1)
    np.testing.assert_array_equal(res.model.features["cluster"], truth_cluster)
    assert len(res.summary["lattice_fits"]) == 2
    with pytest.raises(ValueError, match="0 or 1"):
        analyze_structure(AtomModel(atoms.positions), clusters=np.full(atoms.n_atoms, 2))


def test_in_plane_zone_axes_are_the_crystals_own_110_and_112():
    """Known answer: an fcc crystal turned at random (with 3 pm noise): the three directions
    returned as <110> are the crystal's [1-10], [01-1], [10-1] (turned), the <112> ones its
    [11-2], [-211], [1-21]; both lie in the (111) plane."""
    from napari_aet.analysis import in_plane_zone_axes
    from napari_aet.simulate import fcc_lattice

    rot = Rotation.random(random_state=7).as_matrix()
    pos = fcc_lattice(3.92, 14.0, orientation=rot)
    pos = pos + np.random.default_rng(1).normal(0, 0.03, pos.shape)
    normal = rot @ np.array([1.0, 1.0, 1.0]) / np.sqrt(3)
    axes = in_plane_zone_axes(pos, normal)
    for name, family in (
        ("<110>", [[1, -1, 0], [0, 1, -1], [1, 0, -1]]),
        ("<112>", [[1, 1, -2], [-2, 1, 1], [1, -2, 1]]),
    ):
        true = np.array(family, float) @ rot.T
        true /= np.linalg.norm(true, axis=1, keepdims=True)
        got = axes[name]
        assert np.abs(got @ normal).max() < 1e-9
        cos = np.abs(got @ true.T)  # each returned direction matches one true one
        assert np.sort(cos.max(axis=1)).min() > np.cos(np.deg2rad(1.0))
        assert sorted(cos.argmax(axis=1)) == [0, 1, 2]
    # a chain along the normal has no bond in the layers: a clear error, not a made-up axis
    chain = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 2.77], [0.0, 0.0, 5.54]])
    with pytest.raises(ValueError, match="close-packed layers"):
        in_plane_zone_axes(chain, [0.0, 0.0, 1.0])
