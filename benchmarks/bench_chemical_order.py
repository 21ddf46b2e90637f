"""Chemical order of binary fcc alloys (L1_0, L1_2, disordered) measured from atom models.

Two tables:

1. *Built order, misassigned species*: particles built by ``napari_aet.simulate`` with a
   known order and long-range order parameter S in random orientations, thermal jitter of 8 pm,
   and a share of the atoms given the other element at random (a tracer's species errors: S
   falls to ``S (1 - 2 e)``); the phase found, the measured S and the share of the measured
   atoms whose local phase is the built one.
2. *Traced atoms* (``--runs``): finished ``bench_independent.py`` run folders of alloy cases
   (``<case>/truth.csv`` with ``element``, ``<case>/run/atoms.csv``): the species the run gave
   the atoms paired within 1 A with the truth's, and the order measured on the truth and on
   the run alike.

Usage::

    python benchmarks/bench_chemical_order.py
    python benchmarks/bench_chemical_order.py --runs /tmp/out/fept-l10-study ...
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import machine


def _swap(species: np.ndarray, share: float, rng) -> np.ndarray:
    sp = species.astype(str).copy()
    a, b = sorted(set(sp))
    flip = rng.random(len(sp)) < share
    sp[flip] = np.where(sp[flip] == a, b, a)
    return sp


def built_table(seeds) -> list[str]:
    from napari_aet.analysis import analyze_structure
    from napari_aet.simulate import build_structure

    cases = [
        ("L1_0", "Fe,Pt", 1.0),
        ("L1_0", "Fe,Pt", 0.6),
        ("L1_2", "Pt,Fe", 1.0),
        (None, "Fe,Pt", 0.0),
        (None, "Pt,Fe", 0.0),  # random 3:1
    ]
    rows = [
        "| built | elements | S built | species misassigned | atoms | phases found | S measured "
        "(expected) | local phase = built | time (s) |",
        "|---|---|---:|---:|---:|---|---|---:|---:|",
    ]
    for order, element, s in cases:
        for err in (0.0, 0.05, 0.10):
            phases, s_meas, local, dt, n = [], [], [], 0.0, 0
            for seed in seeds:
                kw = {"composition": [0.75, 0.25]} if order is None and element == "Pt,Fe" else {}
                m = build_structure("fcc", element=element, radius_A=16.0, seed=seed,
                                    order=order, order_parameter=s or 1.0, jitter_A=0.08,
                                    **kw)  # fmt: skip
                m.features["element"] = _swap(
                    m.features["element"].to_numpy(), err, np.random.default_rng(seed)
                )
                t0 = time.perf_counter()
                c = analyze_structure(m, element=element).summary["chemical_order"]
                dt += time.perf_counter() - t0
                n = len(m.positions)
                g = c["grains"][0]
                phases.append(c["phase"])
                key = "S_L1_2" if (order or c["phase"]) == "L1_2" else "S_L1_0"
                s_meas.append(g[key])
                want = order or "A1"
                lp = c["local_phase_atoms"]
                local.append(lp[want] / max(sum(lp.values()), 1))
            expected = s * (1 - 2 * err) if order else 0.0
            found = ", ".join(f"{p} x{phases.count(p)}" for p in dict.fromkeys(phases))
            rows.append(
                f"| {order or 'random'} | {element} | {s:g} | {100 * err:.0f} % | {n} | {found} | "
                f"{np.mean(s_meas):.2f} ({expected:.2f}) | {100 * np.mean(local):.0f} % | "
                f"{dt / len(seeds):.2f} |"
            )
            print(rows[-1], flush=True)
    return rows


def runs_table(runs) -> list[str]:
    import pandas as pd
    from _common import truth_and_run

    from napari_aet.analysis import analyze_structure
    from napari_aet.core.atoms import AtomModel

    rows = [
        "| run | atoms (truth) | paired | species right | truth: phase, S | run: phase, S | "
        "run: local phase of the measured atoms |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for folder in runs:
        folder = Path(folder)
        truth_table, truth, run, moved, pairs = truth_and_run(folder)
        t_sp = truth_table["element"].astype(str).to_numpy()
        r_sp = run.features["element"].astype(str).to_numpy()
        right = float(np.mean(t_sp[pairs[:, 0]] == r_sp[pairs[:, 1]]))
        element = ",".join(sorted(set(t_sp)))
        t = analyze_structure(AtomModel(truth, pd.DataFrame({"element": t_sp})), element=element)
        r = analyze_structure(AtomModel(moved, pd.DataFrame({"element": r_sp})), element=element)

        def desc(res):
            c = res.summary["chemical_order"] or {}
            if not c.get("grains"):
                return "not measured"
            g = max(c["grains"], key=lambda x: x["n_atoms"])
            key = "S_L1_2" if g["phase"] == "L1_2" else "S_L1_0"
            return f"{c['phase']}, {g[key]:.2f}"

        lp = (r.summary["chemical_order"] or {}).get("local_phase_atoms", {})
        total = max(sum(lp.values()), 1)
        local = ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in lp.items())
        rows.append(
            f"| {folder.name} | {len(truth)} | {len(pairs)} | {100 * right:.1f} % | {desc(t)} | "
            f"{desc(r)} | {local} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="1,2,3", help="comma list")
    ap.add_argument("--runs", nargs="*", default=[], help="bench_independent case folders")
    args = ap.parse_args()
    print(machine())
    if args.runs:
        runs_table(args.runs)
        return
    built_table([int(v) for v in args.seeds.split(",")])


if __name__ == "__main__":
    main()
