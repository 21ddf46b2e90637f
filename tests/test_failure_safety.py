"""Bad input and faults: each case names the problem and the fix, and no good result changes.

Every command case runs into an output folder that already holds a "good" result; after the
failure the folder must be byte-for-byte as it was, with no partial staging folder beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from napari_aet.cli import main
from napari_aet.core.atoms import AtomModel
from napari_aet.io import (
    TiltSeries,
    read_tilt_series,
    write_atoms,
    write_tilt_series,
    write_volume,
)
from napari_aet.simulate import fcc_particle

# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small valid tilt series (9 x 48 x 48, 0.5 A), an atom file and a volume on disk."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    data = rng.uniform(1.0, 2.0, (9, 48, 48)).astype(np.float32)
    angles = np.linspace(-60, 60, 9)
    write_tilt_series(d / "series.h5", TiltSeries(data, angles, 0.5))
    pts = fcc_particle(radius_A=8, shape="sphere", seed=1) + 12.0
    write_atoms(d / "atoms.csv", AtomModel(pts))
    np.save(d / "zero_support.npy", np.zeros((48, 48, 48), np.uint8))
    write_volume(d / "zero_tomogram.h5", np.zeros((40, 40, 40), np.float32), voxel_size_A=0.5)
    return d


def _snapshot(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def good_out(tmp_path):
    """An output folder holding a previous good result."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("atoms.csv", "tomogram.h5", "analysis.json", "rfactor.json"):
        (out / name).write_text(f"good {name}\n")
    (out / "figures").mkdir()
    (out / "figures" / "old.png").write_bytes(b"\x89PNG good")
    return out


def _run(argv, capsys):
    rc = main(["-q", *argv])
    return rc, capsys.readouterr().err


def _unchanged(out: Path, before: dict) -> None:
    assert _snapshot(out) == before
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name]


# ---------------------------------------------------------- options out of their range

S, A = "{series}", "{atoms}"
OPTION_CASES = [
    (["recon", S, "--iterations", "0"], "--iterations 0 is out of range"),
    (["recon", S, "--rfree", "1.5"], "--rfree 1.5 is out of range"),
    (["recon", S, "--oversampling", "0.5"], "--oversampling 0.5"),
    (["recon", S, "--pixel-size", "0"], "--pixel-size 0"),
    (["recon", S, "--pixel-size", "nan"], "--pixel-size nan"),
    (["align", S, "--rounds", "-1"], "--rounds -1"),
    (["align", S, "--tilt-axis", "400"], "--tilt-axis 400"),
    (["align", S, "--tilt-axis", "sideways"], "--tilt-axis sideways"),
    (["align", S, "--lowpass", "-2"], "--lowpass -2"),
    (["align", S, "--recon-iterations", "0"], "--recon-iterations 0"),
    (["trace", "{tomo}", "--voxel-size", "0"], "--voxel-size 0"),
    (["trace", "{tomo}", "--min-distance", "0"], "--min-distance 0"),
    (["trace", "{tomo}", "--rounds", "-3"], "--rounds -3"),
    (["analyze", A, "--lattice-constant", "0.39"], "--lattice-constant 0.39"),
    (["analyze", A, "--cutoff", "-1"], "--cutoff -1"),
    (["analyze", A, "--element", "Xx"], "--element Xx: 'Xx' is not a chemical symbol"),
    (["analyze", A, "--orr", "{atoms}", "--no-strain"], "--orr needs the strain analysis"),
    (["simulate", "--vacancies", "1.5"], "--vacancies 1.5"),
    (["simulate", "--size", "4"], "--size 4"),
    (["simulate", "--pixel-size", "-1"], "--pixel-size -1"),
    (["simulate", "--structure", "fcc", "--element", "Pt,Qq"], "--element Pt,Qq: 'Qq' is not"),
    (["augment", "{tomo}", "--tile", "4"], "--tile 4"),
    (["validate", A, S, "--blur", "-1"], "--blur -1"),
    (["refine", A, S, "--iterations", "0"], "--iterations 0"),
    (["precision", A, S, "--frozen-phonons", "0"], "--frozen-phonons 0"),
    (["precision", A, S, "--energy", "1e6"], "--energy 1e+06"),
]


@pytest.mark.parametrize("argv, message", OPTION_CASES, ids=[" ".join(c[0]) for c in OPTION_CASES])
def test_option_out_of_range_is_refused_and_nothing_changes(argv, message, files, good_out, capsys):
    subs = {
        "{series}": str(files / "series.h5"),
        "{atoms}": str(files / "atoms.csv"),
        "{tomo}": str(files / "zero_tomogram.h5"),
    }
    argv = [subs.get(a, a) for a in argv] + ["--out", str(good_out)]
    before = _snapshot(good_out)
    rc, err = _run(argv, capsys)
    assert rc == 1 and message in err, err
    _unchanged(good_out, before)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "x.h5", "--recon-iterations", "0"], "--recon-iterations 0"),
        (["run", "x.h5", "--workers", "0"], "--workers 0"),
        (["run", "x.h5", "--figure-dpi", "5"], "--figure-dpi 5"),
        (["train", "--data", "d", "--lr", "5"], "--lr 5"),
        (["train", "--data", "d", "--epochs", "0"], "--epochs 0"),
        (["figures", ".", "--dpi", "100000"], "--dpi 100000"),
    ],
)
def test_more_options_out_of_range(argv, message, tmp_path, capsys):
    if "--out" not in argv and argv[0] != "figures":
        argv = [*argv, "--out", str(tmp_path / "o")]
    rc, err = _run(argv, capsys)
    assert rc == 1 and message in err, err
    assert not (tmp_path / "o").exists()


def test_figures_refuses_unknown_formats(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    rc, err = _run(["figures", str(tmp_path / "run"), "--formats", "bmp"], capsys)
    assert rc == 1 and "png, svg, pdf" in err


# ------------------------------------------------------------ data that cannot give a result


def _series(tmp_path, data=None, angles=None, **attrs):
    data = np.random.default_rng(1).uniform(1, 2, (7, 32, 32)) if data is None else data
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as h5:
        d = h5.create_dataset("tilt_series", data=np.asarray(data, np.float32))
        for k, v in attrs.items():
            d.attrs[k] = v
        if angles is not None:
            h5.create_dataset("angles_deg", data=np.asarray(angles, float))
    return path


@pytest.mark.parametrize(
    "angles, message",
    [
        ([0.0] * 7, "are all 0 degrees"),
        ([-30, -10, 10, 30, -30, -10, 10], "a series taken twice"),
        ([-30, -20, -10, 0, 10, 20], "give 6 tilt angles but the stack has 7"),
        ([-400, -60, -30, 0, 30, 60, 100], "beyond a full turn"),
        ([0, 60, 120, 180, 240, 300, 365], "beyond a full turn"),
        ([-30, -20, -10, np.nan, 10, 20, 30], "NaN"),
    ],
)
def test_angles_that_cannot_be_a_tilt_series(angles, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        read_tilt_series(_series(tmp_path), angles=np.asarray(angles, float))


def test_angles_that_look_like_radians_warn(tmp_path):
    with pytest.warns(UserWarning, match="radians"):
        read_tilt_series(_series(tmp_path), angles=np.deg2rad(np.linspace(-60, 60, 7)))


def test_blank_images_are_refused(tmp_path):
    data = np.random.default_rng(1).uniform(1, 2, (7, 32, 32))
    data[3] = 0.0
    with pytest.raises(ValueError, match=r"image\(s\) \[3\] of 7 are blank"):
        read_tilt_series(_series(tmp_path, data), angles="-60:60:20")
    with pytest.raises(ValueError, match="blank"):
        read_tilt_series(_series(tmp_path, np.zeros((7, 32, 32))), angles="-60:60:20")


def test_nan_pixels_name_the_cli_option(tmp_path):
    data = np.random.default_rng(1).uniform(1, 2, (7, 32, 32))
    data[2, 3, 4] = np.nan
    with pytest.raises(ValueError, match="--fill-nans"):
        read_tilt_series(_series(tmp_path, data), angles="-60:60:20")
    ts = read_tilt_series(_series(tmp_path, data), angles="-60:60:20", nan_policy="fill")
    assert np.isfinite(ts.data).all()


@pytest.mark.parametrize(
    "unit, factor", [("nm", 10.0), ("nanometre", 10.0), ("Å", 1.0), ("pm", 0.01)]
)
def test_known_pixel_size_units_are_converted(unit, factor, tmp_path):
    ts = read_tilt_series(
        _series(tmp_path, pixel_size=0.05, pixel_size_unit=unit), angles="-60:60:20"
    )
    assert ts.pixel_size_A == pytest.approx(0.05 * factor)


@pytest.mark.parametrize("unit", ["furlong", "px", "inch"])
def test_unknown_pixel_size_units_are_refused(unit, tmp_path):
    with pytest.raises(ValueError, match=f"unknown pixel_size_unit '{unit}'"):
        read_tilt_series(_series(tmp_path, pixel_size=0.05, pixel_size_unit=unit), angles="0")


def test_a_missing_angles_file_is_named_as_missing(tmp_path):
    for given in ("angles/tilts.tlt", "tilts.tlt", str(tmp_path / "none.txt")):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            read_tilt_series(_series(tmp_path), angles=given)


def test_a_truncated_tiff_is_called_truncated(tmp_path):
    import tifffile

    data = np.random.default_rng(0).uniform(1, 2, (10, 64, 64)).astype(np.float32)
    tifffile.imwrite(tmp_path / "full.tif", data, imagej=True)
    raw = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: len(raw) // 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="truncated"):
            read_tilt_series(tmp_path / "cut.tif", angles="-45:45:10")


def test_validate_refuses_no_atoms_and_atoms_outside_the_images(files, tmp_path):
    from napari_aet.analysis import r_factor

    ts = read_tilt_series(files / "series.h5")
    with pytest.raises(ValueError, match="no atoms"):
        r_factor(np.zeros((0, 3)), ts.data, ts.angles_deg, pixel_size_A=0.5)
    far = np.full((20, 3), 500.0)
    with pytest.raises(ValueError, match="project outside"):
        r_factor(far, ts.data, ts.angles_deg, pixel_size_A=0.5)


def test_recon_with_an_empty_support_leaves_the_good_tomogram(files, good_out, capsys):
    before = _snapshot(good_out)
    argv = ["recon", str(files / "series.h5"), "--support", str(files / "zero_support.npy")]
    rc, err = _run([*argv, "--iterations", "2", "--out", str(good_out)], capsys)
    assert rc == 1 and "support mask" in err and "empty" in err
    _unchanged(good_out, before)


def test_trace_of_a_blank_tomogram_leaves_the_good_trace(files, good_out, capsys):
    before = _snapshot(good_out)
    rc, err = _run(["trace", str(files / "zero_tomogram.h5"), "--out", str(good_out)], capsys)
    assert rc == 1 and "the tomogram is blank" in err
    _unchanged(good_out, before)


def test_out_that_is_a_file_fails_before_any_work(files, tmp_path, capsys):
    target = tmp_path / "result"
    target.write_text("not a folder")
    rc, err = _run(["analyze", str(files / "atoms.csv"), "--out", str(target)], capsys)
    assert rc == 1 and "is a file, not a folder" in err
    assert target.read_text() == "not a folder"


def test_a_command_that_crashes_midway_leaves_the_previous_result(
    files, good_out, capsys, monkeypatch
):
    import napari_aet.workflows.atom_stages as io_mod  # where the workflow looks it up

    def broken(path, model):  # write half a file, then fail, as a full disk would
        Path(path).write_text("z,y,x\n1,")
        raise OSError("No space left on device")

    monkeypatch.setattr(io_mod, "write_atoms", broken)
    before = _snapshot(good_out)
    rc, err = _run(["analyze", str(files / "atoms.csv"), "--out", str(good_out)], capsys)
    assert rc == 1 and "No space left" in err
    _unchanged(good_out, before)


def test_ctrl_c_is_a_clean_cancel_with_exit_130(files, good_out, capsys, monkeypatch):
    import napari_aet.workflows.atom_stages as analysis

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis, "analyze_structure", interrupted)
    before = _snapshot(good_out)
    rc, err = _run(["analyze", str(files / "atoms.csv"), "--out", str(good_out)], capsys)
    assert rc == 130 and "cancelled" in err and "Traceback" not in err
    _unchanged(good_out, before)


def test_a_successful_command_replaces_its_outputs_with_readable_files(files, good_out, capsys):
    old = os.umask(0o022)
    try:
        rc, _ = _run(["analyze", str(files / "atoms.csv"), "--out", str(good_out)], capsys)
    finally:
        os.umask(old)
    assert rc == 0
    assert (good_out / "atoms.csv").read_text() != "good atoms.csv\n"
    for name in ("atoms.csv", "atoms.h5", "analysis.json"):
        assert (good_out / name).stat().st_mode & 0o777 == 0o644, name
    assert (good_out / "tomogram.h5").read_text() == "good tomogram.h5\n"  # not ours: kept
    json.loads((good_out / "analysis.json").read_text())


def test_analyze_checks_memory_before_a_huge_model(files, good_out, capsys, monkeypatch):
    import napari_aet.core.memory as memory

    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 100_000)
    before = _snapshot(good_out)
    rc, err = _run(["analyze", str(files / "atoms.csv"), "--out", str(good_out)], capsys)
    assert rc == 1 and "needs about" in err and "subset" in err
    _unchanged(good_out, before)


def test_figures_failing_midway_leave_no_empty_png(files, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "figures" / "old.png").write_bytes(b"\x89PNG good")
    pos = np.random.default_rng(0).uniform(0, 20, (50, 3))
    layer = pd.DataFrame({"layer": np.arange(50) % 5 - 2})
    write_atoms(run / "atoms.csv", AtomModel(pos, layer))
    (run / "analysis.json").write_text("{}")

    def broken(fig, stem, **kw):
        Path(f"{stem}.png").write_bytes(b"")
        raise KeyboardInterrupt

    import napari_aet.figures._panels as panels

    monkeypatch.setattr(panels, "save_figure", broken)
    rc, err = _run(["figures", str(run), "--only", "atoms_layers"], capsys)
    assert rc == 130
    assert [p.name for p in (run / "figures").iterdir()] == ["old.png"]
    assert not (run / "report.html").exists()


# ------------------------------------------------------------------------- resume and runs


@pytest.fixture
def fake_stages(monkeypatch):
    """Replace each stage's workflow by one that writes the stage's outputs and records the
    call; ``fail_at`` makes a stage fail with an error (or ``"interrupt"``)."""
    import napari_aet.workflows.pipeline as pipeline
    from napari_aet.workflows import StageResult

    calls: list[str] = []
    control = {"fail_at": None, "how": "error"}

    def fake_run_stage(stage, lay, settings, source, progress, cancel, second=None):
        if control["fail_at"] == stage:
            if control["how"] == "interrupt":
                raise KeyboardInterrupt
            raise ValueError(f"the {stage} input is broken")
        calls.append(stage)
        for p in lay.outputs(stage):
            if p.suffix in ("", ".html") and p.name == "figures":
                p.mkdir(parents=True, exist_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(
                    '{"r_mean": 0.1, "r_per_image": [0.1]}' if p.suffix == ".json" else "x"
                )
        return StageResult(stage, {}, [], f"{stage} done")

    monkeypatch.setattr(pipeline, "_run_stage", fake_run_stage)
    return calls, control


def test_resume_skips_finished_stages_and_reruns_what_an_input_change_invalidates(
    tmp_path, fake_stages
):
    from napari_aet.workflows import RunSettings, TraceSettings, run_pipeline

    calls, _ = fake_stages
    tilts = tmp_path / "t.h5"
    tilts.write_bytes(b"series one")
    out = tmp_path / "run"
    run_pipeline(tilts, out)
    first = list(calls)
    assert first == [
        "align",
        "recon",
        "augment",
        "trace",
        "refine",
        "analyze",
        "validate",
        "figures",
    ]
    calls.clear()
    run_pipeline(tilts, out)
    assert calls == []  # everything finished with the same input
    tilts.write_bytes(b"series two, changed")
    run_pipeline(tilts, out)
    assert calls == first  # the input changed: every stage again
    calls.clear()
    (out / "trace" / "atoms.csv").unlink()  # a finished stage's output was deleted
    run_pipeline(tilts, out)
    assert calls == ["trace", "refine", "analyze", "validate", "figures"]
    calls.clear()
    run_pipeline(tilts, out, RunSettings.for_element("Pt", trace=TraceSettings(min_distance_A=2.2)))
    assert calls == ["trace", "refine", "analyze", "validate", "figures"]  # a setting changed


@pytest.mark.parametrize("stage", ["recon", "trace", "analyze", "figures"])
def test_a_run_killed_at_any_stage_resumes_there(stage, tmp_path, fake_stages):
    from napari_aet.workflows import RunSettings, run_pipeline

    stages = RunSettings().stages()  # the defaults: the U-Net and the refine stage on
    assert "augment" in stages and "refine" in stages
    calls, control = fake_stages
    tilts = tmp_path / "t.h5"
    tilts.write_bytes(b"series")
    control.update(fail_at=stage, how="interrupt")
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(tilts, tmp_path / "run")
    done = list(calls)
    calls.clear()
    control["fail_at"] = None
    run_pipeline(tilts, tmp_path / "run")
    assert calls == list(stages[stages.index(stage) :])
    assert done == list(stages[: stages.index(stage)])


def test_a_failed_stage_names_its_cause_in_the_error_and_run_log(tmp_path, fake_stages):
    from napari_aet.workflows import StageFailed, run_pipeline

    _, control = fake_stages
    tilts = tmp_path / "t.h5"
    tilts.write_bytes(b"series")
    control.update(fail_at="trace", how="error")
    with pytest.raises(StageFailed, match="the trace input is broken"):
        run_pipeline(tilts, tmp_path / "run")
    log = (tmp_path / "run" / "run.log").read_text()
    assert "the trace input is broken" in log and "Traceback" in log


# ------------------------------------------------------------------ the editable atom model


def test_editable_model_refuses_non_finite_positions(tmp_path):
    from napari_aet.trace import EditableAtomModel

    m = EditableAtomModel(AtomModel(np.zeros((2, 3)) + [[0, 0, 0], [0, 0, 3]]), tmp_path / "a.h5")
    m.move(1, (0, 0, 3.1))  # a good edit, autosaved
    with pytest.raises(ValueError, match="finite"):
        m.move(0, (np.nan, 1, 2))
    with pytest.raises(ValueError, match="finite"):
        m.add((1, np.inf, 2))
    assert np.isfinite(EditableAtomModel.restore(tmp_path / "a.h5").model.positions).all()


def test_restore_skips_a_damaged_row_and_keeps_the_session(tmp_path):
    from napari_aet.trace import EditableAtomModel

    m = EditableAtomModel(AtomModel(np.array([[0.0, 0, 0], [0, 0, 3], [0, 3, 0]])), None)
    m.add((3.0, 3.0, 3.0))
    path = write_atoms(tmp_path / "autosave.csv", m.to_atom_model())
    lines = path.read_text().splitlines()
    row = next(i for i, ln in enumerate(lines) if ln.startswith("0.000000,0.000000,3.0"))
    lines[row] = "nan" + lines[row][len("0.000000") :]
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="skipped 1 atom"):
        back = EditableAtomModel.restore(path)
    assert back.n_atoms == 3 and back.model.metadata["dropped_invalid_rows"] == [1]
    assert back.n_manual_added == 1 and back.edit_log
