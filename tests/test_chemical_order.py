"""Chemical order of binary fcc alloys: L1_0, L1_2 or disordered, long-range and per atom,
from particles built with a known order (and with species misassigned as a tracer would)."""

import numpy as np
import pytest
from conftest import structure_dock_analysed

from napari_aet.analysis import analyze_structure
from napari_aet.analysis._chemical_order import long_range_order, sublattice_of
from napari_aet.simulate import build_structure


def _ordered(order, element, *, s=1.0, seed=2, swap=0.0, **kw):
    m = build_structure("fcc", element=element, radius_A=16.0, seed=seed, order=order,
                        order_parameter=s, jitter_A=0.08, **kw)  # fmt: skip
    if swap:  # species misassigned at random, as a tracer's species step would
        sp = m.features["element"].to_numpy().astype(str)
        a, b = sorted(set(sp))
        flip = np.random.default_rng(seed).random(len(sp)) < swap
        sp[flip] = np.where(sp[flip] == a, b, a)
        m.features["element"] = sp
    return m


def test_sublattices_and_order_parameters_of_ideal_sites():
    g = np.arange(-2, 3)
    cells = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 1, 3)
    basis = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    sites = (cells + basis).reshape(-1, 3)
    sub = sublattice_of(sites)
    np.testing.assert_array_equal(np.bincount(sub), [125] * 4)
    l10 = long_range_order(sites, np.rint(2 * sites[:, 1]) % 2 == 0)  # c along y
    assert l10["phase"] == "L1_0" and l10["L1_0_axis"] == 1
    assert l10["S_L1_0"] == pytest.approx(1.0) and l10["S_L1_2"] == pytest.approx(2 / 3)
    l12 = long_range_order(sites, sub != 2)  # the minority on sublattice 2
    assert l12["phase"] == "L1_2" and l12["L1_2_sublattice"] == 2
    assert l12["S_L1_2"] == pytest.approx(1.0) and l12["S_L1_0"] == pytest.approx(0.5)
    rand = long_range_order(sites, np.random.default_rng(0).random(len(sites)) < 0.5)
    assert rand["phase"] == "A1" and max(rand["S_L1_0"], rand["S_L1_2"]) < 0.15


@pytest.mark.parametrize(
    ("order", "element", "s", "swap", "phase", "s_expected"),
    [
        ("L1_0", "Fe,Pt", 1.0, 0.0, "L1_0", 1.0),
        ("L1_0", "Fe,Pt", 0.5, 0.0, "L1_0", 0.5),
        ("L1_0", "Fe,Pt", 1.0, 0.05, "L1_0", 0.9),  # 5 % misassigned: S = 1 - 2 x 0.05
        ("L1_2", "Pt,Fe", 1.0, 0.0, "L1_2", 1.0),
        (None, "Fe,Pt", 1.0, 0.0, "A1", 0.0),
    ],
)
def test_analysis_measures_the_built_order(order, element, s, swap, phase, s_expected):
    m = _ordered(order, element, s=s, swap=swap)
    res = analyze_structure(m, element=element)
    c = res.summary["chemical_order"]
    assert c["phase"] == phase
    g = c["grains"][0]
    key = "S_L1_2" if phase == "L1_2" else "S_L1_0"
    assert g[key] == pytest.approx(s_expected, abs=0.07)
    f = res.model.features
    local = f["chemical_order"].to_numpy()
    measured = local != ""
    share = {p: (local[measured] == p).mean() for p in ("L1_0", "L1_2", "A1")}
    if order is None:
        assert share["A1"] > 0.97
    elif s == 1.0 and not swap:
        assert share[phase] == 1.0
    elif swap:
        assert share[phase] > 0.75
    if phase == "L1_0":
        # the grain's c and every ordered atom's along the built crystal's c
        c_true = np.asarray(m.metadata["order"]["c_axis_zyx"])
        assert abs(np.asarray(g["c_axis_zyx"]) @ c_true) > np.cos(np.deg2rad(0.5))
        variant = f["order_variant"].to_numpy()[local == "L1_0"]
        right = np.mean(variant == g["L1_0_axis"])
        assert right == 1.0 if s == 1.0 and not swap else right > 0.9
    if order is None:
        assert not any("chemically ordered" in n for n in res.summary["notes"])
    else:
        assert any(n.startswith(f"chemically ordered: {phase}") for n in res.summary["notes"])


def test_two_l10_variants_in_one_crystal_are_told_apart():
    """One crystal, c along x in one half and along z in the other (two L1_0 variant
    domains): the local order finds both, each atom's variant matches its half."""
    from napari_aet.simulate._structures import fcc_particle, ordered_species

    rot = np.eye(3)
    pos = fcc_particle(lattice_constant_A=3.8, radius_A=16.0, shape="sphere", orientation=rot,
                       seed=0)  # fmt: skip
    sites = pos / 3.8
    sp = ordered_species(sites, "L1_0", ("Fe", "Pt"))
    left = pos[:, 0] < 0
    sp[left] = ordered_species(sites[left][:, [1, 2, 0]], "L1_0", ("Fe", "Pt"))  # c along z
    import pandas as pd

    from napari_aet.core.atoms import AtomModel

    res = analyze_structure(AtomModel(pos + 50.0, pd.DataFrame({"element": sp})),
                            element="Fe,Pt")  # fmt: skip
    f = res.model.features
    local = f["chemical_order"].to_numpy()
    variant = f["order_variant"].to_numpy()
    core = (local == "L1_0") & (np.abs(pos[:, 0]) > 3.0)
    assert core.sum() > 300
    right_half = variant[core & ~left]
    left_half = variant[core & left]
    assert len(set(right_half)) == 1 and len(set(left_half)) == 1
    assert right_half[0] != left_half[0]
    # the variants are the grain lattice's cube axes: c of the right half along the
    # positions' last column (x of (z, y, x)), of the left half along the first (z)
    rot = np.asarray(res.summary["lattice_fits"][0]["rotation_crystal_to_lab"])
    assert np.argmax(np.abs(rot[:, right_half[0]])) == 2
    assert np.argmax(np.abs(rot[:, left_half[0]])) == 0


def test_structure_dock_colours_an_ordered_alloy_by_its_order(make_napari_viewer, qtbot, tmp_path):
    """An analyst loads an L1_0 FePt particle's atoms, presses Analyze and picks 'colour by'
    chemical_order from the combo box with the keyboard: every measured atom L1_0's colour, the
    surface grey, the legend naming the phases; the status line says it is ordered."""
    from matplotlib.colors import to_rgba
    from qtpy.QtWidgets import QApplication

    from napari_aet.widgets._structure import _ORDER_COLORS

    m = _ordered("L1_0", "Fe,Pt")
    viewer, layer, w = structure_dock_analysed(make_napari_viewer, qtbot, m, "FePt", "Fe,Pt")
    assert w.element.value == "Fe,Pt"
    assert "chemically ordered: L1_0" in w.status.value
    # the study preset shows an ordered alloy's order at once
    assert w.color_by.value == "study preset" and "L1_0" in w.legend.value
    inner = layer.features["chemical_order"].to_numpy() == "L1_0"
    np.testing.assert_allclose(layer.face_color[inner][0], to_rgba(_ORDER_COLORS["L1_0"]))
    w.color_by.native.setFocus()
    qtbot.keyClicks(w.color_by.native, "chem")
    QApplication.processEvents()
    assert w.color_by.value == "chemical_order"
    local = layer.features["chemical_order"].to_numpy()
    ordered = local == "L1_0"
    assert ordered.sum() > 500
    np.testing.assert_allclose(layer.face_color[ordered], [to_rgba(_ORDER_COLORS["L1_0"])] *
                               ordered.sum())  # fmt: skip
    np.testing.assert_allclose(layer.face_color[local == ""][0], to_rgba("#8d99ae"))
    assert "L1_0" in w.legend.value and "A1" in w.legend.value
    shot = viewer.screenshot(str(tmp_path / "fept.png"), canvas_only=True, flash=False)
    assert shot[..., :3].mean() > 5


def test_analyze_command_reports_an_ordered_alloy(tmp_path, capsys):
    """``napari-aet analyze`` of an L1_0 FePt model: the note, analysis.json's chemical order,
    the features in atoms.csv, figures/chemical_order.png (the (001) layers)."""
    import json

    from napari_aet.cli import main
    from napari_aet.io import read_atoms, write_atoms

    write_atoms(tmp_path / "fept.csv", _ordered("L1_0", "Fe,Pt", swap=0.05))
    main(["analyze", str(tmp_path / "fept.csv"), "--out", str(tmp_path / "out"), "--element",
          "Fe,Pt"])  # fmt: skip
    said = capsys.readouterr()
    assert "chemically ordered: L1_0" in said.out + said.err  # a note
    chem = json.loads((tmp_path / "out" / "analysis.json").read_text())["chemical_order"]
    assert chem["phase"] == "L1_0" and chem["grains"][0]["S_L1_0"] == pytest.approx(0.9, abs=0.06)
    f = read_atoms(tmp_path / "out" / "atoms.csv").features
    assert {"chemical_order", "order_variant"} <= set(f.columns)
    assert (tmp_path / "out" / "figures" / "chemical_order.png").stat().st_size > 10_000
