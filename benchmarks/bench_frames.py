"""Several frames per tilt, recorded while the specimen drifts: registration, the scan's
distortion, and what a whole run makes of them.

Frames come from the independent simulator (:func:`napari_aet.simulate.independent_tilt_series`
with ``frames`` and ``drift_px``: abTEM's potentials and probe, each frame scanned row by row,
each row left to right, while the specimen drifts steadily at a speed drawn up to ``drift``
pixels per frame in a random direction), the dose shared by the frames. For every case and
count level the table gives:

* the registration's error: each frame's recovered place against the truth (rms and largest,
  px) and each tilt's drift rate against the truth (rms, px per frame), the tilts with a note;
* how well each way of adding the frames places the specimen: the same frames nearly without
  noise (the same drift at 1e6 counts) added at the places each way found, against the
  specimen's noise-free, undistorted image at its place (scale and offset fitted): the
  residual's rms over the true image's standard deviation. ``registered``: at the places and
  drift :func:`napari_aet.align.register_frames` found in the noisy frames, the scan distortion
  undone (rows top to bottom, the default); ``shifts only``: the same places, the distortion
  left; ``plain sum``: the frames added as they are; ``true places``: at the true places and
  drift (what resampling alone costs).

With ``--pipeline`` each named case also goes through ``run_pipeline`` with the defaults of
``napari-aet run`` three times, from the frames (a 4D file: the run registers them), from
their plain sum, and from one undrifted scan of the same dose, scored as
``bench_independent.py`` scores (rigid registration, one-to-one matching within 1 A).

Usage: python benchmarks/bench_frames.py [--size 128] [--seed 3] [--cases pt-dumbbell,...]
       [--counts 50,17,5] [--frames 3] [--drift 1,3] [--pipeline pt-dumbbell:17:3]
       [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import machine
from bench_independent import PARTICLES, _oriented, score


def _series(name, size, peak, frames, drift, seed):
    from napari_aet.simulate import IndependentImaging, independent_tilt_series

    truth, species = _oriented(f"{name}/study", size, 0.358, seed)
    im = IndependentImaging(peak_counts=peak, background_counts=1.0, frames=frames, drift_px=drift)
    angles = np.arange(-70.0, 70.1, 7.0)
    moving = independent_tilt_series(truth, species, angles, shape_px=(size, size),
                                     imaging=im, seed=seed)  # fmt: skip
    still = independent_tilt_series(
        truth, species, angles, shape_px=(size, size),
        imaging=IndependentImaging(peak_counts=peak, background_counts=1.0), seed=seed,
    )  # fmt: skip
    return (truth, species), moving, still


def _image_error(images, moving, still) -> float:
    """How far ``images`` are from the specimen's noise-free, undistorted image at its place
    (``still``'s noise-free images moved to where ``moving`` has the specimen; a scale and an
    offset fitted): the residual's rms over the true image's standard deviation, in %."""
    from scipy import ndimage

    out = []
    for i, img in enumerate(images):
        ref = ndimage.shift(still.signal[i].astype(float), moving.shifts_px[i], order=3)
        a = np.c_[ref.ravel(), np.ones(ref.size)]
        coef = np.linalg.lstsq(a, img.ravel().astype(float), rcond=None)[0]
        out.append(np.sqrt(np.mean((img.ravel() - a @ coef) ** 2)) / ref.std() / coef[0])
    return 100 * float(np.mean(out))


def in_field(frames, field: int, *, seed: int) -> np.ndarray:
    """Each tilt's frames placed in a ``field``-square of vacuum (Poisson counts at the frames'
    background, 1 count summed over the frames) at a place of its own, drawn at random, as a
    microscope records a small particle in a large scan."""
    n, m, rows, cols = frames.shape
    rng = np.random.default_rng(seed + 17)
    out = rng.poisson(1.0 / m, (n, m, field, field)).astype(np.float32)
    for i in range(n):
        r0 = int(rng.integers(0, field - rows + 1))
        c0 = int(rng.integers(0, field - cols + 1))
        out[i, :, r0 : r0 + rows, c0 : c0 + cols] = frames[i]
    return out


def registration_row(name, size, peak, frames, drift, seed, field=None) -> dict:
    from dataclasses import replace

    from napari_aet.align import add_frames, register_frames
    from napari_aet.simulate import IndependentImaging, independent_tilt_series

    truth_atoms, moving, still = _series(name, size, peak, frames, drift, seed)
    given = moving.frames if field is None else in_field(moving.frames, field, seed=seed)
    t0 = time.perf_counter()
    reg = register_frames(given)
    t_reg = time.perf_counter() - t0
    m = moving.frames.shape[1]
    truth = moving.frame_drift_px[:, None, :] * np.arange(m)[None, :, None]
    truth -= truth.mean(1, keepdims=True)
    err = reg.shifts_px - truth
    derr = reg.drift_px_per_frame - moving.frame_drift_px
    # the same frames nearly without noise (1e6 counts at the brightest column: the drift is
    # drawn before the counts, so it is the same), placed by each way of adding them: the
    # images' error from the places alone, not from the noise
    im = IndependentImaging(**moving.settings["imaging"])
    clean = independent_tilt_series(
        truth_atoms[0], truth_atoms[1], moving.angles_deg, shape_px=(size, size),
        imaging=replace(im, peak_counts=1e6), seed=seed,
    ).frames  # fmt: skip
    placed = {
        "registered": [add_frames(c, reg.shifts_px[i], reg.drift_px_per_frame[i])[0]
                       for i, c in enumerate(clean)],
        "shifts_only": [add_frames(c, reg.shifts_px[i], reg.drift_px_per_frame[i],
                                   scan_direction="none")[0] for i, c in enumerate(clean)],
        "plain_sum": list(clean.sum(1)),
        "true_places": [add_frames(c, truth[i], moving.frame_drift_px[i])[0]
                        for i, c in enumerate(clean)],
    }  # fmt: skip
    return {
        "case": name,
        "peak_counts": peak,
        "frames": frames,
        "drift_max_px": drift,
        # the counts at the brightest pixels of one frame (99.9th percentile)
        "frame_brightest_counts": float(np.percentile(moving.frames, 99.9)),
        "shift_err_rms_px": float(np.sqrt(np.mean(err**2))),
        "shift_err_max_px": float(np.abs(err).max()),
        "drift_err_rms_px": float(np.sqrt(np.mean(derr**2))),
        "images_noted": len({n.split(":")[0] for n in reg.notes}),
        "image_error_pct": {k: _image_error(v, moving, still) for k, v in placed.items()},
        "register_s": t_reg,
        "image_px": size,
        "field_px": field,
        "n_images": len(moving.frames),
    }


def pipeline_rows(name, size, peak, frames, drift, seed, out: Path) -> list[dict]:
    import h5py

    from napari_aet.io import TiltSeries, write_tilt_series
    from napari_aet.workflows import (
        AugmentSettings,
        FiguresSettings,
        RunLayout,
        RunSettings,
        run_pipeline,
    )

    (truth, _), moving, still = _series(name, size, peak, frames, drift, seed)
    element, *_, weights = PARTICLES[name]
    rows = []
    for variant in ("frames", "plain_sum", "one_scan"):
        folder = out / f"{name}-{peak:g}-{frames}-{drift:g}" / variant
        folder.mkdir(parents=True, exist_ok=True)
        if variant == "frames":
            path = folder / "frames.h5"
            with h5py.File(path, "w") as f:
                f["tilt_series"] = moving.frames
                f["tilt_series"].attrs["pixel_size_A"] = moving.pixel_size_A
                f["angles_deg"] = moving.angles_deg
        else:
            data = moving.data if variant == "plain_sum" else still.data
            path = folder / "tilt_series.h5"
            write_tilt_series(path, TiltSeries(data, moving.angles_deg, moving.pixel_size_A))
        settings = RunSettings.for_element(
            element, augment=AugmentSettings(weights), figures=FiguresSettings(formats=("png",))
        )
        t0 = time.perf_counter()
        run_pipeline(path, folder / "run", settings, resume=False)
        lay = RunLayout(folder / "run")
        rows.append({
            "case": name, "peak_counts": peak, "frames": frames, "drift_max_px": drift,
            "variant": variant, "run_s": time.perf_counter() - t0,
            "scores": {k: score(truth, p) for k, p in
                       (("traced", lay.traced_atoms), ("final", lay.atoms)) if p.exists()},
        })  # fmt: skip
        s = rows[-1]["scores"]["final"]
        print(f"  {name} {variant}: {s['identification_error_pct']:.2f} % "
              f"{s['rmsd_pm']:.1f} pm ({rows[-1]['run_s']:.0f} s)", flush=True)  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--cases", default="pt-dumbbell,au-particle,pt-amorphous")
    ap.add_argument("--counts", default="50,17,5", help="brightest-column counts, summed")
    ap.add_argument("--frames", default="3", help="frames per tilt (comma list)")
    ap.add_argument("--drift", default="1,3", help="largest drift [px per frame] (comma list)")
    ap.add_argument("--pipeline", default="", help="CASE:COUNTS:DRIFT,... also run whole")
    ap.add_argument("--out", type=Path, default=Path("out/bench_frames"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--field",
        type=int,
        default=None,
        metavar="PX",
        help="register the frames placed in a PX-square field of vacuum (the places and "
        "images are scored as without it)",
    )
    args = ap.parse_args()
    print(machine())
    rows = []
    print("| case | counts (summed) | frames | drift up to (px/frame) | brightest of a frame | "
          "shift error rms / max (px) | drift error rms (px/frame) | images noted | "
          "image error: registered | shifts only | plain sum | true places | "
          "register (s) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.cases.split(","):
        for peak in (float(v) for v in args.counts.split(",")):
            for frames in (int(v) for v in args.frames.split(",")):
                for drift in (float(v) for v in args.drift.split(",")):
                    r = registration_row(name, args.size, peak, frames, drift, args.seed,
                                         args.field)  # fmt: skip
                    rows.append(r)
                    f = r["image_error_pct"]
                    print(f"| {name} | {peak:g} | {frames} | {drift:g} | "
                          f"{r['frame_brightest_counts']:.0f} | {r['shift_err_rms_px']:.3f} / "
                          f"{r['shift_err_max_px']:.2f} | {r['drift_err_rms_px']:.3f} | "
                          f"{r['images_noted']} of {r['n_images']} | {f['registered']:.1f} % | "
                          f"{f['shifts_only']:.1f} % | {f['plain_sum']:.1f} % | "
                          f"{f['true_places']:.1f} % "
                          f"| {r['register_s']:.1f} |", flush=True)  # fmt: skip
    runs = []
    for spec in filter(None, args.pipeline.split(",")):
        name, peak, drift = spec.split(":")
        frames = int(args.frames.split(",")[0])
        runs += pipeline_rows(name, args.size, float(peak), frames, float(drift), args.seed,
                              args.out)  # fmt: skip
    if runs:
        print("\n| case | counts | drift up to | series given to the run | traced: missed / "
              "false, error, RMSD | final: missed / false, error, RMSD | run (s) |")  # fmt: skip
        print("|---|---:|---:|---|---|---|---:|")
        for r in runs:
            cells = []
            for k in ("traced", "final"):
                s = r["scores"][k]
                cells.append(f"{s['missed']} / {s['false']}, {s['identification_error_pct']:.2f} "
                             f"%, {s['rmsd_pm']:.1f} pm")  # fmt: skip
            print(f"| {r['case']} | {r['peak_counts']:g} | {r['drift_max_px']:g} | "
                  f"{r['variant']} | {cells[0]} | {cells[1]} | {r['run_s']:.0f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"registration": rows, "pipeline": runs}, indent=1))


if __name__ == "__main__":
    main()
