"""``run_<stage>(inputs, settings, out, progress, cancel) -> StageResult``: one stage from its
input files to its output folder, with its record (provenance) written beside the outputs.
This module has the stages on series and tomograms (simulate, align, recon, augment);
:mod:`.atom_stages` those on atoms.

The command line, the pipeline and Python users call these; the widgets call the stage
functions on layers and read their defaults from :mod:`.settings`. Errors propagate with their
traceback: a ``ValueError`` names bad input and its fix, anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__
from ..align import (
    align_tilt_series,
    dual_axis_euler,
    refine_second_axis_turn,
    register_second_axis,
)
from ..augment import augment_volume
from ..core.elements import parse_elements
from ..figures import (
    plot_recon_errors,
    tilt_series_montage,
    volume_slices_figure,
)
from ..io import (
    TiltSeries,
    file_notes,
    read_volume,
    write_angles,
    write_atoms,
    write_tilt_series,
    write_volume,
)
from ..io._angles import parse_angles
from ..recon import check_tomogram, genfire
from ..simulate import (
    build_structure,
    simulate_tilt_series,
    twinned_pt_nanodumbbell,
)
from ..trace import residual_trials, trace_atoms
from ._common import (
    StageResult,
    _folder,
    _provenance,
    _save_figure,
    _trace_kwargs,
    file_image_indices,
    frames_note,
    load_series,
    load_tomogram,
    write_json,
)
from .layout import STAGE_FILES, stage_file
from .settings import (
    AlignSettings,
    AugmentSettings,
    ReconSettings,
    SeriesSource,
    SimulateSettings,
    TraceSettings,
    VolumeSource,
)


def atom_model_builder(weights=None, *, trace: TraceSettings | None = None, device="auto"):
    """The atom model that the alignment's projection matching refines each round: the tracer
    (with ``trace`` settings), on the U-Net's output when ``weights`` are given. Returns a
    callable ``(volume, voxel_size_A, cancel) -> positions (n, 3) [A]``."""
    trace = trace or TraceSettings()

    def build(volume, voxel_size_A, cancel=None):
        src = volume
        if weights is not None:
            src = augment_volume(
                volume, voxel_size_A=voxel_size_A, weights=weights, element=trace.element,
                device=device,
            ).volume  # fmt: skip
        return trace_atoms(
            src, voxel_size_A=voxel_size_A, cancel=cancel, **_trace_kwargs(trace)
        ).atoms.positions

    build.description = f"tracer on {'the U-Net (' + str(weights) + ')' if weights else 'GENFIRE'}"
    return build


def atom_model_trials(residual_images, angles_deg, positions_A, *, pixel_size_A, device="auto",
                      cancel=None):  # fmt: skip
    """Trial atoms for the alignment's final atom-model fit: where the residual images show
    density that the fitted model lacks (the refine stage's residual pass,
    :func:`napari_aet.trace.residual_trials`). Returns positions (m, 3) [A]."""
    return residual_trials(
        residual_images, angles_deg, positions_A, pixel_size_A=pixel_size_A, device=device,
        cancel=cancel,
    )[0]  # fmt: skip


# --------------------------------------------------------------------------------------------
def run_simulate(settings: SimulateSettings, out, progress=None, cancel=None) -> StageResult:
    """Simulate a particle and its tilt series: the series with its angles, the true atoms
    (``truth_atoms.csv``), the true angles and shifts (``truth.json``), a montage."""

    s = settings
    out = _folder(out)
    if s.sample:
        sim = twinned_pt_nanodumbbell()
        label = "Twinned Pt nanodumbbell (simulated)"
        notes = []
    else:
        atoms = build_structure(
            s.structure,
            element=s.element,
            composition=None
            if s.composition is None
            else [float(v) for v in str(s.composition).split(",")],
            lattice_constant_A=s.lattice_constant_A,
            radius_A=s.radius_A,
            shape=s.shape,
            vacancy_fraction=s.vacancy_fraction,
            jitter_A=s.jitter_A,
            shape_px=(s.size_px, s.size_px),
            pixel_size_A=s.pixel_size_A,
            seed=s.seed,
        )
        sim = simulate_tilt_series(
            atoms,
            parse_angles(s.angles),
            pixel_size_A=s.pixel_size_A,
            shape_px=(s.size_px, s.size_px),
            blur_sigma_A=s.blur_sigma_A,
            element=parse_elements(s.element)[0],  # the counts scale: the heaviest atom's
            dose_e_per_A2=s.dose_e_per_A2 or None,
            angle_error_deg=s.angle_error_deg,
            shift_error_px=s.shift_error_px,
            tilt_axis_angle_deg=s.tilt_axis_angle_deg,
            seed=s.seed,
            progress=progress,
            cancel=cancel,
        )
        label = f"Simulated {s.element} {s.structure}"
        notes = [atoms.metadata["note"]] if "note" in atoms.metadata else []
    prov = {"napari_aet_version": __version__, "command": "simulate", **sim.settings}
    ts = TiltSeries(sim.data, sim.angles_deg, sim.pixel_size_A, "simulated", {})
    files = write_tilt_series(out / f"tilt_series.{s.format}", ts, provenance=prov)
    write_angles(stage_file(out, "simulate", "angles"), sim.angles_deg)
    truth_atoms = sim.truth.atoms
    truth_atoms.metadata = {**truth_atoms.metadata, "provenance": prov}
    write_atoms(stage_file(out, "simulate", "atoms"), truth_atoms)
    truth = {
        "true_angles_deg": np.asarray(sim.truth.angles_deg).tolist(),
        "nominal_angles_deg": np.asarray(sim.angles_deg).tolist(),
        "shifts_px_row_col": np.asarray(sim.truth.shifts_px).tolist(),
        "tilt_axis_angle_deg": sim.truth.tilt_axis_angle_deg,
        "n_atoms": truth_atoms.n_atoms,
        "pixel_size_A": sim.pixel_size_A,
        "settings": prov,
    }
    write_json(stage_file(out, "simulate", "truth"), truth)
    written = [Path(f).relative_to(out).as_posix() for f in files]
    written += [STAGE_FILES["simulate"][k] for k in ("angles", "atoms", "truth")]
    if s.figure:
        fig = tilt_series_montage(
            sim.data, sim.angles_deg, pixel_size_A=sim.pixel_size_A, title=label
        )
        written.append(_save_figure(fig, out, STAGE_FILES["simulate"]["figure"]))
    msg = (
        f"{label}: {truth_atoms.n_atoms} atoms, {len(sim.angles_deg)} images of "
        f"{sim.data.shape[1]} x {sim.data.shape[2]} px at {sim.pixel_size_A} A"
    )
    return StageResult("simulate", truth, written, msg, notes)


def _excluded(ts) -> dict:
    """The images left out of the series (:func:`without_images`), for a stage's record."""
    left = ts.metadata.get("excluded_images")
    return {"excluded_images": left} if left else {}


def _frames(ts) -> dict:
    """The registration of a series read with several frames per tilt, for the record."""
    fr = ts.metadata.get("frames")
    return {"frames": fr} if fr else {}


def excluded_note(metadata) -> str:
    """What the status line says about the images left out of a series
    (:func:`without_images`'s record in its metadata), or ``""``."""
    left = (metadata or {}).get("excluded_images")
    if not left:
        return ""
    at = ", ".join(f"{a:+.1f}" for a in left["angles_deg"] or [])
    note = f"left out image(s) {left['indices']} of {left['n_images_in_file']} (at {at} deg)"
    why = {k: v for k, v in (left.get("reasons") or {}).items() if v != "left out by the analyst"}
    if why:
        note += ": " + "; ".join(f"image {k}: {v}" for k, v in why.items())
    return note


def align_notes(steps: dict) -> list[str]:
    """What an analyst should read about an alignment (its record's ``steps``): the crop, the
    units the series was taken in, the dose rule's verdict, the tilt axis, the rounds' notes."""
    notes = []
    crop = steps.get("crop") or {}
    if crop.get("applied") or crop.get("why", "").startswith(
        ("no particle", "the particle's", "objects", "the images'")
    ):
        notes.append(f"crop: {crop['why']}")  # cropped, or the particle could not be found
    counts_why = (steps.get("counts") or {}).get("why")
    if counts_why:  # a detector's units: what the dose rule and the refine stage work in
        notes.append(f"counts: {counts_why}")
    dose_rule = (steps.get("denoise") or {}).get("dose_rule")
    if dose_rule:
        notes.append(f"denoising: {dose_rule}")
    axis_note = (steps.get("tilt_axis") or {}).get("note")
    if axis_note:
        notes.append(f"tilt axis: {axis_note} (give --tilt-axis to force an angle)")
    return notes + list((steps.get("projection_matching") or {}).get("notes") or [])


def run_align(
    series: SeriesSource, settings: AlignSettings, out, progress=None, cancel=None
) -> StageResult:
    """Preprocess and align a tilt series: the aligned series (with the refined angles), the
    per-image corrections (``alignment.csv``) and every setting and estimate
    (``alignment.json``)."""
    s = settings
    ts = load_series(series, progress=progress)
    builder = None
    if s.projection_matching and s.refine_angles and s.angle_method == "model":
        builder = atom_model_builder(
            s.model_weights, trace=TraceSettings(element=s.element), device=s.device
        )
    res = align_tilt_series(
        ts.data,
        ts.angles_deg,
        pixel_size_A=ts.pixel_size_A,
        background=None if s.background == "none" else s.background,
        denoise_method=None if s.denoise in (None, "none") else s.denoise,
        noise=s.noise,
        lowpass_diameter_inv_A=s.lowpass_diameter_inv_A or None,
        lowpass_edge_inv_A=s.lowpass_edge_inv_A,
        center_of_mass=s.center_of_mass,
        common_line=s.common_line,
        tilt_axis=s.tilt_axis_value(),
        projection_matching=s.projection_matching,
        refine_angles=s.refine_angles,
        angle_method=s.angle_method,
        model_builder=builder,
        model_trials=atom_model_trials if builder is not None else None,
        refine_rounds=s.rounds,
        recon_iterations=s.recon_iterations,
        image_indices=file_image_indices(ts),
        crop=s.crop_value(),
        resampled_counts=bool((ts.metadata.get("frames") or {}).get("counts")),
        device=s.device,
        progress=progress,
        cancel=cancel,
    )
    out = _folder(out)
    prov = {
        **_provenance("align", s, input=series.path),
        **_excluded(ts),
        **_frames(ts),
        **({"genfire": ts.metadata["genfire"]} if ts.metadata.get("genfire") else {}),
        **res.steps,
        "tilt_axis_angle_deg": res.tilt_axis_angle_deg,
    }
    aligned = TiltSeries(res.data, res.angles_deg, ts.pixel_size_A, str(series.path), {})
    write_tilt_series(stage_file(out, "align", "series"), aligned, provenance=prov)
    written = [STAGE_FILES["align"][k] for k in ("series", "angles", "table", "record")]
    if res.undenoised is not None:  # the counts, on which the refine stage judges atoms
        plain = TiltSeries(res.undenoised, res.angles_deg, ts.pixel_size_A, str(series.path), {})
        write_tilt_series(
            stage_file(out, "align", "series_undenoised"),
            plain,
            provenance={**prov, "denoise": {"method": "none", "note": "the aligned series "
                                            "without the denoiser, for the refine stage"}},
        )  # fmt: skip
        written.append(STAGE_FILES["align"]["series_undenoised"])
    write_angles(stage_file(out, "align", "angles"), res.angles_deg)
    stage_file(out, "align", "table").write_text(res.corrections_table())
    info = {
        **prov,
        "pixel_size_A": ts.pixel_size_A,
        "angles_in_deg": [float(a) for a in ts.angles_deg],
        "angles_refined_deg": [float(a) for a in res.angles_deg],
        "shifts_px_row_col": np.asarray(res.shifts_px).tolist(),
        "background_plane": None if res.background is None else res.background.tolist(),
        "refinement_rounds": res.rounds,
    }
    write_json(stage_file(out, "align", "record"), info)
    sh = np.asarray(res.shifts_px)
    msg = (
        f"aligned {len(sh)} images: tilt axis {res.tilt_axis_angle_deg:+.3f} deg, shifts up to "
        f"{np.abs(sh).max():.2f} px, angle corrections up to "
        f"{np.abs(res.angle_corrections_deg).max():.3f} deg"
    )
    notes = align_notes(res.steps)
    if left := excluded_note(ts.metadata):
        notes.insert(0, left)
    # how the file was read: a header's angles, another program's convention
    notes[:0] = [f"read: {n}" for n in file_notes(ts.metadata)]
    if fr := frames_note(ts.metadata):  # the frames' registration first, with its own notes
        notes[:0] = [fr, *ts.metadata["frames"].get("notes", [])]
    sig = res.steps.get("significance")
    if sig:
        msg += (
            f"; kept the corrections above {sig['k_sigma']:g} standard errors: "
            f"{sig['angle_corrections_kept']} angles (median error "
            f"{sig['angle_sigma_deg_median']:.3f} deg), {sig['shift_corrections_kept']} shifts "
            f"(median error {max(sig['shift_sigma_px_median']):.3f} px)"
        )
        group = sig.get("angle_group") or {}
        if group.get("applied"):
            msg += (
                f"; the other {group['n']} angle changes together exceed their errors "
                f"(chi2 {group['chi2']:.0f} > {group['chi2_bar']:.0f}): applied shrunk "
                f"(median weight {group['weight_median']:.2f})"
            )
    return StageResult("align", info, written, msg, notes)


def _support(spec: str):
    if spec in ("auto", "box"):
        return spec
    sp = Path(spec)
    mask = np.load(sp) if sp.suffix == ".npy" else read_volume(sp)[0]
    mask = np.asarray(mask) != 0
    if not mask.any():
        raise ValueError(
            f"the support mask {sp} is empty (all zero): give a mask that is non-zero inside the "
            "particle, or --support auto"
        )
    return mask


def dual_axis_geometry(ts: TiltSeries, tsb: TiltSeries, s: ReconSettings, cancel):
    """The joined images and Euler angles of a dual-axis acquisition (``ts`` and ``tsb``,
    aligned, one size and pixel size), its record (the second's in-plane turn, measured from
    the untilted images or taken from ``s.second_axis_rotation_deg``, refined against its
    images) and notes: what ``run_recon`` and the Reconstruct dock reconstruct with GENFIRE's
    ``euler_deg``."""
    if tsb.data.shape[1:] != ts.data.shape[1:]:
        raise ValueError(
            f"the second series' images are {tsb.data.shape[1:]} pixels, the first's "
            f"{ts.data.shape[1:]}: crop or pad them to one size first"
        )
    if abs(tsb.pixel_size_A - ts.pixel_size_A) > 1e-3 * ts.pixel_size_A:
        raise ValueError(
            f"the two series' pixel sizes differ ({ts.pixel_size_A:g} and "
            f"{tsb.pixel_size_A:g} A): resample one to the other first"
        )
    reg = register_second_axis(
        ts.data, ts.angles_deg, tsb.data, tsb.angles_deg, rotation_deg=s.second_axis_rotation_deg
    )
    first = genfire(ts.data, ts.angles_deg, iterations=20, device=s.device, cancel=cancel)
    candidates = [] if s.second_axis_rotation_deg is not None else reg.candidates_deg
    delta, corr = refine_second_axis_turn(
        first.volume, tsb.data, tsb.angles_deg, reg.rotation_deg, candidates=candidates
    )
    info = {
        "rotation_deg": delta,
        "rotation_from_untilted_images_deg": reg.rotation_deg,
        "rotation_given_deg": s.second_axis_rotation_deg,
        "reprojection_correlation": corr,
        "untilted_shift_px": list(reg.shift_px),
        "n_images": [int(ts.n_tilts), int(tsb.n_tilts)],
        "second_angles_deg": [float(a) for a in tsb.angles_deg],
    }
    notes = []
    if max(abs(v) for v in reg.shift_px) > 1.0:
        notes.append(
            f"the second series' untilted image is offset by ({reg.shift_px[0]:.1f}, "
            f"{reg.shift_px[1]:.1f}) px from the first after the turn: centre both series on "
            "the same point (align each with its centre of mass) for a sharp joint tomogram"
        )
    data = np.concatenate([ts.data, tsb.data])
    return data, dual_axis_euler(ts.angles_deg, tsb.angles_deg, delta), info, notes


def run_recon(
    series: SeriesSource,
    settings: ReconSettings,
    out,
    progress=None,
    cancel=None,
    *,
    second: SeriesSource | None = None,
) -> StageResult:
    """GENFIRE reconstruction of an aligned series: the tomogram (with its settings), the
    error curves (``recon_errors.csv``) and their figure.

    ``second``: the second series of a dual-axis acquisition (aligned on its own, same size
    and pixel size). Its in-plane turn relative to the first is measured (or taken from
    ``settings.second_axis_rotation_deg``) and refined against its images
    (:func:`napari_aet.align.refine_second_axis_turn`); both series are then reconstructed
    together, the turn recorded under ``dual_axis`` in ``recon.json``."""
    s = settings
    ts = load_series(series)
    data, geometry, dual, notes = ts.data, {"angles_deg": ts.angles_deg}, None, []
    if second is not None:
        data, euler, dual, notes = dual_axis_geometry(ts, load_series(second), s, cancel)
        geometry = {"euler_deg": euler}
    res = genfire(
        data,
        **geometry,
        iterations=s.iterations,
        oversampling=s.oversampling,
        interpolation=s.interpolation,
        interpolation_radius=s.interpolation_radius,
        support=_support(s.support),
        positivity=s.positivity,
        rfree_fraction=s.rfree_fraction,
        device=s.device,
        progress=progress,
        cancel=cancel,
    )
    check_tomogram(res.volume, series.path)  # fail before writing
    if res.settings.get("support_note"):
        notes.append(f"support: {res.settings['support_note']}")
    prov = {
        **_provenance("recon", s, input=series.path),
        **_excluded(ts),
        "pixel_size_A": ts.pixel_size_A,
        "angles_deg": [float(a) for a in ts.angles_deg],
        **res.settings,
        "timings_s": res.timings_s,
    }
    if dual is not None:
        prov["dual_axis"] = {**dual, "second_input": second.path}
    out = _folder(out)
    vol_path = write_volume(
        out / f"tomogram.{s.format}",
        res.volume,
        voxel_size_A=ts.pixel_size_A,
        provenance=prov,
        extra={"errors": res.errors, "rfree": res.rfree},
    )
    table = np.column_stack([np.arange(1, len(res.errors) + 1), res.errors, res.rfree])
    np.savetxt(
        stage_file(out, "recon", "errors"),
        table,
        delimiter=",",
        header="iteration,error,rfree",
        comments="",
        fmt=["%d", "%.6f", "%.6f"],
    )
    record = {**prov, "final_error": float(res.errors[-1]), "final_rfree": float(res.rfree[-1])}
    write_json(stage_file(out, "recon", "record"), record)
    fig = _save_figure(
        plot_recon_errors(res.errors, res.rfree), out, STAGE_FILES["recon"]["figure"]
    )
    t = res.timings_s
    msg = (
        f"GENFIRE on {res.settings['device']}: {res.volume.shape} voxels of "
        f"{ts.pixel_size_A:g} A; gridding {t['gridding']:.1f} s, "
        f"{t['per_iteration']:.2f} s/iteration; final error {res.errors[-1]:.4f}, "
        f"R-free {res.rfree[-1]:.4f}"
    )
    if dual is not None:
        msg += (
            f"; dual-axis: {dual['n_images'][0]} + {dual['n_images'][1]} images, second series "
            f"turned by {dual['rotation_deg']:.2f} deg"
        )
    written = [Path(vol_path).name, STAGE_FILES["recon"]["errors"], STAGE_FILES["recon"]["record"]]
    return StageResult("recon", record, [*written, fig], msg, notes)


def run_augment(
    tomogram: VolumeSource, settings: AugmentSettings, out, progress=None, cancel=None
) -> StageResult:
    """The U-Net on a tomogram: the augmented tomogram on the same grid, its record and a
    figure of central slices before and after."""
    s = settings
    vol, vx, prov_in = load_tomogram(tomogram)
    res = augment_volume(
        vol,
        voxel_size_A=vx,
        weights=s.weights,
        element=s.element,
        tile_px=s.tile_px,
        overlap_px=s.overlap_px,
        device=s.device,
        progress=progress,
        cancel=cancel,
    )
    prov = {
        **_provenance("augment", s, input=tomogram.path),
        **res.settings,
        "seconds": res.seconds,
        "tomogram_provenance": prov_in,
    }
    out = _folder(out)
    write_volume(
        stage_file(out, "augment", "tomogram"), res.volume, voxel_size_A=vx, provenance=prov
    )
    fig = volume_slices_figure(
        {"GENFIRE": vol, "U-Net": res.volume}, voxel_size_A=vx, title="Central slices"
    )
    written = [
        STAGE_FILES["augment"]["tomogram"],
        _save_figure(fig, out, STAGE_FILES["augment"]["figure"]),
    ]
    write_json(stage_file(out, "augment", "record"), prov)
    written.append(STAGE_FILES["augment"]["record"])
    msg = f"augmented {vol.shape} in {res.seconds:.1f} s on {res.settings['device']}"
    return StageResult("augment", prov, written, msg, list(res.settings.get("notes", [])))
