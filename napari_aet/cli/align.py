"""``napari-aet align``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.denoise import LOW_COUNTS
from ..workflows import AlignSettings, run_align
from ._common import (
    add_series_input,
    crop_option,
    device_option,
    element_option,
    run_staged,
    series_source,
)

D = AlignSettings()


def add_align(sub) -> None:
    p = sub.add_parser(
        "align",
        help="preprocess and align a tilt series (background, denoise, low-pass, shifts, axis)",
        description="Preprocess and align a tilt series. Writes aligned_tilt_series.h5 (with the "
        "refined angles), alignment.csv (per-image angle corrections and shifts) and "
        "alignment.json (every setting, the tilt-axis angle, the refinement history) into --out.",
    )
    add_series_input(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--background", default=D.background, choices=["plane", "offset", "none"])
    p.add_argument(
        "--denoise",
        default=D.denoise,
        choices=["dose", "none", "auto", "bm3d", "nlmeans"],
        help=f"denoising: 'dose' (default) denoises counts with fewer than {LOW_COUNTS:g} at the "
        "brightest columns (BM3D, else non-local means), 'none', or always ('auto', 'bm3d', "
        "'nlmeans'; the study used BM3D)",
    )
    p.add_argument(
        "--noise",
        default=D.noise,
        choices=["poisson", "gaussian"],
        help="noise model: 'poisson' (default) takes counts, and converts a detector's units "
        "(not integers) to counts by the series' measured gain; 'gaussian' leaves the units",
    )
    p.add_argument(
        "--lowpass",
        type=float,
        default=D.lowpass_diameter_inv_A,
        help=f"low-pass pass-band diameter [1/A] (0 = off; the study: {D.lowpass_diameter_inv_A})",
    )
    p.add_argument(
        "--lowpass-edge", type=float, default=D.lowpass_edge_inv_A, help="filter edge [1/A]"
    )
    p.add_argument("--no-com", action="store_true", help="skip centre-of-mass alignment")
    p.add_argument("--no-common-line", action="store_true", help="skip common-line alignment")
    p.add_argument(
        "--tilt-axis",
        default=D.tilt_axis,
        help="'estimate' (over the whole half circle), 'none' (vertical), or a known in-plane "
        "angle [deg]",
    )
    p.add_argument(
        "--no-projection-matching",
        "--no-refine",
        dest="no_projection_matching",
        action="store_true",
        help="skip projection matching (the refinement of shifts and angles)",
    )
    p.add_argument(
        "--refine-angles",
        action=argparse.BooleanOptionalAction,
        default=D.refine_angles,
        help="also refine tilt angles (default: on)",
    )
    p.add_argument(
        "--angle-method",
        default=D.angle_method,
        choices=["model", "tomogram"],
        help="'model' (default): refine a traced atom model jointly with the angles and shifts "
        "(atomic resolution; falls back to shifts only, with a note, when atoms are not "
        "resolved); 'tomogram': score trial angles against the tomogram's re-projections",
    )
    p.add_argument(
        "--model-weights",
        default=D.model_weights,
        help="U-Net weights for the model method's tracing ('fcc', 'amorphous', a file)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=D.rounds,
        help="projection-matching rounds (up to 3 more run while the angles still converge or the "
        "tilt axis still turns)",
    )
    p.add_argument("--recon-iterations", type=int, default=D.recon_iterations)
    crop_option(p, D.crop)
    element_option(p, D.element, "the tracer's minimum distance in the model-based refinement")
    device_option(p)
    p.set_defaults(func=cmd_align)


def settings_from_args(args) -> AlignSettings:
    return AlignSettings(
        background=args.background,
        denoise=args.denoise,
        noise=args.noise,
        lowpass_diameter_inv_A=args.lowpass,
        lowpass_edge_inv_A=args.lowpass_edge,
        center_of_mass=not args.no_com,
        common_line=not args.no_common_line,
        tilt_axis=str(args.tilt_axis),
        projection_matching=not args.no_projection_matching,
        refine_angles=args.refine_angles,
        angle_method=args.angle_method,
        model_weights=args.model_weights,
        rounds=args.rounds,
        recon_iterations=args.recon_iterations,
        element=args.element,
        crop=args.crop,
        device=args.device,
    )


def cmd_align(args) -> int:
    settings = settings_from_args(args)
    src = series_source(args)
    return run_staged(args, "align", lambda out, bar: run_align(src, settings, out, bar))
