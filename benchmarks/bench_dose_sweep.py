"""Low-dose sweep on series this project did not simulate (#20): where each stage fails.

Tilt series from the independent forward model (abTEM's Lobato potentials and aberrated
300 keV probe, :func:`napari_aet.simulate.independent_tilt_series`) of a light amorphous
particle (Si, about 200 atoms, as the published low-dose data set of another group) and a
heavy crystalline one (Pt), in random orientations, 60 projections over 180 deg, already
aligned (no shifts, no angle errors, a vertical tilt axis), at a sweep of mean counts per pixel
(the whole image's mean, background included) down to about 1. Each series goes through
``napari-aet run`` with its defaults (element given; the amorphous U-Net for the amorphous
particle, the fcc one for Pt). Reported per dose: what the alignment did to the aligned series
(the largest tilt-axis turn, image shift and angle change it applied), and the traced, refined
and final atoms scored against the truth (rigid registration, one-to-one matching within 1 A).
Every case is printed.

Usage: python benchmarks/bench_dose_sweep.py [--doses 8,4.5,2,1.2] [--particles si,pt]
       [--size 128] [--pixel-size 0.195] [--radius A] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import machine
from bench_independent import run_and_score

#: particle -> element, structure, shape, radius [A], U-Net weights
PARTICLES = {
    "si": ("Si", "amorphous", "blob", 8.6, "amorphous"),
    "pt": ("Pt", "fcc", "blob", 8.0, "fcc"),
}


def make_series(particle: str, mean_counts: float, args):
    from scipy.spatial.transform import Rotation

    from napari_aet.forward import rotation_center_A
    from napari_aet.simulate import IndependentImaging, build_structure, independent_tilt_series

    element, structure, shape, radius, _ = PARTICLES[particle]
    radius = args.radius or radius
    size, px = args.size, args.pixel_size
    atoms = build_structure(
        structure,
        element=element,
        radius_A=radius,
        shape=shape,
        shape_px=(size, size),
        pixel_size_A=px,
        seed=args.seed,
    )
    center = rotation_center_A((size, size), px)
    rot = Rotation.random(random_state=args.seed + 7).as_matrix()
    truth = (atoms.positions - center) @ rot.T + center
    angles = np.linspace(-88.5, 88.5, 60)  # 60 projections over 180 deg, 3 deg apart
    imaging = IndependentImaging(mean_counts=mean_counts, background_counts=0.1 * mean_counts)
    series = independent_tilt_series(
        truth, element, angles, pixel_size_A=px, shape_px=(size, size), imaging=imaging,
        seed=args.seed,
    )  # fmt: skip
    return truth, series


def alignment_moves(run_dir: Path) -> dict:
    """What the align stage applied to the (already aligned) series."""
    rec = json.loads((run_dir / "align" / "alignment.json").read_text())
    shifts = np.asarray(rec.get("shifts_px_row_col") or [[0.0, 0.0]], float)
    before = np.asarray(rec["angles_in_deg"], float)
    after = np.asarray(rec["angles_refined_deg"], float)
    return {
        "tilt_axis_deg": abs(float(rec.get("tilt_axis_angle_deg") or 0.0)),
        "max_shift_px": float(np.abs(shifts).max()),
        "max_angle_change_deg": float(np.abs(after - before).max()),
    }


def run_case(particle: str, mean_counts: float, args) -> dict:
    element, *_, weights = PARTICLES[particle]
    t0 = time.perf_counter()
    truth, series = make_series(particle, mean_counts, args)
    t_sim = time.perf_counter() - t0
    folder = args.out / f"{particle}-{mean_counts:g}"
    row = run_and_score(folder, truth, series, element, weights, resume=not args.no_resume)
    return {
        "particle": particle,
        "simulate_s": t_sim,
        **row,
        "alignment": alignment_moves(folder / "run"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--doses", default="8,4.5,2,1.2", help="mean counts per pixel, comma list")
    ap.add_argument("--particles", default="si,pt")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--pixel-size", type=float, default=0.195)
    ap.add_argument(
        "--radius", type=float, default=None, help="particle radius [A] (default 8.6 Si, 8 Pt)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("out/bench_dose_sweep"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-resume", action="store_true")
    args = ap.parse_args()
    doses = [float(d) for d in args.doses.split(",")]
    rows = []
    for particle in args.particles.split(","):
        for dose in doses:
            row = run_case(particle.strip(), dose, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=2))
    print()
    print(
        f"Machine: {machine()}; {args.size} px of {args.pixel_size} A, 60 tilts over 180 deg, "
        "aligned series"
    )
    print()
    print(
        "| particle | atoms | mean counts/px | alignment applied: axis / shift / angle | "
        "traced: missed / false, RMSD | final: missed / false, RMSD | final error | run (s) |"
    )
    print("|---|---:|---:|---|---|---|---:|---:|")
    for r in rows:
        a, s = r["alignment"], r["scores"]

        def cell(stage, scores=s):
            x = scores.get(stage)
            return "" if x is None else f"{x['missed']} / {x['false']}, {x['rmsd_pm']:.1f} pm"

        fin = s.get("final", {})
        print(
            f"| {r['element']} | {r['n_atoms']} | {r['mean_counts_per_px']:.2f} | "
            f"{a['tilt_axis_deg']:.2f} deg / {a['max_shift_px']:.2f} px / "
            f"{a['max_angle_change_deg']:.2f} deg | {cell('traced')} | {cell('final')} | "
            f"{fin.get('identification_error_pct', float('nan')):.2f} % | {r['run_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
