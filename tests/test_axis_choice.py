"""The tilt axis where the common line cannot tell (held-out prediction), and a horizontal
axis's sense (a series from GENFIRE's world as its images lie)."""

import json

import numpy as np
import pytest
import tifffile

from napari_aet.align._axis_choice import choose_axis_by_prediction, horizontal_sense
from napari_aet.simulate import build_structure, simulate_tilt_series

ANGLES = np.arange(-70.0, 71.0, 7.0)


@pytest.fixture(scope="module")
def particle():
    """A chiral (amorphous) particle and its series in napari-aet's convention (64 px)."""
    atoms = build_structure("amorphous", radius_A=6.5, shape_px=(64, 64), pixel_size_A=0.4,
                            seed=3)  # fmt: skip
    sim = simulate_tilt_series(atoms, ANGLES, pixel_size_A=0.4, shape_px=(64, 64), seed=1)
    return atoms, np.asarray(sim.data, np.float32)


def _no_shifts(images):
    return lambda alpha: np.zeros((len(images), 2))


def test_held_out_prediction_finds_a_horizontal_axis(particle):
    """GENFIRE's images as they lie (transposed: the axis along the rows), offered only a
    wrong candidate: vertical and horizontal are always tried, horizontal predicts best."""
    _, images = particle
    lying = np.ascontiguousarray(np.swapaxes(images, 1, 2))
    alpha, rec = choose_axis_by_prediction(lying, -ANGLES, [35.0], _no_shifts(lying))
    assert alpha == -90.0
    res = rec["mean_residual"]
    assert res["-90.00"] < 0.75 * res["+0.00"] and res["-90.00"] < res["+35.00"]


def test_held_out_prediction_keeps_an_upright_series_upright(particle):
    _, images = particle
    alpha, rec = choose_axis_by_prediction(images, ANGLES, [35.0, -60.0], _no_shifts(images))
    assert alpha == 0.0 and "no direction" in rec["why"]


def test_horizontal_sense_takes_the_minus_90_side_only_near_horizontal():
    assert horizontal_sense(89.5) == pytest.approx(-90.5)
    assert horizontal_sense(-89.5) == pytest.approx(-89.5)
    assert horizontal_sense(270.2) == pytest.approx(-89.8)
    assert horizontal_sense(86.0) == pytest.approx(86.0)  # an axis off horizontal keeps its
    assert horizontal_sense(-3.0) == pytest.approx(-3.0)  # sense within +-90 of upright


def test_a_genfire_series_exported_as_it_lies_gives_the_particle_not_its_mirror(
    particle, tmp_path, capsys
):
    """A TIFF stack of GENFIRE's images as they lie beside a .tlt of GENFIRE's theta (the
    tilt's other sign): align, recon and trace give the particle itself (turned half round),
    where the other sense of the axis gives its mirror image."""
    from napari_aet.analysis import compare_models
    from napari_aet.cli import main
    from napari_aet.io import read_atoms

    atoms, images = particle
    tifffile.imwrite(tmp_path / "proj.tif", np.ascontiguousarray(np.swapaxes(images, 1, 2)))
    np.savetxt(tmp_path / "proj.tlt", -ANGLES)
    steps = [
        ["align", str(tmp_path / "proj.tif"), "--pixel-size", "0.4",
         "--no-projection-matching", "--denoise", "none", "--out", str(tmp_path / "a")],
        ["recon", str(tmp_path / "a" / "aligned_tilt_series.h5"), "--iterations", "50",
         "--out", str(tmp_path / "r")],
        ["trace", str(tmp_path / "r" / "tomogram.h5"), "--out", str(tmp_path / "t")],
    ]  # fmt: skip
    for argv in steps:
        assert main(["-q", *argv]) == 0, capsys.readouterr().err
    axis = json.loads((tmp_path / "a" / "alignment.json").read_text())["tilt_axis_angle_deg"]
    assert -91.0 < axis < -89.0
    traced = read_atoms(tmp_path / "t" / "atoms.csv").positions
    r = compare_models(atoms.positions, traced)
    assert r["n_common"] >= 0.85 * atoms.n_atoms and r["mirror"] is None
    assert r["mirror_n_common"] < 0.5 * atoms.n_atoms  # a chiral particle: its mirror differs
    assert r["rotation_deg"] == pytest.approx(180.0, abs=2.0)


@pytest.fixture(scope="module")
def faint_series(particle):
    """The same particle at a few counts (about 6 on its brightest column over a background
    of 1 count, subtracted): mostly noise."""
    atoms, _ = particle
    sim = simulate_tilt_series(atoms, ANGLES, pixel_size_A=0.4, shape_px=(64, 64), seed=1,
                               dose_e_per_A2=300.0, background_counts=1.0)  # fmt: skip
    return np.asarray(sim.data, np.float32) - 1.0


def test_at_a_few_counts_an_upright_series_stays_upright(faint_series):
    """Known answer: an upright series at a few counts offered turned directions (what the
    common line gives at such counts) is kept upright. Compared in each direction's own frame,
    the turns' interpolation smoothed the noise and every turned direction won."""
    for candidates in ([28.6, 13.0], [34.75, 57.0]):
        alpha, rec = choose_axis_by_prediction(
            faint_series, ANGLES, candidates, _no_shifts(faint_series)
        )
        assert alpha == 0.0, rec


def test_at_a_few_counts_a_horizontal_axis_is_still_found(faint_series):
    lying = np.ascontiguousarray(np.swapaxes(faint_series, 1, 2))
    alpha, rec = choose_axis_by_prediction(lying, -ANGLES, [35.0], _no_shifts(lying))
    assert alpha == -90.0, rec


@pytest.mark.parametrize("shape, factor", [((2, 128, 128), 2), ((2, 131, 150), 3)])
def test_predictions_map_back_into_the_raw_frame(shape, factor):
    """Known answer: smooth images resampled into an aligned frame (a 28-deg axis, shifts,
    a horizontal axis), binned, and mapped back give the binned raw images again, square or
    not (the centre taken from the unbinned images)."""
    from scipy import ndimage

    from napari_aet.align._axis_choice import _bin, _to_raw_frame
    from napari_aet.align._shifts import apply_alignment

    rng = np.random.default_rng(0)
    img = ndimage.gaussian_filter(rng.normal(size=shape), 5).astype(np.float32)
    img[:, :25], img[:, -25:], img[:, :, :25], img[:, :, -25:] = 0, 0, 0, 0
    inner = (slice(None), slice(12, -12), slice(12, -12))
    for alpha in (0.0, 28.0, -90.0):
        s = rng.uniform(-3, 3, (shape[0], 2))
        aligned = apply_alignment(img, tilt_axis_angle_deg=alpha, shifts_px=s)
        back = _to_raw_frame(_bin(aligned, factor), alpha, s, factor, shape[1:])
        target = _bin(img, factor)
        assert np.corrcoef(back[inner].ravel(), target[inner].ravel())[0, 1] > 0.998
        wrong = _to_raw_frame(_bin(aligned, factor), alpha + 5.0, s, factor, shape[1:])
        assert np.corrcoef(wrong[inner].ravel(), target[inner].ravel())[0, 1] < 0.99
