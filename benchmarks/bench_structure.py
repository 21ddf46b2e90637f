"""Structure analysis of the traced sample against the truth.

Traces a GENFIRE tomogram of the simulated sample (reconstructed here unless --tomogram gives a
saved one), analyses the traced atoms, and compares with the truth: stacking labels (fcc/hcp/
other) of the atoms paired with true atoms, the layer of the fault, the twist, and the time.

Usage: python benchmarks/bench_structure.py [--iterations 100] [--tomogram saved.npy]
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
    from napari_aet.analysis import analyze_structure, compare_atom_models
    from napari_aet.core.atoms import AtomModel
    from napari_aet.trace import trace_atoms

    s, _, vol = sample_series_and_tomogram(args.tomogram, iterations=args.iterations)
    truth = s.truth.atoms
    traced = trace_atoms(vol, voxel_size_A=0.358).atoms
    rows = []
    for label, model in (("true atoms", AtomModel(truth.positions)), ("traced atoms", traced)):
        t0 = time.perf_counter()
        res = analyze_structure(AtomModel(model.positions))
        dt = time.perf_counter() - t0
        c = compare_atom_models(truth.positions, model.positions)
        f = res.model.features
        agree = (
            f["stacking"].to_numpy()[c.pairs[:, 1]]
            == truth.features["stacking"].to_numpy()[c.pairs[:, 0]]
        ).mean()
        lay = f["layer"].to_numpy()[c.pairs[:, 1]]
        tl = truth.features["layer"].to_numpy()[c.pairs[:, 0]]
        sign = 1 if np.corrcoef(lay, tl)[0, 1] > 0 else -1
        layer_ok = (lay * sign == tl).mean()
        rows.append(
            (
                label,
                model.n_atoms,
                agree,
                layer_ok,
                res.summary["twin_boundary_layers"],
                res.summary["relative_rotation_deg"],
                dt,
            )
        )
    print(
        f"Machine: {machine()}; truth: {truth.n_atoms} atoms, extrinsic fault at layer 0, "
        f"twin boundaries at -1 and +1, twist 1.6 deg"
    )
    print()
    print(
        "| atoms analysed | count | stacking agrees | layer agrees | twin boundaries | "
        "twist (deg) | seconds |"
    )
    print("|---|---:|---:|---:|---|---:|---:|")
    for label, n, agree, lay, tb, rot, dt in rows:
        print(
            f"| {label} | {n} | {100 * agree:.2f} % | {100 * lay:.2f} % | {tb} | {rot:.3f} | "
            f"{dt:.2f} |"
        )


if __name__ == "__main__":
    main()
