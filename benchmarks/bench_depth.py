"""Composition by depth of alloy particles: built profiles and traced runs against their truth.

Two tables:

1. *Built profiles*: random Pt-Ni spheres built by ``napari_aet.simulate`` (three seeds), as
   built (no profile: the note must stay silent) and with their outer shell made Pt (a
   core-shell particle: the note must name Pt); the surface and inner shares of Pt, z, and
   whether the note came, and the time of :func:`napari_aet.analysis.composition_by_depth`.
2. *Traced runs* (``--runs``): finished ``bench_independent.py`` case folders of alloys
   (``<case>/truth.csv`` with ``element``, ``<case>/run/atoms.csv``): each element's share in
   the surface shell and the inner half, in the truth and in the run's final atoms, the run's
   z and its atoms' median significance there, and whether the note came.

Usage::

    python benchmarks/bench_depth.py
    python benchmarks/bench_depth.py --runs /tmp/out/fept-particle-study ...
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import machine

BOND_A = {"Pt,Ni": 2.70}


def _notes(notes) -> str:
    """The notes' kinds: the profile's (an element richer at the surface) and each element
    measured below the bar."""
    kinds = ["profile" if "richer" in n else "weak " + n.split("'")[0] for n in notes]
    return ", ".join(kinds) or "none"


def built_table(seeds) -> list[str]:
    from napari_aet.analysis import composition_by_depth
    from napari_aet.simulate import build_structure

    rows = [
        "| particle (seed) | atoms | Pt surface / inner | z | notes | time (s) |",
        "|---|---:|---|---:|---|---:|",
    ]
    for seed in seeds:
        m = build_structure(
            "fcc", element="Pt,Ni", radius_A=16.0, seed=seed, jitter_A=0.05, shape="sphere"
        )
        pos = m.positions
        r = np.linalg.norm(pos - pos.mean(axis=0), axis=1)
        random = m.features["element"].astype(str).to_numpy()
        shell = np.where(r > r.max() - 3.0, "Pt", "Ni")
        for name, species in (("random Pt-Ni", random), ("Pt shell on Ni", shell)):
            t0 = time.perf_counter()
            out = composition_by_depth(pos, species, BOND_A["Pt,Ni"])
            dt = time.perf_counter() - t0
            c = out["surface_vs_inner"]["Pt"]
            rows.append(
                f"| {name} ({seed}) | {len(pos)} | {c['surface_share']:.2f} / "
                f"{c['inner_share']:.2f} | {c['z']:+.1f} | {_notes(out['notes'])} | "
                f"{dt:.2f} |"
            )
    return rows


def runs_table(folders) -> list[str]:
    from _common import truth_and_run

    from napari_aet.analysis import composition_by_depth, nearest_neighbour_distance

    rows = [
        "| run | element | truth: surface / inner | run: surface / inner (z) | run: median "
        "significance, surface / inner | notes |",
        "|---|---|---|---|---|---|",
    ]
    for folder in folders:
        table, truth, run, _, _ = truth_and_run(folder)
        bond = nearest_neighbour_distance(truth)
        t = composition_by_depth(truth, table["element"].astype(str).to_numpy(), bond)
        f = run.features
        sig = f["refine_significance"].to_numpy(float) if "refine_significance" in f else None
        r = composition_by_depth(run.positions, f["element"].astype(str).to_numpy(), bond, sig)
        for e in t["elements"]:
            ct, cr = t["surface_vs_inner"][e], r["surface_vs_inner"].get(e, {})
            s_out = cr.get("surface_median_significance")
            s_in = cr.get("inner_median_significance")
            sig_txt = "-" if s_out is None else f"{s_out:.1f} / {s_in:.1f}"
            rows.append(
                f"| {folder} | {e} | {ct['surface_share']:.2f} / {ct['inner_share']:.2f} | "
                f"{cr.get('surface_share', float('nan')):.2f} / "
                f"{cr.get('inner_share', float('nan')):.2f} ({cr.get('z', float('nan')):+.1f}) | "
                f"{sig_txt} | {_notes(r['notes'])} |"
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--runs", nargs="*", default=None, help="bench_independent case folders")
    args = ap.parse_args()
    print(f"machine: {machine()}\n")
    if args.runs:
        print("\n".join(runs_table(args.runs)))
    else:
        print("\n".join(built_table([int(s) for s in args.seeds.split(",")])))


if __name__ == "__main__":
    main()
