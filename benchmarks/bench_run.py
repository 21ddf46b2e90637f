"""The whole pipeline (`napari-aet run`) on the built-in 256 px sample, against its truth.

Simulates the sample (shifts up to 3 px, angle errors sd 0.3 degrees, the study's dose), runs
every stage with the defaults (align with projection matching of shifts and angles, GENFIRE
100 iterations at oversampling 2, the U-Net unless --augment none, trace, refine the traced
positions against the aligned series, analyze with strain, validate, figures), prints each
stage's time and compares the final atoms with the true ones. The pipeline's volume frame is
the aligned series' (centred by the alignment), so the models are first registered by a
translation (iterated mean offset of the pairs within 1.5 A).

Usage: python benchmarks/bench_run.py [--out DIR] [--augment fcc|none] [--device auto]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import machine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("out/bench_run"))
    ap.add_argument("--augment", default="fcc")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compare-only", action="store_true", help="reuse a finished run")
    args = ap.parse_args()
    from napari_aet.analysis import compare_atom_models, register_rigid, register_translation
    from napari_aet.cli import main as cli
    from napari_aet.io import read_atoms

    sample_dir = args.out / "sample"
    run_dir = args.out / f"run-{args.augment.replace('/', '_')}"
    if not args.compare_only:
        assert cli(["-q", "simulate", "--sample", "--out", str(sample_dir)]) == 0
        rc = cli(["-q", "run", str(sample_dir / "tilt_series.h5"), "--out", str(run_dir),
                  "--augment", args.augment, "--device", args.device, "--no-resume"])  # fmt: skip
        assert rc == 0, "the pipeline failed; see run.log"
    state = json.loads((run_dir / "pipeline.json").read_text())
    total = sum(info["seconds"] for info in state["stages"].values())
    truth = read_atoms(sample_dir / "truth_atoms.csv").positions
    traced = read_atoms(run_dir / "atoms.csv").positions
    shift = register_translation(truth, traced)
    moved, angle = register_rigid(truth, traced)
    comparisons = {
        "translation": compare_atom_models(truth, traced + shift, radius_A=1.0),
        f"rigid (rotation {angle:.2f} deg)": compare_atom_models(truth, moved, radius_A=1.0),
    }
    summary = json.loads((run_dir / "analysis.json").read_text())
    print(f"Machine: {machine()}; device {args.device}; augment {args.augment!r}")
    print()
    print("| stage | seconds |")
    print("|---|---:|")
    for stage, info in state["stages"].items():
        print(f"| {stage} | {info['seconds']:.0f} |")
    print(f"| **total** | **{total:.0f}** |")
    print()
    print("| registration | true atoms | traced | missed | false | identification error | "
          "RMSD (pm) | mean R-factor | twin-boundary layers |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, c in comparisons.items():
        print(
            f"| {name} | {c.n_reference} | {c.n_test} | {c.n_reference - c.n_common} | "
            f"{c.n_test - c.n_common} | {100 * c.identification_error:.2f} % | "
            f"{100 * c.rmsd_A:.1f} | {summary.get('r_factor_mean', float('nan')):.4f} | "
            f"{summary.get('twin_boundary_layers')} |"
        )
    print(f"\n(registration shift {np.round(shift, 3).tolist()} A)")


if __name__ == "__main__":
    main()
