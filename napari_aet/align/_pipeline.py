"""The whole preprocessing and alignment chain, each step switchable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from types import SimpleNamespace

import numpy as np

from ..core.counts import as_counts
from ..core.geometry import images_and_angles
from ..core.progress import check_cancel, report
from ._axis_choice import choose_axis_by_prediction, horizontal_sense
from ._crop import particle_crop
from ._preprocess import (
    STUDY_LOWPASS_INV_A,
    background_planes,
    brightest_counts,
    denoise,
    dose_denoise_choice,
    lowpass_filter,
    subtract_background,
)
from ._projection_matching import projection_matching as _projection_matching
from ._shifts import (
    apply_alignment,
    center_of_mass_offsets,
)
from ._significance import (
    SIGNIFICANCE_K,
    _coarse_shifts,
    _model_tilt_axis,
    coarse_shift_error,
    keep_significant,
    significant_tilt_axis,
)
from ._split_counts import count_halves


@dataclass
class AlignmentResult:
    """An aligned tilt series and the corrections that made it.

    Attributes
    ----------
    data : ndarray of float32, shape (n, rows, cols)
        Preprocessed images resampled into the aligned frame (tilt axis vertical through the
        centre column, images registered).
    angles_deg : ndarray of shape (n,)
        Tilt angles after refinement (equal to the input when angles are not refined).
    angle_corrections_deg : ndarray of shape (n,)
        ``angles_deg - input angles``.
    shifts_px : ndarray of shape (n, 2)
        ``(d_row, d_col)`` of each raw image's content from where it should be, in raw pixel
        coordinates (what :func:`apply_alignment` undoes); in the crop's box when the images
        were cropped (``steps["crop"]``).
    tilt_axis_angle_deg : float
        In-plane angle of the tilt axis in the raw images [degrees].
    background : ndarray of shape (n, 3) or None
        Fitted background plane ``(a, b, c)`` per image.
    steps : dict
        Which steps ran and with which settings (JSON-serialisable).
    rounds : list of dict
        Projection-matching history (changes per round, mean correlation).
    undenoised : ndarray of float32, shape (n, rows, cols), or None
        When a denoiser ran: the same alignment applied to the images without it (background
        subtracted and low-pass filtered like ``data``), for least-squares fits that must see
        the measured counts (the refine stage judges atoms by them: BM3D at a few counts can
        smooth a sharp surface atom away).
    """

    data: np.ndarray
    angles_deg: np.ndarray
    angle_corrections_deg: np.ndarray
    shifts_px: np.ndarray
    tilt_axis_angle_deg: float
    background: np.ndarray | None = None
    steps: dict = field(default_factory=dict)
    rounds: list = field(default_factory=list)
    undenoised: np.ndarray | None = None

    def corrections_table(self) -> str:
        """CSV text: one row per image with its angle correction and shift."""
        lines = [
            "index,angle_in_deg,angle_refined_deg,angle_correction_deg,shift_row_px,shift_col_px"
        ]
        for i in range(len(self.angles_deg)):
            a0 = self.angles_deg[i] - self.angle_corrections_deg[i]
            lines.append(
                f"{i},{a0:.4f},{self.angles_deg[i]:.4f},{self.angle_corrections_deg[i]:.4f},"
                f"{self.shifts_px[i, 0]:.4f},{self.shifts_px[i, 1]:.4f}"
            )
        return "\n".join(lines) + "\n"


def _prepared(arr, *, background, denoise_method, noise, counts, lowpass, cancel=None,
              progress=None):  # fmt: skip
    """The preprocessing of a series: ``(work, unfiltered, plain, bg_params, info)``, the
    images background subtracted, denoised (``denoise_method`` resolved already) and low-pass
    filtered; the same before the denoiser and the filter (what atom models are fitted to);
    the same without the denoiser but filtered (None when none ran); each image's background
    plane; and what ran, for the steps record. ``progress`` hears steps 1 and 2 of the
    alignment's 6."""
    info: dict = {}
    bg_params = None
    work = arr
    if background:
        check_cancel(cancel, "alignment")
        work, bg_params = subtract_background(work, method=background)
        info["background"] = {"method": background}
    report(progress, 1, 6, "background subtracted")
    # what the atom-model fit compares with: the counts themselves, neither denoised nor
    # filtered (a denoiser's and a filter's artifacts are not in its image model and pull the
    # angles; the noise they remove only averages out over the pixels)
    unfiltered = work
    if denoise_method:
        check_cancel(cancel, "alignment")
        info["denoise"] = {"noise": noise}
        if noise == "poisson" and bg_params is not None and counts:
            # the Anscombe transform needs the counts: denoised after the background was
            # subtracted, every negative pixel was clipped to 0 first (at 1 count of
            # background per pixel 0 and 1 count became the same), then the plane subtracted
            planes = background_planes(bg_params, arr.shape)
            work, used = denoise(arr, method=denoise_method, noise=noise)
            work = work - planes
            info["denoise"]["background_counts"] = [float(v) for v in bg_params[:, 0]]
        else:
            work, used = denoise(work, method=denoise_method, noise=noise)
        info["denoise"]["method"] = used
    report(progress, 2, 6, "denoised")
    plain = unfiltered if denoise_method else None  # what the denoiser did not touch
    if lowpass:
        work = lowpass_filter(work, **lowpass)
        if plain is not None:
            plain = lowpass_filter(plain, **lowpass)
    return work, unfiltered, plain, bg_params, info


def _count_halves_prepared(arr, prep, cancel=None):
    """Two independent halves of a series of counts (:func:`count_halves`), each prepared as
    the series was (for its tomogram) and background subtracted (for the atom-model fit):
    what :func:`split_half_angles` takes."""
    out = []
    for half in count_halves(arr):
        work, fit, _, _, _ = _prepared(half, **prep, cancel=cancel)
        out += [work, fit]
    return tuple(out)


def align_tilt_series(
    data,
    angles_deg,
    *,
    pixel_size_A: float,
    background: str | None = "plane",
    denoise_method: str | None = None,
    noise: str = "poisson",
    lowpass_diameter_inv_A: float | None = STUDY_LOWPASS_INV_A,
    lowpass_edge_inv_A: float = 0.05,
    center_of_mass: bool = True,
    common_line: bool = True,
    tilt_axis: str | float | None = "estimate",
    tilt_axis_search_deg: float = 90.0,
    projection_matching: bool = True,
    refine_angles: bool = True,
    angle_method: str = "model",
    model_builder=None,
    model_trials=None,
    refine_rounds: int = 3,
    recon_iterations: int = 20,
    oversampling: float = 2.0,
    significance_k: float | None = SIGNIFICANCE_K,
    image_indices=None,
    crop: str | int | None = None,
    resampled_counts: bool = False,
    device: str = "auto",
    progress=None,
    cancel=None,
) -> AlignmentResult:
    """Preprocess and align a single-axis tilt series.

    Steps, in order (each switchable): cropping to the particle, background subtraction
    (robust plane outside the particle), denoising (BM3D or non-local means on
    Anscombe-transformed counts), circular low-pass filter [1/A], coarse centring by centre of
    mass, estimation of the tilt axis's in-plane angle (common-line condition), centre of mass
    perpendicular to the axis and common-line registration along it, then projection-matching
    refinement of shifts (and, optionally, angles) against GENFIRE reconstructions.

    Parameters
    ----------
    data : ndarray of shape (n, rows, cols)
        Raw tilt series.
    angles_deg : array-like of shape (n,)
        Nominal tilt angles [degrees].
    pixel_size_A : float
        Pixel size [A] (for the low-pass filter).
    background : {"plane", "offset", None}
    denoise_method : {"dose", "auto", "bm3d", "nlmeans", None}
        None (default) skips denoising; the study used BM3D. ``"dose"`` denoises only raw
        counts with few counts at the brightest columns (:func:`dose_denoise_choice`).
    noise : {"poisson", "gaussian"}
        Noise model for denoising. With ``"poisson"``, a series that is not integer counts
        (a detector's units: gain, offset, read noise) is converted to counts by its measured
        noise model first (:func:`napari_aet.core.counts.as_counts`; ``steps["counts"]``), so
        that the dose rule, the Anscombe transform and the replicates see counts; the aligned
        series is then in those counts. A series resampled before (aligned elsewhere: its
        noise correlated between neighbouring pixels) is converted too, its gain corrected
        for the correlation, but not split into halves of its counts (thinning splits only
        white counts into independent halves). Where no noise model can be measured (an
        already denoised series) the images are left as they are.
    lowpass_diameter_inv_A : float or None
        Diameter of the pass band [1/A] (the study: 2.08); None skips the filter.
    lowpass_edge_inv_A : float
        Width of the cosine edge [1/A] (the study: 0.05).
    center_of_mass, common_line : bool
        Coarse registration perpendicular to and along the tilt axis.
    tilt_axis : "estimate", float or None
        Estimate the in-plane tilt-axis angle, take a known one [degrees], or assume vertical.
    projection_matching : bool
        Projection-matching refinement of shifts (and angles) against GENFIRE reconstructions.
    refine_angles : bool
        Also refine tilt angles in projection matching.
    angle_method : {"model", "tomogram"}
        "model": trace atoms in each round's tomogram and refine that atom model jointly with
        every image's angle and shift (:func:`refine_atomic_model`; needs atomic resolution,
        and refines shifts only, with a note in ``steps``, where atoms are not resolved).
        "tomogram": score trial angles against the tomogram's re-projections (biased by the
        missing wedge; see docs/methods.md).
    model_builder : callable, optional
        With ``angle_method="model"``: ``(volume, voxel_size_A, cancel) -> positions (n, 3)
        [A]``, the atom model each round refines (needed there;
        :func:`napari_aet.workflows.atom_model_builder` gives the tracer, with or without the
        U-Net).
    model_trials : callable, optional
        With ``angle_method="model"``: trial atoms where the last round's fitted model lacks
        density, for the final fit (:func:`projection_matching`;
        :func:`napari_aet.workflows.atom_model_trials` gives the refine stage's residual pass).
    refine_rounds, recon_iterations, oversampling
        Projection-matching settings.
    significance_k : float or None
        With the model method: keep an image's angle change or shift only when it exceeds
        this many of its standard errors (:func:`keep_significant`); None keeps them all.
    image_indices : sequence of int, optional
        Each image's index in its file (default ``0 .. n-1``), by which the notes name images
        (the series may lack images of the file that were left out).
    crop : "auto", int, "none" or None
        Cut each image to a square box around the particle first (:func:`particle_crop`):
        ``"auto"`` measures the box and crops when it is at most 3/4 of the images' side; an
        int gives the box's side [px]; None or ``"none"`` keeps the images whole. The result's
        images and shifts are then in the box (``steps["crop"]`` says where each box lies).
    resampled_counts : bool
        The images are counts that were resampled and added (a file of several frames per
        tilt, :func:`register_frames`): counts as they are (gain 1), their noise correlated
        (not split into halves); with ``noise="poisson"`` only.
    """
    arr, ang = images_and_angles(data, angles_deg)
    if projection_matching and refine_angles and angle_method == "model" and model_builder is None:
        raise ValueError(
            "angle_method='model' needs model_builder, a function (volume, voxel_size_A, cancel)"
            " -> atom positions; napari_aet.workflows.atom_model_builder() gives the tracer. Or "
            "use angle_method='tomogram'"
        )
    steps: dict = {"stage": "align"}
    if crop not in (None, "none"):
        registered = center_of_mass or common_line or projection_matching
        box, why = particle_crop(
            arr, box_px=None if crop == "auto" else int(crop), per_image=registered
        )
        steps["crop"] = box.record() if box is not None else {"applied": False, "why": why}
        if box is not None:
            arr = box.apply(arr)
            steps["crop"]["why"] = why
    counts = False
    correlated = False  # counts whose noise is correlated (resampled): no independent halves
    if noise == "poisson":
        # counts as recorded, or a detector's units (gain, offset, read noise; or scaled by
        # its software) converted by the images' own noise model, or intensities when it
        # cannot be measured
        if resampled_counts:  # counts resampled and added (registered frames): no gain to
            # measure (it is 1, the sums kept), but no independent halves either
            converted, info = arr, {"units": "counts", "correlated": True, "why": (
                "sums of registered frames of counts: counts (their noise correlated by the "
                "resampling, so not split into halves)")}  # fmt: skip
        else:
            converted, info = as_counts(arr)
        if info["units"] != "counts" or resampled_counts:
            steps["counts"] = info
        if converted is not None:
            arr, counts, correlated = converted, True, bool(info.get("correlated"))
    total = 6
    if denoise_method == "dose":
        denoise_method, why = dose_denoise_choice(arr, counts=counts)
        steps["denoise"] = {"method": denoise_method or "none", "dose_rule": why}
        if counts:
            steps["denoise"]["brightest_counts"] = brightest_counts(arr)
    lowpass = None
    if lowpass_diameter_inv_A:
        lowpass = dict(
            pixel_size_A=pixel_size_A,
            cutoff_diameter_inv_A=lowpass_diameter_inv_A,
            edge_width_inv_A=lowpass_edge_inv_A,
        )
    prep = dict(background=background, denoise_method=denoise_method, noise=noise,
                counts=counts, lowpass=lowpass)  # fmt: skip
    work, unfiltered, plain, bg_params, info = _prepared(
        arr, **prep, cancel=cancel, progress=progress
    )
    denoised = info.pop("denoise", None)
    steps.update(info)
    if denoised:
        steps["denoise"] = {**steps.get("denoise", {}), **denoised}
    if lowpass:
        steps["lowpass"] = {
            "diameter_inv_A": lowpass_diameter_inv_A,
            "edge_inv_A": lowpass_edge_inv_A,
        }
    report(progress, 3, total, "filtered")
    # the coarse steps and the shifts-only registrations work on the images without the
    # denoiser: at a few counts BM3D's artifacts differ from image to image and move both
    # (an aligned Pt series at 5 counts on the brightest column: common-line offsets 2.6 px
    # RMS on the BM3D images, 1.6 on the counts; centres of mass 0.96 and 0.83 px)
    coarse = work if plain is None else plain
    n = len(work)
    s = np.zeros((n, 2))
    if center_of_mass:
        s = center_of_mass_offsets(coarse)
    alpha = 0.0
    if tilt_axis == "estimate":
        check_cancel(cancel, "alignment")
        alpha, axis_info = significant_tilt_axis(
            apply_alignment(work, shifts_px=s), search_range_deg=tilt_axis_search_deg
        )
        if axis_info.get("uncertain") and len(work) >= 6:
            # the common line cannot tell: the direction whose tomogram predicts held-out
            # images best (vertical unless another is clearly better), judged on the images
            # without the denoiser, whose noise its standard errors count (on BM3D images a
            # horizontal Ru series at 6 counts on its brightest column was kept upright)
            s0 = s
            chosen, axis_info["prediction"] = choose_axis_by_prediction(
                coarse, ang, [axis_info["estimated_deg"], axis_info.get("second_best_deg")],
                lambda a: _coarse_shifts(coarse, s0, a, center_of_mass, common_line),
                device=device,
            )  # fmt: skip
            if chosen != 0.0:
                alpha = chosen
                axis_info.update(applied_deg=alpha, note=(
                    f"estimate uncertain ({axis_info['why']}); {alpha:+.2f} deg chosen: "
                    f"{axis_info['prediction']['why']}"))  # fmt: skip
        sensed = horizontal_sense(alpha)
        if sensed != alpha:
            axis_info["sense_note"] = (
                f"{alpha:+.2f} deg taken as {sensed:+.2f} (a horizontal axis's sense: "
                "GENFIRE's images as they lie)"
            )
            alpha = sensed
            axis_info["applied_deg"] = alpha
            axis_info["note"] = "; ".join(
                n for n in (axis_info.get("note"), axis_info["sense_note"]) if n
            )
        steps["tilt_axis"] = axis_info
    elif tilt_axis is not None:
        alpha = float(tilt_axis)
        steps["tilt_axis"] = {"given_deg": alpha}
    report(progress, 4, total, f"tilt axis at {alpha:+.3f} deg")
    if center_of_mass or common_line:
        s = _coarse_shifts(coarse, s, alpha, center_of_mass, common_line)
        steps["center_of_mass"] = bool(center_of_mass)
        steps["common_line"] = bool(common_line)
    report(progress, 5, total, "coarse alignment done")
    rounds = []
    new_ang = ang.copy()
    if projection_matching:
        res = _projection_matching(
            work,
            ang,
            shifts_px=s,
            tilt_axis_angle_deg=alpha,
            rounds=refine_rounds,
            recon_iterations=recon_iterations,
            oversampling=oversampling,
            refine_angles=refine_angles,
            angle_method=angle_method,
            model_builder=model_builder,
            model_trials=model_trials,
            fit_images=unfiltered,
            register_images=plain,
            # thinning splits white counts into independent halves, not resampled ones
            halves=(
                (lambda: _count_halves_prepared(arr, prep, cancel))
                if counts and not correlated
                else None
            ),
            pixel_size_A=pixel_size_A,
            refine_axis=tilt_axis == "estimate",
            image_indices=image_indices,
            device=device,
            progress=progress,
            cancel=cancel,
        )
        s, new_ang = res.shifts_px, res.angles_deg
        if res.axis_changes_deg:
            alpha = _model_tilt_axis(res, work.shape, steps.setdefault("tilt_axis", {}))
        rounds = [asdict(r) for r in res.rounds]
        steps["projection_matching"] = {
            "rounds_run": len(res.rounds),
            "converged": res.converged,
            "refine_angles": refine_angles,
            "angle_method": angle_method,
            "model_builder": getattr(model_builder, "description", None),
            "recon_iterations": recon_iterations,
            "oversampling": oversampling,
            "notes": res.notes,
        }
        if res.image_width_A is not None:
            steps["projection_matching"]["image_width_A"] = [float(v) for v in res.image_width_A]
        errors = None
        # angles from an atom model need its standard errors; tomogram-scored angles have none
        # and are kept as the user chose that method
        unjudged_angle = np.inf if angle_method == "model" else 0.0
        if res.model is not None and res.model.angle_sigma_deg is not None:
            errors = res.model
        elif res.shift_sigma_px is not None:  # the last round registered to the tomogram
            sigma = np.asarray(res.shift_sigma_px, float)
            if center_of_mass or common_line:
                # registrations to a tomogram made with the image keep where they start
                # (the image's own noise, back-projected and re-projected, peaks there): the
                # coarse shifts' own error stays in the result
                coarse_sd = coarse_shift_error(
                    arr, alpha, counts=counts, center_of_mass=center_of_mass,
                    common_line=common_line, background=background, lowpass=lowpass,
                )  # fmt: skip
                if coarse_sd is not None:
                    sigma = np.hypot(sigma, coarse_sd[None, :])
                    steps["coarse_shift_error_px"] = [float(v) for v in coarse_sd]
            errors = SimpleNamespace(angle_sigma_deg=np.full(n, unjudged_angle),
                                     offset_sigma_px=sigma)  # fmt: skip
        if significance_k and errors is None and angle_method == "model" and refine_angles:
            # no trusted final fit: nothing establishes the angle corrections
            new_ang = ang.copy()
            steps["projection_matching"]["notes"].append(
                "angle corrections not applied: no standard errors (no trusted final fit)"
            )
        if significance_k and errors is not None:
            new_ang, s, steps["significance"] = keep_significant(
                ang, new_ang, s, alpha, errors, k=significance_k,
                jitter=(res.last_angle_change_deg, res.last_shift_change_px),
                model_spread=res.model_spread, image_shape=work.shape[1:],
                group=counts,  # a processed series' errors are not calibrated for it
            )  # fmt: skip
    aligned = apply_alignment(work, tilt_axis_angle_deg=alpha, shifts_px=s)
    undenoised = None
    if plain is not None:
        undenoised = apply_alignment(plain, tilt_axis_angle_deg=alpha, shifts_px=s)
    report(progress, 6, total, "aligned")
    return AlignmentResult(
        aligned, new_ang, new_ang - ang, s, alpha, bg_params, steps, rounds, undenoised
    )
