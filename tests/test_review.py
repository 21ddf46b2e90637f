import numpy as np
from scipy.spatial import cKDTree

from napari_aet.simulate import render_atom_volume
from napari_aet.trace import review_atoms


def test_injected_errors_rank_at_the_top(sample):
    truth = sample.truth.atoms.positions
    rng = np.random.default_rng(0)
    vol = render_atom_volume(truth, (256, 256, 256), voxel_size_A=0.358, sigma_A=0.5)
    vol = vol / vol.max() + rng.normal(scale=0.05, size=vol.shape).astype(np.float32)
    idx = rng.permutation(len(truth))
    removed, duplicated, displaced = idx[:10], idx[10:20], idx[20:30]
    dirs = rng.normal(size=(20, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    model = truth.copy()
    model[displaced] += 0.9 * dirs[:10]
    keep = np.setdiff1d(np.arange(len(truth)), removed)
    positions = np.vstack([model[keep], truth[duplicated] + 1.0 * dirs[10:]])
    review = review_atoms(positions, vol, voxel_size_A=0.358)
    top = review.top_fraction(0.02)
    atoms = top[top.kind == "atom"]["index"].to_numpy()
    hits = np.isin(np.searchsorted(keep, displaced), atoms).sum()
    hits += (atoms >= len(keep)).sum()  # the duplicates are the appended atoms
    cand = top[top.kind == "missing"][["z", "y", "x"]].to_numpy()
    if len(cand):
        hits += (cKDTree(cand).query(truth[removed])[0] < 0.7).sum()
    assert hits >= 27  # >= 90 % of the 30 injected errors in the first 2 % of the list
    assert top.iloc[0]["reasons"] != ""
    assert (review.table["score"].diff().dropna() <= 1e-12).all()  # sorted by doubt
