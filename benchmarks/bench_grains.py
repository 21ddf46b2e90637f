"""Twin domains (grains) of multiply twinned particles: found from exact, noisy and traced
positions.

Two tables:

1. *Position noise*: decahedra, icosahedra and the particles that must not come out multiply
   twinned (a single crystal, a twinned dumbbell), built by ``napari_aet.simulate`` in
   random orientations, each atom moved by Gaussian noise of a given RMS per axis (traced
   models carry 5-25 pm in 3D); the kind found, the grains, the twin boundaries, the
   five-fold axes' error against the built ones, and the share of atoms (off the twin planes)
   whose grain is their true segment.
2. *Traced atoms* (``--runs``): finished ``bench_independent.py`` run folders of multiply
   twinned cases (``<case>/truth.csv`` beside ``<case>/run/atoms.csv``): the truth and the
   run's atoms analysed alike, the run registered onto the truth, and its grains compared
   atom by atom (mutual pairs within 1 A) with the truth's.

Usage::

    python benchmarks/bench_grains.py
    python benchmarks/bench_grains.py --runs /tmp/deca/s0/pt-decahedron-study ...
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import machine


def _label_agreement(true_label, label, inside) -> float:
    """Share of ``inside`` atoms whose found grain is the one most of their true grain got."""
    t, g = np.asarray(true_label)[inside], np.asarray(label)[inside]
    ok = 0
    for k in np.unique(t):
        found = g[t == k]
        found = found[found >= 0]
        if len(found):
            ok += int(np.bincount(found).max())
    return ok / max(int(inside.sum()), 1)


def _axis_error_deg(found, truth) -> float:
    """Largest angle [deg] from a true five-fold axis to the nearest found one (NaN if
    the numbers differ)."""
    found, truth = np.asarray(found).reshape(-1, 3), np.asarray(truth).reshape(-1, 3)
    if len(found) != len(truth) or not len(truth):
        return float("nan")
    c = np.abs(truth @ found.T).max(axis=1)
    return float(np.rad2deg(np.arccos(np.clip(c, -1, 1))).max())


def noise_table(noise_pm, seeds) -> list[str]:
    from scipy.spatial import cKDTree

    from napari_aet.analysis import nearest_neighbour_distance, segment_grains
    from napari_aet.simulate import build_structure

    particles = [
        ("decahedron", 10.0),
        ("decahedron", 15.0),
        ("decahedron", 20.0),
        ("icosahedron", 15.0),
        ("icosahedron", 20.0),
        ("fcc", 20.0),
        ("twinned dumbbell", 15.0),
    ]
    rows = [
        "| particle (radius A) | atoms | noise per axis (pm) | seeds | kinds found | grains | "
        "twin boundaries | five-fold axes: worst error (deg) | grain = true segment | "
        "time (s) |",
        "|---|---:|---:|---:|---|---|---|---:|---:|---:|",
    ]
    for structure, radius in particles:
        for noise in noise_pm:
            kinds, grains, twins, axis_err, agree, n_atoms, dt = [], [], [], [], [], [], 0.0
            for seed in seeds:
                m = build_structure(
                    structure, element="Pt", radius_A=radius, seed=seed, jitter_A=noise / 100
                )
                pos = m.positions
                t0 = time.perf_counter()
                g = segment_grains(pos, nearest_neighbour_distance(pos))
                dt += time.perf_counter() - t0
                n_atoms.append(len(pos))
                kinds.append(g.kind)
                grains.append(g.n_grains)
                twins.append(sum(b["twin"] for b in g.boundaries))
                truth_axes = m.metadata.get("fivefold_axes_zyx") or (
                    [m.metadata["fivefold_axis_zyx"]] if "fivefold_axis_zyx" in m.metadata else []
                )
                if truth_axes:
                    axis_err.append(_axis_error_deg(g.fivefold_axes_zyx, truth_axes))
                if "segment" in m.features:
                    seg = m.features["segment"].to_numpy()
                    nbrs = cKDTree(pos).query_ball_point(pos, 1.2 * 2.77)
                    inside = np.array([len(set(seg[n])) == 1 for n in nbrs])
                    agree.append(_label_agreement(seg, g.label, inside))
            kinds_txt = ", ".join(f"{k} x{kinds.count(k)}" for k in dict.fromkeys(kinds))
            rows.append(
                f"| {structure} ({radius:g}) | {int(np.mean(n_atoms))} | {noise:g} | "
                f"{len(seeds)} | {kinds_txt} | {'/'.join(map(str, grains))} | "
                f"{'/'.join(map(str, twins))} | "
                + (
                    f"{np.nanmax(axis_err):.1f}"
                    if axis_err and np.isfinite(axis_err).any()
                    else "not found"
                    if axis_err
                    else ""
                )
                + " | "
                + (f"{100 * min(agree):.1f} %" if agree else "")
                + f" | {dt / len(seeds):.2f} |"
            )
            print(rows[-1], flush=True)
    return rows


def runs_table(runs) -> list[str]:
    from _common import truth_and_run
    from scipy.spatial import cKDTree

    from napari_aet.analysis import analyze_structure
    from napari_aet.core.atoms import AtomModel

    rows = [
        "| run | truth: kind, grains, twins | run: kind, grains, twins | five-fold axes: worst "
        "error (deg) | paired atoms off the twin planes | in the truth's grain | strain "
        "measured |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for folder in runs:
        folder = Path(folder)
        _, truth, _, moved, pairs = truth_and_run(folder)
        t = analyze_structure(AtomModel(truth), element="Pt", strain=True)
        r = analyze_structure(AtomModel(moved), element="Pt", strain=True)
        gt, gr = t.summary["grains"] or {}, r.summary["grains"] or {}
        # off the twin planes (their atoms are shared: which grain takes them is a convention)
        true_grain = t.model.features["grain"].to_numpy()
        nbrs = cKDTree(truth).query_ball_point(
            truth, 1.25 * t.summary["nearest_neighbour_distance_A"]
        )
        inside = np.array([len(set(true_grain[n])) == 1 for n in nbrs])
        pairs = pairs[inside[pairs[:, 0]]]
        lt = true_grain[pairs[:, 0]]
        lr = r.model.features["grain"].to_numpy()[pairs[:, 1]]
        # the run's grain numbers mapped onto the truth's by majority
        agree = 0
        for k in np.unique(lr[lr >= 0]):
            agree += int(np.bincount(lt[(lr == k) & (lt >= 0)], minlength=1).max())
        strain = float(np.isfinite(r.model.features["exx"]).mean())

        def desc(g):
            return (
                f"{g.get('kind')}, {g.get('n_grains')}, "
                f"{sum(b['twin'] for b in g.get('boundaries', []))}"
            )

        err = _axis_error_deg(gr.get("fivefold_axes_zyx") or [], gt.get("fivefold_axes_zyx") or [])
        rows.append(
            f"| {folder.name} | {desc(gt)} | {desc(gr)} | {err:.1f} | {len(pairs)} / "
            f"{int(inside.sum())} | {100 * agree / max(len(pairs), 1):.1f} % | "
            f"{100 * strain:.0f} % |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--noise-pm", default="0,5,10,15,20", help="RMS per axis [pm], comma list")
    ap.add_argument("--seeds", default="1,2,3", help="comma list")
    ap.add_argument("--runs", nargs="*", default=[], help="bench_independent case folders")
    args = ap.parse_args()
    print(machine())
    if args.runs:
        runs_table(args.runs)
        return
    noise_table(
        [float(v) for v in args.noise_pm.split(",")], [int(v) for v in args.seeds.split(",")]
    )


if __name__ == "__main__":
    main()
