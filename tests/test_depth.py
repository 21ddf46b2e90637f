"""Composition by depth: each element's share from the surface inward, on particles built
with a known profile (a core-shell particle, a random alloy) and the depth of a sphere's atoms."""

import numpy as np
import pytest
from conftest import structure_dock_analysed

from napari_aet.analysis import analyze_structure, atom_depths, composition_by_depth
from napari_aet.analysis._depth import MEASURED_SIGNIFICANCE
from napari_aet.simulate import build_structure
from napari_aet.trace._verdicts import HELD_VERDICT_SIGNIFICANCE


def _alloy(radius_A=16.0, seed=3):
    return build_structure(
        "fcc", element="Pt,Ni", radius_A=radius_A, seed=seed, jitter_A=0.05, shape="sphere"
    )


def test_a_spheres_atoms_lie_as_deep_as_their_distance_from_its_surface():
    m = build_structure("fcc", element="Pt", radius_A=18.0, seed=1, jitter_A=0.0, shape="sphere")
    pos = m.positions
    r = np.linalg.norm(pos - pos.mean(axis=0), axis=1)
    depth = atom_depths(pos, 2.77)
    # the outermost atoms at about 0, each atom about (its sphere's radius - r) deep: within
    # one bond (the facets of a cut crystal are not a sphere)
    assert np.median(depth[r > r.max() - 1.0]) < 1.0
    np.testing.assert_allclose(depth, np.clip(r.max() - r, 0, None), atol=2.77)
    assert depth[np.argmin(r)] > 0.8 * r.max() - 2.77


def test_a_core_shell_particle_is_found_richer_at_its_surface():
    m = _alloy()
    pos = m.positions
    r = np.linalg.norm(pos - pos.mean(axis=0), axis=1)
    species = np.where(r > r.max() - 3.0, "Pt", "Ni")  # one Pt shell about a Ni core
    out = composition_by_depth(pos, species, 2.70)
    first = out["shells"][0]
    assert first["n_atoms"] > 100 and first["Pt"]["share"] > 0.9
    assert out["shells"][-1]["Ni"]["share"] == pytest.approx(1.0)
    c = out["surface_vs_inner"]["Pt"]
    assert c["surface_share"] > 0.9 and c["inner_share"] < 0.05 and c["z"] > 10
    assert len(out["notes"]) == 1 and out["notes"][0].startswith("Pt is richer at the surface")
    # the shells run from 0 at the surface inward, every atom in one
    assert out["shell"].min() == 0 and sum(s["n_atoms"] for s in out["shells"]) == len(pos)
    # atoms without an element (added by hand) count in the shells but name no element
    species[:3] = ""
    assert composition_by_depth(pos, species, 2.70)["elements"] == ["Ni", "Pt"]


def test_a_random_alloy_has_no_profile_note_and_the_significance_is_reported():
    m = _alloy()
    species = m.features["element"].astype(str).to_numpy()
    assert set(species) == {"Pt", "Ni"}
    assert composition_by_depth(m.positions, species, 2.70)["notes"] == []
    sig = np.where(species == "Ni", 4.0, 12.0)
    out = composition_by_depth(m.positions, species, 2.70, sig)
    # no profile to note, but Ni measured below the refine stage's bar
    assert out["notes"] == [
        "Ni's atoms are measured to a median of 4.0 standard errors (below 5): some of them "
        "may be missed or misplaced, and Ni's shares by depth with them"
    ]
    assert MEASURED_SIGNIFICANCE == HELD_VERDICT_SIGNIFICANCE
    for e in ("Pt", "Ni"):
        assert abs(out["surface_vs_inner"][e]["z"]) < 3.0
        assert out["surface_vs_inner"][e]["inner_median_significance"] == (
            4.0 if e == "Ni" else 12.0
        )
    # a Ni-depleted core (Ni atoms missed inside, as a thick particle's faint atoms are) is
    # noted with the significance beside it
    pos = m.positions
    r = np.linalg.norm(pos - pos.mean(axis=0), axis=1)
    keep = ~((species == "Ni") & (r < 0.7 * r.max()))
    out = composition_by_depth(pos[keep], species[keep], 2.70, sig[keep])
    note = out["notes"][0]
    assert note.startswith("Ni is richer at the surface") and "a median of 4.0" in note


def test_analyze_structure_adds_the_profile_for_an_alloy_only():
    alloy = analyze_structure(_alloy(radius_A=14.0))
    assert "depth_shell" in alloy.model.features.columns
    prof = alloy.summary["composition_by_depth"]
    assert prof["elements"] == ["Ni", "Pt"] and len(prof["shells"]) >= 2
    single = analyze_structure(build_structure("fcc", element="Pt", radius_A=14.0, seed=1))
    assert single.summary["composition_by_depth"] is None
    assert "depth_shell" not in single.model.features.columns


def _core_shell():
    m = _alloy(radius_A=14.0)
    r = np.linalg.norm(m.positions - m.positions.mean(axis=0), axis=1)
    m.features["element"] = np.where(r > r.max() - 3.0, "Pt", "Ni")
    return m


def test_structure_dock_colours_a_core_shell_alloy_by_depth(make_napari_viewer, qtbot, tmp_path):
    """An analyst loads a Pt-shell / Ni-core particle's atoms, types the elements, presses
    Analyze and picks 'colour by' depth_shell with the keyboard: the status line says Pt is
    richer at the surface; the surface atoms take the colour map's first colour, the deepest
    its last."""
    from matplotlib import colormaps
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    viewer, layer, w = structure_dock_analysed(
        make_napari_viewer, qtbot, _core_shell(), "PtNi", "Pt,Ni"
    )
    assert "Pt is richer at the surface" in w.status.value
    # the dock's plots: the profile under the Q4/Q6 map and the layers' fits
    titles = [ax.get_title() for ax in w._figure.axes]
    assert any(t.startswith("composition by depth") for t in titles)
    w.color_by.native.setFocus()
    qtbot.keyClicks(w.color_by.native, "dep")
    QApplication.processEvents()
    assert w.color_by.value == "depth_shell"
    assert w.legend.value.startswith("depth_shell: the surface shell (yellow)")
    shell = layer.features["depth_shell"].to_numpy()
    cmap = colormaps["viridis_r"]
    np.testing.assert_allclose(layer.face_color[shell == 0][0], cmap(0.0))
    np.testing.assert_allclose(layer.face_color[shell == shell.max()][0], cmap(1.0))
    shot = viewer.screenshot(str(tmp_path / "ptni.png"), canvas_only=True, flash=False)
    assert shot[..., :3].mean() > 5
    # beneath the surface: 'show shells' 1:9 typed, the surface shell's atoms hidden
    qtbot.keyClicks(w.show_shells.native, "1:9")
    qtbot.keyClick(w.show_shells.native, Qt.Key_Return)
    QApplication.processEvents()
    inner = int((shell >= 1).sum())
    assert w.status.value == f"Showing {inner} of {len(shell)} atoms"
    shown = [ly for ly in viewer.layers if ly.visible and ly.name.startswith("PtNi")]
    assert sum(len(ly.data) for ly in shown) == inner
    core = viewer.screenshot(str(tmp_path / "ptni_core.png"), canvas_only=True, flash=False)
    assert core[..., :3].mean() > 5
    window = viewer.screenshot(str(tmp_path / "ptni_window.png"), canvas_only=False, flash=False)
    assert window.shape[1] > core.shape[1]


def test_analyze_command_writes_the_profile_and_its_figure(tmp_path):
    import json

    from napari_aet.cli import main
    from napari_aet.io import read_atoms, write_atoms

    write_atoms(tmp_path / "ptni.csv", _core_shell())
    main(["analyze", str(tmp_path / "ptni.csv"), "--out", str(tmp_path / "out"), "--element",
          "Pt,Ni"])  # fmt: skip
    prof = json.loads((tmp_path / "out" / "analysis.json").read_text())["composition_by_depth"]
    assert prof["surface_vs_inner"]["Pt"]["surface_share"] > 0.9
    assert prof["shells"][0]["Pt"]["share"] > 0.9
    assert "depth_shell" in read_atoms(tmp_path / "out" / "atoms.csv").features.columns
    assert (tmp_path / "out" / "figures" / "composition_depth.png").stat().st_size > 10_000
    # and the report's figure of the same folder
    assert main(["-q", "figures", str(tmp_path / "out"), "--only", "composition_depth",
                 "--formats", "png", "--dpi", "60"]) == 0  # fmt: skip
    assert "composition_depth.png" in (tmp_path / "out" / "report.html").read_text()


def test_a_model_in_the_wrong_units_is_refused_before_the_grid_is_made():
    m = _alloy(radius_A=10.0)
    with pytest.raises(MemoryError, match="check the model's units"):
        atom_depths(m.positions * 100.0, 2.70)  # units 100x off: a particle 100x too big
    with pytest.raises(ValueError, match="one element per atom"):
        composition_by_depth(m.positions, ["Pt"] * 3, 2.70)
