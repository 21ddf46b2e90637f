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
