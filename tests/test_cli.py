import json

import numpy as np
import pytest

from napari_aet.cli import main
from napari_aet.io import read_atoms, read_tilt_series


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "simulate" in out and "info" in out


def test_simulate_writes_series_angles_truth_and_figure(tmp_path, capsys):
    out = tmp_path / "sim"
    rc = main(
        [
            "-q",
            "simulate",
            "--structure",
            "fcc",
            "--radius",
            "6",
            "--size",
            "64",
            "--angles",
            "-60:60:30",
            "--angle-error",
            "0.5",
            "--shift-error",
            "2",
            "--format",
            "mrc",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    ts = read_tilt_series(out / "tilt_series.mrc")
    assert ts.data.shape == (5, 64, 64)
    np.testing.assert_allclose(ts.angles_deg, [-60, -30, 0, 30, 60])
    assert ts.pixel_size_A == pytest.approx(0.358)
    truth = json.loads((out / "truth.json").read_text())
    assert len(truth["true_angles_deg"]) == 5
    assert not np.allclose(truth["true_angles_deg"], ts.angles_deg)
    assert np.abs(truth["shifts_px_row_col"]).max() <= 2
    atoms = read_atoms(out / "truth_atoms.csv")
    assert atoms.n_atoms == truth["n_atoms"] > 10
    assert atoms.metadata["provenance"]["command"] == "simulate"
    assert (out / "figures" / "tilt_series.png").stat().st_size > 10_000


def test_info_and_errors(tmp_path, capsys):
    p = tmp_path / "s.npy"
    np.save(p, np.random.default_rng(0).random((3, 16, 16), np.float32))
    assert main(["info", str(p)]) == 0
    assert "angles: unknown" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "missing.mrc")]) == 1
    assert "does not exist" in capsys.readouterr().err
    np.save(p, np.zeros((16, 16), np.float32))
    assert main(["info", str(p)]) == 1
    assert "2D" in capsys.readouterr().err


def test_bench_lists_the_scripts_and_refuses_unknown_ones(capsys):
    from napari_aet.cli import main

    assert main(["bench", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert {"augment", "run", "strain", "genfire", "trace"} <= set(names)
    assert main(["bench", "nope"]) == 1
    assert "choose one of" in capsys.readouterr().err


def test_the_runs_last_line_counts_the_final_atoms():
    """The refine stage adds and removes atoms: the last line gives the final count, the
    tracer's beside it where they differ (it gave the tracer's alone)."""
    from napari_aet.cli.run import done_line

    summary = {"n_atoms": 379, "n_atoms_traced": 360, "r_factor_mean": 0.0633,
               "r_factor_blur_A": 0.467, "twin_boundary_layers": [-1, 1]}  # fmt: skip
    line = done_line(summary, "out")
    assert line.startswith("pipeline done: 379 atoms (360 traced), mean R-factor 0.0633")
    assert "pipeline done: 200 atoms, " in done_line({"n_atoms": 200, "n_atoms_traced": 200}, ".")
    assert "12 atoms traced, mean R-factor n/a" in done_line({"n_atoms_traced": 12}, ".")
    held = done_line({"n_atoms": 200, "atoms_not_confirmed": "the model fits poorly"}, ".")
    assert held.splitlines()[1] == (
        "the atoms are the tracer's, not confirmed by the images: the model fits poorly"
    )
    cut = done_line({"n_atoms": 200, "n_atoms_outside_field": 9}, ".")
    assert "200 atoms, 9 of them outside some image's field, mean" in cut
