"""Bond-length restraints of the final position fit, on independent runs with a known truth.

For each case folder written by ``bench_independent.py --out`` (``truth.csv`` and the run's
``run/align/aligned_tilt_series_undenoised.h5``, or ``aligned_tilt_series.h5`` when the align
stage did not denoise) and a refined model (``run/atoms.csv`` unless ``--atoms`` names
another file per case), the model's atoms are fitted to the counts from their positions
without restraints and with bonds restrained at each prior spread of
:data:`napari_aet.trace._restrained.RESTRAINT_SIGMAS_PM`, and the refine stage's choice
(:func:`napari_aet.trace._restrained.restrained_positions`: the spread the held-out images
predict best) is run as the stage runs it. Every fit is scored against the truth (rigid
registration, one-to-one matching within 1 A): missed / false atoms and RMSD.

    python benchmarks/bench_restraints.py CASE_DIR [CASE_DIR ...] [--atoms A.csv ...]

Prints one row per case; figures in docs/benchmarks.md (sixty-eighth session).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from napari_aet.analysis import compare_atom_models, register_rigid
from napari_aet.forward import bond_restraint, refine_atomic_model
from napari_aet.io import read_atoms, read_tilt_series
from napari_aet.trace._restrained import RESTRAINT_SIGMAS_PM, restrained_positions


def score(truth: np.ndarray, positions: np.ndarray) -> str:
    moved, _ = register_rigid(truth, positions)
    c = compare_atom_models(truth, moved, radius_A=1.0)
    missed, false = len(truth) - c.n_common, len(positions) - c.n_common
    pct = 100.0 * (missed + false) / len(truth)
    return f"{missed} / {false}, {pct:.2f} %, {100 * c.rmsd_A:.1f} pm"


def run_case(folder: Path, atoms_csv: Path) -> list[str]:
    t = pd.read_csv(folder / "truth.csv")
    truth = t[["z", "y", "x"]].to_numpy(float)
    model = read_atoms(atoms_csv)
    align = folder / "run" / "align"
    counts = align / "aligned_tilt_series_undenoised.h5"
    ts = read_tilt_series(counts if counts.exists() else align / "aligned_tilt_series.h5")
    kw = dict(pixel_size_A=ts.pixel_size_A, refine_angles=False, refine_offsets=False,
              iterations=60, device="auto")  # fmt: skip
    row = [folder.name, str(model.n_atoms), score(truth, model.positions)]
    free = refine_atomic_model(ts.data, ts.angles_deg, model.positions, **kw)
    row.append(score(truth, free.positions_A))
    for s in RESTRAINT_SIGMAS_PM:
        r = refine_atomic_model(
            ts.data, ts.angles_deg, model.positions,
            restraint=bond_restraint(model.positions, s / 100.0), **kw,
        )  # fmt: skip
        row.append(score(truth, r.positions_A))
    t0 = time.perf_counter()
    pos, rec = restrained_positions(
        model, ts.data, ts.angles_deg, pixel_size_A=ts.pixel_size_A, iterations=60
    )
    sec = time.perf_counter() - t0
    chosen = "none" if pos is None else f"{rec['sigma_pm']:g} pm"
    row.append(f"{chosen}: {score(truth, model.positions if pos is None else pos)}")
    row.append(f"{sec:.0f}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="+", type=Path, help="bench_independent.py case folders")
    ap.add_argument("--atoms", nargs="*", type=Path, help="a refined model per case")
    args = ap.parse_args()
    if args.atoms and len(args.atoms) != len(args.cases):
        ap.error(f"{len(args.atoms)} --atoms for {len(args.cases)} cases: give one per case")
    head = ["case", "atoms", "model as given", "free refit"]
    head += [f"bonds at {s:g} pm" for s in RESTRAINT_SIGMAS_PM]
    head += ["held-out choice", "choice s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for i, folder in enumerate(args.cases):
        atoms = args.atoms[i] if args.atoms else folder / "run" / "atoms.csv"
        print("| " + " | ".join(run_case(folder, atoms)) + " |", flush=True)


if __name__ == "__main__":
    main()
