"""The refine stage alone, on finished runs, with each pixel weighting of its fits
(``PositionRefineSettings.weighting``: plain least squares or variance-weighted), scored
against the truth.

A case folder is what ``bench_independent.py`` writes: ``truth.csv`` and ``run/`` with the
align stage's aligned series (and the undenoised one when a denoiser ran) and the trace
stage's ``atoms.csv`` and ``candidates.csv``. The refine stage runs as ``napari-aet run``
runs it (:func:`napari_aet.workflows.run_refine`, every other setting its default), so
``uniform`` reproduces the pipeline's own refine stage and the table compares the weighting
only. The element is read from the case name (``pt-...``, ``au-...``) unless given. Prints a
markdown table with the fitted noise model ``var = a * signal + b`` (``b`` over the mean
pixel variance: below 0.1 the weights fall back to uniform).

Usage: python benchmarks/bench_refine_weighting.py CASE_DIR [CASE_DIR ...]
       [--weighting uniform,variance] [--element Pt] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, score_against_truth


def element_of(folder: Path, given: str | None) -> str:
    if given:
        return given
    return folder.name.split("-")[0].capitalize()


def refine_case(folder: Path, weighting: str, element: str, out: Path) -> dict:
    from napari_aet.io import read_atoms
    from napari_aet.workflows import PositionRefineSettings, SeriesSource, run_refine

    run = folder / "run"
    truth = np.loadtxt(folder / "truth.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2))
    plain = run / "align" / "aligned_tilt_series_undenoised.h5"
    t0 = time.perf_counter()
    run_refine(
        run / "trace" / "atoms.csv",
        SeriesSource(str(run / "align" / "aligned_tilt_series.h5")),
        PositionRefineSettings(weighting=weighting, element=element),
        out,
        candidates=run / "trace" / "candidates.csv",
        counts=SeriesSource(str(plain)) if plain.exists() else None,
    )
    seconds = time.perf_counter() - t0
    refined = read_atoms(out / "atoms.csv")
    info = json.loads((out / "refine.json").read_text())
    w = info.get("weighting") or {}
    model = ""
    if "a" in w:
        model = f"a {w['a']:.3f}, b/mean {w['b'] / max(w['mean_variance'], 1e-30):.2f}"
        model += f" ({w['note']})" if "note" in w else ""
    return {
        **score_against_truth(truth, refined.positions),
        "seconds": seconds,
        "model": model,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", type=Path, nargs="+", help="case folders (truth.csv and run/)")
    ap.add_argument("--weighting", default="uniform,variance", help="comma list")
    ap.add_argument("--element", default=None, help="default: from the case folder's name")
    ap.add_argument("--out", type=Path, default=None, help="keep the refine outputs here")
    args = ap.parse_args()
    print(f"Machine: {machine()}\n")
    print("| case | weighting | missed | false | identification error | RMSD (pm) "
          "| noise model | refine (s) |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for folder in args.cases:
            element = element_of(folder, args.element)
            for weighting in args.weighting.split(","):
                out = root / f"{folder.parent.name}-{folder.name}-{weighting}"
                r = refine_case(folder, weighting, element, out)
                print(
                    f"| {folder.name} | {weighting} | {r['missed']} | {r['false']} "
                    f"| {r['error']:.2f} % | {r['rmsd']:.1f} | {r['model']} "
                    f"| {r['seconds']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
