"""ORR activity from surface local strain through a user-supplied relation."""

import json

import numpy as np
import pytest

from napari_aet.analysis import (
    analyze_structure,
    facet_summary,
    gaussian_map,
    orr_activity,
    read_orr_relation,
)
from napari_aet.core.atoms import AtomModel
from napari_aet.simulate import fcc_particle

# a made-up table for the tests (NOT physical numbers): two straight lines
TABLE = """# source: test table, not physical
# strain: percent
# activity: ln(j/j_Pt(111))
facet,strain,activity
111,-2,-1.0
111,0,0.0
111,2,1.0
100,-2,-3.0
100,2,-1.0
"""


@pytest.fixture
def table(tmp_path):
    p = tmp_path / "orr.csv"
    p.write_text(TABLE)
    return p


def test_relation_reproduces_its_source_points_with_units_made_explicit(table):
    rel = read_orr_relation(table)
    assert rel.source == "test table, not physical"
    ln10 = np.log(10)
    # percent -> fraction, ln -> log10
    np.testing.assert_allclose(rel.activity([-0.02, 0.0, 0.02], "111"), np.array([-1, 0, 1]) / ln10)
    np.testing.assert_allclose(rel.activity([-0.02, 0.02], "{100}"), np.array([-3, -1]) / ln10)
    assert rel.activity([0.0], "100")[0] == pytest.approx(-2 / ln10)  # linear in between
    assert np.isnan(rel.activity([0.05], "111")[0])  # no extrapolation


def test_bad_tables_are_refused_with_the_fix(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("facet,strain,activity\n111,0,0\n")
    with pytest.raises(ValueError, match="# source"):
        read_orr_relation(p)
    p.write_text("# source: x\nfacet,strain\n111,0\n")
    with pytest.raises(ValueError, match="activity"):
        read_orr_relation(p)


def test_orr_on_an_expanded_crystal_follows_the_facet_curves(table):
    # a crystal expanded by 1 %: every facet atom has local strain 0.01 and the curve's value
    pts = fcc_particle(radius_A=14, shape="sphere", seed=1) * 1.01
    res = analyze_structure(AtomModel(pts), strain=True, orr_relation=table)
    f = res.model.features
    ln10 = np.log(10)
    on111, on100 = f["facet"] == "111", f["facet"] == "100"
    assert on111.any() and on100.any()
    np.testing.assert_allclose(f.loc[on111, "orr_activity"], 0.5 / ln10, atol=1e-6)
    np.testing.assert_allclose(f.loc[on100, "orr_activity"], -1.5 / ln10, atol=1e-6)
    assert f.loc[~(on111 | on100), "orr_activity"].isna().all()
    s = res.summary["facets"]
    assert s["111"]["local_strain_mean"] == pytest.approx(0.01, abs=1e-6)
    assert s["both"]["n_atoms"] == s["111"]["n_atoms"] + s["100"]["n_atoms"]
    assert res.summary["orr_relation_source"] == "test table, not physical"
    json.dumps(res.summary, default=float)  # analysis.json-ready
    assert facet_summary(f.drop(columns=["facet"])) == {}
    with pytest.raises(ValueError, match="strain first"):
        orr_activity(f.drop(columns=["local_strain"]), read_orr_relation(table))


def test_gaussian_map_of_a_constant_is_that_constant():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 20, size=(300, 3))
    grid, origin = gaussian_map(p, np.full(300, 0.7), sigma_A=2.7, spacing_A=1.0)
    assert np.nanmax(np.abs(grid - 0.7)) < 1e-6
    assert np.isnan(grid).any() and np.isfinite(grid).sum() > 1000
    np.testing.assert_allclose(origin, p.min(0) - 5.4)


def test_cli_analyze_with_orr(tmp_path, table):
    from napari_aet.cli import main
    from napari_aet.io import read_atoms, write_atoms

    pts = fcc_particle(radius_A=12, shape="sphere", seed=2) * 1.005 + 40
    write_atoms(tmp_path / "a.csv", AtomModel(pts))
    assert (
        main(
            [
                "-q",
                "analyze",
                str(tmp_path / "a.csv"),
                "--out",
                str(tmp_path / "o"),
                "--orr",
                str(table),
                "--no-strain",
            ]
        )
        == 1
    )  # fmt: skip  (the activity needs the strain analysis)
    assert main(["-q", "analyze", str(tmp_path / "a.csv"), "--out", str(tmp_path / "o"),
                 "--strain", "--orr", str(table)]) == 0  # fmt: skip
    summary = json.loads((tmp_path / "o" / "analysis.json").read_text())
    assert summary["facets"]["111"]["orr_activity_mean"] == pytest.approx(
        0.25 / np.log(10), abs=1e-4
    )
    assert "orr_activity" in read_atoms(tmp_path / "o" / "atoms.csv").features.columns
