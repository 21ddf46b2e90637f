"""Precision analysis: simulate the model's series, reconstruct, trace again, compare."""

import importlib.util

import numpy as np
import pytest

from napari_aet.figures import plot_deviation_histogram
from napari_aet.forward import project_positions
from napari_aet.simulate import MultisliceSettings, build_structure, multislice_tilt_series
from napari_aet.workflows import precision_analysis

HAS_ABTEM = importlib.util.find_spec("abtem") is not None


def _fast_precision(atoms, **kw):
    """The precision analysis of a small particle with the fast simulator, 15 tilts."""
    return precision_analysis(
        atoms.positions, np.linspace(-70, 70, 15), pixel_size_A=0.358, shape_px=(64, 64),
        simulator="kirkland", iterations=40, **kw,
    )  # fmt: skip


def test_precision_analysis_recovers_the_model_with_the_fast_simulator():
    atoms = build_structure("fcc", radius_A=7.0, shape_px=(64, 64), seed=2)
    res = _fast_precision(atoms)
    s = res.summary()["raw"]
    assert s["n_model"] == atoms.n_atoms
    assert s["identification_error"] < 0.03
    assert s["rmsd_pm"] < 25
    # refining the traced atoms against the simulated images brings them closer
    assert res.summary()["raw refined"]["rmsd_pm"] < 0.8 * s["rmsd_pm"]
    fig = plot_deviation_histogram(res.comparisons)
    assert "RMSD" in fig.axes[0].get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="simulator"):
        precision_analysis(atoms.positions, [0], pixel_size_A=0.358, shape_px=(64, 64),
                           simulator="nope")  # fmt: skip


def test_default_sampling_reaches_the_outer_detector_angle():
    s = MultisliceSettings()
    assert s.wavelength_A() == pytest.approx(0.01969, rel=1e-3)  # 300 keV
    k_max = 1 / (3 * s.sampling_A())  # abTEM's antialiased band
    assert s.wavelength_A() * k_max * 1e3 > s.detector_outer_mrad


@pytest.mark.slow
@pytest.mark.skipif(not HAS_ABTEM, reason="abTEM not installed (napari-aet[multislice])")
def test_multislice_images_put_atoms_where_the_projection_geometry_says():
    # three Pt atoms far apart in a small field, two tilts: each image's brightest pixels
    # sit at the atoms' projected positions of the simulator's own convention
    px, shape = 0.4, (28, 28)
    pos = np.array([[5.6, 3.2, 3.6], [5.6, 7.6, 8.0], [7.0, 5.2, 6.4]]) + [0, 0, 0]
    settings = MultisliceSettings(frozen_phonons=1, dose_e_per_A2=None,
                                  detector_outer_mrad=120.0)  # fmt: skip
    imgs = multislice_tilt_series(pos, [0.0, 40.0], pixel_size_A=px, shape_px=shape,
                                  settings=settings)  # fmt: skip
    assert imgs.shape == (2, 28, 28)
    for img, ang in zip(imgs, (0.0, 40.0), strict=True):
        expect = project_positions(pos, ang, shape_px=shape, pixel_size_A=px)
        for rc in expect:
            r, c = np.round(rc).astype(int)
            local = img[r - 1 : r + 2, c - 1 : c + 2]
            assert local.max() > 0.5 * img.max()
        assert img[0:2, 0:2].mean() < 0.05 * img.max()  # vacuum is dark


def test_cli_precision_writes_the_comparison(tmp_path):
    import json

    from napari_aet.cli import main
    from napari_aet.io import TiltSeries, write_atoms, write_tilt_series

    atoms = build_structure("fcc", radius_A=6.0, shape_px=(56, 56), seed=4)
    write_atoms(tmp_path / "atoms.csv", atoms)
    angles = np.linspace(-70, 70, 15)
    write_tilt_series(
        tmp_path / "t.h5",
        TiltSeries(np.random.default_rng(0).random((15, 56, 56), np.float32), angles, 0.358),
    )
    rc = main(["-q", "precision", str(tmp_path / "atoms.csv"), str(tmp_path / "t.h5"), "--out",
               str(tmp_path / "p"), "--simulator", "kirkland", "--iterations", "30"])  # fmt: skip
    assert rc == 0
    info = json.loads((tmp_path / "p" / "precision.json").read_text())
    assert info["results"]["raw"]["n_model"] == atoms.n_atoms
    assert info["results"]["raw"]["identification_error"] < 0.05
    assert (tmp_path / "p" / "figures" / "deviation_histogram.png").exists()


def test_precision_of_an_alloy_uses_each_atoms_element():
    """A Pt-Ni alloy: the simulated series has each atom's potential, and the traced model
    (tracer and refinement told the elements) recovers the atoms."""
    atoms = build_structure("fcc", element="Pt,Ni", radius_A=7.0, shape_px=(64, 64), seed=2)
    res = _fast_precision(atoms, element=atoms.features["element"].to_numpy())
    s = res.summary()
    # a small particle, 15 tilts: a few faint surface Ni atoms are missed, none invented
    assert s["raw"]["identification_error"] < 0.06 and s["raw"]["n_traced"] <= s["raw"]["n_model"]
    assert s["raw refined"]["identification_error"] < 0.05
    assert s["raw refined"]["rmsd_pm"] < 15
    with pytest.raises(ValueError, match="elements for"):
        precision_analysis(atoms.positions, [0], pixel_size_A=0.358, shape_px=(64, 64),
                           simulator="kirkland", element=["Pt"])  # fmt: skip
