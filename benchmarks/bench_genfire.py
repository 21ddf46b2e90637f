"""GENFIRE in torch against the original authors' package (`genfire` 1.1.11 on PyPI).

Both codes reconstruct the same simulated 21-image series of the built-in sample (256 px,
true angles, no shifts) with the same settings (FFT interpolation, oversampling 2, radius 0.3,
support = the whole unpadded cube, positivity). The original runs in its own virtual
environment (benchmarks/.genfire-env, created on first use; never a runtime dependency).

Prints a Markdown table: gridding seconds, seconds per iteration (median over iterations after
the first, and the mean including it), peak memory of each code's process, and the normalized
cross-correlation of the two tomograms inside the support (the visual hull of the
projections), after matching the codes' conventions (genfire's theta is
the negative of ours; its arrays are (X, Y, Z)).

Usage: python benchmarks/bench_genfire.py [--iterations 3] [--skip-original]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine

HERE = Path(__file__).resolve().parent
ENV = HERE / ".genfire-env"


def ensure_original_env() -> Path:
    py = ENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ENV)], check=True)
        pip = [str(py), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--no-deps", "genfire==1.1.11"], check=True)
        subprocess.run(
            [*pip, "numpy", "scipy", "matplotlib", "pillow", "six", "pyparsing"], check=True
        )
    return py


def make_series():
    from napari_aet.simulate import simulate_tilt_series, twinned_pt_nanodumbbell

    s = twinned_pt_nanodumbbell()
    sim = simulate_tilt_series(s.truth.atoms, s.truth.angles_deg, seed=5)
    return sim.data, np.asarray(s.truth.angles_deg)


def run_ours(inp: str, out: str) -> None:
    """Run in a child process so that its peak memory is its own."""
    import torch

    from napari_aet.recon import genfire

    d = np.load(inp)
    torch.set_num_threads(os.cpu_count() or 1)
    res = genfire(
        d["projections"],
        d["angles_deg"],
        iterations=int(d["iterations"]),
        oversampling=float(d["oversampling"]),
        interpolation="fft",
        interpolation_radius=float(d["radius"]),
        support="box",
        rfree_fraction=0.0,
        device="cpu",
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    np.savez(
        out,
        volume=res.volume,
        t_grid=res.timings_s["gridding"],
        t_iter=res.timings_s["per_iteration"],
        t_iter_mean=res.timings_s["mean_iteration"],
        peak_bytes=peak,
    )


def ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    x = a[mask].astype(np.float64)
    y = b[mask].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--oversampling", type=int, default=2)
    ap.add_argument("--skip-original", action="store_true")
    args = ap.parse_args()
    data, angles = make_series()
    tmp = Path(tempfile.mkdtemp(prefix="bench-genfire-"))
    common = {"iterations": args.iterations, "oversampling": args.oversampling, "radius": 0.3}
    np.savez(tmp / "ours_in.npz", projections=data, angles_deg=angles, **common)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--_ours", str(tmp / "ours_in.npz"), str(tmp / "ours_out.npz")],
        check=True,
    )
    ours = np.load(tmp / "ours_out.npz")
    print(f"ours finished in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rows = [("napari-aet (torch, float32)", ours)]
    orig = None
    if not args.skip_original:
        py = ensure_original_env()
        # genfire's theta is the negative of ours (see docs/conventions.md)
        np.savez(tmp / "orig_in.npz", projections=data, angles_deg=-angles, **common)
        t0 = time.perf_counter()
        subprocess.run(
            [
                str(py),
                str(HERE / "_genfire_original_runner.py"),
                str(tmp / "orig_in.npz"),
                str(tmp / "orig_out.npz"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"original finished in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        orig = np.load(tmp / "orig_out.npz")
        rows.insert(0, ("genfire 1.1.11 (numpy, float64)", orig))

    from napari_aet.recon import projection_axes, visual_hull_support

    r, c, _ = projection_axes(angles)
    n = data.shape[1]
    mask = visual_hull_support(data, r, c, (n, n, n)).numpy()
    print(
        f"Machine: {machine()}; {len(angles)} images of {n} x {n} px, oversampling "
        f"{args.oversampling}, FFT interpolation radius 0.3, {args.iterations} iterations"
    )
    print()
    head = ["code", "gridding (s)", "per iteration, median (s)", "mean incl. first (s)"]
    print("| " + " | ".join([*head, "peak memory (GB)"]) + " |")
    print("|---|---:|---:|---:|---:|")
    for name, r_ in rows:
        print(
            f"| {name} | {float(r_['t_grid']):.2f} | {float(r_['t_iter']):.2f} | "
            f"{float(r_['t_iter_mean']):.2f} | {float(r_['peak_bytes']) / 1e9:.2f} |"
        )
    if orig is not None:
        g = float(orig["t_grid"]) / float(ours["t_grid"])
        it = float(orig["t_iter"]) / float(ours["t_iter"])
        mem = float(orig["peak_bytes"]) / float(ours["peak_bytes"])
        cc = ncc(orig["volume"], ours["volume"], mask)
        itm = float(orig["t_iter_mean"]) / float(ours["t_iter_mean"])
        print(
            f"| **ratio original / ours** | **{g:.1f}x** | **{it:.1f}x** | **{itm:.1f}x** | "
            f"**{mem:.1f}x** |"
        )
        print()
        print(
            f"Normalized cross-correlation of the two tomograms inside the support "
            f"({mask.mean():.1%} of the cube): {cc:.4f}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_ours":
        run_ours(sys.argv[2], sys.argv[3])
    else:
        main()
