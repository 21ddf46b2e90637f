import numpy as np
import pytest

from napari_aet.analysis import compare_atom_models
from napari_aet.cli import main
from napari_aet.core.atoms import AtomModel
from napari_aet.io import read_atoms, write_volume
from napari_aet.simulate import build_structure, render_atom_volume
from napari_aet.trace import EditableAtomModel, fit_peaks, trace_atoms

PX = 0.358


@pytest.fixture(scope="module")
def known_tomogram():
    m = build_structure("fcc", radius_A=12, shape_px=(96, 96), pixel_size_A=PX, seed=0)
    vol = render_atom_volume(m.positions, (96, 96, 96), voxel_size_A=PX, sigma_A=0.5)
    rng = np.random.default_rng(0)
    vol = vol / vol.max() + rng.normal(scale=0.05, size=vol.shape).astype(np.float32)
    return m, vol


def test_fit_peaks_recovers_subvoxel_centre():
    zz, yy, xx = np.mgrid[0:15, 0:15, 0:15]
    c = np.array([7.3, 6.8, 7.15])
    vol = 5.0 * np.exp(-((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) / (2 * 1.4**2))
    pos, h, res = fit_peaks(vol, np.array([[7, 7, 7]]))
    np.testing.assert_allclose(pos[0], c, atol=1e-6)
    assert h[0] == pytest.approx(5.0, rel=1e-6)
    assert res[0] < 1e-9


def test_tracer_finds_the_known_atoms(known_tomogram):
    m, vol = known_tomogram
    res = trace_atoms(vol, voxel_size_A=PX)
    c = compare_atom_models(m.positions, res.atoms.positions, radius_A=1.0)
    assert c.found_fraction == 1.0
    assert c.false_fraction == 0.0
    assert c.rmsd_A < 0.05
    assert set(res.atoms.features.columns) == {
        "intensity",
        "peak_height",
        "fit_residual",
        "manual",
        "element",
    }
    assert set(res.atoms.features["element"]) == {"Pt"}
    assert (res.atoms.features["manual"] == 0).all()
    assert res.candidates["is_atom"].sum() == res.atoms.n_atoms


@pytest.fixture(scope="module")
def alloy_tomograms():
    """A Pd-Pt particle, a tomogram in which Pd atoms are 0.4 times as bright as Pt (ADF
    contrast, as GENFIRE gives it) and one in which every atom is alike (as the U-Net gives
    it)."""
    m = build_structure("fcc", element="Pd,Pt", radius_A=10, shape_px=(80, 80),
                        pixel_size_A=PX, seed=3)  # fmt: skip
    pt = m.features["element"].to_numpy() == "Pt"
    assert 0.3 < pt.mean() < 0.7  # both elements are there
    rng = np.random.default_rng(1)
    shape = (80, 80, 80)
    raw = sum(
        w * render_atom_volume(m.positions[sel], shape, voxel_size_A=PX, sigma_A=0.5)
        for w, sel in ((1.0, pt), (0.4, ~pt))
    )
    raw = raw / raw.max() + rng.normal(scale=0.03, size=shape).astype(np.float32)
    alike = render_atom_volume(m.positions, shape, voxel_size_A=PX, sigma_A=0.5)
    alike = alike / alike.max() + rng.normal(scale=0.02, size=shape).astype(np.float32)
    return m, raw, alike


def _right_elements(truth: AtomModel, traced: AtomModel) -> float:
    c = compare_atom_models(truth.positions, traced.positions, radius_A=1.0)
    assert c.found_fraction == 1.0 and c.false_fraction == 0.0
    got = traced.features["element"].to_numpy()[c.pairs[:, 1]]
    return float(np.mean(got == truth.features["element"].to_numpy()[c.pairs[:, 0]]))


def test_an_alloys_elements_come_from_the_tomogram_that_keeps_their_contrast(alloy_tomograms):
    """Traced in the tomogram where atoms are alike with the other as ``species_volume``,
    every atom is found and gets its element; without it every atom is called Pt."""
    m, raw, alike = alloy_tomograms
    res = trace_atoms(alike, voxel_size_A=PX, element="Pd,Pt", species_volume=raw)
    assert _right_elements(m, res.atoms) > 0.98
    assert res.settings["species_from"] == "species_volume"
    plain = trace_atoms(alike, voxel_size_A=PX, element="Pd,Pt")
    assert _right_elements(m, plain.atoms) < 0.75
    with pytest.raises(ValueError, match="same grid"):
        trace_atoms(alike, voxel_size_A=PX, element="Pd,Pt", species_volume=raw[1:])


def _surface_ghosts(m: AtomModel, n: int, seed: int) -> np.ndarray:
    """``n`` points a bond outside the particle's outermost atoms, apart from each other:
    where a reconstruction's surface halo leaves half-formed peaks."""
    rng = np.random.default_rng(seed)
    centre = m.positions.mean(axis=0)
    r = np.linalg.norm(m.positions - centre, axis=1)
    out = []
    for i in rng.permutation(np.argsort(-r)[: 6 * n]):
        p = centre + (m.positions[i] - centre) * (r[i] + 2.4) / r[i]
        if all(np.linalg.norm(p - q) > 6.0 for q in out):
            out.append(p)
        if len(out) == n:
            break
    return np.array(out)


def test_half_formed_peaks_outside_an_alloy_are_not_its_faint_element(alloy_tomograms):
    """Twelve peaks a third as bright as the atoms, a bond outside the surface, in the
    tomogram where atoms are alike: the classes of noise, Pd and Pt would make them Pd atoms
    (the classes' threshold falls below them); the species' tomogram shows that Pd atoms are
    as bright as Pt ones there, so the peaks between noise and the one class of atoms are
    doubtful, and the ghosts, with fewer than six atoms around them, are left out. Traced in
    the tomogram that keeps the contrast the classes stand, and the faint Pd atoms all stay."""
    m, raw, alike = alloy_tomograms
    ghosts = _surface_ghosts(m, 12, seed=4)
    assert len(ghosts) == 12
    halo = render_atom_volume(ghosts, alike.shape, voxel_size_A=PX, sigma_A=0.5)
    top = render_atom_volume(m.positions, alike.shape, voxel_size_A=PX, sigma_A=0.5).max()
    vol = alike + 0.33 * halo / top
    res = trace_atoms(vol, voxel_size_A=PX, element="Pd,Pt", species_volume=raw)
    flat = res.settings["species_flat"]
    assert flat["applied"] and flat["ratio"] > 0.9 and flat["n_left_out"] >= 12
    c = compare_atom_models(m.positions, res.atoms.positions, radius_A=1.0)
    assert c.found_fraction == 1.0 and c.n_test == m.n_atoms  # no ghost traced
    classes = (res.candidates["intensity"] >= res.threshold).sum()
    assert classes >= m.n_atoms + 12  # (what the classes alone would have traced)
    assert _right_elements(m, res.atoms) > 0.98
    # the ghosts stay candidates, and the histogram shows them as a class of their own
    from scipy.spatial import cKDTree

    from napari_aet.figures import plot_trace_histogram

    out = res.candidates["doubtful_left_out"].to_numpy(bool)
    assert out.sum() == flat["n_left_out"] and not res.candidates["is_atom"][out].any()
    left = res.candidates.loc[out, ["z", "y", "x"]].to_numpy()
    assert cKDTree(left).query(ghosts)[0].max() < 0.2
    fig = plot_trace_histogram(res.candidates["intensity"], res.threshold, left_out=out)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"off the lattice ({out.sum()})" in labels
    # the tomogram that keeps the species' contrast: its classes stand
    kept = trace_atoms(raw, voxel_size_A=PX, element="Pd,Pt", species_volume=raw)
    assert not kept.settings["species_flat"]["applied"]
    assert kept.settings["species_flat"]["ratio"] < 0.6
    assert _right_elements(m, kept.atoms) > 0.98


def test_faint_atoms_of_a_flat_alloy_tomogram_held_by_the_lattice_hold_each_other(
    alloy_tomograms,
):
    """Two neighbouring surface atoms at 0.45 of the others' intensity in the tomogram where
    atoms are alike: both are doubtful. One has 7 neighbours, so 6 bright ones hold it; the
    other has 6, one of them the first: 5 bright ones alone would leave it out, the first
    once held completes it. Both are traced, nothing else is."""
    from scipy.spatial import cKDTree

    m, raw, _ = alloy_tomograms
    tree = cKDTree(m.positions)
    d_nn = np.median(tree.query(m.positions, k=2)[0][:, 1])
    near = tree.query_ball_point(m.positions, 1.2 * d_nn)
    n = np.array([len(x) - 1 for x in near])
    a, b = next((a, b) for a in np.nonzero(n == 7)[0] for b in near[a] if n[b] == 6)
    dim = np.zeros(m.n_atoms, bool)
    dim[[a, b]] = True
    shape = raw.shape
    top = render_atom_volume(m.positions, shape, voxel_size_A=PX, sigma_A=0.5).max()
    vol = render_atom_volume(
        m.positions[~dim], shape, voxel_size_A=PX, sigma_A=0.5
    ) + 0.45 * render_atom_volume(m.positions[dim], shape, voxel_size_A=PX, sigma_A=0.5)
    vol = vol / top + np.random.default_rng(2).normal(scale=0.02, size=shape).astype(np.float32)
    res = trace_atoms(vol, voxel_size_A=PX, element="Pd,Pt", species_volume=raw)
    flat = res.settings["species_flat"]
    assert flat["applied"] and flat["n_doubtful"] == 2 and flat["n_left_out"] == 0
    c = compare_atom_models(m.positions, res.atoms.positions, radius_A=1.0)
    assert c.n_common == c.n_test == m.n_atoms


def test_atoms_the_unet_erased_join_the_candidates_the_refine_stage_tries(alloy_tomograms):
    """Five Pd atoms left out of the tomogram where atoms are alike (a U-Net trained on one
    element erases atoms much fainter than its training's) but present in the GENFIRE-like
    one: they are not traced, but they are candidates, and trials for the refine stage
    whatever their intensity in the traced tomogram."""
    from scipy.spatial import cKDTree

    from napari_aet.trace._trials import _trial_candidates

    m, raw, _ = alloy_tomograms
    pd_idx = np.nonzero(m.features["element"].to_numpy() == "Pd")[0]
    centre = m.positions.mean(axis=0)
    erased = pd_idx[np.argsort(np.linalg.norm(m.positions[pd_idx] - centre, axis=1))[:5]]
    rest = np.setdiff1d(np.arange(m.n_atoms), erased)
    rng = np.random.default_rng(2)
    alike = render_atom_volume(m.positions[rest], raw.shape, voxel_size_A=PX, sigma_A=0.5)
    alike = alike / alike.max() + rng.normal(scale=0.02, size=raw.shape).astype(np.float32)
    res = trace_atoms(alike, voxel_size_A=PX, element="Pd,Pt", species_volume=raw)
    c = compare_atom_models(m.positions[rest], res.atoms.positions, radius_A=1.0)
    assert c.found_fraction == 1.0 and c.false_fraction == 0.0
    extra = res.candidates[res.candidates["species_volume_atom"]]
    assert res.settings["n_species_volume_candidates"] == len(extra) == 5
    d, _ = cKDTree(m.positions[erased]).query(extra[["z", "y", "x"]].to_numpy())
    assert d.max() < 0.3
    assert not extra["is_atom"].any()
    trials, _ = _trial_candidates(res.atoms, res.candidates)
    d, _ = cKDTree(trials).query(m.positions[erased])
    assert d.max() < 0.3  # every erased atom is tried
    # a threshold given in the traced tomogram's units is not applied to the other one's
    given = trace_atoms(alike, voxel_size_A=PX, element="Pd,Pt", species_volume=50 * raw,
                        threshold=0.5 * res.threshold)  # fmt: skip
    assert given.settings["n_species_volume_candidates"] == 5
    # the histogram draws them as a class of their own
    from napari_aet.figures import plot_trace_histogram

    fig = plot_trace_histogram(res.candidates["intensity"], res.threshold,
                               other_tomogram=res.candidates["species_volume_atom"])  # fmt: skip
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(lab.startswith("only in the elements' tomogram (5,") for lab in labels), labels
    plain = trace_atoms(alike, voxel_size_A=PX, element="Pd,Pt")
    assert "species_volume_atom" not in plain.candidates
    assert plain.settings["n_species_volume_candidates"] == 0


def test_trace_stage_takes_an_alloys_elements_from_another_tomogram(alloy_tomograms, tmp_path):
    """The workflow's trace stage (what `napari-aet run` calls after the U-Net) and
    `napari-aet trace --species-from` read the species' tomogram; the stage records it and
    ignores it for one element."""
    from napari_aet.workflows import TraceSettings, VolumeSource, run_trace

    m, raw, alike = alloy_tomograms
    write_volume(tmp_path / "raw.h5", raw, voxel_size_A=PX)
    write_volume(tmp_path / "alike.h5", alike, voxel_size_A=PX)
    src, other = VolumeSource(str(tmp_path / "alike.h5")), VolumeSource(str(tmp_path / "raw.h5"))
    res = run_trace(src, TraceSettings(element="Pd,Pt"), tmp_path / "a", species_from=other)
    assert _right_elements(m, read_atoms(tmp_path / "a" / "atoms.csv")) > 0.98
    assert res.record["species_tomogram"] == other.path
    res = run_trace(src, TraceSettings(element="Pt"), tmp_path / "b", species_from=other)
    assert "species_tomogram" not in res.record
    out = tmp_path / "cli"
    argv = ["-q", "trace", src.path, "--out", str(out), "--element", "Pd,Pt"]
    assert main([*argv, "--species-from", other.path]) == 0
    assert _right_elements(m, read_atoms(out / "atoms.csv")) > 0.98


def test_fit_accept_subtract_recovers_a_faint_close_neighbour():
    # a bright atom and a faint one 2.5 A away, both blurred (0.9 A): the faint one is only a
    # shoulder of the bright one, but a maximum of the residual after it is subtracted
    pos = np.array([[10.0, 10.0, 10.0], [10.0, 10.0, 12.5]])
    vol = render_atom_volume(pos, (56, 56, 56), voxel_size_A=PX, sigma_A=0.9, weights=[1.0, 0.5])
    one = trace_atoms(vol, voxel_size_A=PX, smooth_sigma_A=0, max_rounds=1, threshold=0)
    three = trace_atoms(vol, voxel_size_A=PX, smooth_sigma_A=0, max_rounds=3, threshold=0)
    assert one.atoms.n_atoms == 1
    assert three.atoms.n_atoms == 2
    c = compare_atom_models(pos, three.atoms.positions, radius_A=0.5)
    assert c.n_common == 2


def test_faint_maxima_that_outnumber_the_atoms_are_not_atoms():
    """A small particle (54 atoms) in a large, clean field whose vacuum holds ten times as
    many faint maxima (a thousandth of an atom's height, as the U-Net leaves them): the
    brighter half of the candidates is then noise, and the atoms are the bright class of the
    log-intensities. Every atom is found and no maximum is taken for one (the brighter-half
    rule alone took 538)."""
    m = build_structure("fcc", radius_A=6, shape_px=(96, 96), pixel_size_A=PX, seed=0)
    vol = render_atom_volume(m.positions, (96, 96, 96), voxel_size_A=PX, sigma_A=0.45)
    vol = vol / vol.max()
    rng = np.random.default_rng(1)
    bumps = rng.uniform(3, 93, (600, 3)) * PX
    far = np.min(np.linalg.norm(bumps[:, None] - m.positions[None], axis=2), axis=1) > 3
    faint = render_atom_volume(bumps[far], (96, 96, 96), voxel_size_A=PX, sigma_A=0.45)
    vol = (vol + 1e-3 * faint / faint.max()).astype(np.float32)
    assert far.sum() > 10 * len(m.positions)
    res = trace_atoms(vol, voxel_size_A=PX)
    c = compare_atom_models(m.positions, res.atoms.positions, radius_A=1.0)
    assert c.found_fraction == 1.0 and res.atoms.n_atoms == len(m.positions)
    assert res.settings["n_candidates"] > 10 * len(m.positions)
    from napari_aet.figures import plot_trace_histogram

    fig = plot_trace_histogram(res.candidates["intensity"], res.threshold)
    assert fig.axes[0].get_yscale() == "log"  # the 54 atoms stay visible beside the flood
    fig = plot_trace_histogram(res.candidates["intensity"][res.candidates["is_atom"]], 0.0)
    assert fig.axes[0].get_yscale() == "linear"


def test_threshold_modes_and_bad_input(known_tomogram):
    m, vol = known_tomogram
    none = trace_atoms(vol, voxel_size_A=PX, threshold=1e9)
    assert none.atoms.n_atoms == 0 and len(none.candidates) > 0
    otsu = trace_atoms(vol, voxel_size_A=PX, threshold="otsu")
    assert otsu.settings["threshold_mode"] == "otsu"
    with pytest.raises(ValueError, match="3D"):
        trace_atoms(vol[0], voxel_size_A=PX)
    with pytest.raises(ValueError, match="positive"):
        trace_atoms(vol, voxel_size_A=0)


def test_editable_model_edits_log_undo_redo_and_autosave(tmp_path):
    base = AtomModel(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    path = tmp_path / "atoms.autosave.h5"
    ed = EditableAtomModel(base, path)
    i = ed.add([7.0, 8.0, 9.0])
    assert i == 2 and ed.n_atoms == 3 and ed.model.features["manual"].tolist() == [0, 0, 1]
    ed.remove(0)
    ed.move(0, [4.5, 5.0, 6.0])
    assert ed.n_manual_added == 1 and ed.n_manual_removed == 1
    assert [e["action"] for e in ed.edit_log] == ["add", "remove", "move"]
    assert all("time" in e for e in ed.edit_log)
    # autosave after every edit: reopening gives the same model, counts and log
    back = EditableAtomModel.restore(path)
    np.testing.assert_allclose(back.positions, ed.positions)
    assert back.n_manual_added == 1 and back.n_manual_removed == 1
    assert [e["action"] for e in back.edit_log] == ["add", "remove", "move"]
    # undo the move and the removal, then redo the removal
    assert ed.undo() and ed.undo()
    np.testing.assert_allclose(ed.positions, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert ed.n_manual_removed == 0
    assert ed.redo()
    np.testing.assert_allclose(ed.positions, [[4, 5, 6], [7, 8, 9]])
    assert ed.n_manual_removed == 1
    assert ed.edit_log[-1]["action"] == "redo" and ed.edit_log[-2]["action"].startswith("undo")
    assert not EditableAtomModel(AtomModel(np.zeros((0, 3)))).undo()
    # counts reach every file written from the model
    from napari_aet.io import write_atoms

    p = write_atoms(tmp_path / "out.csv", ed.to_atom_model())
    meta = read_atoms(p).metadata
    assert meta["n_manual_added"] == 1 and meta["n_manual_removed"] == 1
    with pytest.raises(IndexError):
        ed.remove(10)


def test_compare_models_counts():
    ref = np.array([[0, 0, 0], [3, 0, 0], [6, 0, 0.0]])
    test = np.array([[0.1, 0, 0], [3, 0.2, 0], [20, 0, 0.0]])
    c = compare_atom_models(ref, test, radius_A=1.0)
    assert c.n_common == 2
    assert c.found_fraction == pytest.approx(2 / 3)
    assert c.false_fraction == pytest.approx(1 / 3)
    assert c.identification_error == pytest.approx(2 / 3)
    assert c.rmsd_A == pytest.approx(np.sqrt((0.01 + 0.04) / 2))


def test_cli_trace(known_tomogram, tmp_path):
    m, vol = known_tomogram
    tomo = write_volume(tmp_path / "tomo.h5", vol, voxel_size_A=PX)
    out = tmp_path / "tr"
    assert main(["-q", "trace", str(tomo), "--out", str(out)]) == 0
    atoms = read_atoms(out / "atoms.csv")
    assert atoms.n_atoms == m.n_atoms
    assert atoms.metadata["provenance"]["command"] == "trace"
    assert read_atoms(out / "atoms.h5").n_atoms == m.n_atoms
    assert (out / "figures" / "trace_histogram.png").stat().st_size > 5000


def test_editable_model_takes_outside_edits_and_keeps_analysis_columns_stale(tmp_path):
    import pandas as pd

    from napari_aet.core.atoms import AtomModel
    from napari_aet.trace import EditableAtomModel

    pos = np.array([[0.0, 0, 0], [0, 0, 3], [0, 3, 0], [3, 0, 0]])
    m = EditableAtomModel(AtomModel(pos), tmp_path / "a.h5")
    m.set_analysis(pd.DataFrame({"q6": [0.5, 0.4, 0.3, 0.2]}), source="structure")
    assert not m.analysis_stale
    with pytest.raises(ValueError, match="3 rows for 4 atoms"):
        m.set_analysis(pd.DataFrame({"q6": [0.5, 0.4, 0.3]}), source="structure")
    # napari's tools moved nothing, deleted atom 1 and added one: taken in as manual edits
    layer_data = np.vstack([pos[[0, 2, 3]], [[5.0, 5, 5]]])
    assert m.adopt_positions(layer_data) == (1, 1)
    assert m.adopt_positions(layer_data) == (0, 0)
    assert m.n_manual_added == 1 and m.n_manual_removed == 1 and m.analysis_stale
    q6 = m.model.features["q6"].to_numpy()
    np.testing.assert_allclose(q6[:3], [0.5, 0.3, 0.2])
    assert np.isnan(q6[3])  # the new atom has no value yet
    assert m.undo() and m.undo() and m.n_atoms == 4  # each outside edit undoes on its own
