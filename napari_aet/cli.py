"""The ``napari-aet`` command line: one subcommand per stage (headless, no Qt)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import __version__


class _Bar:
    """tqdm progress bar behind the stages' ``progress(done, total, message)`` callback."""

    def __init__(self, desc: str, quiet: bool):
        self.desc = desc
        self.quiet = quiet
        self.bar = None

    def __call__(self, done: int, total: int, message: str = "") -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if self.bar is None or self.bar.total != total:
            if self.bar is not None:  # a new phase (e.g. gridding, then iterations)
                self.bar.close()
            self.bar = tqdm(total=total, desc=self.desc, unit="step", file=sys.stderr)
        self.bar.n = done
        if message:
            self.bar.set_postfix_str(message, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _add_simulate(sub) -> None:
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
    p.add_argument(
        "--structure", default="twinned dumbbell", choices=["twinned dumbbell", "fcc", "amorphous"]
    )
    p.add_argument("--element", default="Pt", help="chemical symbol (default Pt)")
    p.add_argument(
        "--lattice-constant",
        type=float,
        default=None,
        metavar="A",
        help="fcc lattice constant [A] (default: the element's; needed for elements that are "
        "not fcc metals, e.g. Fe or Co, unless --structure amorphous)",
    )
    p.add_argument("--radius", type=float, default=15.0, help="particle radius [A]")
    p.add_argument("--shape", default="blob", choices=["blob", "sphere", "convex"])
    p.add_argument("--vacancies", type=float, default=0.0, help="vacancy fraction (0-1)")
    p.add_argument("--jitter", type=float, default=0.022, help="thermal jitter sd [A]")
    p.add_argument(
        "--angles", default="-70:70:7", help="tilt angles [deg], list or start:stop:step"
    )
    p.add_argument("--pixel-size", type=float, default=0.358, help="pixel size [A]")
    p.add_argument("--size", type=int, default=256, help="image size [pixels]")
    p.add_argument("--blur", type=float, default=0.45, help="Gaussian probe blur sd [A]")
    p.add_argument(
        "--dose", type=float, default=1.61e5 / 21, help="dose per image [e/A^2]; 0 = no noise"
    )
    p.add_argument("--angle-error", type=float, default=0.0, help="tilt-angle error sd [deg]")
    p.add_argument("--shift-error", type=float, default=0.0, help="max image shift [px]")
    p.add_argument(
        "--tilt-axis-angle", type=float, default=0.0, help="in-plane tilt-axis angle [deg]"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", default="h5", choices=["h5", "mrc", "tif", "npy"])
    p.add_argument("--no-figure", action="store_true", help="skip the montage figure")
    p.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args) -> int:
    from .io import TiltSeries, write_angles, write_atoms, write_tilt_series
    from .io._angles import parse_angles
    from .simulate import build_structure, simulate_tilt_series, twinned_pt_nanodumbbell

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with _Bar("simulate", args.quiet) as bar:
        if args.sample:
            sim = twinned_pt_nanodumbbell()
            label = "Twinned Pt nanodumbbell (simulated)"
        else:
            atoms = build_structure(
                args.structure,
                element=args.element,
                lattice_constant_A=args.lattice_constant,
                radius_A=args.radius,
                shape=args.shape,
                vacancy_fraction=args.vacancies,
                jitter_A=args.jitter,
                shape_px=(args.size, args.size),
                pixel_size_A=args.pixel_size,
                seed=args.seed,
            )
            sim = simulate_tilt_series(
                atoms,
                parse_angles(args.angles),
                pixel_size_A=args.pixel_size,
                shape_px=(args.size, args.size),
                blur_sigma_A=args.blur,
                element=args.element,
                dose_e_per_A2=args.dose or None,
                angle_error_deg=args.angle_error,
                shift_error_px=args.shift_error,
                tilt_axis_angle_deg=args.tilt_axis_angle,
                seed=args.seed,
                progress=bar,
            )
            label = f"Simulated {args.element} {args.structure}"
    prov = {"napari_aet_version": __version__, "command": "simulate", **sim.settings}
    ts = TiltSeries(sim.data, sim.angles_deg, sim.pixel_size_A, "simulated", {})
    files = write_tilt_series(out / f"tilt_series.{args.format}", ts, provenance=prov)
    write_angles(out / "angles.txt", sim.angles_deg)
    truth_atoms = sim.truth.atoms
    truth_atoms.metadata = {**truth_atoms.metadata, "provenance": prov}
    write_atoms(out / "truth_atoms.csv", truth_atoms)
    truth = {
        "true_angles_deg": np.asarray(sim.truth.angles_deg).tolist(),
        "nominal_angles_deg": np.asarray(sim.angles_deg).tolist(),
        "shifts_px_row_col": np.asarray(sim.truth.shifts_px).tolist(),
        "tilt_axis_angle_deg": sim.truth.tilt_axis_angle_deg,
        "n_atoms": truth_atoms.n_atoms,
        "pixel_size_A": sim.pixel_size_A,
        "settings": prov,
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2, default=str))
    written = [*files, out / "angles.txt", out / "truth_atoms.csv", out / "truth.json"]
    if not args.no_figure:
        from .figures import tilt_series_montage

        fig = tilt_series_montage(
            sim.data, sim.angles_deg, pixel_size_A=sim.pixel_size_A, title=label
        )
        (out / "figures").mkdir(exist_ok=True)
        fig_path = out / "figures" / "tilt_series.png"
        fig.savefig(fig_path, dpi=150)
        written.append(fig_path)
    if not args.quiet:
        print(
            f"{label}: {truth_atoms.n_atoms} atoms, {len(sim.angles_deg)} images of "
            f"{sim.data.shape[1]} x {sim.data.shape[2]} px at {sim.pixel_size_A} A"
        )
        for f in written:
            print(f"  wrote {f}")
    return 0


def _add_series_input(p) -> None:
    p.add_argument("tilts", type=Path, help="tilt series (TIFF, MRC, HDF5, NPY)")
    p.add_argument(
        "--angles",
        default=None,
        help="angles file (.tlt/.rawtlt/.txt) or list/range [deg]; default: from "
        "the file or its sidecar",
    )
    p.add_argument(
        "--pixel-size", type=float, default=None, help="pixel size [A]; default: from the file"
    )
    p.add_argument("--dataset", default=None, help="HDF5 dataset of the tilt series")
    p.add_argument("--fill-nans", action="store_true", help="replace NaN pixels by image medians")


def _load_series(args, *, need_pixel_size: bool = True):
    from .io import read_tilt_series

    ts = read_tilt_series(
        args.tilts,
        dataset=args.dataset,
        angles=args.angles,
        pixel_size_A=args.pixel_size,
        nan_policy="fill" if args.fill_nans else "raise",
    )
    if ts.angles_deg is None:
        raise ValueError(
            f"{args.tilts} carries no tilt angles and has no sidecar .tlt file; pass --angles "
            "FILE or --angles -70:70:7"
        )
    if need_pixel_size and ts.pixel_size_A is None:
        raise ValueError(f"{args.tilts} carries no pixel size; pass --pixel-size (Angstrom)")
    return ts


def _add_recon(sub) -> None:
    p = sub.add_parser(
        "recon",
        help="GENFIRE reconstruction of an aligned tilt series (GPU when present)",
        description="Reconstruct a tomogram with GENFIRE (Pryor et al. 2017). Writes "
        "tomogram.h5 (or .mrc) with the settings, recon_errors.csv and "
        "figures/recon_errors.png into --out.",
    )
    _add_series_input(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--oversampling", type=float, default=2.0)
    p.add_argument("--interpolation", choices=["fft", "dft"], default="fft")
    p.add_argument(
        "--radius",
        type=float,
        default=None,
        help="interpolation radius [grid units]; default 0.3 (fft) / 0.1 (dft)",
    )
    p.add_argument(
        "--support",
        default="auto",
        help="'auto' (visual hull), 'box', or a .npy/.h5/.mrc mask file",
    )
    p.add_argument("--no-positivity", action="store_true")
    p.add_argument("--rfree", type=float, default=0.05, help="R-free fraction (0 = off)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--format", default="h5", choices=["h5", "mrc", "tif"])
    p.set_defaults(func=_cmd_recon)


def _cmd_recon(args) -> int:
    from .io import read_volume, write_volume
    from .recon import genfire

    ts = _load_series(args)
    support = args.support
    if support not in ("auto", "box"):
        sp = Path(support)
        support = np.load(sp) if sp.suffix == ".npy" else read_volume(sp)[0]
        support = np.asarray(support) != 0
        if not support.any():
            raise ValueError(
                f"the support mask {sp} is empty (all zero): give a mask that is non-zero "
                "inside the particle, or --support auto"
            )
    with _Bar("GENFIRE", args.quiet) as bar:
        res = genfire(
            ts.data,
            ts.angles_deg,
            iterations=args.iterations,
            oversampling=args.oversampling,
            interpolation=args.interpolation,
            interpolation_radius=args.radius,
            support=support,
            positivity=not args.no_positivity,
            rfree_fraction=args.rfree,
            device=args.device,
            progress=bar,
        )
    prov = {
        "napari_aet_version": __version__,
        "command": "recon",
        "input": str(args.tilts),
        "pixel_size_A": ts.pixel_size_A,
        "angles_deg": [float(a) for a in ts.angles_deg],
        **res.settings,
        "timings_s": res.timings_s,
    }
    out: Path = args.out
    vol_path = write_volume(
        out / f"tomogram.{args.format}",
        res.volume,
        voxel_size_A=ts.pixel_size_A,
        provenance=prov,
        extra={"errors": res.errors, "rfree": res.rfree},
    )
    table = np.column_stack([np.arange(1, len(res.errors) + 1), res.errors, res.rfree])
    np.savetxt(
        out / "recon_errors.csv",
        table,
        delimiter=",",
        header="iteration,error,rfree",
        comments="",
        fmt=["%d", "%.6f", "%.6f"],
    )
    from .figures import plot_recon_errors

    (out / "figures").mkdir(exist_ok=True)
    fig = plot_recon_errors(res.errors, res.rfree)
    fig.savefig(out / "figures" / "recon_errors.png", dpi=150)
    if not args.quiet:
        t = res.timings_s
        print(
            f"GENFIRE on {res.settings['device']}: {res.volume.shape} voxels of "
            f"{ts.pixel_size_A:g} A; gridding {t['gridding']:.1f} s, "
            f"{t['per_iteration']:.2f} s/iteration; final error {res.errors[-1]:.4f}, "
            f"R-free {res.rfree[-1]:.4f}"
        )
        print(f"  wrote {vol_path}")
    return 0


def _add_align(sub) -> None:
    p = sub.add_parser(
        "align",
        help="preprocess and align a tilt series (background, denoise, low-pass, shifts, axis)",
        description="Preprocess and align a tilt series. Writes aligned_tilt_series.h5 (with the "
        "refined angles), alignment.csv (per-image angle corrections and shifts) and "
        "alignment.json (every setting, the tilt-axis angle, the refinement history) into --out.",
    )
    _add_series_input(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--background", default="plane", choices=["plane", "offset", "none"])
    p.add_argument(
        "--denoise",
        default="none",
        choices=["none", "auto", "bm3d", "nlmeans"],
        help="denoising (the study used BM3D)",
    )
    p.add_argument("--noise", default="poisson", choices=["poisson", "gaussian"])
    p.add_argument(
        "--lowpass",
        type=float,
        default=2.08,
        help="low-pass pass-band diameter [1/A] (0 = off; the study: 2.08)",
    )
    p.add_argument("--lowpass-edge", type=float, default=0.05, help="filter edge width [1/A]")
    p.add_argument("--no-com", action="store_true", help="skip centre-of-mass alignment")
    p.add_argument("--no-common-line", action="store_true", help="skip common-line alignment")
    p.add_argument(
        "--tilt-axis",
        default="estimate",
        help="'estimate', 'none' (vertical), or a known in-plane angle [deg]",
    )
    p.add_argument("--no-refine", action="store_true", help="skip projection matching")
    p.add_argument(
        "--refine-angles",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also refine tilt angles (default: on)",
    )
    p.add_argument(
        "--angle-method",
        default="model",
        choices=["model", "tomogram"],
        help="'model' (default): refine a traced atom model jointly with the angles and shifts "
        "(atomic resolution; falls back to shifts only, with a note, when atoms are not "
        "resolved); 'tomogram': score trial angles against the tomogram's re-projections",
    )
    p.add_argument("--rounds", type=int, default=3, help="projection-matching rounds")
    p.add_argument("--recon-iterations", type=int, default=20)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=_cmd_align)


def _cmd_align(args) -> int:
    from .align import align_tilt_series
    from .io import TiltSeries, write_angles, write_tilt_series

    ts = _load_series(args)
    tilt_axis = args.tilt_axis  # 'estimate', 'none' or degrees (checked by main)
    if tilt_axis not in ("estimate", "none"):
        tilt_axis = float(tilt_axis)
    with _Bar("align", args.quiet) as bar:
        res = align_tilt_series(
            ts.data,
            ts.angles_deg,
            pixel_size_A=ts.pixel_size_A,
            background=None if args.background == "none" else args.background,
            denoise_method=None if args.denoise == "none" else args.denoise,
            noise=args.noise,
            lowpass_diameter_inv_A=args.lowpass or None,
            lowpass_edge_inv_A=args.lowpass_edge,
            center_of_mass=not args.no_com,
            common_line=not args.no_common_line,
            tilt_axis=None if tilt_axis == "none" else tilt_axis,
            refine=not args.no_refine,
            refine_angles=args.refine_angles,
            angle_method=args.angle_method,
            refine_rounds=args.rounds,
            recon_iterations=args.recon_iterations,
            device=args.device,
            progress=bar,
        )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    prov = {
        "napari_aet_version": __version__,
        "command": "align",
        "input": str(args.tilts),
        **res.steps,
        "tilt_axis_angle_deg": res.tilt_axis_angle_deg,
    }
    aligned = TiltSeries(res.data, res.angles_deg, ts.pixel_size_A, str(args.tilts), {})
    write_tilt_series(out / "aligned_tilt_series.h5", aligned, provenance=prov)
    write_angles(out / "aligned_angles.txt", res.angles_deg)
    (out / "alignment.csv").write_text(res.corrections_table())
    info = {
        **prov,
        "pixel_size_A": ts.pixel_size_A,
        "angles_in_deg": [float(a) for a in ts.angles_deg],
        "angles_refined_deg": [float(a) for a in res.angles_deg],
        "shifts_px_row_col": np.asarray(res.shifts_px).tolist(),
        "background_plane": None if res.background is None else res.background.tolist(),
        "refinement_rounds": res.rounds,
    }
    (out / "alignment.json").write_text(json.dumps(info, indent=2, default=float))
    if not args.quiet:
        s = np.asarray(res.shifts_px)
        print(
            f"aligned {len(s)} images: tilt axis {res.tilt_axis_angle_deg:+.3f} deg, shifts up to "
            f"{np.abs(s).max():.2f} px, angle corrections up to "
            f"{np.abs(res.angle_corrections_deg).max():.3f} deg"
        )
        note = (res.steps.get("tilt_axis") or {}).get("note")
        if note:
            print(f"  tilt axis: {note} (give --tilt-axis to force an angle)")
        print(f"  wrote {out / 'aligned_tilt_series.h5'}, alignment.csv, alignment.json")
    return 0


def _add_trace(sub) -> None:
    p = sub.add_parser(
        "trace",
        help="trace atoms in a tomogram (local maxima, Gaussian fits, classification)",
        description="Trace atoms in a tomogram. Writes atoms.csv and atoms.h5 (z, y, x in A "
        "with intensity, peak_height, fit_residual, manual), candidates.csv, trace.json and "
        "figures/trace_histogram.png into --out.",
    )
    p.add_argument("tomogram", type=Path, help="tomogram (HDF5 from 'recon', MRC or TIFF)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--dataset", default=None, help="HDF5 dataset (default 'tomogram')")
    p.add_argument("--voxel-size", type=float, default=None, help="voxel size [A]")
    p.add_argument("--smooth", type=float, default=0.3, help="Gaussian smoothing sigma [A]")
    p.add_argument("--min-distance", type=float, default=2.0, help="minimum atom distance [A]")
    p.add_argument("--radius", type=float, default=0.8, help="integration radius [A]")
    p.add_argument(
        "--threshold",
        default="auto",
        help="integrated-intensity threshold: 'auto' (0.4 x median of the bright half), "
        "'otsu', or a number",
    )
    p.add_argument("--rounds", type=int, default=3, help="fit-accept-subtract rounds")
    p.set_defaults(func=_cmd_trace)


def _read_tomogram(args):
    """``(volume, voxel size [A], provenance)`` of ``args.tomogram`` (--dataset, --voxel-size)."""
    from .io import read_volume

    vol, vx, prov_in = read_volume(args.tomogram, dataset=args.dataset)
    vx = args.voxel_size or vx
    if vx is None:
        raise ValueError(f"{args.tomogram} carries no voxel size; pass --voxel-size (Angstrom)")
    return vol, vx, prov_in


def _cmd_trace(args) -> int:
    from .io import write_atoms
    from .trace import trace_atoms

    vol, vx, prov_in = _read_tomogram(args)
    thr = args.threshold
    if thr not in ("auto", "otsu"):
        try:
            thr = float(thr)
        except ValueError as err:
            raise ValueError("--threshold must be 'auto', 'otsu' or a number") from err
    with _Bar("trace", args.quiet) as bar:
        res = trace_atoms(
            vol,
            voxel_size_A=vx,
            smooth_sigma_A=args.smooth,
            min_distance_A=args.min_distance,
            integration_radius_A=args.radius,
            threshold=thr,
            max_rounds=args.rounds,
            progress=bar,
        )
    if res.atoms.n_atoms == 0:
        raise ValueError(
            f"no atoms found in {args.tomogram} (threshold {res.threshold:.4g}): give a lower "
            "--threshold, or check the tomogram and its voxel size"
        )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    prov = {
        "napari_aet_version": __version__,
        "command": "trace",
        "input": str(args.tomogram),
        **res.settings,
        "tomogram_provenance": prov_in,
    }
    res.atoms.metadata["provenance"] = prov
    write_atoms(out / "atoms.csv", res.atoms)
    write_atoms(out / "atoms.h5", res.atoms)
    res.candidates.to_csv(out / "candidates.csv", index=False, float_format="%.5f")
    (out / "trace.json").write_text(json.dumps(prov, indent=2, default=str))
    from .figures import plot_trace_histogram

    (out / "figures").mkdir(exist_ok=True)
    fig = plot_trace_histogram(res.candidates["intensity"], res.threshold)
    fig.savefig(out / "figures" / "trace_histogram.png", dpi=150)
    if not args.quiet:
        print(
            f"traced {res.atoms.n_atoms} atoms from {len(res.candidates)} candidates "
            f"(threshold {res.threshold:.4g})"
        )
        print(f"  wrote {out / 'atoms.csv'}, atoms.h5, candidates.csv, trace.json")
    return 0


def _add_analyze(sub) -> None:
    p = sub.add_parser(
        "analyze",
        help="structure analysis of an atom model: (111) layers, stacking, twist, Q4/Q6",
        description="Analyse an atom model (CSV, XYZ or HDF5). Writes atoms.csv and atoms.h5 with "
        "the features layer, abc, stacking, cluster, q4, q6, local_structure, analysis.json and "
        "figures/q4_q6.png into --out.",
    )
    p.add_argument("atoms", type=Path, help="atom model file")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--element",
        default="Pt",
        help="chemical symbol of the metal (default Pt): its bulk lattice constant is the "
        "strain reference and scales the Q4/Q6 cutoff",
    )
    p.add_argument(
        "--lattice-constant",
        type=float,
        default=None,
        metavar="A",
        help="reference bulk lattice constant [A] for strain and local strain (default: the "
        "element's, e.g. 3.912 for Pt, 4.078 for Au)",
    )
    p.add_argument(
        "--cutoff",
        type=float,
        default=None,
        help="Q4/Q6 neighbour cutoff [A] (default: the study's 3.416 A scaled to the reference "
        "lattice constant)",
    )
    p.add_argument(
        "--strain",
        action="store_true",
        help="also per-atom strain (exx ... eyz), facets, local strain and a per-facet summary",
    )
    p.add_argument(
        "--strain-frame",
        default="lab",
        choices=["lab", "crystal"],
        help="strain components on the lab axes or each cluster's cubic axes",
    )
    p.add_argument(
        "--orr",
        type=Path,
        default=None,
        metavar="TABLE",
        help="strain -> ORR activity table (CSV facet,strain,activity with a '# source:' "
        "line; see docs/methods.md); adds orr_activity (needs --strain)",
    )
    p.set_defaults(func=_cmd_analyze)


def _cmd_analyze(args) -> int:
    from .analysis import analyze_structure
    from .figures import layer_groups, plot_q4_q6
    from .io import read_atoms, write_atoms

    model = read_atoms(args.atoms)
    with _Bar("analyze", args.quiet) as bar:
        if args.orr is not None and not args.strain:
            raise ValueError("--orr needs --strain (the activity comes from the local strain)")
        res = analyze_structure(
            model,
            cutoff_A=args.cutoff,
            element=args.element,
            reference_lattice_constant_A=args.lattice_constant,
            strain=args.strain,
            strain_frame=args.strain_frame,
            orr_relation=args.orr,
            progress=bar,
        )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "napari_aet_version": __version__,
        "command": "analyze",
        "input": str(args.atoms),
        **res.summary,
    }
    write_atoms(out / "atoms.csv", res.model)
    write_atoms(out / "atoms.h5", res.model)
    (out / "analysis.json").write_text(json.dumps(summary, indent=2, default=float))
    f = res.model.features
    groups = layer_groups(f["layer"].to_numpy(), res.stacking.twin_boundaries)
    (out / "figures").mkdir(exist_ok=True)
    fig = plot_q4_q6(
        f["q4"],
        f["q6"],
        groups,
        ideal_fcc=summary["boo"]["ideal_fcc_q4_q6"],
        ideal_hcp=summary["boo"]["ideal_hcp_q4_q6"],
    )
    fig.savefig(out / "figures" / "q4_q6.png", dpi=150)
    from .figures import plot_layer_rmsd

    plot_layer_rmsd(summary["layers"]).savefig(out / "figures" / "layer_rmsd.png", dpi=150)
    if summary.get("amorphous"):
        from .figures import plot_rdf

        plot_rdf(summary["amorphous"]).savefig(out / "figures" / "rdf.png", dpi=150)
    if not args.quiet:
        rot = summary["relative_rotation_deg"]
        a = summary["lattice_constant_A"]
        faults = ", ".join(f"{x['type']} at layer {x['layer']}" for x in summary["faults"])
        print(
            f"{summary['n_layers']} (111) layers; faults: {faults or 'none'}; twin boundaries "
            f"at layers {summary['twin_boundary_layers']}; relative rotation "
            + ("not measured" if rot is None else f"{rot:.2f} deg")
            + "; lattice constant "
            + ("not measured" if a is None else f"{a:.4f} A")
        )
        for note in summary["notes"]:
            print(f"  note: {note}")
        print(f"  wrote {out / 'analysis.json'}, atoms.csv, atoms.h5")
    return 0


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="describe a tilt-series or atom file")
    p.add_argument("path", type=Path)
    p.add_argument("--dataset", default=None, help="HDF5 dataset path of the tilt series")
    p.set_defaults(func=_cmd_info)


def _cmd_info(args) -> int:
    from .io import is_atom_model_file, read_atoms, read_tilt_series

    if is_atom_model_file(args.path):
        m = read_atoms(args.path)
        print(f"{args.path}: atom model, {m.n_atoms} atoms")
        print(f"  features: {', '.join(m.features.columns) or 'none'}")
        return 0
    ts = read_tilt_series(args.path, dataset=args.dataset)
    print(f"{args.path}: tilt series {ts.data.shape} ({ts.metadata.get('format')})")
    px = (
        f"{ts.pixel_size_A:g} A ({ts.metadata.get('pixel_size_source')})"
        if ts.pixel_size_A
        else "unknown"
    )
    print(f"  pixel size: {px}")
    if ts.angles_deg is None:
        print("  angles: unknown (none in the file and no sidecar .tlt/.rawtlt/.txt beside it)")
    else:
        a = ts.angles_deg
        src = ts.metadata.get("angles_source")
        print(f"  angles: {len(a)} from {a.min():g} to {a.max():g} deg ({src})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-aet",
        description="Atomic electron tomography: tilt series to 3D atomic structure, headless.",
    )
    parser.add_argument("--version", action="version", version=f"napari-aet {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_simulate(sub)
    _add_align(sub)
    _add_recon(sub)
    _add_trace(sub)
    _add_analyze(sub)
    from ._cli_augment import add_augment, add_train
    from ._cli_figures import add_bench, add_figures
    from ._cli_pipeline import add_precision, add_refine, add_run, add_validate

    add_augment(sub)
    add_train(sub)
    add_refine(sub)
    add_validate(sub)
    add_precision(sub)
    add_figures(sub)
    add_bench(sub)
    add_run(sub)
    _add_info(sub)
    return parser


_NEGATIVE_VALUE_OPTIONS = ("--angles", "--tilt-axis-angle", "--tilt-axis")


def _join_negative_values(argv: list[str]) -> list[str]:
    """Let ``--angles -70:70:7`` work: argparse would read ``-70:70:7`` as an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if (
            a in _NEGATIVE_VALUE_OPTIONS
            and i + 1 < len(argv)
            and argv[i + 1][:1] == "-"
            and (argv[i + 1][1:2].isdigit() or argv[i + 1][1:2] == ".")
        ):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_join_negative_values(argv))
    args.argv = argv  # the exact command, for provenance
    if args.command is None:
        parser.print_help()
        return 2
    from ._cli_safety import STAGED_COMMANDS, CommandFailed, check_option_ranges, run_staged

    try:
        check_option_ranges(args)
        if args.command in STAGED_COMMANDS and getattr(args, "out", None) is not None:
            return run_staged(args)
        return int(args.func(args) or 0)
    except CommandFailed as err:
        return err.rc
    except KeyboardInterrupt:
        print(
            f"napari-aet {args.command}: cancelled; partial outputs removed, earlier results kept",
            file=sys.stderr,
        )
        return 130
    except (ValueError, KeyError, FileNotFoundError, OSError, MemoryError, RuntimeError) as err:
        # StageFailed (a RuntimeError) lands here too: finished stages are kept
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"napari-aet {args.command}: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
