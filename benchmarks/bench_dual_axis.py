"""The second series' in-plane turn of a dual-axis acquisition, and what the second axis buys.

For an Au fcc particle, a twinned Pt dumbbell and an amorphous Si particle (64 px of 0.4 A,
21 tilts over +-60 degrees each) the second series is the particle turned by 37, -120, 90, 85
and 178 degrees about the beam (with 1.5 px shifts on its images). Prints the error of the turn
from the untilted images alone and after refinement against every image of the second series
(:func:`napari_aet.align.refine_second_axis_turn`), then, for the Au particle turned by 90
degrees, the traced atoms' RMSD from one series and from both.

Usage: python benchmarks/bench_dual_axis.py
"""

from __future__ import annotations

import time

import numpy as np
from _common import machine


def turned(atoms, delta_deg, shape_px, px):
    from napari_aet.simulate import turn_about_beam

    return turn_about_beam(atoms, delta_deg, shape_px=shape_px, pixel_size_A=px)


def main() -> None:
    from napari_aet.align import dual_axis_euler, refine_second_axis_turn, register_second_axis
    from napari_aet.analysis import compare_atom_models
    from napari_aet.recon import genfire
    from napari_aet.simulate import build_structure, simulate_tilt_series
    from napari_aet.trace import trace_atoms

    n, px = 64, 0.4
    ang = np.arange(-60, 61, 6.0)
    print(f"Machine: {machine()}; 2 x 21 images of {n} px at {px} A\n")
    print("| particle | turn (deg) | error from untilted images (deg) | error refined (deg) | "
          "seconds |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    particles = {
        "Au fcc": build_structure("fcc", element="Au", radius_A=8, shape="convex",
                                  shape_px=(n, n), pixel_size_A=px, seed=4),
        "Pt dumbbell": build_structure("twinned dumbbell", radius_A=6, shape_px=(n, n),
                                       pixel_size_A=px, seed=5),
        "Si amorphous": build_structure("amorphous", element="Si", radius_A=8, shape="convex",
                                        shape_px=(n, n), pixel_size_A=px, seed=6),
    }  # fmt: skip
    for name, atoms in particles.items():
        el = str(atoms.features["element"].iloc[0])
        a = simulate_tilt_series(atoms, ang, pixel_size_A=px, shape_px=(n, n), element=el, seed=1)
        vol = genfire(a.data, ang, iterations=20).volume
        for delta in (37.0, -120.0, 90.0, 85.0, 178.0):
            b = simulate_tilt_series(
                turned(atoms, delta, (n, n), px), ang, pixel_size_A=px, shape_px=(n, n),
                element=el, seed=2, shift_error_px=1.5,
            )  # fmt: skip
            t0 = time.perf_counter()
            reg = register_second_axis(a.data, ang, b.data, ang)
            d, _ = refine_second_axis_turn(vol, b.data, ang, reg.rotation_deg,
                                           candidates=reg.candidates_deg)  # fmt: skip
            dt = time.perf_counter() - t0

            def err(x, delta=delta):
                return (x - delta + 180.0) % 360.0 - 180.0

            print(f"| {name} | {delta:g} | {err(reg.rotation_deg):+.2f} | {err(d):+.2f} | "
                  f"{dt:.1f} |", flush=True)  # fmt: skip
    atoms = particles["Au fcc"]
    a = simulate_tilt_series(atoms, ang, pixel_size_A=px, shape_px=(n, n), element="Au", seed=1)
    b = simulate_tilt_series(turned(atoms, 90.0, (n, n), px), ang, pixel_size_A=px,
                             shape_px=(n, n), element="Au", seed=2)  # fmt: skip
    print("\n| reconstruction | atoms | traced | common | RMSD (pm) |\n|---|---:|---:|---:|---:|")
    for label, data, geometry in (
        ("first series (+-60 deg)", a.data, {"angles_deg": ang}),
        ("both series (turn 90 deg)", np.concatenate([a.data, b.data]),
         {"euler_deg": dual_axis_euler(ang, ang, 90.0)}),
    ):  # fmt: skip
        vol = genfire(data, iterations=40, **geometry).volume
        tr = trace_atoms(vol, voxel_size_A=px, element="Au").atoms
        c = compare_atom_models(atoms.positions, tr.positions)
        print(f"| {label} | {atoms.n_atoms} | {tr.n_atoms} | {c.n_common} | "
              f"{100 * c.rmsd_A:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
