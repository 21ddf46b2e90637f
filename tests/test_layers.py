"""The package's structure: import-linter's layer and Qt contracts, typed settings shared by
the command line, the widgets and the pipeline, and one home for every run-folder path."""

import subprocess
import sys
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from napari_aet.cli import build_parser
from napari_aet.cli.align import settings_from_args as align_settings
from napari_aet.cli.run import settings_from_args as run_settings
from napari_aet.workflows import (
    AlignSettings,
    AnalyzeSettings,
    ReconSettings,
    RunLayout,
    RunSettings,
    TraceSettings,
)

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "2 kept, 0 broken" in res.stdout


def test_import_linter_catches_a_stage_importing_upwards(tmp_path):
    """The contract is not vacuous: a copy of the package where align imports trace breaks."""
    import shutil

    pkg = tmp_path / "napari_aet"
    shutil.copytree(ROOT / "napari_aet", pkg, ignore=shutil.ignore_patterns("resources"))
    with open(pkg / "align" / "_shifts.py", "a") as fh:
        fh.write("\nfrom ..trace import trace_atoms  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    exe = Path(sys.executable).with_name("lint-imports")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([str(exe)], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert res.returncode != 0 and "napari_aet.align._shifts -> napari_aet.trace" in res.stdout


def test_settings_are_frozen_and_typed():
    with pytest.raises(TypeError):
        AlignSettings(align_rounds=2)  # a misspelt setting is an error, not ignored
    with pytest.raises(FrozenInstanceError):
        ReconSettings().iterations = 5


def test_command_defaults_are_the_settings_defaults(tmp_path):
    parse = build_parser().parse_args
    assert align_settings(parse(["align", "t.h5", "--out", str(tmp_path)])) == AlignSettings()
    run = run_settings(parse(["run", "t.h5", "--out", str(tmp_path)]))
    assert run == RunSettings.for_element("Pt")  # `napari-aet run` and run_pipeline agree
    assert run.align.rounds == AlignSettings().rounds and run.augment.weights == "auto"
    assert run.refine.restraints  # the restrained final positions are the default ...
    off = run_settings(parse(["run", "t.h5", "--out", str(tmp_path), "--no-refine-restraints"]))
    assert not off.refine.restraints  # ... and a flag leaves them
    refine = parse(["refine", "a.csv", "t.h5", "--out", str(tmp_path), "--no-restraints"])
    assert not refine.restraints
    analyze = parse(["analyze", "a.csv", "--out", str(tmp_path)])
    assert analyze.strain == AnalyzeSettings().strain and analyze.element == "Pt"
    trace = parse(["trace", "t.h5", "--out", str(tmp_path)])
    d = TraceSettings()
    assert (trace.smooth, trace.min_distance, trace.radius) == (
        d.smooth_sigma_A,
        d.min_distance_A,
        d.integration_radius_A,
    )


def test_widgets_start_from_the_settings(make_napari_viewer):
    from napari_aet.widgets import AlignWidget, ReconWidget, TraceWidget

    viewer = make_napari_viewer()
    a, r, t = AlignWidget(viewer), ReconWidget(viewer), TraceWidget(viewer)
    assert a.rounds.value == AlignSettings().rounds and a.lowpass.value == pytest.approx(2.08)
    assert r.iterations.value == ReconSettings().iterations
    assert t.min_distance.value == TraceSettings().min_distance_value() == 2.0


def test_run_layout_names_every_stage_output(tmp_path):
    lay = RunLayout(tmp_path)
    assert lay.aligned_series == tmp_path / "align" / "aligned_tilt_series.h5"
    assert lay.tomogram == tmp_path / "recon" / "tomogram.h5"
    assert lay.projections == tmp_path / "validate" / "projections.h5"
    for stage in RunSettings().stages():
        assert lay.outputs(stage)
    names = {f.name for f in fields(RunSettings)}
    assert set(RunSettings().stages()) <= names


def test_no_module_spells_out_run_folder_paths():
    """The run-folder layout lives in workflows/layout.py only."""
    spelled = []
    for f in (ROOT / "napari_aet").rglob("*.py"):
        if f.name == "layout.py":
            continue
        text = f.read_text()
        for needle in ('"aligned_tilt_series.h5"', '"projections.h5"', '"tomogram_augmented.h5"'):
            if needle in text:
                spelled.append(f"{f.relative_to(ROOT)}: {needle}")
    assert not spelled, spelled
