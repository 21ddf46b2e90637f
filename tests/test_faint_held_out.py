"""An alloy's faint atoms where the fit put them or where the tracer did, decided by images the
fit never saw (:mod:`napari_aet.trace._faint_held_out`)."""

import numpy as np
import pandas as pd
import pytest

from napari_aet.core.atoms import AtomModel
from napari_aet.forward import held_out_comparison
from napari_aet.forward._held_out import _equal_atoms_renderer
from napari_aet.trace._faint_held_out import faint_positions_by_held_out

PX = 0.358
SHAPE = (72, 72)
ANGLES = np.arange(-70.0, 70.1, 7.0)  # 21 images
SIGMA = 0.5


def _scene(seed=0):
    """A heavy and a faint element (amplitudes 1 and 0.2) on random, well separated sites,
    and noisy images of them."""
    from napari_aet.forward import rotation_center_A
    from napari_aet.simulate import build_structure

    rng = np.random.default_rng(seed)
    pos = build_structure("glass", element="Pt", radius_A=7.0, seed=seed, jitter_A=0.0,
                          shape_px=SHAPE).positions  # fmt: skip
    assert np.allclose(pos.mean(axis=0), rotation_center_A(SHAPE, PX), atol=1.0)
    faint = rng.random(len(pos)) < 0.5
    amp = np.where(faint, 0.2, 1.0)
    clean = _equal_atoms_renderer(SHAPE, ANGLES, PX, SIGMA)(pos, amp)
    images = rng.poisson(np.maximum(clean, 0) * 40.0).astype(np.float32) / 40.0
    return pos, faint, amp, images, rng


def _model(positions, faint, amp):
    feats = pd.DataFrame(
        {
            "element": np.where(faint, "Ni", "Pt"),
            "refine_added": np.zeros(len(positions), np.int8),
            "refine_amplitude": amp / 0.2,
            "refine_shift_A": np.zeros(len(positions)),
        }
    )
    return AtomModel(np.asarray(positions, float), feats, {})


def test_amplitudes_make_the_comparison_see_an_alloy():
    pos, faint, amp, images, rng = _scene()
    moved = pos.copy()
    moved[faint] += rng.normal(0.0, 0.6, (int(faint.sum()), 3))
    kw = dict(pixel_size_A=PX, sigma_A=SIGMA)
    with_amp = held_out_comparison(images, ANGLES, moved, pos, amplitudes=amp, **kw)
    assert with_amp["t"] > 3  # the true faint positions predict the images better
    with pytest.raises(ValueError, match="one per atom"):
        held_out_comparison(images, ANGLES, moved, pos, amplitudes=amp[:-1], **kw)


@pytest.mark.parametrize("traced_right", [True, False])
def test_faint_atoms_go_where_the_held_out_images_put_them(traced_right):
    """The fit moved the faint atoms 0.6 A (per axis) off where they are, the tracer had them
    right: they go back; the other way round, the fit's stay. ``refine_once`` stands in for the
    half-series fit and returns the same two placements."""
    pos, faint, amp, images, rng = _scene(1)
    wrong = pos.copy()
    wrong[faint] += rng.normal(0.0, 0.6, (int(faint.sum()), 3))
    traced, fitted = (pos, wrong) if traced_right else (wrong, pos)
    verdicts = {"element": "Ni", "applied": True}
    info = {"faint_verdicts": verdicts}
    calls = []

    def refine_once(atoms, imgs, angles, *, judge_images, return_origin, **kw):
        calls.append(len(angles))
        return _model(fitted, faint, amp), {**info, "sigma_A": SIGMA}, traced

    params = dict(element="Ni,Pt", pixel_size_A=PX, progress=None, cancel=None, denoiser=None)
    out, out_info = faint_positions_by_held_out(
        _model(fitted, faint, amp), info, traced, _model(traced, faint, amp), images, ANGLES,
        None, params, refine_once=refine_once,
    )  # fmt: skip
    record = out_info["faint_verdicts"]["held_out"]
    assert calls == [11]  # one fit, to every other image by angle
    assert len(record["held_out_images"]) == 10
    if traced_right:
        assert record["verdict"] == "traced" and record["t"] >= 2
        np.testing.assert_allclose(out.positions, pos)
        assert out_info["faint_verdicts"]["n_positions_held"] == int(faint.sum())
    else:
        assert record["verdict"] == "fitted"
        np.testing.assert_allclose(out.positions, pos)
        assert "n_positions_held" not in out_info["faint_verdicts"]


def test_one_element_or_faint_atoms_already_held_are_left_alone():
    pos, faint, amp, images, _ = _scene(2)
    model = _model(pos, faint, amp)

    def refine_once(*a, **k):  # pragma: no cover - must not run
        raise AssertionError("no held-out fit expected")

    params = dict(element="Pt", pixel_size_A=PX, progress=None, cancel=None, denoiser=None)
    info = {"faint_verdicts": {"element": "Ni"}}
    same, _ = faint_positions_by_held_out(model, info, pos, model, images, ANGLES, None, params,
                                          refine_once=refine_once)  # fmt: skip
    assert same is model
    params["element"] = "Ni,Pt"
    info = {"faint_verdicts": {"element": "Ni", "n_positions_held": 3}}
    same, _ = faint_positions_by_held_out(model, info, pos, model, images, ANGLES, None, params,
                                          refine_once=refine_once)  # fmt: skip
    assert same is model
