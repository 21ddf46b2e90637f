import numpy as np
import pandas as pd
import pytest

from napari_aet.core.atoms import AtomModel
from napari_aet.io import is_atom_model_file, read_atoms, write_atoms


@pytest.fixture
def model():
    rng = np.random.default_rng(1)
    n = 50
    feats = pd.DataFrame(
        {
            "element": ["Pt"] * n,
            "intensity": rng.uniform(1, 2, n),
            "manual": np.r_[np.ones(3, int), np.zeros(n - 3, int)],
            "layer": rng.integers(-5, 5, n),
            "stacking": rng.choice(["fcc", "hcp", "other"], n),
            "facet": rng.choice(["111", "100", ""], n),
        }
    )
    meta = {"n_manual_added": 3, "n_manual_removed": 1, "settings": {"stage": "test"}}
    return AtomModel(rng.uniform(0, 90, (n, 3)), feats, meta)


@pytest.mark.parametrize("suffix", [".csv", ".xyz", ".h5"])
def test_round_trip_keeps_positions_features_and_counts(tmp_path, model, suffix):
    p = write_atoms(tmp_path / f"atoms{suffix}", model)
    assert is_atom_model_file(p)
    back = read_atoms(p)
    np.testing.assert_allclose(back.positions, model.positions, atol=1e-5)
    for c in ["intensity", "manual", "layer"]:
        np.testing.assert_allclose(
            back.features[c].to_numpy(), model.features[c].to_numpy(), rtol=1e-5
        )
    assert list(back.features["stacking"]) == list(model.features["stacking"])
    assert list(back.features["facet"]) == list(model.features["facet"])
    assert list(back.features["element"]) == ["Pt"] * 50
    assert back.metadata["n_manual_added"] == 3
    assert back.metadata["n_manual_removed"] == 1
    assert back.metadata["n_manual"] == 3
    assert back.features["manual"].dtype == np.int8


def test_csv_columns_are_zyx_first(tmp_path, model):
    p = write_atoms(tmp_path / "a.csv", model)
    header = [ln for ln in p.read_text().splitlines() if not ln.startswith("#")][0]
    assert header.split(",")[:3] == ["z", "y", "x"]


def test_xyz_positions_are_written_x_y_z(tmp_path):
    m = AtomModel(np.array([[1.0, 2.0, 3.0]]), pd.DataFrame({"element": ["Au"]}))
    p = write_atoms(tmp_path / "a.xyz", m)
    assert p.read_text().splitlines()[2].split()[:4] == ["Au", "3.000000", "2.000000", "1.000000"]


def test_plain_csv_from_another_tool(tmp_path):
    p = tmp_path / "other.csv"
    p.write_text("z,y,x,intensity\n1,2,3,0.5\n4,5,6,0.7\n")
    m = read_atoms(p)
    assert m.n_atoms == 2 and m.features["intensity"].tolist() == [0.5, 0.7]


def test_bad_atom_files(tmp_path):
    p = tmp_path / "noz.csv"
    p.write_text("y,x\n1,2\n")
    assert not is_atom_model_file(p)
    with pytest.raises(ValueError, match="z, y, x"):
        read_atoms(p)
    h = tmp_path / "series.h5"
    import h5py

    with h5py.File(h, "w") as f:
        f.create_dataset("tilt_series", data=np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="no atom model"):
        read_atoms(h)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        AtomModel(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        AtomModel(np.array([[np.nan, 0, 0]]))
    with pytest.raises(ValueError, match="one row per atom"):
        AtomModel(np.zeros((3, 3)), pd.DataFrame({"intensity": [1.0]}))
