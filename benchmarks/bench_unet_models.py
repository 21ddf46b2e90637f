"""U-Net weights compared on tilt series this project did not simulate.

For each case of ``bench_independent.py`` (abTEM's Lobato potentials and aberrated probe,
random orientations, realistic counts) the series is prepared as the align stage prepares an
aligned series (background plane subtracted, the study's low-pass), reconstructed once by
GENFIRE with the run's settings, and then traced three ways with the run's trace settings:
from GENFIRE itself, and from the U-Net's output with each weights file given. The traced atoms
are scored against the truth after a rigid registration with one-to-one matching within 1 A.
What this isolates is the U-Net: same tomogram, same tracer, only the network differs.

Usage: python benchmarks/bench_unet_models.py --weights fcc NEW.pt [--size 128]
       [--cases pt-dumbbell/study,...] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import machine
from bench_independent import PARTICLES, make_case, score

DEFAULT_CASES = [
    "pt-dumbbell/study",
    "pt-dumbbell/third",
    "pt-polyhedron/study",
    "pt-polyhedron/third",
    "au-particle/study",
    "au-particle/third",
]


def genfire_of(folder: Path, series, element: str) -> Path:
    """The GENFIRE tomogram of ``series`` prepared as the align stage does (cached)."""
    from napari_aet.align import lowpass_filter, subtract_background
    from napari_aet.io import TiltSeries, write_tilt_series
    from napari_aet.workflows import RunSettings, SeriesSource
    from napari_aet.workflows.stages import run_recon

    vol = folder / "recon" / "tomogram.h5"
    if vol.exists():
        return vol
    folder.mkdir(parents=True, exist_ok=True)
    data, _ = subtract_background(series.data, method="plane")
    data = lowpass_filter(data, pixel_size_A=series.pixel_size_A)
    path = folder / "prepared.h5"
    write_tilt_series(
        path, TiltSeries(data, series.angles_deg, series.pixel_size_A, "independent", {})
    )
    settings = RunSettings.for_element(element)
    run_recon(SeriesSource(str(path)), settings.recon, folder / "recon")
    return vol


def trace_scored(volume: Path, out: Path, element: str, truth) -> dict:
    from napari_aet.workflows import RunSettings, VolumeSource
    from napari_aet.workflows.atom_stages import run_trace

    run_trace(VolumeSource(str(volume)), RunSettings.for_element(element).trace, out)
    return score(truth, out / "atoms.csv")


def run_case(name: str, weights: list[str], args) -> list[dict]:
    from napari_aet.workflows import AugmentSettings, VolumeSource
    from napari_aet.workflows.stages import run_augment

    particle = name.split("/")[0]
    element, *_, default_weights = PARTICLES[particle]
    folder = args.out / name.replace("/", "-")
    truth, series = make_case(name, args.size, args.pixel_size, args.seed)
    t0 = time.perf_counter()
    vol = genfire_of(folder, series, element)
    rows = [{"case": name, "tomogram": "GENFIRE", "seconds": time.perf_counter() - t0}]
    rows[0].update(trace_scored(vol, folder / "trace-genfire", element, truth))
    for k, w in enumerate(weights):
        w = default_weights if w == "default" else w
        if particle == "pt-amorphous" and w == "fcc":
            w = "amorphous"
        t0 = time.perf_counter()
        out = folder / f"augment-{k}"
        run_augment(VolumeSource(str(vol)), AugmentSettings(w, element), out)
        row = {"case": name, "tomogram": f"U-Net {w}", "seconds": time.perf_counter() - t0}
        row.update(
            trace_scored(out / "tomogram_augmented.h5", folder / f"trace-{k}", element, truth)
        )
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", nargs="+", default=["default"], help="names or weights.pt")
    ap.add_argument("--size", type=int, default=128, help="image side [px] (the study: 256)")
    ap.add_argument("--pixel-size", type=float, default=0.358)
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES), help="comma list")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("out/bench_unet_models"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    print(machine())
    rows = []
    print(
        "| case | traced from | atoms | missed | false | identification error | RMSD (pm) |"
        "\n|---|---|---:|---:|---:|---:|---:|",
        flush=True,
    )
    for name in args.cases.split(","):
        for r in run_case(name, args.weights, args):
            rows.append(r)
            print(
                f"| {r['case']} | {r['tomogram']} | {r['n_true']} | {r['missed']} | "
                f"{r['false']} | {r['identification_error_pct']:.2f} % | {r['rmsd_pm']:.1f} |",
                flush=True,
            )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2, default=float))


if __name__ == "__main__":
    main()
