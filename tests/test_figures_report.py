"""Publication figures of a run, `napari-aet figures`, and the HTML report."""

import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from napari_aet.analysis import analyze_structure
from napari_aet.cli import main
from napari_aet.figures import (
    RUN_FIGURES,
    crystal_direction_projections,
    project_model_along,
    stacking_layers_figure,
)
from napari_aet.io import TiltSeries, write_atoms, write_tilt_series
from napari_aet.simulate import build_structure, simulate_tilt_series

PX = 0.358


def _alignment_record(angles):
    """An alignment.json of 7 tilts: image 2 held out of focus (twice the median width),
    image 5's angle corrected by 0.5 deg, shifts of up to 2 px."""
    n = len(angles)
    change = np.zeros(n)
    change[5] = 0.5
    fit = change.copy()
    fit[2] = -0.6
    widths = np.full(n, 0.25)
    widths[2] = 0.5
    return {
        "tilt_axis_angle_deg": 1.5,
        "angles_in_deg": list(angles),
        "angles_refined_deg": list(angles + change),
        "shifts_px_row_col": np.column_stack([np.linspace(-2, 2, n), np.zeros(n)]).tolist(),
        "significance": {
            "k_sigma": 3.0,
            "angle_changes_fit_deg": list(fit),
            "angle_sigma_deg": [0.05] * 2 + [1.0] + [0.05] * (n - 3),
        },
        "projection_matching": {"image_width_A": list(widths)},
    }


def test_alignment_figure_shows_the_changes_their_bar_and_the_images_out_of_focus():
    from napari_aet.figures import plot_alignment

    angles = np.linspace(-60, 60, 7)
    record = _alignment_record(angles)
    fig = plot_alignment(record)
    angle_ax, shift_ax, width_ax = fig.axes[:3]
    applied = [line for line in angle_ax.lines if line.get_label() == "applied"][0]
    np.testing.assert_allclose(applied.get_ydata(), np.eye(7)[5] * 0.5)
    held = [line for line in width_ax.lines if line.get_label() == "out of focus (held)"][0]
    np.testing.assert_allclose(held.get_xdata(), [angles[2]])
    assert "+1.50" in angle_ax.get_title()
    np.testing.assert_allclose(shift_ax.lines[0].get_ydata(), np.linspace(-2, 2, 7))
    # without the width check (an older record, or shifts only): two panels
    del record["projection_matching"], record["significance"]
    assert len(plot_alignment(record).axes) == 2


def test_curves_over_the_tilt_angle_follow_the_angle_in_a_file_in_acquisition_order():
    # a dose-symmetric file (0, +20, -20, +40, ...): the lines join neighbouring angles, not
    # the images in the order they were taken (which would zigzag across the plot)
    from napari_aet.figures import plot_alignment, plot_r_factors

    angles = np.linspace(-60, 60, 7)
    record = _alignment_record(angles)
    order = np.array([3, 4, 2, 5, 1, 6, 0])
    shuffled = {
        **record,
        "angles_in_deg": list(np.asarray(record["angles_in_deg"])[order]),
        "angles_refined_deg": list(np.asarray(record["angles_refined_deg"])[order]),
        "shifts_px_row_col": np.asarray(record["shifts_px_row_col"])[order].tolist(),
    }
    rows = plot_alignment(shuffled).axes[1].lines[0]
    np.testing.assert_allclose(rows.get_xdata(), angles)
    np.testing.assert_allclose(rows.get_ydata(), np.linspace(-2, 2, 7))
    r = plot_r_factors(angles[order], np.linspace(0.1, 0.4, 7)[order]).axes[0].lines[0]
    np.testing.assert_allclose(r.get_xdata(), angles)
    np.testing.assert_allclose(r.get_ydata(), np.linspace(0.1, 0.4, 7))
    # the measured / reprojected panels: five tilts spread over the angles, left to right
    from napari_aet.figures import measured_vs_reprojected_figure

    images = np.random.default_rng(0).random((7, 16, 16))
    fig = measured_vs_reprojected_figure(images, images * 0.9, angles[order], pixel_size_A=PX)
    titles = [ax.get_title() for ax in fig.axes[:5]]
    assert titles == ["-60°", "-20°", "+0°", "+20°", "+60°"], titles


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as `napari-aet run` leaves it: atoms.csv + analysis.json with strain,
    the aligned series and the validate outputs."""
    out = tmp_path_factory.mktemp("run")
    atoms = build_structure("twinned dumbbell", radius_A=9.0, shape_px=(96, 96), seed=3)
    res = analyze_structure(atoms, strain=True)
    write_atoms(out / "atoms.csv", res.model)
    (out / "analysis.json").write_text(json.dumps(res.summary, default=float))
    angles = np.linspace(-60, 60, 7)
    sim = simulate_tilt_series(atoms, angles, shape_px=(96, 96), seed=0)
    write_tilt_series(out / "align" / "aligned_tilt_series.h5", TiltSeries(sim.data, angles, PX))
    aligned = str(out / "align" / "aligned_tilt_series.h5")
    (out / "align" / "alignment.json").write_text(json.dumps(_alignment_record(angles)))
    rc = main(["-q", "validate", str(out / "atoms.csv"), aligned, "--out", str(out / "validate")])
    assert rc == 0
    return out


def test_projection_along_a_crystal_direction_shows_columns():
    # a perfect fcc cube seen along [001] stacks atoms into columns: few bright pixels;
    # along a generic direction they spread out
    a = 3.912
    g = np.arange(6) * a
    pos = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    pos = np.vstack(
        [pos, pos + [0, a / 2, a / 2], pos + [a / 2, 0, a / 2], pos + [a / 2, a / 2, 0]]
    )
    along, _ = project_model_along(pos, [1, 0, 0])
    generic, _ = project_model_along(pos, [1, 0.37, 0.21])
    single, _ = project_model_along(pos[:1], [1, 0, 0])
    assert along.max() == pytest.approx(6 * single.max(), rel=0.02)  # 6 atoms per column
    assert generic.max() < 0.6 * along.max()
    fig = crystal_direction_projections(pos, np.eye(3)[:, ::-1])
    assert len(fig.axes) == 4


def test_stacking_panel_refuses_absent_layers(run_dir):
    from napari_aet.io import read_atoms

    m = read_atoms(run_dir / "atoms.csv")
    normal = json.loads((run_dir / "analysis.json").read_text())["stacking_normal_zyx"]
    with pytest.raises(ValueError, match="no atoms in layers"):
        stacking_layers_figure(m.positions, m.features["layer"], normal, center_layer=999)


@pytest.mark.slow
def test_cli_figures_writes_every_figure_and_the_report(run_dir):
    rc = main(["-q", "figures", str(run_dir), "--formats", "png,svg,pdf", "--dpi", "100"])
    assert rc == 0
    fig_dir = run_dir / "figures"
    # no ORR relation in this run, g(r) is for amorphous particles only, grains for multiply
    # twinned ones (the dumbbell's twin planes are parallel)
    skip = ("facet_orr", "rdf", "voronoi_motifs", "grains", "chemical_order", "composition_depth")
    drawn = [n for n in RUN_FIGURES if n not in skip]
    for name in drawn:
        png = fig_dir / f"{name}.png"
        assert png.exists(), name
        img = mpimg.imread(png)
        assert img.shape[0] > 150 and img.shape[1] > 150, name
        assert img[..., :3].std() > 0.02, f"{name} is blank"
        assert (fig_dir / f"{name}.svg").stat().st_size > 1000
        assert (fig_dir / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    page = (run_dir / "report.html").read_text()
    assert page.count("<img ") == len(drawn)
    assert "facet_orr not drawn" in page
    assert "grains not drawn: not a multiply twinned particle" in page
    assert "chemical_order not drawn: not a two-element alloy" in page
    assert "composition_depth not drawn: one element" in page
    assert "mean R-factor" in page and "twin-boundary layers" in page


def test_cli_figures_skips_what_the_run_lacks(tmp_path, run_dir, capsys):
    (tmp_path / "atoms.csv").write_bytes((run_dir / "atoms.csv").read_bytes())
    rc = main(["figures", str(tmp_path), "--formats", "png", "--dpi", "60"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "skipped r_factor" in out and "skipped measured_vs_reprojected" in out
    assert "skipped alignment: no align/alignment.json" in out
    assert (tmp_path / "figures" / "atoms_stacking.png").exists()
    assert main(["figures", str(tmp_path / "none")]) == 1
    assert main(["figures", str(tmp_path), "--formats", "gif"]) == 1
    assert main(["figures", str(tmp_path), "--only", "nope"]) == 1


def test_values_to_rgba_maps_limits_clips_and_greys_missing_values():
    from matplotlib import colormaps

    from napari_aet.figures import values_to_rgba
    from napari_aet.figures._panels import NAN_COLOR

    rgba = values_to_rgba([-0.02, 0.0, 0.02, 0.5, np.nan], (-0.02, 0.02), "RdBu_r")
    cmap = colormaps["RdBu_r"]
    np.testing.assert_allclose(rgba[0], cmap(0.0))
    np.testing.assert_allclose(rgba[1], cmap(0.5))
    np.testing.assert_allclose(rgba[2], cmap(1.0))
    np.testing.assert_allclose(rgba[3], cmap(1.0))  # clipped
    np.testing.assert_allclose(rgba[4], NAN_COLOR)
