"""``napari-aet analyze``, ``validate`` and ``precision`` (what an atom model says and how far
to trust it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..workflows import (
    AnalyzeSettings,
    PrecisionSettings,
    ValidateSettings,
    run_analyze,
    run_precision,
    run_validate,
)
from ._common import (
    add_series_input,
    device_option,
    element_option,
    run_staged,
    series_source,
    structure_option,
)

A = AnalyzeSettings()
V = ValidateSettings()
P = PrecisionSettings()


def add_analyze(sub) -> None:
    p = sub.add_parser(
        "analyze",
        help="structure analysis of an atom model: (111) layers, stacking, twist, twin domains, "
        "chemical order, Q4/Q6, strain",
        description="Analyse an atom model (CSV, XYZ, HDF5 or .mat). Writes atoms.csv and "
        "atoms.h5 with the features layer, abc, stacking, cluster, grain (twin domains of a "
        "multiply twinned particle), q4, q6, local_structure (and the strain columns; "
        "chemical_order and order_variant for a two-element alloy), analysis.json and figures/ "
        "into --out.",
    )
    p.add_argument("atoms", type=Path, help="atom model file")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    element_option(
        p,
        A.element,
        "its bulk lattice constant (fcc, or bcc for W, Fe, Mo ...; an alloy's by Vegard's "
        "rule) is the strain reference and scales the Q4/Q6 cutoff",
    )
    p.add_argument(
        "--lattice-constant",
        type=float,
        default=A.lattice_constant_A,
        metavar="A",
        help="reference bulk lattice constant [A] for strain and local strain (default: the "
        "element's, e.g. 3.912 for Pt, 4.078 for Au, 3.16 for bcc W)",
    )
    p.add_argument(
        "--cutoff",
        type=float,
        default=A.cutoff_A,
        help="Q4/Q6 neighbour cutoff [A] (default: the study's 3.416 A scaled to the reference "
        "lattice constant)",
    )
    p.add_argument(
        "--strain",
        action=argparse.BooleanOptionalAction,
        default=A.strain,
        help="per-atom strain (exx ... eyz), facets, local strain and a per-facet summary "
        "(default: on; --no-strain for the stacking analysis alone)",
    )
    p.add_argument(
        "--strain-frame",
        default=A.strain_frame,
        choices=["lab", "crystal"],
        help="strain components on the lab axes or each cluster's cubic axes",
    )
    p.add_argument(
        "--orr",
        type=Path,
        default=None,
        metavar="TABLE",
        help="strain -> ORR activity table (CSV facet,strain,activity with a '# source:' "
        "line; see docs/methods.md); adds orr_activity (needs the strain)",
    )
    structure_option(p, A.structure)
    p.set_defaults(func=cmd_analyze)


def cmd_analyze(args) -> int:
    if args.orr is not None and not args.strain:
        raise ValueError("--orr needs the strain analysis (drop --no-strain)")
    settings = AnalyzeSettings(
        element=args.element,
        lattice_constant_A=args.lattice_constant,
        cutoff_A=args.cutoff,
        strain=args.strain,
        strain_frame=args.strain_frame,
        orr_table=None if args.orr is None else str(args.orr),
        structure=args.structure,
    )
    return run_staged(args, "analyze", lambda out, bar: run_analyze(args.atoms, settings, out, bar))


def add_validate(sub) -> None:
    p = sub.add_parser(
        "validate",
        help="R-factors of an atom model against the aligned tilt series",
        description="Forward-project an atom model at the series' angles (Kirkland potentials, "
        "Gaussian blur), scale by least squares and report R = sum|I_meas - I_calc| / "
        "sum|I_meas| per image. Writes rfactor.json, projections.h5 (calculated and residual "
        "stacks) and figures/r_factor.png, figures/calculated.png into --out.",
    )
    p.add_argument("atoms", type=Path, help="atom model file (z, y, x in A, volume frame)")
    add_series_input(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--blur",
        type=float,
        default=V.blur_sigma_A,
        help="Gaussian blur sigma [A] of the forward projections (default: fitted to the images, "
        "the width that minimises the R-factor; 0.45 for the study's)",
    )
    element_option(p, V.element, "the scattering factors of the calculated images")
    p.add_argument("--shared-scale", action="store_true", help="one scale for all images")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args) -> int:
    settings = ValidateSettings(
        element=args.element, blur_sigma_A=args.blur, shared_scale=args.shared_scale
    )
    src = series_source(args)
    return run_staged(
        args, "validate", lambda out, bar: run_validate(args.atoms, src, settings, out, bar)
    )


def add_precision(sub) -> None:
    p = sub.add_parser(
        "precision",
        help="precision analysis: simulate the model's series, reconstruct, trace, compare",
        description="Simulate the atom model's tilt series at the measured series' angles, "
        "pixel size and image size (abTEM multislice with the study's beam settings, or the "
        "fast incoherent simulator), reconstruct with GENFIRE, optionally apply the U-Net, "
        "trace again and compare with the model: common atoms, identification error, RMSD. "
        "Writes precision.json and figures/deviation_histogram.png into --out. Multislice is "
        "slow on a CPU for full-size particles (use --device cuda or a small field).",
    )
    p.add_argument("atoms", type=Path, help="atom model file (z, y, x in A, volume frame)")
    add_series_input(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--simulator", default=P.simulator, choices=["multislice", "kirkland"])
    p.add_argument("--weights", default=P.weights, help="U-Net weights for the augmented case")
    p.add_argument(
        "--no-refine-model",
        action="store_true",
        help="compare the traced models only (skip refining them against the simulated series)",
    )
    p.add_argument("--iterations", type=int, default=P.iterations, help="GENFIRE iterations")
    p.add_argument("--energy", type=float, default=P.energy_keV, help="beam energy [keV]")
    p.add_argument("--semiangle", type=float, default=P.semiangle_mrad, help="convergence [mrad]")
    p.add_argument("--c3", type=float, default=P.c3_A, help="C3 (Cs) [A]")
    p.add_argument("--c5", type=float, default=P.c5_A, help="C5 [A]")
    p.add_argument(
        "--detector",
        type=float,
        nargs=2,
        default=(P.detector_inner_mrad, P.detector_outer_mrad),
        metavar=("IN", "OUT"),
    )
    p.add_argument("--frozen-phonons", type=int, default=P.frozen_phonons)
    p.add_argument("--slice-thickness", type=float, default=P.slice_thickness_A, help="[A]")
    p.add_argument("--potential-sampling", type=float, default=P.potential_sampling_A, help="[A]")
    device_option(p)
    element_option(p, P.element, "the atoms' potentials in the simulated series")
    p.set_defaults(func=cmd_precision)


def cmd_precision(args) -> int:
    settings = PrecisionSettings(
        simulator=args.simulator,
        element=args.element,
        weights=args.weights,
        refine_positions=not args.no_refine_model,
        iterations=args.iterations,
        energy_keV=args.energy,
        semiangle_mrad=args.semiangle,
        c3_A=args.c3,
        c5_A=args.c5,
        detector_inner_mrad=args.detector[0],
        detector_outer_mrad=args.detector[1],
        frozen_phonons=args.frozen_phonons,
        slice_thickness_A=args.slice_thickness,
        potential_sampling_A=args.potential_sampling,
        device=args.device,
    )
    src = series_source(args)
    return run_staged(
        args, "precision", lambda out, bar: run_precision(args.atoms, src, settings, out, bar)
    )
