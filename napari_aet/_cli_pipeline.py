"""``napari-aet validate`` and ``napari-aet run`` (split from cli.py to keep modules small)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import __version__
from .cli import _add_series_input, _Bar, _load_series


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
    _add_series_input(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--blur", type=float, default=0.45, help="Gaussian broadening sigma [A]")
    p.add_argument("--element", default="Pt")
    p.add_argument("--shared-scale", action="store_true", help="one scale for all images")
    p.set_defaults(func=_cmd_validate)


def _cmd_validate(args) -> int:
    from .analysis import r_factor
    from .figures import plot_r_factors, tilt_series_montage
    from .io import read_atoms

    model = read_atoms(args.atoms)
    ts = _load_series(args)
    with _Bar("validate", args.quiet) as bar:
        res = r_factor(
            model.positions,
            ts.data,
            ts.angles_deg,
            pixel_size_A=ts.pixel_size_A,
            blur_sigma_A=args.blur,
            element=args.element,
            per_image_scale=not args.shared_scale,
            progress=bar,
        )
    out: Path = args.out
    (out / "figures").mkdir(parents=True, exist_ok=True)
    info = {
        "napari_aet_version": __version__,
        "command": "validate",
        "atoms": str(args.atoms),
        "tilts": str(args.tilts),
        "blur_sigma_A": args.blur,
        "element": args.element,
        "r_mean": res.r_mean,
        "r_per_image": res.r_per_image.tolist(),
        "angles_deg": [float(a) for a in ts.angles_deg],
        "scales": res.scales.tolist(),
    }
    (out / "rfactor.json").write_text(json.dumps(info, indent=2))
    import h5py

    tmp = out / ".projections.h5.tmp"
    with h5py.File(tmp, "w") as h5:
        h5.create_dataset("calculated", data=res.calculated, compression="gzip")
        h5.create_dataset("residuals", data=res.residuals, compression="gzip")
        h5.create_dataset("angles_deg", data=ts.angles_deg)
        h5.attrs["pixel_size_A"] = ts.pixel_size_A
    tmp.replace(out / "projections.h5")
    plot_r_factors(ts.angles_deg, res.r_per_image).savefig(
        out / "figures" / "r_factor.png", dpi=150
    )
    tilt_series_montage(
        res.calculated,
        ts.angles_deg,
        pixel_size_A=ts.pixel_size_A,
        title="Forward projections of the atom model",
    ).savefig(out / "figures" / "calculated.png", dpi=150)
    if not args.quiet:
        print(
            f"mean R-factor {res.r_mean:.4f} over {len(res.r_per_image)} images "
            f"(min {res.r_per_image.min():.4f}, max {res.r_per_image.max():.4f})"
        )
        print(f"  wrote {out / 'rfactor.json'}, projections.h5, figures/")
    return 0


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
    _add_series_input(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--iterations", type=int, default=60, help="L-BFGS iterations")
    p.add_argument("--geometry", action="store_true", help="also refine angles and offsets")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=_cmd_refine)


def _cmd_refine(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import read_atoms, write_atoms
    from .trace import refine_atom_positions

    atoms = read_atoms(args.atoms)
    ts = _load_series(args)
    with _Bar("refine", args.quiet) as bar:
        refined, info = refine_atom_positions(
            atoms,
            ts.data,
            ts.angles_deg,
            pixel_size_A=ts.pixel_size_A,
            iterations=args.iterations,
            refine_geometry=args.geometry,
            device=args.device,
            progress=bar,
        )
    out: Path = args.out
    (out / "figures").mkdir(parents=True, exist_ok=True)
    prov = {
        "napari_aet_version": __version__,
        "command": "refine",
        "atoms": str(args.atoms),
        "tilts": str(args.tilts),
        **info,
    }
    refined.metadata["provenance"] = prov
    write_atoms(out / "atoms.csv", refined)
    write_atoms(out / "atoms.h5", refined)
    (out / "refine.json").write_text(json.dumps(prov, indent=2, default=float))
    fig, ax = plt.subplots(figsize=(4.5, 3.2), layout="constrained")
    if "refine_shift_A" in refined.features:
        ax.hist(100 * refined.features["refine_shift_A"], bins=60, color="0.3")
        ax.set_xlabel("refinement shift (pm)")
        ax.set_ylabel("atoms")
        ax.set_title(f"{refined.n_atoms} atoms, median {100 * info['shift_A_median']:.1f} pm")
    else:
        ax.text(0.5, 0.5, f"not refined:\n{info['not_refined']}", ha="center", wrap=True)
        ax.set_axis_off()
    fig.savefig(out / "figures" / "refine_shifts.png", dpi=150)
    plt.close(fig)
    if not args.quiet:
        if "not_refined" in info:
            print(f"positions kept as traced: {info['not_refined']}", file=sys.stderr)
        else:
            print(
                f"refined {refined.n_atoms} atoms: median shift {100 * info['shift_A_median']:.1f}"
                f" pm, residual {info['residual_start']:.4f} -> {info['residual_end']:.4f}"
            )
        print(f"  wrote {out / 'atoms.csv'}, atoms.h5, refine.json, figures/refine_shifts.png")
    return 0


def add_precision(sub) -> None:
    p = sub.add_parser(
        "precision",
        help="precision analysis: simulate the model's series, reconstruct, trace, compare",
        description="Simulate the atom model's tilt series at the measured series' angles, "
        "pixel size and image size (abTEM multislice with the study's beam settings, or the "
        "fast incoherent simulator), reconstruct with GENFIRE, optionally apply the U-Net, "
        "trace again and compare with the model: common atoms, identification error, RMSD. "
        "Writes precision.json and figures/deviation_histogram.png into --out. Multislice is "
        "slow on a CPU for full-size particles (use --device gpu or a small field).",
    )
    p.add_argument("atoms", type=Path, help="atom model file (z, y, x in A, volume frame)")
    _add_series_input(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--simulator", default="multislice", choices=["multislice", "kirkland"])
    p.add_argument("--weights", default=None, help="U-Net weights for the augmented comparison")
    p.add_argument(
        "--no-refine-model",
        action="store_true",
        help="compare the traced models only (skip refining them against the simulated series)",
    )
    p.add_argument("--iterations", type=int, default=100, help="GENFIRE iterations")
    p.add_argument("--energy", type=float, default=300.0, help="beam energy [keV]")
    p.add_argument("--semiangle", type=float, default=25.1, help="convergence [mrad]")
    p.add_argument("--c3", type=float, default=-775e1, help="C3 (Cs) [A]")
    p.add_argument("--c5", type=float, default=378e4, help="C5 [A]")
    p.add_argument("--detector", type=float, nargs=2, default=(40.0, 200.0), metavar=("IN", "OUT"))
    p.add_argument("--frozen-phonons", type=int, default=8)
    p.add_argument("--slice-thickness", type=float, default=2.0, help="[A]")
    p.add_argument("--potential-sampling", type=float, default=None, help="[A]")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--element", default="Pt")
    p.set_defaults(func=_cmd_precision)


def _cmd_precision(args) -> int:
    from .analysis import MultisliceSettings, plot_deviation_histogram, precision_analysis
    from .io import read_atoms

    model = read_atoms(args.atoms)
    ts = _load_series(args)
    gpu = args.device == "cuda" or (args.device == "auto" and _cuda())
    ms = MultisliceSettings(
        energy_keV=args.energy,
        semiangle_mrad=args.semiangle,
        c3_A=args.c3,
        c5_A=args.c5,
        detector_inner_mrad=args.detector[0],
        detector_outer_mrad=args.detector[1],
        frozen_phonons=args.frozen_phonons,
        slice_thickness_A=args.slice_thickness,
        potential_sampling_A=args.potential_sampling,
        device="gpu" if gpu else "cpu",
    )
    if args.simulator == "multislice" and not gpu and not args.quiet:
        probes = int(ts.data.shape[0] * ts.data.shape[1] * ts.data.shape[2] * args.frozen_phonons)
        print(
            f"multislice on the CPU: {probes:,} probe positions x slices; a full 256 x 256 "
            "series takes hours here. Use --device cuda, or --simulator kirkland for a quick "
            "estimate.",
            file=sys.stderr,
        )
    with _Bar("precision", args.quiet) as bar:
        res = precision_analysis(
            model.positions,
            ts.angles_deg,
            pixel_size_A=ts.pixel_size_A,
            shape_px=ts.data.shape[1:],
            simulator=args.simulator,
            multislice=ms,
            element=args.element,
            iterations=args.iterations,
            weights=args.weights,
            refine_positions=not args.no_refine_model,
            device=args.device,
            progress=bar,
        )
    out: Path = args.out
    (out / "figures").mkdir(parents=True, exist_ok=True)
    info = {
        "napari_aet_version": __version__,
        "command": "precision",
        "atoms": str(args.atoms),
        "tilts": str(args.tilts),
        **res.settings,
        "results": res.summary(),
    }
    (out / "precision.json").write_text(json.dumps(info, indent=2, default=str))
    plot_deviation_histogram(res.comparisons).savefig(
        out / "figures" / "deviation_histogram.png", dpi=150
    )
    if not args.quiet:
        for k, v in res.summary().items():
            print(
                f"{k}: {v['n_common']} common of {v['n_model']} model / {v['n_traced']} traced "
                f"atoms; identification error {100 * v['identification_error']:.2f} %, "
                f"RMSD {v['rmsd_pm']:.1f} pm"
            )
        print(f"  wrote {out / 'precision.json'}, figures/deviation_histogram.png")
    return 0


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        help="the whole pipeline: align, recon, augment, trace, analyze, validate, figures",
        description="Run every stage on a tilt series into --out (each stage in its folder; "
        "atoms.csv, analysis.json and figures/ at the top; pipeline.json and run.log record "
        "what ran). A rerun resumes after the last finished stage. Several inputs (paths, "
        "globs, or a .txt list) run as a batch on Dask, one folder each.",
    )
    p.add_argument("tilts", nargs="+", help="tilt series, globs, or a .txt file listing them")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--angles", default=None, help="angles file or list/range [deg]")
    p.add_argument("--pixel-size", type=float, default=None, help="pixel size [A]")
    p.add_argument("--dataset", default=None, help="HDF5 dataset of the tilt series")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--recon-iterations", type=int, default=100)
    p.add_argument("--oversampling", type=float, default=2.0)
    p.add_argument("--interpolation", default="fft", choices=["fft", "dft"])
    p.add_argument("--denoise", default=None, choices=["auto", "bm3d", "nlmeans"])
    p.add_argument(
        "--augment",
        default="fcc",
        help="U-Net weights applied before tracing: 'fcc' (default, shipped), 'amorphous', "
        "a weights.pt, or 'none' (trace the raw GENFIRE tomogram)",
    )
    p.add_argument(
        "--tilt-axis",
        default="estimate",
        help="in-plane tilt axis: 'estimate' (default, over the whole half circle), 'none' "
        "(vertical) or a known angle [deg]",
    )
    p.add_argument("--no-refine", action="store_true", help="skip projection matching")
    p.add_argument(
        "--no-align",
        action="store_true",
        help="the series arrives aligned: only preprocess it (background, low-pass), with no "
        "shifts, tilt-axis turn or angle changes",
    )
    p.add_argument(
        "--no-refine-model",
        action="store_true",
        help="analyze the traced positions as they are (skip the refine stage)",
    )
    p.add_argument("--no-strain", action="store_true", help="analyze without the strain maps")
    p.add_argument(
        "--element",
        default="Pt",
        help="chemical symbol of the metal (default Pt): validation's scattering factors and "
        "the analysis's reference lattice constant and Q4/Q6 cutoff",
    )
    p.add_argument(
        "--lattice-constant",
        type=float,
        default=None,
        metavar="A",
        help="reference bulk lattice constant [A] for strain (default: the element's)",
    )
    p.add_argument("--orr", default=None, help="strain -> ORR activity table (see analyze)")
    p.add_argument("--figure-formats", default="png,svg,pdf", help="png, svg, pdf (comma list)")
    p.add_argument("--no-resume", action="store_true", help="rerun every stage")
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    p.add_argument("--workers", type=int, default=1, help="LocalCluster workers (batch)")
    p.set_defaults(func=_cmd_run)


def _expand_inputs(items: list[str]) -> list[str]:
    import glob

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


def _cmd_run(args) -> int:
    from .pipeline import run_batch, run_pipeline

    inputs = _expand_inputs(args.tilts)
    opts = dict(
        angles=args.angles,
        pixel_size_A=args.pixel_size,
        dataset=args.dataset,
        device=args.device,
        recon_iterations=args.recon_iterations,
        oversampling=args.oversampling,
        interpolation=args.interpolation,
        denoise=args.denoise,
        augment=args.augment,
        strain=not args.no_strain,
        element=args.element,
        lattice_constant_A=args.lattice_constant,
        tilt_axis=args.tilt_axis,
        no_align=args.no_align,
        refine_model=not args.no_refine_model,
        orr=args.orr,
        figure_formats=args.figure_formats,
        refine=not args.no_refine,
        resume=not args.no_resume,
        quiet=args.quiet,
    )
    if len(inputs) == 1 and args.scheduler is None:
        summary = run_pipeline(inputs[0], args.out, **opts)
        if not args.quiet:
            print(
                f"pipeline done: {summary.get('n_atoms_traced')} atoms, mean R-factor "
                f"{summary.get('r_factor_mean', float('nan')):.4f}, twin boundaries "
                f"{summary.get('twin_boundary_layers')}; results in {args.out}"
            )
        return 0
    results = run_batch(inputs, args.out, scheduler=args.scheduler, n_workers=args.workers, **opts)
    failed = {k: v for k, v in results.items() if v != "ok"}
    if not args.quiet:
        print(f"batch: {len(results) - len(failed)} of {len(results)} succeeded")
        for k, v in failed.items():
            print(f"  FAILED {k}: {v}")
    return 1 if failed else 0
