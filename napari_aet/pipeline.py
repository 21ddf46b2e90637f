"""The whole pipeline, headless: align, recon, augment, trace, refine, analyze, validate,
figures.

Each stage runs the same code as its ``napari-aet`` subcommand, into its own folder under the
output directory; ``pipeline.json`` records the finished stages with the arguments that made
them, so a rerun skips what is done and unchanged and resumes after a failure. The stages'
key outputs are gathered at the top of the output folder: ``atoms.csv``, ``analysis.json`` and
``figures/``. No Qt.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from ._files import replace_when_done

STAGES = ("align", "recon", "augment", "trace", "refine", "analyze", "validate", "figures")


def _augments(opts: dict) -> bool:
    return str(opts.get("augment") or "none").lower() != "none"


def _refines(opts: dict) -> bool:
    return bool(opts.get("refine_model", True))


def stages_for(opts: dict) -> tuple[str, ...]:
    """The stages a run with ``opts`` goes through (``augment`` only with weights, ``refine``
    unless ``refine_model`` is false)."""
    skip = {s for s, on in (("augment", _augments(opts)), ("refine", _refines(opts))) if not on}
    return tuple(s for s in STAGES if s not in skip)


#: What each stage must have left in the run folder for a resume to skip it.
STAGE_OUTPUTS = {
    "align": ("align/aligned_tilt_series.h5",),
    "recon": ("recon/tomogram.h5",),
    "augment": ("augment/tomogram_augmented.h5",),
    "trace": ("trace/atoms.csv",),
    "refine": ("refine/atoms.csv",),
    "analyze": ("analyze/atoms.csv", "analyze/analysis.json"),
    "validate": ("validate/rfactor.json",),
    "figures": ("figures", "report.html"),
}


def file_fingerprint(path) -> dict:
    """What identifies a file's content cheaply: size, modification time and a SHA-256 of its
    first and last MiB (a resume reruns every stage when an input changes)."""
    import hashlib

    path = Path(path)
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if st.st_size > 2 << 20:
            fh.seek(-(1 << 20), 2)
            h.update(fh.read(1 << 20))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256_ends": h.hexdigest()}


def _write_json(path: Path, data: dict) -> None:
    """Write JSON so that a kill never leaves a half-written file over the previous one."""
    replace_when_done(path, lambda t: t.write_text(json.dumps(data, indent=2, default=float)))


class _Tee:
    """A text stream that writes to two streams (a stage's messages to the terminal and to the
    run's log)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for st in self.streams:
            st.write(text)
        return len(text)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()

    def isatty(self) -> bool:
        return False


class StageFailed(RuntimeError):
    """A stage ended with an error; the stages before it are kept."""


def _stage_args(stage: str, tilts: Path, out: Path, opts: dict) -> list[str]:
    series = []
    if opts.get("angles") is not None:
        series.append(f"--angles={opts['angles']}")  # '=' keeps '-70:70:7' a value
    if opts.get("pixel_size_A") is not None:
        series += ["--pixel-size", str(opts["pixel_size_A"])]
    if opts.get("dataset"):
        series += ["--dataset", str(opts["dataset"])]
    aligned = out / "align" / "aligned_tilt_series.h5"
    dev = ["--device", opts.get("device", "auto")]
    if stage == "align":
        a = [
            "align",
            str(tilts),
            *series,
            "--out",
            str(out / "align"),
            *dev,
            "--rounds",
            str(opts.get("align_rounds", 2)),
        ]
        if opts.get("no_align"):  # an aligned series: preprocess only
            a += ["--no-com", "--no-common-line", "--tilt-axis=none", "--no-refine"]
        else:
            if not opts.get("refine", True):
                a.append("--no-refine")
            if str(opts.get("tilt_axis") or "estimate") != "estimate":
                a.append(f"--tilt-axis={opts['tilt_axis']}")
        if opts.get("denoise"):
            a += ["--denoise", opts["denoise"]]
        return a
    if stage == "recon":
        return [
            "recon",
            str(aligned),
            "--out",
            str(out / "recon"),
            *dev,
            "--iterations",
            str(opts.get("recon_iterations", 100)),
            "--oversampling",
            str(opts.get("oversampling", 2.0)),
            "--interpolation",
            opts.get("interpolation", "fft"),
        ]
    if stage == "augment":
        return [
            "augment",
            str(out / "recon" / "tomogram.h5"),
            "--out",
            str(out / "augment"),
            "--weights",
            str(opts["augment"]),
            "--element",
            str(opts.get("element") or "Pt"),
            *dev,
        ]
    if stage == "trace":
        tomo = (
            out / "augment" / "tomogram_augmented.h5"
            if _augments(opts)
            else out / "recon" / "tomogram.h5"
        )
        return ["trace", str(tomo), "--out", str(out / "trace")]
    if stage == "refine":
        return [
            "refine",
            str(out / "trace" / "atoms.csv"),
            str(aligned),
            "--out",
            str(out / "refine"),
            *dev,
        ]
    if stage == "analyze":
        return [
            "analyze",
            str(out / ("refine" if _refines(opts) else "trace") / "atoms.csv"),
            "--out",
            str(out / "analyze"),
            *(["--strain"] if opts.get("strain", True) else []),
            *(["--orr", str(opts["orr"])] if opts.get("orr") else []),
            "--element",
            str(opts.get("element") or "Pt"),
            *(
                ["--lattice-constant", str(opts["lattice_constant_A"])]
                if opts.get("lattice_constant_A") is not None
                else []
            ),
        ]
    if stage == "validate":
        return [
            "validate",
            str(out / "analyze" / "atoms.csv"),
            str(aligned),
            "--out",
            str(out / "validate"),
            "--element",
            str(opts.get("element") or "Pt"),
        ]
    if stage == "figures":
        return ["figures", str(out), "--formats", opts.get("figure_formats", "png,svg,pdf")]
    raise ValueError(f"unknown stage {stage!r}")


def _gather(out: Path) -> dict:
    """Top-level results: atoms.csv, analysis.json (analysis + R-factors), figures/."""
    summary: dict = {"napari_aet_version": __version__}
    if (out / "analyze" / "atoms.csv").exists():
        replace_when_done(
            out / "atoms.csv", lambda t: shutil.copyfile(out / "analyze" / "atoms.csv", t)
        )
    if (out / "analyze" / "analysis.json").exists():
        summary.update(json.loads((out / "analyze" / "analysis.json").read_text()))
    if (out / "validate" / "rfactor.json").exists():
        r = json.loads((out / "validate" / "rfactor.json").read_text())
        summary["r_factor_mean"] = r["r_mean"]
        summary["r_factor_per_image"] = r["r_per_image"]
    if (out / "trace" / "trace.json").exists():
        t = json.loads((out / "trace" / "trace.json").read_text())
        summary["n_atoms_traced"] = t.get("n_atoms")
        summary["n_manual_added"] = 0
        summary["n_manual_removed"] = 0
    if (out / "align" / "alignment.json").exists():
        a = json.loads((out / "align" / "alignment.json").read_text())
        summary["tilt_axis_angle_deg"] = a.get("tilt_axis_angle_deg")
    (out / "figures").mkdir(exist_ok=True)
    for stage in STAGES:
        fig_dir = out / stage / "figures"
        if fig_dir.is_dir():
            for f in fig_dir.glob("*.png"):
                replace_when_done(
                    out / "figures" / f"{stage}_{f.name}", lambda t, f=f: shutil.copyfile(f, t)
                )
    _write_json(out / "analysis.json", summary)
    return summary


def run_pipeline(tilts, out_dir, *, resume: bool = True, quiet: bool = True, **opts) -> dict:
    """Run every stage on one tilt series into ``out_dir``; returns the gathered summary.

    Parameters
    ----------
    tilts : path
        Raw tilt series (any format ``read_tilt_series`` takes).
    out_dir : path
        Output folder (created). ``pipeline.json`` and ``run.log`` record what ran.
    resume : bool
        Skip stages that finished before with the same arguments (and whose folder exists).
    **opts
        ``angles``, ``pixel_size_A``, ``dataset``, ``device``, ``recon_iterations``,
        ``oversampling``, ``interpolation``, ``refine``, ``align_rounds``, ``denoise``,
        ``augment`` (U-Net weights: ``"fcc"``, ``"amorphous"``, a file, or ``"none"`` to trace
        the raw GENFIRE tomogram), ``refine_model`` (refine the traced positions against the
        aligned series; default True), ``strain``, ``orr``, ``element`` (default Pt: the
        validation's scattering factors, the analysis's reference lattice constant and Q4/Q6
        cutoff), ``lattice_constant_A`` (the strain reference, default the element's),
        ``tilt_axis`` (``"estimate"``, ``"none"`` or degrees), ``no_align`` (the series
        arrives aligned: preprocess only).

    Raises
    ------
    StageFailed
        When a stage fails; the finished stages and their outputs stay in place.
    """
    from .cli import main as cli_main

    tilts = Path(tilts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger(f"napari_aet.run.{out}")
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(out / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    state_path = out / "pipeline.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    state.setdefault("stages", {})
    state.update(
        {
            "napari_aet_version": __version__,
            "input": str(tilts),
            "settings": {k: v for k, v in opts.items()},
        }
    )
    inputs = {"tilts": file_fingerprint(tilts)}
    if opts.get("angles") is not None and Path(str(opts["angles"])).is_file():
        inputs["angles"] = file_fingerprint(opts["angles"])
    if opts.get("orr") and Path(str(opts["orr"])).is_file():
        inputs["orr"] = file_fingerprint(opts["orr"])
    try:
        stages = stages_for(opts)
        for stage in stages:
            args = _stage_args(stage, tilts, out, opts)
            done = state["stages"].get(stage)
            missing = [p for p in STAGE_OUTPUTS[stage] if not (out / p).exists()]
            if resume and done and done.get("args") == args:
                if done.get("inputs") != inputs:
                    log.info("%s: the input files changed since it ran, rerun", stage)
                elif missing:
                    log.info("%s: output %s is missing, rerun", stage, missing[0])
                else:
                    log.info("%s: already done, skipped", stage)
                    continue
            if stage == "figures":
                _gather(out)  # the figures read the gathered atoms.csv and analysis.json
            log.info("%s: napari-aet %s", stage, " ".join(args))
            t0 = time.perf_counter()
            err_text = io.StringIO()
            try:
                with contextlib.redirect_stderr(_Tee(sys.stderr, err_text)):
                    rc = cli_main((["-q"] if quiet else []) + args)
            except Exception as err:  # a bug, not bad input: its traceback goes to run.log
                log.exception("%s failed", stage)
                raise StageFailed(
                    f"stage {stage!r} failed: {type(err).__name__}: {err} (traceback in "
                    f"{out / 'run.log'}). Finished stages are kept; rerun to resume."
                ) from err
            dt = time.perf_counter() - t0
            if rc == 130:
                log.error("%s cancelled after %.1f s; finished stages kept", stage, dt)
                raise KeyboardInterrupt
            if rc != 0:
                lines = err_text.getvalue().strip().splitlines()
                why = next((ln for ln in reversed(lines) if "error:" in ln), None)
                why = why or (lines[-1] if lines else f"exit code {rc}")
                log.error("%s failed (exit %d) after %.1f s: %s", stage, rc, dt, why)
                raise StageFailed(
                    f"stage {stage!r} failed: {why}. Finished stages are kept; rerun to resume."
                )
            # later stages depend on this one: forget them
            for later in STAGES[STAGES.index(stage) + 1 :]:
                state["stages"].pop(later, None)
            state["stages"][stage] = {
                "args": args,
                "inputs": inputs,
                "seconds": dt,
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            _write_json(state_path, state)
            log.info("%s: done in %.1f s", stage, dt)
        summary = _gather(out)
        summary["pipeline"] = state
        _write_json(out / "analysis.json", summary)
        log.info("pipeline finished")
        return summary
    finally:
        log.removeHandler(handler)
        handler.close()


def run_batch(
    inputs, out_dir, *, scheduler: str | None = None, n_workers: int = 1, **opts
) -> dict[str, str]:
    """Run the pipeline on many tilt series with Dask, one output folder each.

    A LocalCluster (``n_workers`` processes) unless ``scheduler`` names a running
    ``dask.distributed`` scheduler. Failures are isolated: returns ``{input: "ok" or the
    error}``.
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

    def one(path: str, name: str) -> str:
        try:
            run_pipeline(path, out / name, **opts)
            return "ok"
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
    _write_json(out / "batch.json", results)
    return results
