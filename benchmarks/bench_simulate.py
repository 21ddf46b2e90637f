"""Benchmark the tilt-series simulator: 256 x 256 x 21 images of about 3,500 atoms.

Target (issue: foundation): under 20 s on the project's 2-core machine.
Run: `make bench` or `.venv/bin/python benchmarks/bench_simulate.py`. Prints a Markdown table.
"""

from __future__ import annotations

import resource
import time

import numpy as np
from _common import machine

from napari_aet.forward import rotation_center_A
from napari_aet.simulate import (
    build_structure,
    simulate_tilt_series,
    thermal_jitter,
    twinned_dumbbell,
)


def run_case(name: str, positions: np.ndarray, n_tilts: int = 21, size: int = 256) -> dict:
    angles = np.linspace(-70, 70, n_tilts)
    t0 = time.perf_counter()
    sim = simulate_tilt_series(
        positions, angles, shape_px=(size, size), angle_error_deg=0.3, shift_error_px=3, seed=0
    )
    dt = time.perf_counter() - t0
    return {
        "case": name,
        "atoms": len(positions),
        "images": f"{n_tilts} x {size} x {size}",
        "seconds": dt,
        "max_counts": float(sim.data.max()),
    }


def main() -> None:
    rng = np.random.default_rng(0)
    c = rotation_center_A((256, 256), 0.358)
    rows = []
    t0 = time.perf_counter()
    s = twinned_dumbbell(radius_bottom_A=18.9, radius_top_A=17.9, center_distance_A=30.0, seed=0)
    t_build = time.perf_counter() - t0
    pos = thermal_jitter(s.positions, sigma_A=0.05, seed=rng) + c
    rows.append(run_case(f"twinned dumbbell (build {t_build:.2f} s)", pos))
    fcc = build_structure("fcc", radius_A=23.3, shape="sphere", seed=1)
    rows.append(run_case("fcc sphere", fcc.positions))
    amo = build_structure("amorphous", radius_A=24.0, shape="sphere", seed=2)
    rows.append(run_case("amorphous sphere", amo.positions))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Machine: {machine()}")
    print()
    print("| case | atoms | images | seconds | target | max counts |")
    print("|---|---:|---|---:|---|---:|")
    for r in rows:
        ok = "< 20 s: met" if r["seconds"] < 20 else "< 20 s: MISSED"
        print(
            f"| {r['case']} | {r['atoms']} | {r['images']} | {r['seconds']:.2f} | {ok} | "
            f"{r['max_counts']:.0f} |"
        )
    print()
    print(f"Peak resident memory of the whole run: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
