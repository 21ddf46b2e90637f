"""U-Net augmentation: training data, model, training, tiled inference, shipped weights, CLI."""

import json
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from napari_aet.augment import (
    TrainingDataSettings,
    UNet3D,
    atom_peak_scale,
    augment_volume,
    gaussian_target,
    generate_training_set,
    load_weights,
    make_training_pair,
    predict_tiled,
    save_weights,
    shipped_weights,
    train_unet,
    validation_loss,
)
from napari_aet.cli import main

TINY = TrainingDataSettings(box_px=48, radius_min_A=3.0, radius_max_A=4.5, iterations=15)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-set")
    shards = generate_training_set(
        out, n_samples=6, settings=TINY, samples_per_shard=2, n_workers=0
    )
    return out, shards


def test_gaussian_target_peaks_at_one_on_each_atom():
    pos = np.array([[10.0, 10.0, 10.0], [10.0, 10.0, 16.0]]) * 0.358
    y = gaussian_target(pos, (24, 24, 24), voxel_size_A=0.358, sigma_A=0.45)
    assert y[10, 10, 10] == pytest.approx(1.0, abs=0.02)
    assert y[10, 10, 16] == pytest.approx(1.0, abs=0.02)
    assert y[10, 10, 13] < 0.2


def test_atom_peak_scale_ignores_fill_fraction_and_gain():
    pos = np.stack(np.meshgrid(*[np.arange(8, 40, 6)] * 3, indexing="ij"), -1).reshape(-1, 3)
    big = gaussian_target(pos * 0.358, (48, 48, 48), voxel_size_A=0.358)
    few = gaussian_target(pos[:20] * 0.358, (48, 48, 48), voxel_size_A=0.358)
    for vol in (big, few):
        off, scale = atom_peak_scale(7.0 * vol + 3.0, voxel_size_A=0.358)
        assert off == pytest.approx(3.0, abs=0.05)
        assert scale == pytest.approx(7.0, rel=0.05)
    with pytest.raises(ValueError, match="no peaks"):
        atom_peak_scale(np.zeros((16, 16, 16)), voxel_size_A=0.358)


def test_training_pair_is_aligned_with_its_target():
    x, y, info = make_training_pair(TINY, 3)
    assert x.shape == y.shape == (48, 48, 48)
    assert info["n_atoms"] > 5
    # the tomogram correlates with the target best without a shift
    ncc = [np.corrcoef(x.ravel(), np.roll(y, s, axis=2).ravel())[0, 1] for s in (-2, 0, 2)]
    assert ncc[1] > max(ncc[0], ncc[2]) + 0.1


def test_training_pair_from_the_independent_model_at_realistic_counts():
    """abTEM's potentials and probe, 30 counts at the brightest column, a background that is
    subtracted, the align stage's low-pass and a random orientation: the tomogram still sits
    on its target (a frame or orientation mix-up between the images and the target would
    move the best correlation off zero), and the draws are recorded."""
    s = TrainingDataSettings(
        box_px=48, radius_min_A=4.0, radius_max_A=4.5, iterations=15,
        forward_models=("independent",), peak_counts=(30.0, 30.0), background_max_counts=2.0,
        lowpass_diameter_inv_A=2.08, random_orientation=True,
    )  # fmt: skip
    x, y, info = make_training_pair(s, 3)
    assert info["forward_model"] == "independent"
    assert info["peak_counts"] == pytest.approx(30.0) and 0 <= info["background_counts"] <= 2
    assert len(info["orientation_quat"]) == 4 and abs(info["defocus_A"]) <= 20
    for ax in range(3):
        ncc = [np.corrcoef(x.ravel(), np.roll(y, d, axis=ax).ravel())[0, 1] for d in (-2, 0, 2)]
        assert ncc[1] > max(ncc[0], ncc[2]) + 0.05, ax
    # the orientation is drawn: the same particle unturned has a different target
    flat = TrainingDataSettings(**{**s.__dict__, "random_orientation": False})
    assert not np.allclose(make_training_pair(flat, 3, return_atoms=True)[3],
                           make_training_pair(s, 3, return_atoms=True)[3])  # fmt: skip


@pytest.mark.parametrize("structure", ["fcc", "amorphous"])
def test_training_pair_of_an_alloy_from_either_forward_model(structure):
    """`napari-aet train --element Pt,Ni`: each atom is imaged as its own element by both
    forward models (the element string as one symbol had stopped the data generation), and
    the tomogram sits on its target."""
    for model in ("project", "independent"):
        s = TrainingDataSettings(
            element="Pt,Ni", structure=structure, box_px=48, radius_min_A=4.0,
            radius_max_A=4.5, iterations=15, forward_models=(model,), peak_counts=(40.0, 40.0),
        )  # fmt: skip
        x, y, info = make_training_pair(s, 2)
        assert info["forward_model"] == model and info["n_atoms"] > 10
        ncc = [np.corrcoef(x.ravel(), np.roll(y, d, axis=2).ravel())[0, 1] for d in (-2, 0, 2)]
        assert ncc[1] > max(ncc[0], ncc[2]) + 0.05, model


def test_training_pair_denoised_by_the_dose_rule_only_at_low_counts():
    """``denoise="dose"`` repeats the align stage's rule on each sample's counts: at 5 counts
    at the brightest column the images are denoised (and the tomogram sits closer to its
    target than without), at twice the rule's bar they are left as drawn (the same tomogram)."""
    from napari_aet.core.denoise import LOW_COUNTS

    base = dict(
        box_px=48, radius_min_A=4.0, radius_max_A=4.5, iterations=15, peak_counts=(5.0, 5.0),
    )  # fmt: skip
    x0, y, info0 = make_training_pair(TrainingDataSettings(**base), 2)
    x1, y1, info1 = make_training_pair(TrainingDataSettings(**base, denoise="dose"), 2)
    assert "denoised" not in info0 and info1["denoised"] in ("bm3d", "nlmeans")
    np.testing.assert_array_equal(y, y1)  # the same particle
    ncc = [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x in (x0, x1)]
    assert ncc[1] > ncc[0] + 0.02, ncc
    high = {**base, "peak_counts": (2 * LOW_COUNTS, 2 * LOW_COUNTS)}
    xh0, _, _ = make_training_pair(TrainingDataSettings(**high), 2)
    xh1, _, infoh = make_training_pair(TrainingDataSettings(**high, denoise="dose"), 2)
    assert infoh["denoised"] == "none"
    np.testing.assert_array_equal(xh0, xh1)


def test_new_training_options_keep_old_sets_and_refuse_bad_ones():
    # the study's generator is unchanged: its manifests name none of the new settings
    assert "forward_models" not in TINY.to_json() and "peak_counts" not in TINY.to_json()
    assert TrainingDataSettings(peak_counts=(20, 80)).to_json()["peak_counts"] == [20.0, 80.0]
    with pytest.raises(ValueError, match="needs peak_counts"):
        TrainingDataSettings(forward_models=("independent",)).validate()
    with pytest.raises(ValueError, match="unknown forward model"):
        TrainingDataSettings(forward_models=("multislice",)).validate()
    with pytest.raises(ValueError, match="peak_counts must be"):
        TrainingDataSettings(peak_counts=(50, 20)).validate()
    assert "denoise" not in TrainingDataSettings(peak_counts=(20, 80)).to_json()
    with pytest.raises(ValueError, match="needs peak_counts"):
        TrainingDataSettings(denoise="dose").validate()
    with pytest.raises(ValueError, match="unknown denoise"):
        TrainingDataSettings(peak_counts=(20, 80), denoise="bm3d").validate()


def test_training_pair_of_a_faulted_particle():
    """``structure="faulted"``: an fcc particle with twins and faults drawn per sample; the
    sample records its stacking, its target holds every atom, and the setting stays out of
    older sets' manifests at its default."""
    s = replace(TINY, structure="faulted", reversal_rate_max=0.5)
    x, y, info, atoms = make_training_pair(s, 4, return_atoms=True)
    assert x.shape == y.shape == (48, 48, 48)
    seq = info["stacking"]
    assert set(seq) <= set("ABC") and 0 <= info["reversal_rate"] <= 0.5
    assert info["n_atoms"] == len(atoms) > 20
    # every atom sits on a target peak
    idx = np.round(atoms / TINY.pixel_size_A).astype(int)
    inside = ((idx >= 0) & (idx < 48)).all(axis=1)
    assert inside.all() and y[tuple(idx.T)].min() > 0.5
    assert "reversal_rate_max" not in TINY.to_json()
    assert s.to_json()["reversal_rate_max"] == 0.5
    with pytest.raises(ValueError, match="chance per layer"):
        replace(s, reversal_rate_max=2.0).validate()


def test_training_pair_of_a_metallic_glass():
    """``structure="glass"``: the amorphous packing quenched, its first shell at the bond
    (none of the random packing's pairs at 0.72 bonds); its target holds every atom."""
    from scipy.spatial import cKDTree

    s = replace(TINY, structure="glass", radius_min_A=6.0, radius_max_A=6.5, box_px=64)
    x, y, info, atoms = make_training_pair(s, 3, return_atoms=True)
    assert x.shape == y.shape == (64, 64, 64)
    bond = s.lattice_constant_A / np.sqrt(2.0)
    nn = cKDTree(atoms).query(atoms, k=2)[0][:, 1]
    assert nn.min() > 0.85 * bond and abs(np.median(nn) - bond) < 0.06 * bond
    idx = np.round(atoms / s.pixel_size_A).astype(int)
    assert y[tuple(idx.T)].min() > 0.5
    random = make_training_pair(replace(s, structure="amorphous"), 3, return_atoms=True)[3]
    assert np.median(cKDTree(random).query(random, k=2)[0][:, 1]) < 0.85 * bond


def test_settings_refuse_a_particle_larger_than_the_box():
    with pytest.raises(ValueError, match="do not fit"):
        TrainingDataSettings(box_px=48, radius_max_A=9.0).validate()
    with pytest.raises(ValueError, match="unknown training structure bcx"):
        TrainingDataSettings(structure="fcc,bcx").validate()
    with pytest.raises(ValueError, match="fraction of the bond"):
        TrainingDataSettings(bond_scale_max=0.7).validate()


@pytest.mark.parametrize("kind", ["hcp", "bcc", "decahedron", "icosahedron"])
def test_training_pair_of_another_packing_at_the_sets_bond(kind):
    """``structure="hcp"`` (``"bcc"``, ...): the packing asked for, its nearest neighbours at
    the fcc lattice constant's bond (a / sqrt 2) as every training structure, so that the run's
    resampling to the training bond holds for them too; every atom sits on a target peak.
    The central atom's shells tell the packing: bcc 8 neighbours at the bond and 6 at 1.155
    bonds; hcp 12, and the two along c at 1.633 bonds that fcc has not (nothing between 1.42
    and 1.73); the multiply twinned ones 12."""
    from scipy.spatial import cKDTree

    s = replace(TINY, structure=kind, radius_min_A=5.0, radius_max_A=5.0)
    x, y, info, atoms = make_training_pair(s, 2, return_atoms=True)
    bond = s.lattice_constant_A / np.sqrt(2.0)
    nn = cKDTree(atoms).query(atoms, k=2)[0][:, 1]
    assert abs(np.median(nn) - bond) < 0.03 * bond, (kind, np.median(nn))
    idx = np.round(atoms / s.pixel_size_A).astype(int)
    assert y[tuple(idx.T)].min() > 0.5
    centre = atoms[np.argmin(np.linalg.norm(atoms - atoms.mean(0), axis=1))]
    d = np.linalg.norm(atoms - centre, axis=1) / bond
    first, second = int(np.sum((d > 0.5) & (d < 1.08))), int(np.sum((d >= 1.08) & (d < 1.2)))
    if kind == "bcc":
        assert (first, second) == (8, 6)
    else:
        assert (first, second) == (12, 0), kind
    if kind == "hcp":
        assert np.sum((d > 1.55) & (d < 1.70)) == 2
        # an hcp particle is never faceted: a convex draw is made, and recorded, as a blob
        info = make_training_pair(replace(s, shapes=("convex",)), 2)[2]
        assert info["shape"] == "blob"
    fcc = make_training_pair(replace(s, structure="fcc"), 2, return_atoms=True)[3]
    centre = fcc[np.argmin(np.linalg.norm(fcc - fcc.mean(0), axis=1))]
    d = np.linalg.norm(fcc - centre, axis=1) / bond
    assert np.sum((d > 1.55) & (d < 1.70)) == 0


def test_a_mixed_training_set_draws_each_structure_and_bond():
    """``structure="fcc,fcc,hcp"``: each sample draws its structure, a name given twice twice
    as often, from a stream of its own (one structure's samples stay what they were); with
    ``bond_scale_max`` each sample's lattice is scaled within 1 +- it, and the atoms follow."""
    from scipy.spatial import cKDTree

    from napari_aet.augment import structure_names
    from napari_aet.augment._data import draw_structure

    names = structure_names(" fcc, fcc,hcp ")
    assert names == ["fcc", "fcc", "hcp"]
    drawn = [draw_structure(names, seed) for seed in range(3000)]
    assert drawn.count("fcc") / len(drawn) == pytest.approx(2 / 3, abs=0.03)
    assert draw_structure(["bcc"], 7) == "bcc"
    s = replace(TINY, structure="fcc,bcc", bond_scale_max=0.1, radius_min_A=5.0, radius_max_A=5.0)
    assert s.to_json()["bond_scale_max"] == 0.1 and "bond_scale_max" not in TINY.to_json()
    seen = set()
    for seed in range(6):
        _, _, info, atoms = make_training_pair(s, seed, return_atoms=True)
        seen.add(info["structure"])
        assert 0.9 <= info["bond_scale"] <= 1.1
        nn = np.median(cKDTree(atoms).query(atoms, k=2)[0][:, 1])
        bond = info["bond_scale"] * s.lattice_constant_A / np.sqrt(2.0)
        assert abs(nn - bond) < 0.02 * bond, (seed, nn, bond)
    assert seen == {"fcc", "bcc"}


def test_generation_writes_shards_and_resumes(tiny_set, tmp_path):
    out, shards = tiny_set
    assert len(shards) == 3 and all(p.exists() for p in shards)
    with h5py.File(shards[0]) as h5:
        assert h5["input"].shape == (2, 48, 48, 48)
        assert h5["target"].shape == (2, 48, 48, 48)
        assert len(json.loads(h5.attrs["samples"])) == 2
    # a rerun finds every shard done and makes nothing new
    stamp = [p.stat().st_mtime_ns for p in shards]
    generate_training_set(out, n_samples=6, settings=TINY, samples_per_shard=2, n_workers=0)
    assert [p.stat().st_mtime_ns for p in shards] == stamp
    with pytest.raises(ValueError, match="other settings"):
        generate_training_set(
            out,
            n_samples=6,
            settings=TrainingDataSettings(box_px=48, radius_min_A=3.0, radius_max_A=4.0),
            samples_per_shard=2,
            n_workers=0,
        )


@pytest.mark.slow
def test_generation_on_a_dask_local_cluster(tmp_path):
    settings = TrainingDataSettings(box_px=48, radius_min_A=3.0, radius_max_A=4.0, iterations=5)
    shards = generate_training_set(
        tmp_path, n_samples=2, settings=settings, samples_per_shard=1, n_workers=1
    )
    assert [p.name for p in shards] == ["shard-00000.h5", "shard-00001.h5"]
    with h5py.File(shards[1]) as h5:
        assert json.loads(h5.attrs["samples"])[0]["seed"] == 1


@pytest.mark.parametrize("shape", [(32, 32, 32), (37, 40, 29)])
def test_unet_keeps_the_shape_of_any_volume(shape):
    torch.manual_seed(0)
    model = UNet3D(depth=2, width=4).eval()
    out = predict_tiled(model, np.random.default_rng(0).random(shape, np.float32), tile_px=32)
    assert out.shape == shape
    assert np.all(out >= 0)  # ReLU output


def test_blended_tiles_match_a_whole_volume_pass(tiny_training):
    model, _ = load_weights(tiny_training[0] / "weights.pt")
    x = np.concatenate([make_training_pair(TINY, s)[0] for s in (5, 6)], axis=2)  # 48x48x96
    whole = predict_tiled(model, x, tile_px=96)
    tiled = predict_tiled(model, x, tile_px=32, overlap_px=16)
    assert whole.max() > 0.1 and whole.std() > 0.01  # a trained response, not a constant
    assert np.abs(tiled - whole).max() < 0.05 * whole.max()
    assert np.sqrt(np.mean((tiled - whole) ** 2)) < 0.01 * whole.max()
    # and the tiling really split the volume (otherwise the test proves nothing)
    calls = []
    predict_tiled(model, x, tile_px=32, overlap_px=16, progress=lambda d, t, m: calls.append(t))
    assert calls[-1] == 2 * 2 * 5


KW = dict(crop_px=32, depth=2, width=4, learning_rate=2e-3, steps_per_epoch=10, batch_size=2)


@pytest.fixture(scope="module")
def tiny_training(tiny_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-train")
    return out, train_unet(tiny_set[0], out, epochs=3, device="cpu", **KW)


def test_tiny_training_lowers_the_loss_and_resumes(tiny_set, tiny_training):
    out, res = tiny_training
    h = res.history
    assert h["epoch"] == [1, 2, 3]
    # three epochs of ten steps: usually 0.5-0.6 of the first epoch's loss, once 0.77 in about
    # twenty runs on a loaded machine (threaded CPU kernels do not add up in a fixed order)
    assert h["train_loss"][-1] < 0.85 * h["train_loss"][0]
    assert h["val_loss"][-1] < h["val_loss"][0]
    assert (out / "learning_curve.png").stat().st_size > 5000
    model, meta = load_weights(out / "weights.pt")
    assert meta["voxel_size_A"] == pytest.approx(0.358)
    assert meta["provenance"]["training"]["n_val"] == 1
    # resume: one more epoch continues the history instead of starting over
    res2 = train_unet(tiny_set[0], out, epochs=4, device="cpu", **KW)
    assert res2.history["epoch"] == [1, 2, 3, 4]
    assert res2.history["train_loss"][:3] == h["train_loss"]
    with pytest.raises(ValueError, match="other settings"):
        train_unet(tiny_set[0], out, epochs=6, device="cpu", **{**KW, "width": 8})


def test_fine_tuning_starts_from_the_given_weights(tiny_set, tiny_training, tmp_path):
    """--init: the first epoch of a fine-tune starts where the source's training ended (a
    lower loss than a fresh network's first epoch) and the source is recorded."""
    src = tiny_training[0] / "weights.pt"
    tuned = train_unet(tiny_set[0], tmp_path / "tuned", epochs=1, device="cpu",
                       init_weights=src, **KW)  # fmt: skip
    fresh = tiny_training[1].history["train_loss"][0]
    assert tuned.history["train_loss"][0] < 0.7 * fresh
    assert tuned.settings["init_weights"]["source"] == str(src)
    _, meta = load_weights(tmp_path / "tuned" / "weights.pt")
    assert meta["provenance"]["training"]["init_weights"]["source"] == str(src)
    with pytest.raises(ValueError, match="same --depth and --width"):
        train_unet(tiny_set[0], tmp_path / "bad", epochs=1, device="cpu", init_weights=src,
                   **{**KW, "width": 8})  # fmt: skip


def test_validation_loss_scores_weights_as_training_did(tiny_set, tiny_training, tmp_path):
    """Weights scored on a set's held-out samples: the trained weights get the loss their
    training recorded for the best epoch, an untrained network a higher one; the CLI prints
    both, and weights of another voxel size are refused."""
    out = tiny_training[0]
    recorded = min(json.loads((out / "history.json").read_text())["val_loss"])
    trained = validation_loss(tiny_set[0], out / "weights.pt", crop_px=32)
    assert trained["n_val"] == 1 and len(trained["per_sample"]) == 1
    assert trained["mean"] == pytest.approx(recorded, rel=1e-4)
    torch.manual_seed(1)
    fresh = save_weights(tmp_path / "fresh.pt", UNet3D(depth=2, width=4), voxel_size_A=0.358,
                         provenance={})  # fmt: skip
    assert validation_loss(tiny_set[0], fresh, crop_px=32)["mean"] > 2 * trained["mean"]
    other = save_weights(tmp_path / "other.pt", UNet3D(depth=2, width=4), voxel_size_A=0.5,
                         provenance={})  # fmt: skip
    with pytest.raises(ValueError, match="0.5 A voxels"):
        validation_loss(tiny_set[0], other, crop_px=32)
    with pytest.raises(ValueError, match="multiple of 4"):
        validation_loss(tiny_set[0], out / "weights.pt", crop_px=30)


def test_cli_train_evaluate_prints_each_weights_loss(tiny_set, tiny_training, capsys):
    w = tiny_training[0] / "weights.pt"
    rc = main(["train", "--data", str(tiny_set[0]), "--evaluate", str(w), str(w), "--crop",
               "32", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "1 held-out samples" in text and text.count(str(w)) == 2


def test_cli_train_generates_a_mixed_set_and_names_a_bad_structure(tmp_path, capsys):
    """``napari-aet train --generate 2 --structure hcp,bcc --bond-scale-max 0.05``: the set's
    manifest keeps the list and the scale, each sample its own draw; an unknown name in the
    list stops the command before anything is made, naming it."""
    out = tmp_path / "set"
    rc = main(["-q", "train", "--data", str(out), "--generate", "2", "--structure", "hcp,bcc",
               "--bond-scale-max", "0.05", "--box", "48", "--radius-min", "3", "--radius-max",
               "4", "--gen-iterations", "5", "--workers", "0"])  # fmt: skip
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["structure"] == "hcp,bcc"
    assert manifest["settings"]["bond_scale_max"] == 0.05
    with h5py.File(next(out.glob("shard-*.h5"))) as h5:
        samples = json.loads(h5.attrs["samples"])
    assert all(x["structure"] in ("hcp", "bcc") and 0.95 <= x["bond_scale"] <= 1.05
               for x in samples)  # fmt: skip
    with pytest.raises(SystemExit):
        main(["train", "--data", str(tmp_path / "bad"), "--generate", "1", "--structure",
              "fcc,hpc"])  # fmt: skip
    assert "unknown structure hpc" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_weights_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="napari-aet train"):
        load_weights(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(ValueError, match="not a napari-aet weights file"):
        load_weights(bad)


def test_augment_resamples_other_voxel_sizes(tmp_path):
    torch.manual_seed(0)
    model = UNet3D(depth=2, width=4)
    path = save_weights(tmp_path / "w.pt", model, voxel_size_A=0.358, provenance={"x": 1})
    x, _, _ = make_training_pair(TINY, 2)
    res = augment_volume(x[:40, :44, :36], voxel_size_A=0.30, weights=path, device="cpu")
    assert res.volume.shape == (40, 44, 36)
    assert res.settings["resampled"] is True
    same = augment_volume(x, voxel_size_A=0.358, weights=path, device="cpu")
    assert same.settings["resampled"] is False


def _median_spacing_px(volume) -> float:
    from scipy.spatial import cKDTree
    from skimage.feature import peak_local_max

    peaks = peak_local_max(volume, min_distance=3, threshold_rel=0.5, exclude_border=6)
    centres = peaks.astype(float)
    for ax in range(3):  # sub-voxel: a Gaussian's log is a parabola through three voxels
        step = np.eye(3, dtype=int)[ax]
        lo, mid, hi = (np.log(np.maximum(volume[tuple((peaks + k * step).T)], 1e-12))
                       for k in (-1, 0, 1))  # fmt: skip
        centres[:, ax] += 0.5 * (lo - hi) / (lo - 2 * mid + hi)
    return float(np.median(cKDTree(centres).query(centres, 2)[0][:, 1]))


def test_augment_draws_the_atoms_at_the_trainings_bond_length(tmp_path, monkeypatch):
    """The network sees a Co lattice (bond 2.51 A) at the spacing its Pt training had (2.77 A):
    the volume it is given has Pt's bond in voxels, the output is back on the input's grid,
    and Pt data (or no element) are not resampled."""
    from scipy import ndimage

    from napari_aet.augment import _infer
    from napari_aet.augment._infer import bond_length_zoom, training_bond_length_A
    from napari_aet.core.elements import element_data

    prov = {"data": [{"element": "Pt", "lattice_constant_A": 3.912, "pixel_size_A": 0.358}]}
    assert training_bond_length_A(prov) == pytest.approx(2.766, abs=1e-3)
    assert training_bond_length_A({"data": [{"element": "Au"}]}) == pytest.approx(2.884, abs=1e-3)
    assert training_bond_length_A({}) is None and bond_length_zoom({}, "Co")[0] == 1.0
    model = UNet3D(depth=2, width=4)
    path = save_weights(tmp_path / "w.pt", model, voxel_size_A=0.358, provenance=prov)
    co = element_data("Co").bond_length_A
    grid = np.stack(np.meshgrid(*[np.arange(-6, 7)] * 3, indexing="ij"), -1).reshape(-1, 3)
    fcc = grid[grid.sum(1) % 2 == 0] * (co / np.sqrt(2.0))  # an fcc lattice of Co's bond
    vol = gaussian_target(fcc + 24 * 0.358, (48, 48, 48), voxel_size_A=0.358)
    seen = []

    def network(model, work, **kw):  # atoms as given, the vacuum exactly empty
        seen.append(work)
        return np.where(work > 0.05, work, 0.0)

    monkeypatch.setattr(_infer, "predict_tiled", network)
    res = augment_volume(vol, voxel_size_A=0.358, weights=path, element="Co", device="cpu")
    assert res.volume.shape == vol.shape and res.settings["resampled"] is True
    # brought back without a spline's ripple, which leaves faint maxima (162 here) where the
    # network left nothing: the tracer would take them as candidates
    out = res.volume
    maxima = (out == ndimage.maximum_filter(out, 3)) & (out > 0)
    assert not (maxima & (out < 0.05)).any() and (maxima & (out > 0.5)).sum() > 300
    assert res.settings["bond_length_A"]["zoom"] == pytest.approx(2.766 / co, rel=1e-3)
    assert _median_spacing_px(vol) == pytest.approx(co / 0.358, abs=0.15)
    assert _median_spacing_px(seen[-1]) == pytest.approx(2.766 / 0.358, abs=0.15)
    assert _median_spacing_px(res.volume) == pytest.approx(co / 0.358, abs=0.15)
    for element in ("Pt", None):
        same = augment_volume(vol, voxel_size_A=0.358, weights=path, element=element,
                              device="cpu")  # fmt: skip
        assert same.settings["resampled"] is False and seen[-1].shape == vol.shape


@pytest.mark.skipif(not shipped_weights(), reason="no shipped weights in resources/")
@pytest.mark.slow
@pytest.mark.parametrize("name", ["fcc", "amorphous", "alloy"])
def test_shipped_weights_improve_a_held_in_example(name):
    if name not in shipped_weights():
        pytest.skip(f"no shipped {name} weights")
    model, meta = load_weights(name)
    prov = meta["provenance"]
    # the alloy weights were trained on several sets: the first one's first sample
    data = prov["data"][0] if isinstance(prov["data"], list) else prov["data"]
    # (the fcc weights' last set draws several packings, fcc among them)
    assert ("fcc" if name == "alloy" else name) in data["structure"].split(",")
    assert (len(data["element"].split(",")) > 1) == (name == "alloy")
    settings = TrainingDataSettings(**{**data, "shapes": tuple(data["shapes"])})
    # the first sample of the shipped training set (its data seed is in the provenance file)
    shipped = json.loads(shipped_weights()[name].with_suffix(".provenance.json").read_text())
    manifest = shipped["data"][0] if isinstance(shipped["data"], list) else shipped["data"]
    x, y, _ = make_training_pair(settings, int(manifest["seed"]) * 1_000_003)
    out = augment_volume(x, voxel_size_A=settings.pixel_size_A, weights=name, device="cpu")
    mse_raw = float(np.mean((x - y) ** 2))
    mse_aug = float(np.mean((out.volume - y) ** 2))
    assert mse_aug < 0.7 * mse_raw


def test_cli_augment_writes_the_tomogram_with_provenance(tmp_path):
    from napari_aet.io import read_volume, write_volume

    torch.manual_seed(0)
    w = save_weights(tmp_path / "w.pt", UNet3D(depth=2, width=4), voxel_size_A=0.358, provenance={})
    x, _, _ = make_training_pair(TINY, 4)
    write_volume(tmp_path / "tomo.h5", 5 * x, voxel_size_A=0.358)
    rc = main(["-q", "augment", str(tmp_path / "tomo.h5"), "--out", str(tmp_path / "aug"),
               "--weights", str(w), "--tile", "32", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    vol, vx, prov = read_volume(tmp_path / "aug" / "tomogram_augmented.h5")
    assert vol.shape == x.shape and vx == pytest.approx(0.358)
    assert prov["command"] == "augment" and prov["weights"] == str(w)
    assert (tmp_path / "aug" / "figures" / "augment_slices.png").stat().st_size > 10000
    assert main(["-q", "augment", str(tmp_path / "tomo.h5"), "--out", str(tmp_path / "x"),
                 "--weights", str(tmp_path / "nope.pt")]) == 1  # fmt: skip
    assert not (tmp_path / "x" / "tomogram_augmented.h5").exists()


def test_cli_train_generates_and_trains(tmp_path):
    rc = main(["-q", "train", "--data", str(tmp_path / "d"), "--generate", "3", "--workers", "0",
               "--box", "48", "--radius-min", "3", "--radius-max", "4", "--gen-iterations", "5",
               "--out", str(tmp_path / "t"), "--epochs", "1", "--crop", "32", "--depth", "2",
               "--width", "4", "--steps", "2", "--device", "cpu",
               "--forward-models", "project,independent", "--peak-counts", "20", "60",
               "--background-max", "2", "--lowpass", "2.08", "--random-orientation"])  # fmt: skip
    assert rc == 0
    prov = json.loads((tmp_path / "t" / "provenance.json").read_text())
    data = prov["data"]["settings"]
    assert data["forward_models"] == ["project", "independent"]
    assert data["peak_counts"] == [20.0, 60.0] and data["random_orientation"] is True
    assert prov["data"]["n_samples"] == 3 and prov["epochs_done"] == 1
    assert (
        prov["command"].startswith("napari-aet -q train --data")
        and "--generate 3" in prov["command"]
    )
    assert (tmp_path / "t" / "weights.pt").exists()


def test_training_on_several_sets_validates_on_each(tiny_set, tmp_path, capsys):
    """Folders of other elements are trained on together: each set's last samples are held
    out (so an alloy set is validated on, not only the last folder), the weights record each
    set's settings, and the note on untrained elements reads them all."""
    from napari_aet.augment._infer import outside_training
    from napari_aet.augment._train import _split

    train, val = _split([6, 4], 0.1)
    assert val.tolist() == [5, 9] and train.tolist() == [0, 1, 2, 3, 4, 6, 7, 8]
    alloy = tmp_path / "alloy"
    generate_training_set(alloy, n_samples=2, settings=replace(TINY, element="Pt,Ni"),
                          samples_per_shard=2, n_workers=0)  # fmt: skip
    res = train_unet([tiny_set[0], alloy], tmp_path / "t", epochs=1, device="cpu",
                     **{**KW, "steps_per_epoch": 2})  # fmt: skip
    assert res.settings["n_val"] == 2 and res.settings["n_train"] == 6
    _, meta = load_weights(tmp_path / "t" / "weights.pt")
    prov = meta["provenance"]
    assert [d["element"] for d in prov["data"]] == ["Pt", "Pt,Ni"]
    assert len(prov["shards"]) == 4
    assert outside_training(prov, voxel_size_A=0.358, element="Ni,Pt") == []
    note = outside_training(prov, voxel_size_A=0.358, element="Fe,Pt")
    assert len(note) == 1 and "trained on Pt / Pt,Ni particles" in note[0]
    # the CLI takes the folders after one --data; generating makes one set at a time
    rc = main(["-q", "train", "--data", str(tiny_set[0]), str(alloy), "--generate", "2"])
    assert rc == 1 and "one --data folder" in capsys.readouterr().err


def test_auto_weights_follow_the_elements_and_notes_read_the_shipped_weights():
    """'auto' picks the alloy network for several elements and the fcc one for one; the
    note on an element the network never saw reads the provenance stored in the weights
    file itself (it read only the provenance.json beside it, so runs never showed it)."""
    from napari_aet.augment import choose_weights

    assert choose_weights("auto", "Pt") == "fcc"
    assert choose_weights("auto", None) == "fcc"
    expect = "alloy" if "alloy" in shipped_weights() else "fcc"
    assert choose_weights("auto", "Fe,Pt") == expect
    assert choose_weights("amorphous", "Fe,Pt") == "amorphous"
    if "fcc" not in shipped_weights():
        pytest.skip("no shipped fcc weights")
    x, _, _ = make_training_pair(TINY, 5)
    res = augment_volume(x, voxel_size_A=0.358, weights="fcc", element="Au", device="cpu",
                         tile_px=48)  # fmt: skip
    assert any("trained on Pt particles, the data are Au" in n for n in res.settings["notes"])
    # drawn at Pt's bond length, which the shipped fcc weights were trained on
    assert res.settings["resampled"] is True
    assert res.settings["bond_length_A"]["training"] == pytest.approx(3.912 / np.sqrt(2), 1e-6)
    same = augment_volume(x, voxel_size_A=0.358, weights="auto", element="Pt", device="cpu",
                          tile_px=48)  # fmt: skip
    assert same.settings["notes"] == [] and same.settings["weights"].endswith("unet-fcc.pt")
