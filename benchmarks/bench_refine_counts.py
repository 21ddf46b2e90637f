"""The refine stage alone, on a finished run of a denoised series, with each use of the
undenoised counts (``PositionRefineSettings.counts``), scored against the truth.

A case folder is what ``bench_independent.py`` writes: ``truth.csv`` and ``run/`` with the
align stage's ``aligned_tilt_series.h5`` (denoised) and ``aligned_tilt_series_undenoised.h5``
and the trace stage's ``atoms.csv`` and ``candidates.csv``. Every setting starts from the same
traced atoms, so the table compares the refinement only. Prints a markdown table.

Usage: python benchmarks/bench_refine_counts.py CASE_DIR [CASE_DIR ...]
       [--counts auto,judge,fit,ignore] [--element Pt]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import machine, score_against_truth


def refine_case(folder: Path, counts: str, element: str) -> dict:
    import pandas as pd

    from napari_aet.align import recorded_denoiser
    from napari_aet.io import read_atoms, read_tilt_series
    from napari_aet.trace import refine_atom_positions

    run = folder / "run"
    truth = np.loadtxt(folder / "truth.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2))
    denoised = read_tilt_series(run / "align" / "aligned_tilt_series.h5")
    plain = read_tilt_series(run / "align" / "aligned_tilt_series_undenoised.h5")
    images = plain.data if counts == "fit" else denoised.data
    t0 = time.perf_counter()
    refined, info = refine_atom_positions(
        read_atoms(run / "trace" / "atoms.csv"),
        images,
        denoised.angles_deg,
        pixel_size_A=denoised.pixel_size_A,
        candidates=pd.read_csv(run / "trace" / "candidates.csv"),
        element=element,
        judge_images=plain.data if counts in ("judge", "auto") else None,
        denoiser=recorded_denoiser(denoised.metadata) if counts == "auto" else None,
    )
    seconds = time.perf_counter() - t0
    passes = (info.get("residual_pass") or {}).get("per_pass", [])
    src = info.get("position_source") or {}
    return {
        **score_against_truth(truth, refined.positions),
        "seconds": seconds,
        "source": src.get("source", ""),
        "passes": "; ".join(
            f"{p.get('n_added', 0)} of {p.get('n_trials', 0)}"
            + (f" (sep {p['separation']:.2f})" if p.get("separation") is not None else "")
            for p in passes
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", type=Path, nargs="+", help="case folders (truth.csv and run/)")
    ap.add_argument("--counts", default="auto,judge,fit,ignore", help="comma list")
    ap.add_argument("--element", default="Pt")
    args = ap.parse_args()
    print(f"Machine: {machine()}\n")
    print("| case | counts | positions from | missed | false | identification error | RMSD (pm) "
          "| residual passes: added of trials | refine (s) |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---|---:|")
    for folder in args.cases:
        for counts in args.counts.split(","):
            r = refine_case(folder, counts, args.element)
            print(
                f"| {folder.name} | {counts} | {r['source']} | {r['missed']} | {r['false']} "
                f"| {r['error']:.2f} % | {r['rmsd']:.1f} | {r['passes']} | {r['seconds']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
