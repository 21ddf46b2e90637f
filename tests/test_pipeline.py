import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from napari_aet.cli import main
from napari_aet.core.threads import available_cpus
from napari_aet.io import read_atoms
from napari_aet.workflows import (
    AlignSettings,
    AugmentSettings,
    FiguresSettings,
    ReconSettings,
    RunSettings,
    StageFailed,
    run_batch,
    run_pipeline,
)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    assert (
        main(
            [
                "-q",
                "simulate",
                "--structure",
                "fcc",
                "--radius",
                "8",
                "--size",
                "72",
                "--angles=-70:70:10",
                "--shift-error",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out / "tilt_series.h5"


SETTINGS = RunSettings(
    align=AlignSettings(rounds=1),
    recon=ReconSettings(iterations=15),
    augment=None,  # trace the raw GENFIRE tomogram (fast)
    figures=FiguresSettings(formats=("png",), dpi=100),
)
#: for what a test checks about stages (failures, resuming, batches, which tomogram is
#: traced): no projection matching, no denoising (the dose rule's BM3D was a third of a quick
#: run) and no refine stage, the slowest parts on 2 cores
QUICK = replace(
    SETTINGS, align=AlignSettings(projection_matching=False, denoise="none"), refine=None
)


@pytest.mark.slow
def test_run_writes_everything_and_resumes(series, tmp_path):
    out = tmp_path / "run"
    summary = run_pipeline(series, out, SETTINGS)
    truth = read_atoms(series.parent / "truth_atoms.csv")
    atoms = read_atoms(out / "atoms.csv")
    assert abs(atoms.n_atoms - truth.n_atoms) <= 0.1 * truth.n_atoms
    assert {"layer", "stacking", "q4", "intensity"} <= set(atoms.features.columns)
    data = json.loads((out / "analysis.json").read_text())
    assert 0 < data["r_factor_mean"] < 0.5 and data["n_atoms_traced"] == atoms.n_atoms
    stages = {"align", "recon", "trace", "refine", "analyze", "validate", "figures"}
    assert set(summary["pipeline"]["stages"]) == stages
    assert (out / "figures" / "validate_r_factor.png").exists()
    assert (out / "figures" / "layers_111.png").exists() and (out / "report.html").exists()
    assert "exx" in atoms.features.columns  # the analysis includes strain
    assert "refine_shift_A" in atoms.features.columns  # analysed after the refine stage
    log_before = (out / "run.log").read_text()
    run_pipeline(series, out, SETTINGS)
    new = (out / "run.log").read_text()[len(log_before) :]
    assert new.count("already done, skipped") == 7
    # a changed setting reruns that stage and those after it, not the ones before
    run_pipeline(series, out, replace(SETTINGS, recon=ReconSettings(iterations=16)))
    newer = (out / "run.log").read_text()[len(log_before) + len(new) :]
    assert "align: already done" in newer and "recon: settings" in newer
    assert "trace: settings" in newer and "trace: already done" not in newer


def test_failed_stage_keeps_finished_ones_and_resumes(series, tmp_path, monkeypatch):
    import napari_aet.workflows.atom_stages as stages_mod

    out = tmp_path / "run"

    def broken(*a, **k):
        raise ValueError("simulated tracer failure")

    monkeypatch.setattr(stages_mod, "trace_atoms", broken)
    with pytest.raises(StageFailed, match="simulated tracer failure") as info:
        run_pipeline(series, out, QUICK)
    assert isinstance(info.value.__cause__, ValueError) and info.value.stage == "trace"
    assert (out / "recon" / "tomogram.h5").exists() and not (out / "atoms.csv").exists()
    log = (out / "run.log").read_text()
    assert "trace failed" in log and "Traceback" in log and "simulated tracer failure" in log
    assert not (out / "trace").exists()  # the failed stage left nothing
    monkeypatch.undo()
    run_pipeline(series, out, QUICK)
    log = (out / "run.log").read_text()
    assert "align: already done" in log and "recon: already done" in log
    assert (out / "atoms.csv").exists()


@pytest.mark.slow
def test_batch_isolates_failures(series, tmp_path):
    bad = tmp_path / "flat.npy"
    np.save(bad, np.zeros((16, 16), np.float32))  # a 2D file: the align stage refuses it
    results = run_batch([str(series), str(bad)], tmp_path / "batch", QUICK)
    assert results[str(series)] == "ok"
    assert results[str(bad)].startswith("stage 'align' failed")
    assert (tmp_path / "batch" / "tilt_series" / "atoms.csv").exists()
    assert json.loads((tmp_path / "batch" / "batch.json").read_text()) == results
    # Dask starts its worker processes with one thread (OMP_NUM_THREADS=1); a single worker
    # gets every CPU the process may use
    state = json.loads((tmp_path / "batch" / "tilt_series" / "pipeline.json").read_text())
    assert state["cpu_threads"] == available_cpus()


@pytest.mark.slow
def test_run_with_augment_traces_the_augmented_tomogram(series, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(StageFailed):  # a missing weights file fails at the augment stage
        run_pipeline(series, out, replace(QUICK, augment=AugmentSettings(str(tmp_path / "x.pt"))))
    assert (out / "recon" / "tomogram.h5").exists() and not (out / "trace").exists()
    state = json.loads((out / "pipeline.json").read_text())
    assert set(state["stages"]) == {"align", "recon"}
    run_pipeline(series, out, replace(QUICK, augment=AugmentSettings("fcc")))  # resumes
    assert "recon: already done" in (out / "run.log").read_text()
    state = json.loads((out / "pipeline.json").read_text())
    assert state["stages"]["trace"]["key"]["from"] == "augment"
    truth = read_atoms(series.parent / "truth_atoms.csv")
    atoms = read_atoms(out / "atoms.csv")
    assert abs(atoms.n_atoms - truth.n_atoms) <= 0.1 * truth.n_atoms


def test_align_stage_keeps_the_aligned_series_without_the_denoiser(series, tmp_path):
    """A denoiser smooths what the refine stage judges atoms by: when one ran, the align stage
    also writes the same alignment without it, on which the refine stage judges which atoms
    stay (``PositionRefineSettings.counts``)."""
    from napari_aet.io import read_tilt_series
    from napari_aet.workflows import RunLayout, SeriesSource, run_align

    lay = RunLayout(tmp_path / "run")
    plain = AlignSettings(denoise="none", projection_matching=False, tilt_axis="none",
                          center_of_mass=False, common_line=False)  # fmt: skip
    run_align(SeriesSource(str(series)), plain, lay.stage_dir("align"))
    assert lay.undenoised_series is None  # nothing denoised: the one series
    res = run_align(SeriesSource(str(series)), replace(plain, denoise="nlmeans"),
                    tmp_path / "run2" / "align")  # fmt: skip
    lay2 = RunLayout(tmp_path / "run2")
    assert lay2.undenoised_series.name == "aligned_tilt_series_undenoised.h5"
    assert "aligned_tilt_series_undenoised.h5" in res.written
    undenoised = read_tilt_series(lay2.undenoised_series).data
    np.testing.assert_allclose(undenoised, read_tilt_series(lay.aligned_series).data, atol=1e-3)
    assert not np.allclose(read_tilt_series(lay2.aligned_series).data, undenoised, atol=1e-2)
    # the refine stage repeats the recorded denoiser on its replicate (counts="auto")
    from napari_aet.align import recorded_denoiser

    assert recorded_denoiser(read_tilt_series(lay.aligned_series).metadata) is None
    again = recorded_denoiser(read_tilt_series(lay2.aligned_series).metadata)
    assert again is not None and again(undenoised[:1]).shape == undenoised[:1].shape
    # the recon stage reconstructs the counts (the denoiser can paint the wrong lattice)
    from napari_aet.workflows.pipeline import _recon_series

    def recon_of(layout, element="Pt", **recon):
        run = RunSettings.for_element(element, recon=ReconSettings(**recon))
        return Path(_recon_series(layout, run, first=True).path)

    assert recon_of(lay2) == lay2.undenoised_series
    assert recon_of(lay2, series="denoised") == lay2.aligned_series
    assert recon_of(lay) == lay.aligned_series
    # an alloy reconstructs the denoised series unless told otherwise (a light element's
    # faint atoms stand out of it)
    assert recon_of(lay2, "Fe,Pt") == lay2.aligned_series
    assert recon_of(lay2, "Fe,Pt", series="counts") == lay2.undenoised_series
    assert recon_of(lay, "Fe,Pt") == lay.aligned_series
    # a faint series (fewer than FAINT_COUNTS at its brightest columns, as the dose rule
    # recorded them) reconstructs the denoised series for one element too
    import json

    from napari_aet.workflows import recon_series_note
    from napari_aet.workflows.settings import FAINT_COUNTS

    record = lay2.file("align", "record")
    kept = json.loads(record.read_text())
    for peak, want in (
        (FAINT_COUNTS - 4, lay2.aligned_series),
        (FAINT_COUNTS, lay2.undenoised_series),
    ):
        record.write_text(
            json.dumps({**kept, "denoise": {**kept["denoise"], "brightest_counts": peak}})
        )
        assert recon_of(lay2) == want
        assert recon_of(lay2, series="counts") == lay2.undenoised_series
    note = recon_series_note("auto", "Pt", 6.0)
    assert "denoised aligned series (6 counts at the brightest columns (< 10)" in note
    # the run log says which and why

    assert "denoised aligned series (several elements" in recon_series_note("auto", "Fe,Pt")
    assert "counts before the denoiser (one element" in recon_series_note("auto", "Pt")
    assert recon_series_note("counts", "Fe,Pt").endswith("(--recon-series counts)")
    with pytest.raises(ValueError, match="recon series 'raw'"):
        ReconSettings(series="raw")


def test_images_left_out_rerun_the_alignment_on_resume():
    """The align stage's key holds the images left out, so a rerun with other ones aligns
    again (and so every later stage); without any, the key is as earlier run folders
    stored it (they resume unchanged)."""
    from napari_aet.workflows import SeriesSource
    from napari_aet.workflows.pipeline import stage_key

    plain = stage_key("align", SETTINGS, SeriesSource("tilts.h5"))
    assert "exclude" not in plain["series"]
    left = stage_key("align", SETTINGS, SeriesSource("tilts.h5", exclude=(12, 3, 12)))
    assert left["series"]["exclude"] == [3, 12] and left != plain
    assert stage_key("recon", SETTINGS, SeriesSource("tilts.h5", exclude=(3,))) == stage_key(
        "recon", SETTINGS, SeriesSource("tilts.h5")
    )


def test_summary_says_when_the_images_did_not_confirm_the_atoms(tmp_path):
    """A run whose refine stage held the traced positions (the images do not support the
    model: a tenth of the counts with faults, say) and whose validate stage found atoms cut by
    the field: both reach the run's summary (analysis.json, report, last line)."""
    from napari_aet.workflows.pipeline import gather

    (tmp_path / "refine").mkdir()
    why = "the undenoised counts do not support the atom model (median correlation 0.22)"
    (tmp_path / "refine" / "refine.json").write_text(json.dumps({"not_refined": why}))
    (tmp_path / "validate").mkdir()
    val = {"r_mean": 0.3, "r_per_image": [0.3], "outside_field": {"n_atoms": 7, "images": [0]}}
    (tmp_path / "validate" / "rfactor.json").write_text(json.dumps(val))
    s = gather(tmp_path)
    assert s["atoms_not_confirmed"] == why
    assert s["n_atoms_outside_field"] == 7 and s["images_cutting_particle"] == [0]
    (tmp_path / "refine" / "refine.json").write_text(json.dumps({"iterations": 60}))
    assert gather(tmp_path)["atoms_not_confirmed"] is None  # a refined model: nothing to say


def test_new_weights_under_the_same_name_rerun_the_unet(tmp_path):
    """The resume key holds the weights' content: a retrained file written over the old one
    (or a newer release's shipped file) reruns the U-Net; a copy of the same file does not."""
    import shutil

    from napari_aet.augment import shipped_weights, weights_file
    from napari_aet.workflows.pipeline import stage_key
    from napari_aet.workflows.settings import SeriesSource

    src = SeriesSource("x.h5")
    w = tmp_path / "mine.pt"
    shutil.copy(shipped_weights()["fcc"], w)
    settings = replace(QUICK, augment=AugmentSettings(str(w), element="Pt"))
    key = stage_key("augment", settings, src)
    assert (
        key["weights_sha256"]
        == stage_key("augment", replace(QUICK, augment=AugmentSettings("fcc")), src)[
            "weights_sha256"
        ]
    )
    shutil.copy(shipped_weights()["fcc"], tmp_path / "copy.pt")
    shutil.copy(tmp_path / "copy.pt", w)  # the same content, a new file time
    assert stage_key("augment", settings, src) == key
    shutil.copy(shipped_weights()["amorphous"], w)  # other weights, the same name
    assert stage_key("augment", settings, src) != key
    assert weights_file("auto", "Pt,Ni") == shipped_weights()["alloy"]
    w.unlink()  # a missing file: the key says so, the stage's own error names the fix
    assert stage_key("augment", settings, src)["weights_sha256"] is None
    with pytest.raises(FileNotFoundError, match="napari-aet train"):
        weights_file(str(w))
