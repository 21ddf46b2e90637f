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
