"""``napari-aet run``: the whole pipeline on one tilt series, or a batch on Dask."""

from __future__ import annotations

import glob
import sys
from pathlib import Path

from ..workflows import (
    RECON_SERIES,
    AlignSettings,
    AnalyzeSettings,
    AugmentSettings,
    FiguresSettings,
    PositionRefineSettings,
    ReconSettings,
    RunSettings,
    run_batch,
    run_pipeline,
)
from ._common import (
    Bar,
    add_series_input,
    check_dpi,
    crop_option,
    device_option,
    element_option,
    merged_as_dual_axis,
    parse_formats,
    second_axis_options,
    second_axis_source,
    series_source,
    structure_option,
)
from .trace import counts_option, restraints_option, weighting_option

AL = AlignSettings()
RE = ReconSettings()
AN = AnalyzeSettings()
AU = AugmentSettings()
FI = FiguresSettings()


def add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        help="the whole pipeline: align, recon, augment, trace, refine, analyze, validate, figures",
        description="Run every stage on a tilt series into --out (each stage in its folder; "
        "atoms.csv, analysis.json, figures/ and report.html at the top; pipeline.json and "
        "run.log record what ran). A rerun resumes after the last finished stage. Several "
        "inputs (paths, globs, or a .txt list) run as a batch on Dask, one folder each.",
    )
    p.add_argument("tilts", nargs="+", help="tilt series, globs, or a .txt file listing them")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_series_input(p, positional=False)
    device_option(p)
    p.add_argument("--recon-iterations", type=int, default=RE.iterations)
    p.add_argument("--oversampling", type=float, default=RE.oversampling)
    p.add_argument("--interpolation", default=RE.interpolation, choices=["fft", "dft"])
    p.add_argument(
        "--recon-series",
        default=RE.series,
        choices=list(RECON_SERIES),
        help="what GENFIRE reconstructs when the align stage denoised the series: 'auto' "
        "(default: 'counts' for one element, 'denoised' for several or below 10 counts at the "
        "brightest columns), 'counts' (the aligned "
        "counts before the denoiser; their noise can hide a light element's atoms beside "
        "heavy ones) or 'denoised' (the denoiser can paint the wrong lattice where a crystal "
        "changes)",
    )
    p.add_argument(
        "--denoise",
        default=AL.denoise,
        choices=["dose", "none", "auto", "bm3d", "nlmeans"],
        help="'dose' (default): denoise only raw counts with few counts at the brightest "
        "columns; see align",
    )
    p.add_argument(
        "--augment",
        default=AU.weights,
        help=f"U-Net weights applied before tracing: '{AU.weights}' (default: the shipped "
        "'alloy' for several --element, else 'fcc'), 'fcc', 'amorphous', 'alloy', a "
        "weights.pt, or 'none' (trace the raw GENFIRE tomogram)",
    )
    p.add_argument(
        "--tilt-axis",
        default=AL.tilt_axis,
        help="in-plane tilt axis: 'estimate' (default, over the whole half circle), 'none' "
        "(vertical) or a known angle [deg]",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=AL.rounds,
        help="projection-matching rounds (up to 3 more run while the angles still converge or the "
        "tilt axis still turns)",
    )
    p.add_argument(
        "--no-projection-matching",
        "--no-refine",
        dest="no_projection_matching",
        action="store_true",
        help="skip projection matching (the refinement of shifts and angles)",
    )
    p.add_argument(
        "--no-align",
        action="store_true",
        help="the series arrives aligned: only preprocess it (background, low-pass), with no "
        "shifts, tilt-axis turn or angle changes",
    )
    crop_option(p, AL.crop)
    p.add_argument(
        "--no-refine-model",
        action="store_true",
        help="analyze the traced positions as they are (skip the refine stage)",
    )
    counts_option(p, "--refine-counts")
    weighting_option(p, "--refine-weighting")
    restraints_option(p, "--no-refine-restraints")
    p.add_argument("--no-strain", action="store_true", help="analyze without the strain maps")
    element_option(
        p,
        AN.element,
        "the tracer's minimum distance (and, for an alloy, each atom's species by its "
        "intensity), validation's scattering factors, the U-Net's training check and the "
        "analysis's reference lattice constant and Q4/Q6 cutoff",
    )
    p.add_argument(
        "--lattice-constant",
        type=float,
        default=AN.lattice_constant_A,
        metavar="A",
        help="reference bulk lattice constant [A] for strain (default: the element's)",
    )
    p.add_argument("--orr", default=None, help="strain -> ORR activity table (see analyze)")
    structure_option(p, AN.structure)
    second_axis_options(p)
    p.add_argument(
        "--figure-formats", default=",".join(FI.formats), help="png, svg, pdf (comma list)"
    )
    p.add_argument(
        "--figure-dpi",
        type=int,
        default=FI.dpi,
        help=f"PNG resolution of the figures (default {FI.dpi}, print quality; 100 for a "
        "quick look)",
    )
    p.add_argument("--no-resume", action="store_true", help="rerun every stage")
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    p.add_argument("--workers", type=int, default=1, help="LocalCluster workers (batch)")
    p.set_defaults(func=cmd_run)


def expand_inputs(items: list[str]) -> list[str]:
    """Paths, globs and ``.txt`` lists of paths -> the tilt series to run."""
    out: list[str] = []
    for it in items:
        if it.endswith(".txt") and Path(it).is_file():
            lines = Path(it).read_text().splitlines()
            out += [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
        elif any(ch in it for ch in "*?["):
            out += sorted(glob.glob(it))
        else:
            out.append(it)
    if not out:
        raise ValueError("no tilt series matched the inputs")
    return out


def settings_from_args(args) -> RunSettings:
    """The run's settings from its options (everything else: the stages' defaults)."""
    formats = parse_formats(args.figure_formats, "--figure-formats")
    if args.no_align:
        align = AlignSettings.preprocess_only(
            device=args.device, denoise=args.denoise, crop=args.crop
        )
    else:
        align = AlignSettings(
            tilt_axis=str(args.tilt_axis),
            projection_matching=not args.no_projection_matching,
            rounds=args.rounds,
            denoise=args.denoise,
            crop=args.crop,
            device=args.device,
        )
    augment = None if str(args.augment).lower() == "none" else AugmentSettings(args.augment)
    return RunSettings.for_element(
        args.element,
        device=args.device,
        align=align,
        recon=ReconSettings(
            iterations=args.recon_iterations,
            oversampling=args.oversampling,
            interpolation=args.interpolation,
            second_axis_rotation_deg=args.second_axis_rotation,
            series=args.recon_series,
        ),
        augment=augment,
        refine=None
        if args.no_refine_model
        else PositionRefineSettings(
            counts=args.counts, weighting=args.weighting, restraints=args.restraints
        ),
        analyze=AnalyzeSettings(
            lattice_constant_A=args.lattice_constant,
            strain=not args.no_strain,
            orr_table=args.orr,
            structure=args.structure,
        ),
        figures=FiguresSettings(formats=formats, dpi=check_dpi(args.figure_dpi, "--figure-dpi")),
    )


def cmd_run(args) -> int:
    inputs = expand_inputs(args.tilts)
    settings = settings_from_args(args)
    source = series_source(args, path=inputs[0])
    second = second_axis_source(args)
    if second is not None and (len(inputs) > 1 or args.scheduler is not None):
        raise ValueError("--second-axis pairs with one tilt series: run a batch without it")
    if len(inputs) == 1:
        source, second, merged = merged_as_dual_axis(source, second)
        if merged and not args.quiet:
            print(f"note: {merged}", file=sys.stderr)
    if len(inputs) == 1 and args.scheduler is None:
        bar = Bar("run", args.quiet)

        def on_stage(res, seconds):
            bar.close()
            if not args.quiet:
                print(f"[{res.stage} {seconds:.0f} s] {res.message}".replace("\n", "; "))
                for note in res.notes:
                    print(f"  note: {note}", file=sys.stderr)

        try:
            summary = run_pipeline(
                inputs[0],
                args.out,
                settings,
                source=source,
                second=second,
                resume=not args.no_resume,
                on_stage=on_stage,
                progress=bar,
            )
        finally:
            bar.close()
        if not args.quiet:
            print(done_line(summary, args.out))
        return 0
    results = run_batch(
        inputs,
        args.out,
        settings,
        source=source,
        scheduler=args.scheduler,
        n_workers=args.workers,
        resume=not args.no_resume,
        threads=args.threads,
    )
    failed = {k: v for k, v in results.items() if v != "ok"}
    if not args.quiet:
        print(f"batch: {len(results) - len(failed)} of {len(results)} succeeded")
        for k, v in failed.items():
            print(f"  FAILED {k}: {v}")
    return 1 if failed else 0


def done_line(summary: dict, out) -> str:
    """The run's last line: the final atoms (and the tracer's count where the refine stage
    changed it), the mean R-factor and the twin boundaries; and, where the refine stage held
    the traced positions because the images do not support the model, a second line that
    says so."""
    final, traced = summary.get("n_atoms"), summary.get("n_atoms_traced")
    count = f"{traced} atoms traced" if final is None else f"{final} atoms"
    if final is not None and traced is not None and traced != final:
        count += f" ({traced} traced)"
    if cut := summary.get("n_atoms_outside_field"):
        count += f", {cut} of them outside some image's field"
    r, blur = summary.get("r_factor_mean"), summary.get("r_factor_blur_A")
    line = (
        f"pipeline done: {count}, mean R-factor "
        + ("n/a" if r is None else f"{r:.4f}")
        + ("" if blur is None else f" (blur {blur:.2f} A)")
        + f", twin boundaries {summary.get('twin_boundary_layers')}; results in {out}"
    )
    if why := summary.get("atoms_not_confirmed"):
        line += f"\nthe atoms are the tracer's, not confirmed by the images: {why}"
    return line
