"""Does the alignment leave an aligned series alone, and what does that cost on a faulty one?

Simulated Pt particles (a twinned dumbbell of radius 7 A and an fcc blob of radius 10 A, 96 px
of 0.4 A, 21 tilts over +-70 degrees, the study's dose per image) are aligned with the default
method (projection matching with the joint atom-model fit, tilt axis held vertical), once as
they are (no shifts, no angle errors) and once with angle errors (sd 0.5 degrees) and shifts
(up to 2 px); each with every correction applied (``significance_k=None``) and with only the
significant ones (the default, 3 standard errors). Prints the largest angle change and shift
of the aligned series and the angle error after alignment (common offset removed).

Usage: python benchmarks/bench_significance.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from _common import machine


def main() -> None:
    from napari_aet.align import SIGNIFICANCE_K, align_tilt_series
    from napari_aet.simulate import build_structure, simulate_tilt_series
    from napari_aet.workflows import atom_model_builder

    n, px = 96, 0.4
    ang = np.linspace(-70, 70, 21)
    print(f"Machine: {machine()}; 21 images of {n} px at {px} A, dose 7667 e/A^2 per image\n")
    print("| particle | series | corrections | max angle change (deg) | max shift (px) | "
          "angle error RMS (deg) | angles kept | seconds |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for name, structure, radius in (("Pt dumbbell", "twinned dumbbell", 7.0),
                                    ("Pt fcc", "fcc", 10.0)):  # fmt: skip
        atoms = build_structure(structure, radius_A=radius, shape_px=(n, n), pixel_size_A=px,
                                seed=3)  # fmt: skip
        for faults in (False, True):
            sim = simulate_tilt_series(
                atoms, ang, pixel_size_A=px, shape_px=(n, n), dose_e_per_A2=7667.0, seed=1,
                angle_error_deg=0.5 if faults else 0.0, shift_error_px=2.0 if faults else 0.0,
            )  # fmt: skip
            for k in (None, SIGNIFICANCE_K):
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = align_tilt_series(
                        sim.data, ang, pixel_size_A=px, model_builder=atom_model_builder(),
                        tilt_axis=None, significance_k=k,
                    )  # fmt: skip
                dt = time.perf_counter() - t0
                err = res.angles_deg - sim.truth.angles_deg
                err -= err.mean()
                kept = res.steps.get("significance", {}).get("angle_corrections_kept", "all")
                label = "all" if k is None else f"above {k:g} errors"
                print(
                    f"| {name} | {'faults' if faults else 'aligned'} | {label} | "
                    f"{np.abs(res.angles_deg - ang).max():.3f} | {np.abs(res.shifts_px).max():.2f}"
                    f" | {np.sqrt((err**2).mean()):.3f} | {kept} | {dt:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
