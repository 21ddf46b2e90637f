import numpy as np
from scipy.spatial import cKDTree

from napari_aet.analysis import classify_local_structure, steinhardt_q4_q6
from napari_aet.simulate import amorphous_particle, build_structure
from napari_aet.simulate._glass import _lj_energy, relax_packing

PT_BOND = 3.912 / np.sqrt(2.0)


def test_the_pair_energy_gradient_is_the_energy_derivative():
    pos = amorphous_particle(radius_A=6.0, min_distance_A=2.0, seed=3)
    flat = pos.ravel()
    e, g = _lj_energy(flat, PT_BOND, 1.8 * PT_BOND)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(flat), 5, replace=False):
        step = np.zeros_like(flat)
        step[i] = 1e-5
        numeric = (_lj_energy(flat + step, PT_BOND, 1.8 * PT_BOND)[0]
                   - _lj_energy(flat - step, PT_BOND, 1.8 * PT_BOND)[0]) / 2e-5  # fmt: skip
        assert abs(numeric - g[i]) < 1e-4 * max(1.0, abs(g[i]))


def test_two_atoms_relax_to_the_bond():
    end = relax_packing(np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), bond_A=PT_BOND)
    assert abs(np.linalg.norm(end[1] - end[0]) - PT_BOND) < 0.01 * PT_BOND


def test_a_quenched_packing_is_a_glass_not_a_crystal():
    start = amorphous_particle(radius_A=14.0, min_distance_A=2.0, seed=5)
    glass = build_structure("glass", element="Pt", radius_A=14.0, seed=5, jitter_A=0.0)
    pos = glass.positions
    nn = cKDTree(pos).query(pos, k=2)[0][:, 1]
    nn_start = cKDTree(start).query(start, k=2)[0][:, 1]
    # the random packing: half its atoms have a neighbour within 0.78 bonds; the glass's
    # first shell lies at the bond, none nearer than 0.85 bonds
    assert np.median(nn_start) < 0.78 * PT_BOND
    assert nn.min() > 0.85 * PT_BOND
    assert abs(np.median(nn) - PT_BOND) < 0.06 * PT_BOND
    # about 12 neighbours inside (within 1.2 bonds), as in a dense liquid
    r = np.linalg.norm(pos - pos.mean(axis=0), axis=1)
    inner = r < 0.6 * r.max()
    coord = cKDTree(pos).query_ball_point(pos[inner], 1.2 * PT_BOND, return_length=True) - 1
    assert 10 <= np.median(coord) <= 13
    # and disordered: few atoms have a crystal's bond-orientational order
    q4, q6 = steinhardt_q4_q6(pos)
    labels = np.asarray(classify_local_structure(q4, q6)[0])
    assert np.mean(labels != "other") < 0.1
    assert glass.metadata["source"] == "napari-aet simulate: glass"


def test_a_small_glass_particle_is_analysed_as_amorphous_a_noisy_crystal_as_fcc():
    from napari_aet.analysis import analyze_structure

    rng = np.random.default_rng(2)
    # a 137-atom glass: its layering (score about 0.5) passes the bar random points set
    glass = build_structure("glass", element="Pt", radius_A=8.0, seed=8, jitter_A=0.0)
    res = analyze_structure(glass, element="Pt")
    assert res.summary["layering_score"] > 0.34  # above 4 / sqrt(137): layered by score alone
    assert res.summary["lattice"] is None
    assert res.summary["amorphous"] is not None
    assert any("no crystal order backs it" in n for n in res.summary["notes"])
    # a crystal of the same size with 30 pm of noise on every atom stays a crystal
    fcc = build_structure("fcc", element="Pt", radius_A=8.0, seed=8)
    fcc.positions = fcc.positions + rng.normal(0.0, 0.3 / np.sqrt(3.0), fcc.positions.shape)
    res = analyze_structure(fcc, element="Pt")
    assert res.summary["lattice"] == "fcc"
    assert res.summary["amorphous"] is None
