"""``napari-aet trace`` and ``napari-aet refine`` (atom positions from a tomogram, then from
the images)."""

from __future__ import annotations

from pathlib import Path

from ..forward import WEIGHTINGS
from ..workflows import (
    REFINE_COUNTS,
    STAGE_FILES,
    PositionRefineSettings,
    TraceSettings,
    VolumeSource,
    run_refine,
    run_trace,
)
from ._common import (
    add_series_input,
    add_volume_input,
    device_option,
    element_option,
    run_staged,
    series_source,
    volume_source,
)

D = TraceSettings()
R = PositionRefineSettings()


def add_trace(sub) -> None:
    p = sub.add_parser(
        "trace",
        help="trace atoms in a tomogram (local maxima, Gaussian fits, classification)",
        description="Trace atoms in a tomogram. Writes atoms.csv and atoms.h5 (z, y, x in A "
        "with intensity, peak_height, fit_residual, manual), candidates.csv, trace.json and "
        "figures/trace_histogram.png into --out.",
    )
    add_volume_input(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--smooth", type=float, default=D.smooth_sigma_A, help="smoothing sigma [A]")
    p.add_argument(
        "--min-distance",
        type=float,
        default=D.min_distance_A,
        help="minimum atom distance [A] (default: 0.72 bond lengths of the element: 2.0 for Pt)",
    )
    element_option(
        p,
        D.element,
        "the default minimum distance; for an alloy each atom's species by its intensity",
    )
    p.add_argument(
        "--radius", type=float, default=D.integration_radius_A, help="integration radius [A]"
    )
    p.add_argument(
        "--threshold",
        default=D.threshold,
        help="integrated-intensity threshold: 'auto' (0.4 x median of the bright half), "
        "'otsu', or a number",
    )
    p.add_argument("--rounds", type=int, default=D.max_rounds, help="fit-accept-subtract rounds")
    p.add_argument(
        "--species-from",
        type=Path,
        default=None,
        metavar="TOMOGRAM",
        help="for an alloy: tell the atoms' elements apart by their intensities in this "
        "tomogram of the same grid (the GENFIRE one when tracing the U-Net's, which makes "
        "every atom alike; 'napari-aet run' does so)",
    )
    p.set_defaults(func=cmd_trace)


def cmd_trace(args) -> int:
    settings = TraceSettings(
        smooth_sigma_A=args.smooth,
        min_distance_A=args.min_distance,
        integration_radius_A=args.radius,
        threshold=str(args.threshold),
        max_rounds=args.rounds,
        element=args.element,
    )
    settings.threshold_value()  # a bad threshold is refused before any work
    src = volume_source(args)
    other = None
    if args.species_from is not None:
        other = VolumeSource(str(args.species_from), args.dataset, args.voxel_size)
    return run_staged(
        args, "trace", lambda out, bar: run_trace(src, settings, out, bar, species_from=other)
    )


def add_refine(sub) -> None:
    p = sub.add_parser(
        "refine",
        help="refine traced atom positions against the aligned tilt series",
        description="Least-squares refinement of every traced atom's position (and amplitude) "
        "against every pixel of the aligned tilt series, the angles and offsets held (or "
        "also refined, --geometry). Writes atoms.csv / atoms.h5 (refined positions, features "
        "refine_shift_A and refine_amplitude added), refine.json and "
        "figures/refine_shifts.png into --out. When the refined model cannot be trusted (poor "
        "fit, unresolved atoms) the traced positions are written unchanged and refine.json "
        "says why.",
    )
    p.add_argument("atoms", type=Path, help="traced atoms (z, y, x in A, volume frame)")
    add_series_input(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--iterations", type=int, default=R.iterations, help="L-BFGS iterations")
    p.add_argument("--geometry", action="store_true", help="also refine angles and offsets")
    p.add_argument(
        "--candidates",
        default="auto",
        help="the tracer's candidates.csv: the images then add rejected candidates and remove "
        "traced atoms by their refined amplitude ('auto': candidates.csv beside the atoms "
        "file; 'none': positions only)",
    )
    p.add_argument(
        "--undenoised",
        default="auto",
        help="the same aligned series without the denoiser (align writes "
        "aligned_tilt_series_undenoised.h5 when it denoised; 'auto': that file beside the "
        "series when there is one; 'none')",
    )
    counts_option(p, "--counts")
    weighting_option(p, "--weighting")
    p.add_argument(
        "--no-held-out",
        dest="held_out",
        action="store_false",
        help="when the fit correlates poorly with the counts (below 0.5, or below 0.7 for "
        "atoms that are not a crystal: very low counts), do not ask the held-out images: below "
        "0.5 keep the traced atoms, above it the refinement (default: refine on every other "
        "image and keep the refinement only if it predicts the others better than the traced "
        "atoms; a glass's unless it predicts them clearly worse)",
    )
    restraints_option(p, "--no-restraints")
    p.add_argument(
        "--no-angle-check",
        dest="check_angles",
        action="store_false",
        help="do not measure the tilt angles again with the refined atoms (default: measure "
        "them, and where established corrections move the atoms at the particle's radius by "
        "more than 5 pm, refine again at the corrected angles, written to angles.txt)",
    )
    p.add_argument(
        "--no-site-pass",
        dest="site_pass",
        action="store_false",
        help="do not try the empty sites of the atoms' own lattice (default: after the residual "
        "pass, sites that the atoms' bonds continued one step reach, with at least 6 atoms "
        "around them, join where the images show an atom as bright as a traced atom must be "
        "to stay)",
    )
    element_option(p, R.element, "for an alloy, each atom's species by its refined amplitude")
    device_option(p)
    p.set_defaults(func=cmd_refine)


def counts_option(p, flag: str) -> None:
    """What the refine stage does with the undenoised series (``PositionRefineSettings.counts``)."""
    p.add_argument(
        flag,
        dest="counts",
        choices=REFINE_COUNTS,
        default=R.counts,
        help="with an undenoised series: 'auto' (default) decides which atoms stay, join or "
        "go on the undenoised counts (a denoiser can erase a sharp atom or paint a plausible "
        "one) and fits the positions to whichever series placed a simulated replicate's atoms "
        "better (the denoised one: plus the smooth part of where the counts move them, which "
        "a denoiser takes from a strain field); 'judge' always fits positions to the denoised "
        "series, 'fit' everything to the counts (unbiased per atom); 'ignore' uses the "
        "denoised series alone",
    )


def restraints_option(p, flag: str) -> None:
    """The refine stage's ``flag`` that leaves the final positions unrestrained."""
    p.add_argument(
        flag,
        dest="restraints",
        action="store_false",
        help="one element: do not fit the final positions once more with their bonds "
        "restrained (default: at the prior bond-length spread, 20, 10 or 5 pm, that the "
        "images held out of each half's fit predict best, or none when none predicts them "
        "clearly better than the free fit)",
    )


def weighting_option(p, flag: str) -> None:
    """How the refine stage's fits weigh the pixels (``PositionRefineSettings.weighting``)."""
    p.add_argument(
        flag,
        dest="weighting",
        choices=WEIGHTINGS,
        default=R.weighting,
        help="'uniform' (default): plain least squares; 'variance': each pixel weighed by "
        "the inverse of a noise variance fitted to grow with the signal (counting noise is "
        "strongest on the atoms; a few tenths of a pm better on most independent series)",
    )


def cmd_refine(args) -> int:
    cand = None
    if args.candidates == "auto":
        cand = Path(args.atoms).with_name(STAGE_FILES["trace"]["candidates"])
    elif args.candidates != "none":
        cand = Path(args.candidates)
        if not cand.exists():
            raise FileNotFoundError(f"--candidates {cand}: no such file")
    settings = PositionRefineSettings(
        iterations=args.iterations,
        refine_geometry=args.geometry,
        add_remove=args.candidates != "none",
        counts=args.counts,
        weighting=args.weighting,
        held_out=args.held_out,
        restraints=args.restraints,
        check_angles=args.check_angles,
        site_pass=args.site_pass,
        element=args.element,
        device=args.device,
    )
    src = series_source(args)
    plain = None
    if args.undenoised == "auto":
        beside = Path(args.tilts).with_name(STAGE_FILES["align"]["series_undenoised"])
        plain = series_source(args, beside) if beside.exists() else None
    elif args.undenoised != "none":
        if not Path(args.undenoised).exists():
            raise FileNotFoundError(f"--undenoised {args.undenoised}: no such file")
        plain = series_source(args, args.undenoised)
    return run_staged(
        args,
        "refine",
        lambda out, bar: run_refine(
            args.atoms, src, settings, out, bar, candidates=cand, counts=plain
        ),
    )
