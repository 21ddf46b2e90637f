"""The stages on atoms: ``run_trace``, ``run_refine``, ``run_analyze``, ``run_validate`` and
``run_precision`` (same conventions as :mod:`.stages`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..align import recorded_denoiser
from ..analysis import (
    MULTIPLY_TWINNED,
    STUDY_BLUR_SIGMA_A,
    FieldCoverage,
    RFactorResult,
    analyze_structure,
    field_coverage,
    fit_blur_sigma,
    r_factor,
)
from ..core.device import cuda_available
from ..core.elements import parse_elements
from ..core.progress import prefixed
from ..figures import (
    layer_groups,
    plot_chemical_order,
    plot_composition_by_depth,
    plot_deviation_histogram,
    plot_grains,
    plot_layer_rmsd,
    plot_q4_q6,
    plot_r_factors,
    plot_rdf,
    plot_refine_shifts,
    plot_trace_histogram,
    plot_voronoi_motifs,
    tilt_series_montage,
)
from ..io import (
    write_angles,
    write_atoms,
)
from ..simulate import (
    MultisliceSettings,
)
from ..trace import check_angles, checked_angles, refine_atom_positions, trace_atoms
from ._common import (
    StageResult,
    _atoms_in,
    _folder,
    _provenance,
    _save_figure,
    _species,
    _trace_kwargs,
    load_series,
    load_tomogram,
    write_json,
)
from .layout import STAGE_FILES, stage_file
from .precision import PrecisionResult, precision_analysis
from .settings import (
    AnalyzeSettings,
    PositionRefineSettings,
    PrecisionSettings,
    SeriesSource,
    TraceSettings,
    ValidateSettings,
    VolumeSource,
)


def run_trace(
    tomogram: VolumeSource,
    settings: TraceSettings,
    out,
    progress=None,
    cancel=None,
    *,
    species_from: VolumeSource | None = None,
) -> StageResult:
    """Trace atoms in a tomogram: ``atoms.csv``/``atoms.h5``, every candidate
    (``candidates.csv``), the record (``trace.json``) and the intensity histogram.
    ``species_from``: for an alloy, a tomogram on the same grid whose intensities tell the
    atoms' elements apart (the GENFIRE tomogram when ``tomogram`` is the U-Net's, which makes
    every atom alike); ignored for one element."""
    s = settings
    vol, vx, prov_in = load_tomogram(tomogram)
    other = None
    if species_from is not None and len(parse_elements(s.element)) > 1:
        other, _, _ = load_tomogram(species_from)
    res = trace_atoms(vol, voxel_size_A=vx, progress=progress, cancel=cancel,
                      species_volume=other, **_trace_kwargs(s))  # fmt: skip
    if res.atoms.n_atoms == 0:
        raise ValueError(
            f"no atoms found in {tomogram.path} (threshold {res.threshold:.4g}): give a lower "
            "--threshold, or check the tomogram and its voxel size"
        )
    out = _folder(out)
    prov = {
        **_provenance("trace", s, input=tomogram.path),
        **res.settings,
        **({"species_tomogram": species_from.path} if other is not None else {}),
        "n_atoms": res.atoms.n_atoms,
        "tomogram_provenance": prov_in,
    }
    res.atoms.metadata["provenance"] = prov
    write_atoms(stage_file(out, "trace", "atoms"), res.atoms)
    write_atoms(stage_file(out, "trace", "atoms_h5"), res.atoms)
    res.candidates.to_csv(stage_file(out, "trace", "candidates"), index=False, float_format="%.5f")
    write_json(stage_file(out, "trace", "record"), prov)
    fig = plot_trace_histogram(
        res.candidates["intensity"], res.threshold,
        other_tomogram=res.candidates.get("species_volume_atom"),
        left_out=res.candidates.get("doubtful_left_out"),
    )  # fmt: skip
    written = [STAGE_FILES["trace"][k] for k in ("atoms", "atoms_h5", "candidates", "record")]
    written.append(_save_figure(fig, out, STAGE_FILES["trace"]["figure"]))
    msg = (
        f"traced {res.atoms.n_atoms} atoms from {len(res.candidates)} candidates "
        f"(threshold {res.threshold:.4g})"
    )
    return StageResult("trace", prov, written, msg)


def run_refine(
    atoms,
    series: SeriesSource,
    settings: PositionRefineSettings,
    out,
    progress=None,
    cancel=None,
    *,
    candidates=None,
    counts: SeriesSource | None = None,
) -> StageResult:
    """Refine traced positions against the aligned series (``atoms.csv`` with
    ``refine_shift_A`` and ``refine_amplitude``, ``refine.json``, a shift histogram). When the
    refined model cannot be trusted, the traced positions are written unchanged and the record
    says why. With ``candidates`` (the tracer's ``candidates.csv``) and ``add_remove`` the
    images also add rejected candidates and remove traced atoms (see
    :func:`napari_aet.trace.refine_atom_positions`). ``counts``: the same aligned series
    without the denoiser (``aligned_tilt_series_undenoised.h5``) when ``series`` was denoised;
    ``settings.counts`` says what it is used for (the verdicts, or the whole fit)."""
    import pandas as pd

    s = settings
    model, src = _atoms_in(atoms)
    ts = load_series(series)
    judge = denoiser = plain = None
    if counts is not None and s.counts != "ignore":
        plain = load_series(counts)
        if plain.data.shape != ts.data.shape or not np.allclose(plain.angles_deg, ts.angles_deg):
            raise ValueError(
                f"{counts.path} does not match {series.path} (shape {plain.data.shape} against "
                f"{ts.data.shape}, or other angles): give the series the align stage wrote "
                "beside it, or counts='ignore'"
            )
        if s.counts == "fit":
            ts = plain
        else:
            judge = plain.data
        if s.counts == "auto":
            denoiser = recorded_denoiser(ts.metadata)
    cand = None
    if s.add_remove and candidates is not None and Path(candidates).exists():
        cand = pd.read_csv(candidates)
    kw = dict(
        pixel_size_A=ts.pixel_size_A, iterations=s.iterations, refine_geometry=s.refine_geometry,
        candidates=cand, element=s.element, residual_pass=s.residual_pass, site_pass=s.site_pass,
        judge_images=judge, denoiser=denoiser, weighting=s.weighting, held_out=s.held_out,
        restraints=s.restraints, device=s.device, cancel=cancel,
    )  # fmt: skip
    refined, info = refine_atom_positions(model, ts.data, ts.angles_deg, progress=progress, **kw)
    angles = None
    if s.check_angles and not s.refine_geometry and "not_refined" not in info:
        # the angles measured again with the refined atoms, on the counts when there are
        # counts (their noise calibrates the standard errors)
        try:
            check = check_angles(
                refined.positions, (ts if plain is None else plain).data, ts.angles_deg,
                pixel_size_A=ts.pixel_size_A, device=s.device,
                progress=prefixed(progress, "angle check: "), cancel=cancel,
            )  # fmt: skip
        except ValueError as err:  # the check only measures: the refinement stands without it
            check = {"applied": False, "why": f"not measured ({err})"}
        if check["applied"]:
            again, info2 = refine_atom_positions(
                refined, ts.data, check["angles_deg"],
                progress=prefixed(progress, "refine at the corrected angles: "), **kw,
            )  # fmt: skip
            if "not_refined" in info2:
                check["applied"] = False
                check["why"] = f"the refinement at the corrected angles: {info2['not_refined']}"
            else:
                refined, info = again, {**info2, "first_refinement": _brief(info)}
                angles = np.asarray(check["angles_deg"])
        info["angle_check"] = check
    out = _folder(out)
    prov = {**_provenance("refine", s, atoms=src, tilts=series.path), **info}
    if counts is not None:
        prov["counts_series"] = str(counts.path)
    refined.metadata["provenance"] = prov
    write_atoms(stage_file(out, "refine", "atoms"), refined)
    write_atoms(stage_file(out, "refine", "atoms_h5"), refined)
    write_json(stage_file(out, "refine", "record"), prov)
    fig = plot_refine_shifts(refined, info)
    written = [STAGE_FILES["refine"][k] for k in ("atoms", "atoms_h5", "record")]
    written.append(_save_figure(fig, out, STAGE_FILES["refine"]["figure"]))
    angles_file = stage_file(out, "refine", "angles")
    if angles is not None:
        write_angles(angles_file, angles)
        written.append(STAGE_FILES["refine"]["angles"])
    elif angles_file.exists():
        angles_file.unlink()  # a rerun that kept the alignment's angles
    notes = [_angle_check_note(info["angle_check"])] if "angle_check" in info else []
    held = info.get("held_out")
    if held:
        notes.append(_held_out_note(held))
    if info.get("restraints"):
        notes.append(_restraints_note(info["restraints"]))
    if "not_refined" in info:
        msg = f"positions kept as traced: {info['not_refined']}"
        notes.append(msg)
        verdicts = info.get("held_verdicts")
        if verdicts and verdicts.get("applied"):
            msg += (
                f"; the counts (positions held) added {verdicts['n_added']} of "
                f"{verdicts['n_trial_candidates']} rejected candidates and removed "
                f"{verdicts['n_removed']} traced atoms (amplitudes at "
                f"{verdicts['significance_median']:.1f} standard errors, median)"
            )
        elif verdicts:
            notes.append(f"no atom added or removed: {verdicts['why']}")
    else:
        msg = (
            f"refined {refined.n_atoms} atoms: median shift {100 * info['shift_A_median']:.1f} "
            f"pm, residual {info['residual_start']:.4f} -> {info['residual_end']:.4f}"
        )
        if "n_added" in info:
            res_pass = info.get("residual_pass") or {}
            sites = info.get("site_pass") or {}
            from_residual = int(res_pass.get("n_added", 0))
            from_sites = int(sites.get("n_added", 0))
            msg += (
                f"; the images added {info['n_added'] - from_residual - from_sites} of "
                f"{info['n_trial_candidates']} rejected candidates"
            )
            if res_pass.get("n_trials"):
                msg += (
                    f", {from_residual} of {res_pass['n_trials']} trial atoms where the "
                    "residual images showed density"
                )
            if sites.get("n_trials"):
                msg += (
                    f", {from_sites} of {sites['n_trials']} empty sites of the atoms' own lattice"
                )
            msg += f", and removed {info['n_removed']} traced atoms"
        faint = info.get("faint_verdicts") or {}
        if faint.get("applied") is False:
            notes.append(_faint_wait_note(faint))
        src = info.get("position_source")
        if src:
            rms = src["replicate_rms_pm"]
            msg += (
                f"; positions fitted to the {src['source']} series (on a replicate: denoised "
                f"{_pm(rms['denoised'])}, counts {_pm(rms['counts'])})"
            )
        corr = info.get("counts_correction")
        if corr and corr.get("applied"):
            msg += (
                f"; the counts' smooth correction added ({corr['correction_rms_pm']:.1f} pm RMS "
                f"over {corr['sigma_A']:.2f} A)"
            )
        elif corr:
            notes.append(f"no smooth correction from the counts: {corr.get('why')}")
        share = info.get("tracer_share")
        if share:
            msg += (
                f"; the traced positions' share {share['weight']:.2f} (the fit moved the atoms "
                f"{share['shift_rms_pm']:.1f} pm RMS against its own error of "
                f"{share['fit_error_pm']:.1f} pm)"
            )

    return StageResult("refine", prov, written, msg, notes)


def _brief(info: dict) -> dict:
    """What the first refinement's record keeps once the angle check ran it again."""
    keys = ("shift_A_median", "residual_start", "residual_end", "n_added", "n_removed")
    return {k: info[k] for k in keys if k in info}


def _faint_wait_note(faint: dict) -> str:
    """Why an alloy's verdicts waited (``info["faint_verdicts"]``, not applied)."""
    joined = faint.get("n_trials_joined", 0)
    what = (
        f"no traced atom removed and {joined} candidates added, "
        f"each measured on its own to {faint['significance_bar']:g} standard errors"
        if joined
        else "no atom added or removed"
    )
    return (
        f"{what}: the counts measure the {faint['n_atoms']} traced "
        f"{faint['element']} atoms to {faint['median_significance']:.1f} standard errors "
        f"(median); {faint['significance_bar']:g} are needed to tell such an atom from "
        "nothing, so the traced atoms stay"
    )


def _angle_check_note(check: dict) -> str:
    """One line on :func:`~napari_aet.trace.check_angles`'s result."""
    if check.get("applied"):
        n = sum(check["kept"])
        return (
            f"angle check: the refined atoms established {n} of {check['n_images']} angle "
            f"corrections ({check['rms_kept_deg']:.3f} deg RMS, moving the atoms at the radius "
            f"by {100 * check['effect_A']:.1f} pm{_widened(check)}): refined again at the "
            "corrected angles (refine/angles.txt and the atoms' metadata, which validate uses)"
        )
    return f"angle check: {check.get('why', 'not applied')}"


def _widened(check: dict) -> str:
    """How far the slabs' scatter widened the check's standard errors, when it did."""
    factor = (check.get("slabs") or {}).get("factor", 1.0)
    return f"; standard errors widened {factor:.1f}x by the slabs' scatter" if factor > 1 else ""


def _restraints_note(r: dict) -> str:
    """One line on the restrained final positions (:mod:`napari_aet.trace._restrained`)."""
    if "why" in r:
        return f"final positions not restrained: {r['why']}"
    t = min(r["held_out_t"][f"{r['sigma_pm']:g}"])
    return (
        f"final positions fitted with their bonds restrained at {r['sigma_pm']:g} pm (the "
        f"held-out images' choice, t >= {t:.1f}): moved {r['shift_rms_pm']:.1f} pm RMS, "
        f"error {r['fit_error_pm']:.1f} pm"
    )


def _held_out_note(held: dict) -> str:
    """One line on the held-out images' verdict (:func:`refine_atom_positions`)."""
    if held["verdict"] == "not run":
        return f"the fit alone was refused and no held-out test could run: {held['why']}"
    if held.get("t") is None:
        return f"held-out images: the traced atoms stay ({held.get('why', 'no verdict')})"
    which = "the refinement" if held["verdict"] == "refined" else "the traced atoms"
    corr = held.get("counts_correlation")
    why = (
        "the counts' fit alone was below the bar"
        if corr is None
        else f"the fit correlated with the counts at only {corr:.2f} "
        f"(bar {held['correlation_bar']:g})"
    )
    bar = f"bar {held['t_bar']:g}"
    if held["t_bar"] < 0:
        bar = f"a glass's refinement goes only at t <= {held['t_bar']:g}"
    return (
        f"{why}; fitted to {len(held['fit_images'])} images, "
        f"the refinement predicted the {held['n_images']} held-out ones "
        f"{'better' if held['t'] > 0 else 'worse'} than the traced atoms (t = {held['t']:.1f}, "
        f"{bar}): {which} kept"
    )


def _pm(value) -> str:
    return "untrusted" if value is None else f"{value:.1f} pm"


def run_analyze(atoms, settings: AnalyzeSettings, out, progress=None, cancel=None) -> StageResult:
    """Structure analysis: ``atoms.csv``/``atoms.h5`` with the per-atom features, the summary
    (``analysis.json``) and its figures (Q4/Q6, layer RMSD; g(r) for amorphous particles)."""
    s = settings
    if s.orr_table is not None and not s.strain:
        raise ValueError("an ORR table needs the strain analysis (the activity comes from it)")
    model, src = _atoms_in(atoms)
    res = analyze_structure(
        model,
        cutoff_A=s.cutoff_A,
        element=s.element,
        reference_lattice_constant_A=s.lattice_constant_A,
        strain=s.strain,
        strain_frame=s.strain_frame,
        orr_relation=s.orr_table,
        structure=s.structure,
        progress=progress,
    )
    out = _folder(out)
    summary = {**_provenance("analyze", s, input=src), **res.summary}
    write_atoms(stage_file(out, "analyze", "atoms"), res.model)
    write_atoms(stage_file(out, "analyze", "atoms_h5"), res.model)
    write_json(stage_file(out, "analyze", "record"), summary)
    f = res.model.features
    groups = (
        layer_groups(f["layer"].to_numpy(), res.stacking.twin_boundaries)
        if summary["n_layers"]
        else None
    )
    figs = [
        _save_figure(
            plot_q4_q6(
                f["q4"],
                f["q6"],
                groups,
                ideal_fcc=summary["boo"]["ideal_fcc_q4_q6"],
                ideal_hcp=summary["boo"]["ideal_hcp_q4_q6"],
                ideal_bcc=summary["boo"]["ideal_bcc_q4_q6"]
                if summary["lattice"] == "bcc"
                else None,
            ),
            out,
            "figures/q4_q6.png",
        ),
    ]
    if summary["n_layers"]:  # (111) layers to show
        figs.append(_save_figure(plot_layer_rmsd(summary["layers"]), out, "figures/layer_rmsd.png"))
    if summary.get("amorphous"):
        figs.append(_save_figure(plot_rdf(summary["amorphous"]), out, "figures/rdf.png"))
        figs.append(
            _save_figure(
                plot_voronoi_motifs(summary["amorphous"]), out, "figures/voronoi_motifs.png"
            )
        )
    grains = summary.get("grains") or {}
    multi = grains.get("kind") in MULTIPLY_TWINNED
    if multi:
        figs.append(
            _save_figure(
                plot_grains(res.model.positions, f["grain"], grains), out, "figures/grains.png"
            )
        )
    if summary.get("chemical_order"):
        figs.append(
            _save_figure(
                plot_chemical_order(
                    res.model.positions,
                    f["element"],
                    summary["chemical_order"],
                    summary["lattice_fits"],
                ),  # fmt: skip
                out,
                "figures/chemical_order.png",
            )
        )
    if summary.get("composition_by_depth"):
        figs.append(
            _save_figure(
                plot_composition_by_depth(summary["composition_by_depth"]),
                out,
                "figures/composition_depth.png",
            )
        )
    rot = summary["relative_rotation_deg"]
    a = summary["lattice_constant_A"]
    faults = ", ".join(f"{x['type']} at layer {x['layer']}" for x in summary["faults"])
    lattice_a = "; lattice constant " + ("not measured" if a is None else f"{a:.4f} A")
    if summary["lattice"] == "bcc":
        msg = "a bcc crystal (no (111) stacking)" + lattice_a
    elif summary["lattice"] == "hcp":
        c = summary["hcp_c_A"]
        msg = (
            f"an hcp crystal: {summary['n_layers']} (0001) layers; faults: {faults or 'none'}; "
            f"a = {a:.4f} A" + ("" if c is None else f", c = {c:.4f} A")
        )
    elif multi:
        axes = grains.get("fivefold_axes_zyx") or []
        msg = (
            f"{grains['kind']}: {grains['n_grains']} twin domains (feature 'grain'), "
            f"{sum(b['twin'] for b in grains['boundaries'])} coherent twin boundaries"
            + (f", {len(axes)} five-fold axes" if len(axes) > 1 else "")
            + (
                ", five-fold axis (z, y, x) " + ", ".join(f"{v:+.3f}" for v in axes[0])
                if len(axes) == 1
                else ""
            )
            + (
                "; segment angles "
                + ", ".join("-" if v is None else f"{v:.1f}" for v in grains["segment_angles_deg"])
                + " deg"
                if grains.get("segment_angles_deg")
                else ""
            )
            + lattice_a
        )
    else:
        msg = (
            f"{summary['n_layers']} (111) layers; faults: {faults or 'none'}; twin boundaries at "
            f"layers {summary['twin_boundary_layers']}; relative rotation "
            + ("not measured" if rot is None else f"{rot:.2f} deg")
            + lattice_a
        )
    written = [STAGE_FILES["analyze"][k] for k in ("atoms", "atoms_h5", "record")] + figs
    return StageResult("analyze", summary, written, msg, list(summary.get("notes", [])))


@dataclass
class Validation:
    """What :func:`validate_atoms` found: the R-factors (:class:`~napari_aet.analysis.
    RFactorResult`) at the blur used, that blur [A], the mean R-factor at the study's 0.45 A
    (None where the blur was given), where the images cut the model
    (:class:`~napari_aet.analysis.FieldCoverage`), and the angles the model was projected at
    with whether they are the refine stage's checked ones
    (:func:`~napari_aet.trace.checked_angles`) rather than the series'."""

    result: RFactorResult
    blur_sigma_A: float
    r_mean_study_blur: float | None
    coverage: FieldCoverage
    angles_deg: np.ndarray
    angles_checked: bool = False


def validate_atoms(model, ts, settings: ValidateSettings, progress=None) -> Validation:
    """The validate stage's computation on an atom model and an aligned :class:`TiltSeries`
    (no files): the blur fitted to the images unless ``settings`` gives one, the R-factors at
    it, the study's blur's beside it, and the images that cut the model. The Validate widget
    runs it on layers. A model refined at angles that the refine stage's angle check
    corrected is projected at those angles."""
    s = settings
    checked = checked_angles(model.metadata, ts.angles_deg)
    if checked is not None:
        ts = replace(ts, angles_deg=checked)
    species = _species(model, s.element)
    kw = dict(pixel_size_A=ts.pixel_size_A, element=species, per_image_scale=not s.shared_scale)
    blur, study_r = s.blur_sigma_A, None
    if blur is None:  # the width the images show (B factor), and the study's R beside it
        blur, _ = fit_blur_sigma(model.positions, ts.data, ts.angles_deg, **kw)
        study_r = r_factor(
            model.positions, ts.data, ts.angles_deg, blur_sigma_A=STUDY_BLUR_SIGMA_A, **kw
        ).r_mean
    res = r_factor(
        model.positions, ts.data, ts.angles_deg, blur_sigma_A=blur, progress=progress, **kw
    )
    cover = field_coverage(
        model.positions, ts.angles_deg, shape_px=ts.data.shape[1:], pixel_size_A=ts.pixel_size_A
    )
    angles = np.asarray(ts.angles_deg, np.float64)
    return Validation(res, float(blur), study_r, cover, angles, checked is not None)


def run_validate(
    atoms, series: SeriesSource, settings: ValidateSettings, out, progress=None, cancel=None
) -> StageResult:
    """R-factors of an atom model against the aligned series: ``rfactor.json``, the calculated
    and residual stacks (``projections.h5``) and their figures."""
    import h5py

    s = settings
    model, src = _atoms_in(atoms)
    ts = load_series(series)
    v = validate_atoms(model, ts, s, progress)
    res, blur, study_r, cover = v.result, v.blur_sigma_A, v.r_mean_study_blur, v.coverage
    ts = replace(ts, angles_deg=v.angles_deg)
    out = _folder(out)
    info = {
        **_provenance("validate", s, atoms=src, tilts=series.path),
        "blur_sigma_A": blur,
        "blur_fitted": s.blur_sigma_A is None,
        "r_mean_study_blur": res.r_mean
        if study_r is None and blur == STUDY_BLUR_SIGMA_A
        else study_r,
        "element": s.element,
        "r_mean": res.r_mean,
        "r_per_image": res.r_per_image.tolist(),
        "angles_deg": [float(a) for a in ts.angles_deg],
        "angles_from": "the refine stage's angle check" if v.angles_checked else "the series",
        "scales": res.scales.tolist(),
        "outside_field": cover.record(ts.angles_deg),
    }
    write_json(stage_file(out, "validate", "record"), info)
    with h5py.File(stage_file(out, "validate", "projections"), "w") as h5:
        h5.create_dataset("calculated", data=res.calculated, compression="gzip")
        h5.create_dataset("residuals", data=res.residuals, compression="gzip")
        h5.create_dataset("angles_deg", data=ts.angles_deg)
        h5.attrs["pixel_size_A"] = ts.pixel_size_A
    figs = [
        _save_figure(
            plot_r_factors(ts.angles_deg, res.r_per_image), out, STAGE_FILES["validate"]["figure"]
        ),
        _save_figure(
            tilt_series_montage(
                res.calculated,
                ts.angles_deg,
                pixel_size_A=ts.pixel_size_A,
                title="Forward projections of the atom model",
            ),
            out,
            "figures/calculated.png",
        ),
    ]
    msg = (
        f"mean R-factor {res.r_mean:.4f} over {len(res.r_per_image)} images "
        f"(min {res.r_per_image.min():.4f}, max {res.r_per_image.max():.4f}) with "
        + (f"the fitted blur {blur:.3f} A" if s.blur_sigma_A is None else f"a blur of {blur:g} A")
        + ("" if study_r is None else f"; {study_r:.4f} with the study's {STUDY_BLUR_SIGMA_A} A")
    )
    written = [STAGE_FILES["validate"][k] for k in ("record", "projections")] + figs
    notes = [n for n in (cover.note(ts.angles_deg),) if n]
    if v.angles_checked:
        notes.append("projected at the angles the refine stage's angle check corrected")
    return StageResult("validate", info, written, msg, notes)


def _precision_on_gpu(settings: PrecisionSettings) -> bool:
    return settings.device == "cuda" or (settings.device == "auto" and cuda_available())


def multislice_on_cpu(settings: PrecisionSettings) -> bool:
    """Whether the precision analysis of ``settings`` runs multislice on the CPU (hours for a
    256-px series): the run's note says so, and the Validate dock's progress too."""
    return settings.simulator == "multislice" and not _precision_on_gpu(settings)


def precision_of_atoms(
    model, ts, settings: PrecisionSettings, progress=None, cancel=None
) -> tuple[PrecisionResult, list[str]]:
    """The precision stage's computation on an atom model and a measured :class:`TiltSeries`
    (no files): the model's series simulated at that series' angles, pixel size and image
    size, reconstructed, traced again and compared (:func:`precision_analysis`). Returns the
    result and notes (multislice on a CPU is slow). The Validate widget runs it on layers."""
    s = settings
    gpu = _precision_on_gpu(s)
    ms = MultisliceSettings(
        energy_keV=s.energy_keV,
        semiangle_mrad=s.semiangle_mrad,
        c3_A=s.c3_A,
        c5_A=s.c5_A,
        detector_inner_mrad=s.detector_inner_mrad,
        detector_outer_mrad=s.detector_outer_mrad,
        frozen_phonons=s.frozen_phonons,
        slice_thickness_A=s.slice_thickness_A,
        potential_sampling_A=s.potential_sampling_A,
        device="gpu" if gpu else "cpu",
    )
    notes = []
    if multislice_on_cpu(s):
        probes = int(ts.data.shape[0] * ts.data.shape[1] * ts.data.shape[2] * s.frozen_phonons)
        notes.append(
            f"multislice on the CPU: {probes:,} probe positions x slices; a full 256 x 256 series "
            "takes hours here. Use --device cuda, or --simulator kirkland for a quick estimate."
        )
    res = precision_analysis(
        model.positions,
        ts.angles_deg,
        pixel_size_A=ts.pixel_size_A,
        shape_px=ts.data.shape[1:],
        simulator=s.simulator,
        multislice=ms,
        element=_species(model, s.element),
        iterations=s.iterations,
        weights=s.weights,
        refine_positions=s.refine_positions,
        device=s.device,
        progress=progress,
        cancel=cancel,
    )
    return res, notes


def run_precision(
    atoms, series: SeriesSource, settings: PrecisionSettings, out, progress=None, cancel=None
) -> StageResult:
    """Precision analysis of an atom model at a measured series' geometry
    (:func:`precision_of_atoms`): ``precision.json`` and a deviation histogram."""

    s = settings
    model, src = _atoms_in(atoms)
    ts = load_series(series)
    res, notes = precision_of_atoms(model, ts, s, progress, cancel)
    out = _folder(out)
    info = {
        **_provenance("precision", s, atoms=src, tilts=series.path),
        **res.settings,
        "results": res.summary(),
    }
    write_json(stage_file(out, "precision", "record"), info)
    fig = _save_figure(
        plot_deviation_histogram(res.comparisons), out, STAGE_FILES["precision"]["figure"]
    )
    lines = [
        f"{k}: {v['n_common']} common of {v['n_model']} model / {v['n_traced']} traced atoms; "
        f"identification error {100 * v['identification_error']:.2f} %, RMSD "
        f"{v['rmsd_pm']:.1f} pm"
        for k, v in res.summary().items()
    ]
    return StageResult(
        "precision", info, [STAGE_FILES["precision"]["record"], fig], "\n".join(lines), notes
    )
