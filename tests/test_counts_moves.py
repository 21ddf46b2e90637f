"""The counts undo a denoised fit's long moves that they do not support
(:mod:`napari_aet.trace._counts_moves`)."""

import numpy as np

from napari_aet.forward import project_positions, refine_atomic_model, render_projection
from napari_aet.simulate import build_structure
from napari_aet.trace._counts_moves import counts_prefer_origin

PX = 0.358
SHAPE = (64, 64)
ANGLES = np.arange(-63.0, 63.1, 9.0)


def _counts(positions, peak=40.0, seed=0):
    """Poisson counts of the atoms' blurred projected potentials, ``peak`` at the brightest
    column, over a background of 1."""
    clean = np.stack(
        [
            render_projection(
                project_positions(positions, a, shape_px=SHAPE, pixel_size_A=PX),
                np.full(len(positions), "Pt"),
                shape_px=SHAPE,
                pixel_size_A=PX,
                blur_sigma_A=0.45,
            )
            for a in ANGLES
        ]
    )
    rng = np.random.default_rng(seed)
    return rng.poisson(clean * peak / clean.max() + 1.0).astype(np.float32) - 1.0


def test_the_counts_take_back_an_atom_moved_onto_a_wrong_site_and_keep_one_moved_right():
    """Atoms that a fit moved 1.6 A off their true sites (the stacking shift) go back to where
    the tracer had them; atoms the fit moved 1.6 A onto their true sites, from a tracer's wrong
    one, stay; atoms moved less than 0.5 A are not judged."""
    truth = build_structure("fcc", radius_A=7.0, shape_px=SHAPE, pixel_size_A=PX, seed=3)
    truth = truth.positions
    counts = _counts(truth)
    rng = np.random.default_rng(1)
    k = rng.choice(len(truth), 12, replace=False)
    wrong, right = k[:6], k[6:]
    step = rng.normal(size=(12, 3))
    step *= 1.6 / np.linalg.norm(step, axis=1, keepdims=True)
    fitted, traced = truth.copy(), truth.copy()
    fitted[wrong] += step[:6]  # the fit moved these off their sites
    traced[right] += step[6:]  # the tracer had these wrong, the fit put them right
    small = np.setdiff1d(np.arange(len(truth)), k)[:10]
    fitted[small] += 0.2  # ordinary corrections
    fit = refine_atomic_model(
        counts, ANGLES, fitted, pixel_size_A=PX, refine_positions=False, refine_angles=False,
        refine_offsets=False, iterations=20, return_images=True,
    )  # fmt: skip
    back, record = counts_prefer_origin(fit, counts, traced, pixel_size_A=PX)
    assert record["n_judged"] == 12
    assert set(np.nonzero(back)[0]) == set(wrong)
    # an atom without a traced position (a trial the fit added) is never judged
    traced[wrong[0]] = np.nan
    back, record = counts_prefer_origin(fit, counts, traced, pixel_size_A=PX)
    assert record["n_judged"] == 11 and not back[wrong[0]] and back[wrong[1:]].all()


def test_the_refine_stage_moves_back_what_the_counts_undo_and_only_after_a_denoised_fit():
    """``_with_counts_moves_back`` as the refine stage calls it: a fit to a denoised series
    (judged on the counts) that moved atoms 1.6 A off their sites gets them back at their
    traced positions, recorded in ``counts_moves``; an atom the fit added is never judged; a
    fit to the counts themselves, or one that moved the geometry, is left alone."""
    import pandas as pd

    from napari_aet.core.atoms import AtomModel
    from napari_aet.trace._post_fit import _with_counts_moves_back

    truth = build_structure("fcc", radius_A=7.0, shape_px=SHAPE, pixel_size_A=PX, seed=4)
    truth = truth.positions
    counts = _counts(truth, seed=2)
    rng = np.random.default_rng(5)
    wrong = rng.choice(len(truth), 5, replace=False)
    step = rng.normal(size=(5, 3))
    step *= 1.6 / np.linalg.norm(step, axis=1, keepdims=True)
    fitted = truth.copy()
    fitted[wrong] += step
    added = np.zeros(len(truth), np.int8)
    added[wrong[0]] = 1  # this one the fit added from a trial: it has no traced position
    features = pd.DataFrame({"refine_added": added, "refine_shift_A": 0.0})
    model = AtomModel(fitted, features, {})
    source = {"source": "denoised"}
    kw = dict(angles_deg=ANGLES, pixel_size_A=PX, weighting="uniform", device="cpu",
              cancel=None)  # fmt: skip
    info = {"judged_on": "judge_images"}
    out, out_info = _with_counts_moves_back(model, info, source, counts, truth,
                                            refine_geometry=False, **kw)  # fmt: skip
    assert out_info["counts_moves"]["n_judged"] == 4 and out_info["counts_moves"]["n_back"] == 4
    np.testing.assert_allclose(out.positions[wrong[1:]], truth[wrong[1:]])
    np.testing.assert_allclose(out.positions[wrong[0]], fitted[wrong[0]])
    np.testing.assert_allclose(out.features["refine_shift_A"].to_numpy()[wrong[1:]], 0.0)
    assert out.metadata["refinement"]["counts_moves"]["n_back"] == 4
    for src, geometry in (({"source": "counts"}, False), (source, True)):
        same, same_info = _with_counts_moves_back(model, dict(info), src, counts, truth,
                                                  refine_geometry=geometry, **kw)  # fmt: skip
        assert same is model and "counts_moves" not in same_info


def test_the_verdicts_judge_the_atoms_where_the_counts_place_them(monkeypatch):
    """A denoised series that painted six atoms 1 A off their sites: the fit to it moves them
    there, where the counts show little, and without the check in the fit four of them fell
    under the drop bar and two stayed 1 A off. With it (``_fit_and_judge``) the counts take all
    six back to where the tracer had them before the verdicts, and all stay, on their sites."""
    import pandas as pd

    import napari_aet.trace._verdicts as verdicts
    from napari_aet.core.atoms import AtomModel

    truth = build_structure("fcc", radius_A=7.0, shape_px=SHAPE, pixel_size_A=PX, seed=3)
    truth = truth.positions
    rng = np.random.default_rng(0)
    counts = _counts(truth, seed=4)
    painted = truth.copy()
    k = rng.choice(len(truth), 6, replace=False)
    step = rng.normal(size=(6, 3))
    painted[k] += step / np.linalg.norm(step, axis=1, keepdims=True)
    denoised = _counts(painted, peak=4e4, seed=5) / 1e3  # all but noise-free, the same scale
    traced = truth + rng.normal(0, 0.1, truth.shape)
    model = AtomModel(traced, pd.DataFrame({"intensity": np.ones(len(truth))}))
    kw = dict(judge=True, origin=None, pixel_size_A=PX, iterations=30, refine_geometry=False,
              element="Pt", device="cpu", progress=None, cancel=None,
              judge_images=counts)  # fmt: skip

    def errors(out):
        where = np.full(truth.shape, np.nan)
        where[out[4]] = out[0].positions
        return np.linalg.norm(where - truth, axis=1)

    out = verdicts._fit_and_judge(model, denoised, ANGLES, np.empty((0, 3)), np.empty(0), **kw)
    assert out[1]["counts_moves_in_fit"]["n_back"] == 6
    assert out[4].all() and errors(out)[k].max() < 0.4
    assert np.delete(errors(out), k).max() < 0.1
    monkeypatch.setattr(
        verdicts, "counts_prefer_origin", lambda fit, c, o, **_: (np.zeros(len(o), bool), {})
    )
    out = verdicts._fit_and_judge(model, denoised, ANGLES, np.empty((0, 3)), np.empty(0), **kw)
    assert not (out[4][k] & (errors(out)[k] < 0.5)).any()  # each lost or left off its site
