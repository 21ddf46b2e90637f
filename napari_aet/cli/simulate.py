"""``napari-aet simulate``."""

from __future__ import annotations

from pathlib import Path

from ..simulate import STRUCTURES
from ..workflows import SimulateSettings, run_simulate
from ._common import element_option, run_staged

D = SimulateSettings()


def add_simulate(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a particle and its ADF-STEM tilt series (writes series, angles, truth)",
        description="Simulate a nanoparticle and its tilt series. Writes the tilt series with "
        "its angles, the true atoms (truth_atoms.csv), the true angles and shifts "
        "(truth.json) and a montage figure.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--sample",
        action="store_true",
        help="the built-in sample: twinned Pt nanodumbbell, 21 tilts, 256 px at 0.358 A "
        "(other structure options are ignored)",
    )
    p.add_argument("--structure", default=D.structure, choices=list(STRUCTURES))
    element_option(
        p, D.element, "every atom's element; several make a random alloy (--composition)"
    )
    p.add_argument(
        "--composition",
        default=None,
        metavar="F[,F]",
        help="an alloy's atom fractions, in the order of --element (default: equal)",
    )
    p.add_argument(
        "--lattice-constant",
        type=float,
        default=D.lattice_constant_A,
        metavar="A",
        help="cubic lattice constant [A] (default: the element's fcc one; for bcc the one whose "
        "bond is the element's, e.g. 3.16 for W; elements that are not fcc metals, e.g. Co, get "
        "an fcc lattice with their bond length)",
    )
    p.add_argument("--radius", type=float, default=D.radius_A, help="particle radius [A]")
    p.add_argument("--shape", default=D.shape, choices=["blob", "sphere", "convex"])
    p.add_argument("--vacancies", type=float, default=D.vacancy_fraction, help="fraction (0-1)")
    p.add_argument("--jitter", type=float, default=D.jitter_A, help="thermal jitter sd [A]")
    p.add_argument("--angles", default=D.angles, help="tilt angles [deg], list or start:stop:step")
    p.add_argument("--pixel-size", type=float, default=D.pixel_size_A, help="pixel size [A]")
    p.add_argument("--size", type=int, default=D.size_px, help="image size [pixels]")
    p.add_argument("--blur", type=float, default=D.blur_sigma_A, help="probe blur sd [A]")
    p.add_argument(
        "--dose", type=float, default=D.dose_e_per_A2, help="dose per image [e/A^2]; 0 = no noise"
    )
    p.add_argument("--angle-error", type=float, default=0.0, help="tilt-angle error sd [deg]")
    p.add_argument("--shift-error", type=float, default=0.0, help="max image shift [px]")
    p.add_argument(
        "--tilt-axis-angle", type=float, default=0.0, help="in-plane tilt-axis angle [deg]"
    )
    p.add_argument("--seed", type=int, default=D.seed)
    p.add_argument("--format", default=D.format, choices=["h5", "mrc", "tif", "npy"])
    p.add_argument("--no-figure", action="store_true", help="skip the montage figure")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args) -> int:
    settings = SimulateSettings(
        sample=args.sample,
        structure=args.structure,
        element=args.element,
        composition=args.composition,
        lattice_constant_A=args.lattice_constant,
        radius_A=args.radius,
        shape=args.shape,
        vacancy_fraction=args.vacancies,
        jitter_A=args.jitter,
        angles=args.angles,
        pixel_size_A=args.pixel_size,
        size_px=args.size,
        blur_sigma_A=args.blur,
        dose_e_per_A2=args.dose,
        angle_error_deg=args.angle_error,
        shift_error_px=args.shift_error,
        tilt_axis_angle_deg=args.tilt_axis_angle,
        seed=args.seed,
        format=args.format,
        figure=not args.no_figure,
    )
    return run_staged(args, "simulate", lambda out, bar: run_simulate(settings, out, bar))
