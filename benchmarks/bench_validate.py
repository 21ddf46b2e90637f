"""R-factors of atom models of the sample against its (aligned) simulated tilt series.

The true atoms, the atoms traced from a GENFIRE tomogram of the same series, and the truth with
10 % of its atoms removed are forward-projected (Kirkland potentials, 0.45 A Gaussian) and
compared with the 21 images. The study reported mean R-factors of 0.151-0.158 on its
experimental series.

Usage: python benchmarks/bench_validate.py --tomogram saved.npy
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import machine, sample_series_and_tomogram


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--tomogram", type=Path, default=None)
    args = ap.parse_args()
    from napari_aet.analysis import r_factor
    from napari_aet.trace import trace_atoms

    s, sim, vol = sample_series_and_tomogram(args.tomogram, iterations=args.iterations)
    traced = trace_atoms(vol, voxel_size_A=0.358).atoms.positions
    truth = s.truth.atoms.positions
    keep = np.random.default_rng(0).permutation(len(truth))[: int(0.9 * len(truth))]
    print(f"Machine: {machine()}; 21 images of 256 x 256 px at the study's dose")
    print()
    print("| model | atoms | mean R | min R | max R | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, pos in (
        ("true atoms", truth),
        ("traced atoms", traced),
        ("true atoms, 10 % removed", truth[keep]),
    ):
        t0 = time.perf_counter()
        r = r_factor(pos, sim.data, s.angles_deg, pixel_size_A=0.358)
        dt = time.perf_counter() - t0
        print(
            f"| {label} | {len(pos)} | {r.r_mean:.4f} | {r.r_per_image.min():.4f} | "
            f"{r.r_per_image.max():.4f} | {dt:.1f} |"
        )


if __name__ == "__main__":
    main()
