"""``napari-aet recon``."""

from __future__ import annotations

import sys
from pathlib import Path

from ..workflows import ReconSettings, run_recon
from ._common import (
    add_series_input,
    device_option,
    merged_as_dual_axis,
    run_staged,
    second_axis_options,
    second_axis_source,
    series_source,
)

D = ReconSettings()


def add_recon(sub) -> None:
    p = sub.add_parser(
        "recon",
        help="GENFIRE reconstruction of an aligned tilt series (GPU when present)",
        description="Reconstruct a tomogram with GENFIRE (Pryor et al. 2017). Writes "
        "tomogram.h5 (or .mrc) with the settings, recon_errors.csv, recon.json and "
        "figures/recon_errors.png into --out.",
    )
    add_series_input(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--iterations", type=int, default=D.iterations)
    p.add_argument("--oversampling", type=float, default=D.oversampling)
    p.add_argument("--interpolation", choices=["fft", "dft"], default=D.interpolation)
    p.add_argument(
        "--radius",
        type=float,
        default=D.interpolation_radius,
        help="interpolation radius [grid units]; default 0.3 (fft) / 0.1 (dft)",
    )
    p.add_argument(
        "--support", default=D.support, help="'auto' (visual hull), 'box', or a mask file"
    )
    p.add_argument("--no-positivity", action="store_true")
    p.add_argument("--rfree", type=float, default=D.rfree_fraction, help="R-free fraction")
    device_option(p)
    p.add_argument("--format", default=D.format, choices=["h5", "mrc", "tif"])
    second_axis_options(p)
    p.set_defaults(func=cmd_recon)


def cmd_recon(args) -> int:
    settings = ReconSettings(
        iterations=args.iterations,
        oversampling=args.oversampling,
        interpolation=args.interpolation,
        interpolation_radius=args.radius,
        support=args.support,
        positivity=not args.no_positivity,
        rfree_fraction=args.rfree,
        device=args.device,
        format=args.format,
        second_axis_rotation_deg=args.second_axis_rotation,
    )
    src, second, merged = merged_as_dual_axis(series_source(args), second_axis_source(args))
    if merged and not args.quiet:
        print(f"note: {merged}", file=sys.stderr)
    return run_staged(
        args, "GENFIRE", lambda out, bar: run_recon(src, settings, out, bar, second=second)
    )
