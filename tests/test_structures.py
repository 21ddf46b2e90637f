import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from napari_aet.simulate import (
    PT_LATTICE_CONSTANT_A,
    amorphous_particle,
    apply_point_defects,
    build_structure,
    faulted_particle,
    fcc_lattice,
    fcc_particle,
    random_stacking,
    stacked_particle,
    stacking_sequence,
    thermal_jitter,
    twinned_dumbbell,
)


def test_fcc_lattice_has_twelve_neighbours_at_a_over_root2():
    a = 4.078
    rot = Rotation.from_euler("zyx", [10, 20, 30], degrees=True).as_matrix()
    pts = fcc_lattice(a, 12.0, orientation=rot)
    tree = cKDTree(pts)
    center = np.argmin(np.linalg.norm(pts, axis=1))
    d, _ = tree.query(pts[center], k=13)
    assert d[1:] == pytest.approx(np.full(12, a / np.sqrt(2)), abs=1e-9)
    # next shell at a
    d2, _ = tree.query(pts[center], k=19)
    assert d2[13:] == pytest.approx(np.full(6, a), abs=1e-9)


@pytest.mark.parametrize(
    "fault, n_hcp", [("none", 0), ("twin", 1), ("intrinsic", 2), ("extrinsic", 2)]
)
def test_stacking_faults_give_the_known_number_of_hcp_layers(fault, n_hcp):
    seq = stacking_sequence(6, 6, fault=fault)
    inner = [seq[i] for i in range(1, len(seq) - 1) if seq[i - 1] == seq[i + 1]]
    assert len(inner) == n_hcp
    assert all(seq[i] != seq[i + 1] for i in range(len(seq) - 1))


def test_extrinsic_fault_inserts_one_layer_between_hcp_layers():
    seq = stacking_sequence(5, 5, fault="extrinsic")
    assert len(seq) == 11
    k = 5  # the inserted layer
    assert seq[k - 2] == seq[k]  # B-layer below has A on both sides -> hcp
    assert seq[k - 1] == seq[k + 1] or seq[k] == seq[k + 2]


def test_stacked_layers_are_spaced_by_a_over_root3():
    s = stacked_particle("ABCABC", lattice_constant_A=3.912, lateral_extent_A=8)
    h = s.positions @ s.normal
    levels = np.array(sorted({round(v, 9) for v in h}))
    assert np.diff(levels) == pytest.approx(np.full(5, 3.912 / np.sqrt(3)), abs=1e-8)
    # in a perfect ABC stack every atom has 12 neighbours at a/sqrt(2) in the bulk
    tree = cKDTree(s.positions)
    inner = np.nonzero(
        (s.layer > -2)
        & (s.layer < 2)
        & (np.linalg.norm(s.positions - np.outer(h, s.normal), axis=1) < 3)
    )[0]
    d, _ = tree.query(s.positions[inner], k=13)
    assert d[:, 1:] == pytest.approx(3.912 / np.sqrt(2), abs=1e-6)


def test_twinned_dumbbell_truth_and_twist():
    twist = 1.6
    s = twinned_dumbbell(twist_deg=twist, seed=3)
    assert 2800 <= len(s.positions) <= 3600
    assert set(np.unique(s.stacking[s.layer == -1])) == {"hcp"}
    assert set(np.unique(s.stacking[s.layer == 1])) == {"hcp"}
    assert set(np.unique(s.stacking[s.layer == 0])) == {"fcc"}
    assert set(np.unique(s.stacking[np.abs(s.layer) == 3])) == {"fcc"}
    # Undoing the twist puts the top cluster back on the bottom cluster's hexagonal net.
    top = s.positions[s.cluster == 1]
    untwist = Rotation.from_rotvec(-np.deg2rad(twist) * s.normal).as_matrix()
    ref = stacked_particle(
        s.sequence,
        interface_index=s.interface_index,
        normal=s.normal,
        in_plane_angle_deg=17.0,
        lateral_extent_A=40,
    ).positions
    tree = cKDTree(ref)
    d_twisted, _ = tree.query(top)
    d_untwisted, _ = tree.query(top @ untwist.T)
    assert d_untwisted.max() < 1e-6
    assert np.median(d_twisted) > 0.1


def test_amorphous_respects_min_distance_and_density():
    pts = amorphous_particle(radius_A=12.0, min_distance_A=2.0, shape="sphere", seed=1)
    d, _ = cKDTree(pts).query(pts, k=2)
    assert d[:, 1].min() >= 2.0
    density = len(pts) / (4 / 3 * np.pi * 12.0**3)
    target = 0.95 * 4 / PT_LATTICE_CONSTANT_A**3
    assert density == pytest.approx(target, rel=0.12)


def test_shapes_defects_and_jitter():
    blob = fcc_particle(radius_A=15, shape="blob", seed=0)
    sphere = fcc_particle(radius_A=15, shape="sphere", seed=0)
    convex = fcc_particle(radius_A=10, shape="convex", seed=0)
    n_sphere = 4 / 3 * np.pi * 15.0**3 / (PT_LATTICE_CONSTANT_A**3 / 4)
    assert len(sphere) == pytest.approx(n_sphere, rel=0.05)
    assert len(blob) != len(sphere) and len(convex) > 0
    keep = apply_point_defects(1000, vacancy_fraction=0.005, seed=0)
    assert (~keep).sum() == 5
    jit = thermal_jitter(np.zeros((20000, 3)), sigma_A=0.05, seed=0)
    assert jit.std(axis=0) == pytest.approx(np.full(3, 0.05), rel=0.05)


def test_build_structure_centres_in_volume_and_rejects_unknown():
    m = build_structure("fcc", radius_A=8, shape_px=(64, 64), pixel_size_A=0.5, seed=0)
    assert np.allclose(m.positions.mean(axis=0), 32 * 0.5, atol=1.0)
    assert set(m.features["element"]) == {"Pt"}
    with pytest.raises(ValueError, match="choose one of"):
        build_structure("quasicrystal")
    with pytest.raises(ValueError, match="not a chemical symbol"):
        build_structure("fcc", element="Xx")
    with pytest.raises(ValueError, match="one non-negative fraction per element"):
        build_structure("fcc", element="Pt,Ni", composition=[1.0])


def _hcp_layers(seq):
    return sum(seq[i - 1] == seq[i + 1] for i in range(1, len(seq) - 1))


def test_random_stacking_reverses_at_the_given_rate():
    """Every layer beside its neighbours is a close packing; a reversal of the walk makes one
    hcp layer, so their share is the rate: none at 0 (perfect fcc), all at 1 (ABAB: hcp), and
    0.1 +- 0.02 over 2,000 layers at 0.1."""
    for rate in (0.0, 0.1, 1.0):
        seq = random_stacking(2000, rate, seed=5)
        assert set(seq) <= set("ABC") and len(seq) == 2000
        assert all(seq[i] != seq[i + 1] for i in range(len(seq) - 1))
        assert _hcp_layers(seq) / 1998 == pytest.approx(rate, abs=0.02)
    perfect = random_stacking(12, 0.0, seed=1)
    assert perfect in ("ABCABCABCABC"[k:] + "ABCABCABCABC"[:k] for k in range(3)) or perfect in (
        "CBACBACBACBA"[k:] + "CBACBACBACBA"[:k] for k in range(3)
    )
    with pytest.raises(ValueError, match="reversal_rate"):
        random_stacking(10, 1.5)


def test_faulted_particle_is_close_packed_with_its_drawn_faults():
    """A faulted particle's inner atoms keep 12 neighbours at a / sqrt(2) whatever the
    stacking (fcc and hcp alike); its layers' labels follow the drawn sequence (an hcp layer
    wherever the stacking reversed), and it is centred near the origin within the radius'
    reach."""
    a = 3.912
    p = faulted_particle(lattice_constant_A=a, radius_A=12.0, reversal_rate=0.3, seed=7)
    seq = p.sequence
    assert _hcp_layers(seq) >= 2  # this draw has faults
    for k, letter in enumerate(seq):
        on = p.layer == k - p.interface_index
        if on.any():
            assert set(p.abc[on]) == {letter}
            if 0 < k < len(seq) - 1:
                want = "hcp" if seq[k - 1] == seq[k + 1] else "fcc"
                assert set(p.stacking[on]) == {want}
    r = np.linalg.norm(p.positions, axis=1)
    assert r.max() < 12.0 * 1.4 and np.linalg.norm(p.positions.mean(axis=0)) < 1.5
    inner = r < 7.0
    d, _ = cKDTree(p.positions).query(p.positions[inner], k=13)
    assert d[:, 1:] == pytest.approx(a / np.sqrt(2), abs=1e-6)
    assert d.shape[0] > 50
    convex = faulted_particle(radius_A=10.0, shape="convex", seed=8)
    assert len(convex.positions) > 200
