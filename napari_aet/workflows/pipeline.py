"""The whole pipeline, headless: align, recon, augment, trace, refine, analyze, validate,
figures, each by its ``run_<stage>`` workflow into its own folder of the run (see
:class:`~.layout.RunLayout`).

``pipeline.json`` records the finished stages with the settings and input files that made
them, so a rerun skips what is done and unchanged and resumes after a failure or a cancel. A
stage writes into a staging folder that replaces its previous folder only when it succeeds.
A failing stage's exception reaches the caller as :class:`StageFailed` with the original as
its cause, and its traceback is in ``run.log``. The key outputs are gathered at the top of the
run folder: ``atoms.csv``, ``analysis.json``, ``figures/`` and ``report.html``. No Qt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..augment import weights_digest
from ..core.files import replace_when_done, staged_folder
from ..core.progress import Cancelled
from ..core.threads import available_cpus, current_threads, set_threads
from ._common import StageResult, left_out_indices, write_json
from .atom_stages import run_analyze, run_refine, run_trace, run_validate
from .layout import RunLayout
from .report import run_figures
from .settings import (
    STAGES,
    RunSettings,
    SeriesSource,
    VolumeSource,
    recon_series_for,
    recon_series_note,
    settings_dict,
)
from .stages import run_align, run_augment, run_recon


class StageFailed(RuntimeError):
    """A stage ended with an error; the stages before it are kept. ``__cause__`` is the
    original exception."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


def file_fingerprint(path) -> dict:
    """What identifies a file's content cheaply: size, modification time and a SHA-256 of its
    first and last MiB (a resume reruns every stage when an input changes); of a folder series,
    of every file in it."""
    path = Path(path)
    if path.is_dir():  # a folder series: every file in it (an image or angles file changed)
        parts = [
            (p.name, file_fingerprint(p))
            for p in sorted(path.iterdir())
            if p.is_file() and not p.name.startswith(".")
        ]
        return {
            "files": len(parts),
            "size": sum(f["size"] for _, f in parts),
            "mtime_ns": max((f["mtime_ns"] for _, f in parts), default=0),
            "sha256_ends": hashlib.sha256(repr(parts).encode()).hexdigest(),
        }
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if st.st_size > 2 << 20:
            fh.seek(-(1 << 20), 2)
            h.update(fh.read(1 << 20))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256_ends": h.hexdigest()}


def stage_key(stage: str, settings: RunSettings, source: SeriesSource) -> dict:
    """What a stage's result depends on besides its input files: its settings, and for the
    stages that read the raw series, how it is read; for the U-Net (and the align stage's
    model tracing with weights), the weights' content; for trace, whether the U-Net ran."""
    key: dict = {"stage": stage}
    if stage == "figures":
        key["settings"] = settings_dict(settings.figures)
    elif stage in ("align", "recon", "augment", "trace", "refine", "analyze", "validate"):
        key["settings"] = settings_dict(getattr(settings, stage))
    if stage == "align":
        key["series"] = {
            "angles": source.angles,
            "pixel_size_A": source.pixel_size_A,
            "dataset": source.dataset,
            "fill_nans": source.fill_nans,
        }
        if source.exclude:  # only when set: earlier run folders' keys stay as they were
            key["series"]["exclude"] = left_out_indices(source.exclude)
        frames = {"scan_direction": source.scan_direction, "frame_interval": source.frame_interval}
        if frames != {"scan_direction": "down", "frame_interval": 1.0}:  # the same: as exclude
            key["series"]["frames"] = frames
        if source.phi_group is not None:  # one series of a merged GENFIRE file: as exclude
            key["series"]["phi_group"] = source.phi_group
    if stage == "augment" and settings.augment is not None:
        # the weights' content, not only their name: new weights under the same name rerun it
        key["weights_sha256"] = weights_digest(settings.augment.weights, settings.augment.element)
    if stage == "align" and settings.align is not None and settings.align.model_weights:
        a = settings.align
        key["model_weights_sha256"] = weights_digest(a.model_weights, a.element)
    if stage == "trace":
        key["from"] = "augment" if settings.augment is not None else "recon"
    if stage == "analyze":
        key["from"] = "refine" if settings.refine is not None else "trace"
    return json.loads(json.dumps(key, default=str))  # as pipeline.json stores it (lists)


def _run_stage(
    stage: str, lay: RunLayout, settings: RunSettings, source, progress, cancel, second=None
):
    aligned = SeriesSource(str(lay.aligned_series))
    out = lay.stage_dir(stage)
    if stage == "figures":
        return run_figures(lay.root, settings.figures, progress=progress, cancel=cancel)
    with staged_folder(out) as tmp:
        if stage == "align":
            res = run_align(source, settings.align, tmp, progress, cancel)
            if second is not None:  # a dual-axis run: the second series on its own
                # the two series are reconstructed together: one box side for both
                box = (res.record.get("crop") or {}).get("box_px")
                align2 = settings.align if box is None else replace(settings.align, crop=str(box))
                res2 = run_align(second, align2, tmp / "second", progress, cancel)
                res.message += f"; second series: {res2.message}"
                res.notes += [f"second series: {n}" for n in res2.notes]
                res.written += [f"second/{w}" for w in res2.written]
            return res
        if stage == "recon":
            res = run_recon(
                _recon_series(lay, settings, first=True),
                settings.recon,
                tmp,
                progress,
                cancel,
                second=None if second is None else _recon_series(lay, settings, first=False),
            )
            if lay.undenoised_series is not None:  # the align stage denoised: say which
                res.notes.append(recon_series_note(
                    settings.recon.series, settings.trace.element, _brightest_counts(lay)
                ))  # fmt: skip
            return res
        if stage == "augment":
            return run_augment(
                VolumeSource(str(lay.tomogram)), settings.augment, tmp, progress, cancel
            )
        if stage == "trace":
            raw = VolumeSource(str(lay.tomogram))
            if settings.augment is None:
                return run_trace(raw, settings.trace, tmp, progress, cancel)
            # an alloy's elements from the GENFIRE tomogram: the U-Net makes atoms alike
            tomo = VolumeSource(str(lay.augmented_tomogram))
            return run_trace(tomo, settings.trace, tmp, progress, cancel, species_from=raw)
        if stage == "refine":
            plain = lay.undenoised_series
            return run_refine(
                lay.traced_atoms,
                aligned,
                settings.refine,
                tmp,
                progress,
                cancel,
                candidates=lay.file("trace", "candidates"),
                counts=None if plain is None else SeriesSource(str(plain)),
            )
        if stage == "analyze":
            atoms = lay.refined_atoms if settings.refine is not None else lay.traced_atoms
            return run_analyze(atoms, settings.analyze, tmp, progress, cancel)
        if stage == "validate":
            # atoms refined at angles the refine stage's angle check corrected carry them in
            # their metadata, and validate projects them there (trace.checked_angles)
            return run_validate(
                lay.analysed_atoms, aligned, settings.validate, tmp, progress, cancel
            )
    raise ValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")


def _recon_series(lay: RunLayout, settings: RunSettings, *, first: bool) -> SeriesSource:
    """The aligned series the recon stage reconstructs (the first or a dual-axis run's
    second): its counts before the denoiser when the align stage denoised it and the recon
    settings' ``series`` (:data:`~.settings.RECON_SERIES`) is ``"counts"``, or ``"auto"`` for
    one element; else the aligned series (``"auto"`` for several elements: see
    :func:`~.settings.recon_series_for`)."""
    aligned = lay.aligned_series if first else lay.second_aligned_series
    plain = lay.undenoised_beside(aligned)
    peak = _brightest_counts(lay)
    choice = recon_series_for(settings.recon.series, settings.trace.element, peak)
    if plain is not None and choice == "counts":
        return SeriesSource(str(plain))
    return SeriesSource(str(aligned))


def _brightest_counts(lay: RunLayout) -> float | None:
    """The counts at the aligned series' brightest columns, as the align stage's record has
    them (None for a record without them)."""
    path = lay.file("align", "record")
    if not path.exists():
        return None
    value = (json.loads(path.read_text()).get("denoise") or {}).get("brightest_counts")
    return None if value is None else float(value)


def gather(run_dir) -> dict:
    """Top-level results of a run folder: ``atoms.csv``, ``analysis.json`` (the analysis, the
    R-factors, the traced count, the tilt axis) and ``figures/`` (each stage's figures)."""
    lay = RunLayout(run_dir)
    summary: dict = {"napari_aet_version": __version__}
    if lay.analysed_atoms.exists():
        replace_when_done(lay.atoms, lambda t: shutil.copyfile(lay.analysed_atoms, t))
    if lay.stage_analysis.exists():
        summary.update(json.loads(lay.stage_analysis.read_text()))
    if lay.rfactor.exists():
        r = json.loads(lay.rfactor.read_text())
        summary["r_factor_mean"] = r["r_mean"]
        summary["r_factor_per_image"] = r["r_per_image"]
        summary["r_factor_blur_A"] = r.get("blur_sigma_A")
        summary["r_factor_mean_study_blur"] = r.get("r_mean_study_blur")
        cut = r.get("outside_field") or {}
        summary["n_atoms_outside_field"] = cut.get("n_atoms")
        summary["images_cutting_particle"] = cut.get("images")
    trace_record = lay.file("trace", "record")
    if trace_record.exists():
        t = json.loads(trace_record.read_text())
        summary["n_atoms_traced"] = t.get("n_atoms")
        summary["n_manual_added"] = 0
        summary["n_manual_removed"] = 0
    refine_record = lay.file("refine", "record")
    if refine_record.exists():  # the refinement held the traced positions: say why
        summary["atoms_not_confirmed"] = json.loads(refine_record.read_text()).get("not_refined")
    align_record = lay.file("align", "record")
    if align_record.exists():
        a = json.loads(align_record.read_text())
        summary["tilt_axis_angle_deg"] = a.get("tilt_axis_angle_deg")
    lay.figures.mkdir(exist_ok=True)
    for stage in STAGES:
        fig_dir = lay.stage_dir(stage) / "figures"
        if fig_dir.is_dir():
            for f in fig_dir.glob("*.png"):
                replace_when_done(
                    lay.figures / f"{stage}_{f.name}", lambda t, f=f: shutil.copyfile(f, t)
                )
    write_json(lay.analysis, summary)
    return summary


def run_pipeline(
    tilts,
    out_dir,
    settings: RunSettings | None = None,
    *,
    source: SeriesSource | None = None,
    second: SeriesSource | None = None,
    resume: bool = True,
    on_stage=None,
    progress=None,
    cancel=None,
) -> dict:
    """Run every stage on one tilt series into ``out_dir``; returns the gathered summary.

    Parameters
    ----------
    tilts : path
        Raw tilt series (any format ``read_tilt_series`` takes).
    out_dir : path
        Output folder (created). ``pipeline.json`` and ``run.log`` record what ran.
    settings : RunSettings
        Every stage's settings (default ``RunSettings.for_element("Pt")``: the shipped fcc U-Net,
        position refinement, strain).
    source : SeriesSource, optional
        How to read ``tilts`` (angles, pixel size, dataset) when the file lacks them.
    second : SeriesSource, optional
        A dual-axis acquisition's second series: aligned on its own (``align/second/``) and
        reconstructed with the first (:func:`run_recon`); refinement and validation use the
        first series.
    resume : bool
        Skip stages that finished before with the same settings and inputs (and whose
        outputs exist).
    on_stage : callable, optional
        ``on_stage(result: StageResult, seconds)`` after each stage that ran (the CLI prints
        its summary).
    progress, cancel
        Passed to every stage (``progress(done, total, message)``; a cancel flag or event).

    Raises
    ------
    StageFailed
        When a stage fails (the original exception is its ``__cause__``); the finished stages
        and their outputs stay in place.
    KeyboardInterrupt, Cancelled
        Cancelled by the user; the finished stages stay in place, the running one leaves
        nothing.
    """
    settings = settings or RunSettings.for_element("Pt")
    source = source or SeriesSource(str(tilts))
    source = replace(source, path=str(tilts))
    lay = RunLayout(out_dir)
    lay.root.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger(f"napari_aet.run.{lay.root}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = logging.FileHandler(lay.log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    state = json.loads(lay.pipeline_record.read_text()) if lay.pipeline_record.exists() else {}
    state.setdefault("stages", {})
    state.update(
        {
            "napari_aet_version": __version__,
            "input": str(tilts),
            "settings": settings_dict(settings),
            "cpu_threads": current_threads(),  # 2 threads' sums differ from 1's in the last bits
        }
    )
    inputs = {"tilts": file_fingerprint(tilts)}
    if second is not None:
        inputs["second_axis"] = file_fingerprint(second.path)
        if second.phi_group is not None:  # the other series of the same merged file
            inputs["second_axis_phi_group"] = second.phi_group
        if second.angles is not None and Path(str(second.angles)).is_file():
            inputs["second_axis_angles"] = file_fingerprint(second.angles)
    if source.angles is not None and Path(str(source.angles)).is_file():
        inputs["angles"] = file_fingerprint(source.angles)
    orr = settings.analyze.orr_table
    if orr and Path(str(orr)).is_file():
        inputs["orr"] = file_fingerprint(orr)
    try:
        for stage in settings.stages():
            key = stage_key(stage, settings, source)
            done = state["stages"].get(stage)
            missing = [p for p in lay.outputs(stage) if not p.exists()]
            if resume and done and done.get("key") == key:
                if done.get("inputs") != inputs:
                    log.info("%s: the input files changed since it ran, rerun", stage)
                elif missing:
                    log.info("%s: output %s is missing, rerun", stage, missing[0])
                else:
                    log.info("%s: already done, skipped", stage)
                    continue
            if stage == "figures":
                gather(lay.root)  # the figures read the gathered atoms.csv and analysis.json
            log.info("%s: settings %s", stage, json.dumps(key.get("settings"), default=str))
            t0 = time.perf_counter()
            try:
                res: StageResult = _run_stage(
                    stage, lay, settings, source, progress, cancel, second
                )
            except (KeyboardInterrupt, Cancelled):
                dt = time.perf_counter() - t0
                log.error("%s cancelled after %.1f s; finished stages kept", stage, dt)
                raise
            except Exception as err:
                log.exception("%s failed", stage)  # the traceback goes to run.log
                raise StageFailed(
                    stage,
                    f"stage {stage!r} failed: {type(err).__name__}: {err} (traceback in "
                    f"{lay.log}). Finished stages are kept; rerun to resume.",
                ) from err
            dt = time.perf_counter() - t0
            for note in res.notes:
                log.info("%s: note: %s", stage, note)
            # later stages depend on this one: forget them
            for later in STAGES[STAGES.index(stage) + 1 :]:
                state["stages"].pop(later, None)
            state["stages"][stage] = {
                "key": key,
                "inputs": inputs,
                "seconds": dt,
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            write_json(lay.pipeline_record, state)
            log.info("%s: %s", stage, res.message.replace("\n", "; "))
            log.info("%s: done in %.1f s", stage, dt)
            if on_stage is not None:
                on_stage(res, dt)
        summary = gather(lay.root)
        summary["pipeline"] = state
        write_json(lay.analysis, summary)
        log.info("pipeline finished")
        return summary
    finally:
        log.removeHandler(handler)
        handler.close()


def run_batch(
    inputs,
    out_dir,
    settings: RunSettings | None = None,
    *,
    source: SeriesSource | None = None,
    scheduler: str | None = None,
    n_workers: int = 1,
    resume: bool = True,
    threads: int | None = None,
) -> dict[str, str]:
    """Run the pipeline on many tilt series with Dask, one output folder each.

    A LocalCluster (``n_workers`` processes) unless ``scheduler`` names a running
    ``dask.distributed`` scheduler. Failures are isolated: returns ``{input: "ok" or the
    error}``; each failed folder's ``run.log`` has the traceback.

    Each run uses ``threads`` CPU threads; by default, on a LocalCluster, the CPUs this process
    may use shared out among the workers (Dask starts its workers with one), and on a
    scheduler's workers what they were started with.
    """
    from dask.distributed import Client, LocalCluster

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = {}
    for p in map(Path, inputs):
        stem = p.name.split(".")[0]
        name, k = stem, 1
        while name in names.values():
            k += 1
            name = f"{stem}_{k}"
        names[str(p)] = name

    if threads is None and scheduler is None:
        threads = max(1, available_cpus() // max(1, n_workers))

    def one(path: str, name: str) -> str:
        if threads is not None:
            set_threads(threads)
        try:
            run_pipeline(path, out / name, settings, source=source, resume=resume)
            return "ok"
        except StageFailed as err:  # the message names the stage, the cause and run.log
            return str(err)
        except Exception as err:  # noqa: BLE001 - one failure must not stop the batch
            return f"{type(err).__name__}: {err}"

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = {p: client.submit(one, p, n, pure=False) for p, n in names.items()}
        results = {p: f.result() for p, f in futures.items()}
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    write_json(out / "batch.json", results)
    return results
