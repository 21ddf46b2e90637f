import numpy as np

from napari_aet.simulate import inject_model_errors, render_atom_volume
from napari_aet.trace import review_atoms


def test_injected_errors_rank_at_the_top(sample):
    truth = sample.truth.atoms.positions
    rng = np.random.default_rng(0)
    vol = render_atom_volume(truth, (256, 256, 256), voxel_size_A=0.358, sigma_A=0.5)
    vol = vol / vol.max() + rng.normal(scale=0.05, size=vol.shape).astype(np.float32)
    injected = inject_model_errors(truth, seed=rng)
    review = review_atoms(injected.positions, vol, voxel_size_A=0.358)
    hits = review.injected_hits(injected, 0.02)
    assert sum(hits.values()) >= 27  # >= 90 % of the 30 injected errors in the first 2 %
    assert review.table.iloc[0]["reasons"] != ""
    assert (review.table["score"].diff().dropna() <= 1e-12).all()  # sorted by doubt


def test_inject_model_errors_bookkeeping():
    truth = np.arange(60, dtype=float).reshape(20, 3) * 3.0  # atoms 15.6 A apart
    inj = inject_model_errors(truth, n_removed=2, n_duplicated=3, n_displaced=4, seed=1)
    assert len(inj.positions) == 20 - 2 + 3
    np.testing.assert_array_equal(inj.duplicates, [18, 19, 20])
    to_truth = np.linalg.norm(inj.positions[:, None] - truth[None], axis=2).min(axis=1)
    np.testing.assert_allclose(to_truth[inj.displaced], 0.9)
    np.testing.assert_allclose(to_truth[inj.duplicates], 1.0)
    others = np.setdiff1d(np.arange(len(inj.positions)), np.r_[inj.displaced, inj.duplicates])
    np.testing.assert_allclose(to_truth[others], 0.0, atol=1e-12)
    gone = np.linalg.norm(inj.positions[:, None] - inj.removed_A[None], axis=2)
    assert gone.min() > 1.0  # the removed atoms are not in the model any more


def test_disagreement_between_raw_and_augmented_tracing():
    from napari_aet.trace import doubt_scores

    # a small cubic cloud: the "other" model lacks atom 5 and has one atom this model lacks
    g = np.arange(0, 5) * 2.8
    pos = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) + 5.0
    other = np.vstack([np.delete(pos, 5, axis=0), [[30.0, 30.0, 30.0]]])
    vol = render_atom_volume(pos, (64, 64, 64), voxel_size_A=0.5, sigma_A=0.5)
    res = doubt_scores(pos, vol, voxel_size_A=0.5, other_positions_A=other, bond_A=2.8)
    t = res.table
    top2 = t.iloc[:2]
    assert set(top2["kind"]) == {"atom", "missing"}
    assert int(top2[top2.kind == "atom"]["index"].iloc[0]) == 5
    np.testing.assert_allclose(top2[top2.kind == "missing"][["z", "y", "x"]].to_numpy()[0], 30.0)
    assert "other tomogram" in top2.iloc[0]["reasons"]
    assert (t[t.kind == "atom"]["doubt_disagree"] > 0).sum() == 1


def test_refinement_features_rank_moved_and_faded_atoms_first():
    from napari_aet.trace import doubt_scores

    g = np.arange(0, 5) * 2.8
    pos = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) + 5.0
    vol = render_atom_volume(pos, (64, 64, 64), voxel_size_A=0.5, sigma_A=0.5)
    shift = np.full(len(pos), 0.05)
    amp = np.ones(len(pos))
    shift[7] = 0.9  # moved far when refined
    amp[12] = 0.05  # faded: a false atom
    res = doubt_scores(
        pos, vol, voxel_size_A=0.5, bond_A=2.8, refine_shift_A=shift, refine_amplitude=amp
    )
    top = res.table.iloc[:2]
    assert set(top["index"].astype(int)) == {7, 12}
    assert all("refined against the images" in r for r in top["reasons"])
    atoms = res.table[res.table.kind == "atom"].set_index("index")
    assert atoms.loc[7, "doubt_refine"] == 1.0 and atoms.loc[12, "doubt_refine"] == 0.9
    assert (atoms.drop(index=[7, 12])["doubt_refine"] < 0.1).all()
