"""Projection-matching refinement of image shifts and tilt angles against a reconstruction."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..core.filters import white_noise_variance
from ..core.progress import check_cancel, prefixed, report
from ..forward import (
    ModelRefinementResult,
    split_object_translation,
    why_untrusted,
)
from ._model_rounds import (
    RUNAWAY_BOUNDS,
    WIDER_BOUND,
    _aligned_noise,
    _angles_held,
    _blur_effect,
    _bound_only,
    _final_model_fit,
    _held_refit,
    _noisy,
    _refine_traced_model,
    _round_fit,
    _runaway_held,
    blurred_images,
    round_tomogram,
)
from ._shifts import apply_alignment, axis_matrix
from ._significance import half_pixel_turn_deg
from ._split_counts import split_half_angles
from ._tomogram_matching import _match_to_tomogram

#: With the model method, a round is added (at most :data:`EXTRA_ROUNDS` beyond ``rounds``)
#: after a round that held the angles (it did not refine them) and while the angles are still
#: converging: the last round changed them, RMS, by less than this fraction of the round before
#: (a geometric approach, not yet the noise floor, where successive changes are alike). The
#: last round's change counts as the estimates' round-to-round jitter in the significance test
#: (:func:`napari_aet.align.keep_significant`), so stopping while it is still progress makes
#: the test revert real corrections: an independent 3,259-atom Pt polyhedron with 0.5 deg angle
#: errors (256 px, round 1 held) changed its angles by 0.46, 0.18, 0.068 and 0.049 deg RMS in
#: rounds 2-5; stopped after round 3 the jitter put the standard errors at 0.18 deg where the
#: fit's error was 0.037, 18 of 21 corrections were reverted or shrunk and the angles ended
#: 0.075 deg RMS off; after round 5, 0.036.
CONVERGING_RATIO = 0.6
EXTRA_ROUNDS = 3
#: ... and after a round that turned the tilt axis (``refine_axis``) by more than this many
#: times the turn that moves the image edges by half a pixel (``1 / width`` radians): each
#: round's atom model is traced from a tomogram made at the axis the round started from and
#: takes up part of what is left, so a turned axis is measured a fraction per round. An
#: independent 8,217-atom Pt icosahedron (256 px, a third of the counts, the axis turned by 3
#: deg; a round particle, whose common line could not tell the direction) turned 0.24, 0.25
#: and 0.52 deg in rounds 1-3, stopped there at 1.08 deg and lost 56 % of its atoms.
AXIS_TURNING = 1.0


@dataclass
class RefinementRound:
    """What one round of projection matching changed."""

    max_shift_change_px: float
    rms_shift_change_px: float
    max_angle_change_deg: float
    rms_angle_change_deg: float
    mean_correlation: float


@dataclass
class ProjectionMatchingResult:
    """Refined geometry: shifts in raw coordinates and tilt angles, with the round history
    (and, with ``angle_method="model"``, the last round's refined atom model)."""

    shifts_px: np.ndarray
    angles_deg: np.ndarray
    rounds: list[RefinementRound] = field(default_factory=list)
    converged: bool = False
    model: ModelRefinementResult | None = None
    notes: list[str] = field(default_factory=list)
    # the last round's per-image changes: how much the estimates still jitter from round to
    # round (re-tracing, re-reconstructing), an uncertainty the images' noise does not show
    last_angle_change_deg: np.ndarray | None = None
    last_shift_change_px: np.ndarray | None = None
    # the last round's standard errors of the offsets (row, col) [px] when it registered the
    # images to the tomogram (shifts only): what :func:`keep_significant` judges them by
    shift_sigma_px: np.ndarray | None = None
    # per image, how far the final fit's angle [deg] and offset [px] estimates moved when trial
    # atoms (where the model lacked density) joined it, and (angles, in quadrature) when each
    # image got its own atom width (:func:`_blur_effect`) and, on noisy images, how far two
    # halves of the counts fitted apart disagree (:func:`split_half_angles`): the model's
    # own uncertainty
    model_spread: tuple[np.ndarray, np.ndarray] | None = None
    # each image's fitted atom width [A] in the final fit with a width per image (the width
    # check, :func:`_blur_effect`); None when it did not run or was not trusted
    image_width_A: np.ndarray | None = None
    # with refine_axis: the in-plane tilt-axis angle [deg] the images were last aligned with
    # plus the final fit's turn (apply_alignment's sense), the final fit's standard error of
    # it, and each fit's turn in order (rounds, then the final fit)
    tilt_axis_angle_deg: float = 0.0
    axis_sigma_deg: float | None = None
    axis_changes_deg: list = field(default_factory=list)


def projection_matching(
    raw,
    angles_deg,
    *,
    shifts_px=None,
    tilt_axis_angle_deg: float = 0.0,
    rounds: int = 4,
    recon_iterations: int = 20,
    oversampling: float = 2.0,
    angle_step_deg: float = 0.5,
    max_angle_change_deg: float = 1.0,
    refine_angles: bool = True,
    angle_method: str = "tomogram",
    pixel_size_A: float | None = None,
    model_builder=None,
    fit_images=None,
    register_images=None,
    model_trials=None,
    halves=None,
    shift_tol_px: float = 0.05,
    angle_tol_deg: float = 0.02,
    refine_axis: bool = False,
    image_indices=None,
    device: str = "auto",
    progress=None,
    cancel=None,
) -> ProjectionMatchingResult:
    """Refine per-image shifts and tilt angles by matching re-projections of a reconstruction.

    Each round reconstructs the current aligned series with GENFIRE, re-projects it at each
    image's angle and at ``+- angle_step_deg``, takes the angle at the vertex of a parabola
    through the three correlations and the shift that registers the image to the re-projection
    at that angle (sub-pixel phase correlation). Gauge freedoms are fixed each round: angle
    corrections have zero mean (the mean of the nominal angles is kept), offsets along the axis
    have zero mean, and column offsets explained by a translation of the object are removed.
    Stops when every change is below ``shift_tol_px`` and ``angle_tol_deg``.

    ``angle_method="model"`` (recommended at atomic resolution) instead traces the atoms in
    each round's tomogram and refines that atom model jointly with every image's angle and
    offset by least squares against the images (:func:`refine_atomic_model`). An atom model
    has no missing-wedge artifacts, and refining its positions at the same time removes the
    bias a traced model inherits from the angles it was reconstructed at; tomogram-based angle
    scoring stalls on exactly that bias. It needs ``pixel_size_A`` and atomic resolution: a
    round where no atoms are traced, or whose refined model fits the images poorly, has
    unresolved atoms or runs many corrections to ``max_angle_change_deg``
    (:func:`why_untrusted`), refines shifts only and says so in ``notes``. Rounds fit for
    :data:`ROUND_ITERATIONS`; when the last one fitted a model, that model (with trial atoms
    from ``model_trials``) is fitted once more to convergence, with standard errors
    (:attr:`ModelRefinementResult.angle_sigma_deg`), and its corrections are applied too. The
    atom model comes from ``model_builder(volume, voxel_size_A, cancel) -> positions (n, 3)
    [A]`` (alignment does not depend on the tracer:
    :func:`napari_aet.workflows.atom_model_builder` gives the project's tracer, after the U-Net
    when weights are given).

    Parameters
    ----------
    raw : ndarray of shape (n, rows, cols)
        Preprocessed (background-free) images in the raw frame.
    angles_deg : array-like of shape (n,)
        Starting tilt angles [degrees].
    shifts_px : ndarray of shape (n, 2), optional
        Starting shifts in raw coordinates (from the coarse alignment).
    tilt_axis_angle_deg : float
        In-plane tilt-axis angle [degrees] (from :func:`estimate_tilt_axis_angle`).
    rounds : int
        Number of rounds, unless converged earlier. With the model method up to
        :data:`EXTRA_ROUNDS` more run after a round that held the angles and while the angles
        are still converging (:data:`CONVERGING_RATIO`); ``notes`` says so.
    recon_iterations, oversampling
        GENFIRE settings of each round's reconstruction.
    angle_step_deg : float
        Trial-angle spacing of the tomogram method [degrees].
    max_angle_change_deg : float
        Bound on each angle correction per round [degrees]; widened once to
        :data:`WIDER_BOUND` times it when a round's angles run to it again after the round
        before held them (``notes`` says so).
    refine_angles : bool
        Refine tilt angles as well as shifts.
    angle_method : {"tomogram", "model"}
    pixel_size_A : float, optional
        Pixel size [A]; needed by the model method.
    model_builder : callable, optional
        ``(volume, voxel_size_A, cancel) -> positions (n, 3) [A]``; needed by the model method.
    fit_images : ndarray of shape (n, rows, cols), optional
        The images the atom model is fitted to, in the raw frame like ``raw`` (default:
        ``raw``). Give them before any denoising or low-pass filter: their artifacts are not in
        the atom model's image and pull the angles (an aligned Pt series: 0.15 deg RMS with the
        study's 2.08 1/A low-pass, 0.04 deg without), while the reconstruction, which only
        needs to be traced, is made from ``raw``.
    register_images : ndarray of shape (n, rows, cols), optional
        The images a shifts-only round registers to the reconstruction's re-projection, in
        the raw frame like ``raw`` (default: ``raw``). Give them without a denoiser when
        ``raw`` was denoised: BM3D's artifacts at a few counts differ from image to image and
        pull each registration (an aligned 299-atom Pt series at 5 counts on the brightest
        column, every image at its true place: 0.38 px RMS on the BM3D images with standard
        errors of 0.2 px, so that bogus shifts passed the significance test; 0.04 px on the
        undenoised counts).
    model_trials : callable, optional
        With the model method: ``(residual_images, angles_deg, positions_A, *, pixel_size_A,
        device, cancel) -> positions (m, 3) [A]``, trial atoms where the images show density
        that the last round's fitted model lacks (the refine stage's
        :func:`napari_aet.trace.residual_trials`); the final fit includes them.
    halves : callable, optional
        With the model method: ``() -> (a_work, a_fit, b_work, b_fit)``, two independent
        halves of the counts in the raw frame (:func:`napari_aet.align._split_counts.
        split_half_angles` says which is which). Where the images are mostly noise (a fit
        that explains their signal but correlates below
        :data:`napari_aet.forward.MIN_MODEL_CORRELATION` with them), each half is fitted on
        its own once, and the angles are fitted with the halves' disagreement added to
        their uncertainty (``model_spread``); without halves (images that are not counts)
        the angles are held there.
    shift_tol_px, angle_tol_deg : float
        Convergence: stop when every change of a round is below both.
    refine_axis : bool
        With the model method: each atom-model fit also measures the in-plane turn left in
        the images (:func:`refine_atomic_model`'s ``refine_axis``), and the next round (and
        the result's ``tilt_axis_angle_deg``) aligns the images with the tilt axis turned by
        it: a common-line estimate at low counts can be degrees off on a thick particle.
    image_indices : sequence of int, optional
        Each image's index in the file it came from (default ``0 .. n-1``), as the notes name
        images: after some images of a file were left out, the index to pass to
        ``--exclude-images``.
    device : {"auto", "cpu", "cuda"}
    """

    if angle_method not in ("tomogram", "model"):
        raise ValueError("angle_method must be 'tomogram' or 'model'")
    if angle_method == "model" and refine_angles and not pixel_size_A:
        raise ValueError("angle_method='model' needs pixel_size_A (to trace atoms)")
    if angle_method == "model" and refine_angles and model_builder is None:
        raise ValueError(
            "angle_method='model' needs model_builder, a function (volume, voxel_size_A, cancel)"
            " -> atom positions; napari_aet.workflows.atom_model_builder() gives the tracer. Or "
            "use angle_method='tomogram'"
        )
    arr = np.asarray(raw, np.float32)
    fit_arr = arr if fit_images is None else np.asarray(fit_images, np.float32)
    if fit_arr.shape != arr.shape:
        raise ValueError(f"fit_images has shape {fit_arr.shape}; raw has {arr.shape}")
    # the noise the fits see (fit_images are the recorded images less their background: the
    # white noise is measurable in them), so that a fit is judged by how well it explains the
    # images' signal, not by the dose (:func:`why_untrusted`)
    raw_noise = None if fit_images is None else white_noise_variance(fit_arr)
    reg_arr = arr if register_images is None else np.asarray(register_images, np.float32)
    if reg_arr.shape != arr.shape:
        raise ValueError(f"register_images has shape {reg_arr.shape}; raw has {arr.shape}")
    n = len(arr)
    ang = np.asarray(angles_deg, np.float64).copy()
    s = np.zeros((n, 2)) if shifts_px is None else np.asarray(shifts_px, np.float64).copy()
    m = axis_matrix(tilt_axis_angle_deg)
    refine_axis = bool(refine_axis and refine_angles and angle_method == "model")
    axis_changes: list[float] = []
    axis_sigma = None
    history: list[RefinementRound] = []
    converged = False
    model = None
    notes: list[str] = []
    last_fit = None
    limit = rounds  # grows by the added rounds (:data:`CONVERGING_RATIO`)
    angle_rms: list[float] = []  # each angle-refining round's change, RMS
    # a round's angles that run to the bound again after the round before held them (a
    # turned tilt axis is measured by the held round and does not come back; images blurred
    # unlike each other do) are fitted with a width per image; when that passes, every later
    # fit gets a width per image (:func:`_round_fit`)
    per_image_width = False
    held_before = False
    # a round's angles that run to the bound again after the round before held them, and
    # that a width per image does not settle, are fitted with the bound widened once
    # (:func:`_round_fit`); when that passes, every later fit keeps the wider bound
    given_bound = max_angle_change_deg
    split = []  # the halves of the counts, fitted once, at the first fit on noisy images

    def noisy_held(fit, noise, where, per_image_width) -> bool:
        """Whether ``fit``'s angles are to be held: the images are mostly noise
        (:func:`_noisy`) and no halves of their counts measure how well they establish the
        angles (:func:`split_half_angles`)."""
        noisy = _noisy(fit, max_angle_change_deg, noise)
        if not noisy:
            return False
        if halves is not None and not split:
            res, note = split_half_angles(
                halves(), ang, s, tilt_axis_angle_deg, pixel_size_A=pixel_size_A,
                builder=model_builder, max_angle_change_deg=max_angle_change_deg,
                recon_iterations=recon_iterations, oversampling=oversampling,
                per_image_width=per_image_width, device=device,
                progress=prefixed(progress, f"{where}: "), cancel=cancel,
            )  # fmt: skip
            split.append(res)
            notes.append(f"{where}: {note}")
        if split and split[0] is not None:
            notes.append(f"{where}: {noisy}: angles fitted, judged by the halves' disagreement too")
            return False
        notes.append(f"{where}: {noisy}: offsets and tilt axis from the atom model, angles held")
        return True

    r = -1
    while r + 1 < limit:
        r += 1
        check_cancel(cancel, "projection matching")
        aligned = apply_alignment(arr, tilt_axis_angle_deg=tilt_axis_angle_deg, shifts_px=s)
        vol = round_tomogram(aligned, ang, recon_iterations=recon_iterations,
                             oversampling=oversampling, device=device, cancel=cancel)  # fmt: skip
        fitted = None
        bound_held = False  # the angles ran to the bound: this round held them
        if refine_angles and angle_method == "model":
            try:
                target = (
                    aligned
                    if fit_images is None
                    else apply_alignment(
                        fit_arr, tilt_axis_angle_deg=tilt_axis_angle_deg, shifts_px=s
                    )
                )
                fitted = _refine_traced_model(
                    vol, target, ang, pixel_size_A, model_builder, max_angle_change_deg, device,
                    cancel, return_images=model_trials is not None,
                    progress=prefixed(progress, f"round {r + 1}: "), refine_axis=refine_axis,
                    per_image_width=per_image_width,
                )  # fmt: skip
            except ValueError as err:
                notes.append(f"round {r + 1}: no atom model ({err}); shifts only")
            else:
                noise = _aligned_noise(raw_noise, arr.shape, tilt_axis_angle_deg, s)
                why = why_untrusted(
                    fitted, max_angle_change_deg=max_angle_change_deg, noise_variance=noise
                )
                held = None
                if why and held_before and not per_image_width and _bound_only(fitted, noise):
                    wide = _round_fit(
                        target, ang, fitted.positions_A, pixel_size_A, device, cancel,
                        refine_axis, prefixed(progress, f"round {r + 1}, a width per image: "),
                        max_angle_change_deg=max_angle_change_deg, per_image_width=True,
                        return_images=model_trials is not None,
                    )  # fmt: skip
                    if not why_untrusted(
                        wide, max_angle_change_deg=max_angle_change_deg, noise_variance=noise
                    ):
                        notes.append(
                            f"round {r + 1}: with one atom width {why}; refitted with a width "
                            "per image"
                        )
                        fitted, why, per_image_width = wide, "", True
                if (
                    why
                    and held_before
                    and max_angle_change_deg == given_bound
                    and _bound_only(fitted, noise)
                ):
                    wider = _round_fit(
                        target, ang, fitted.positions_A, pixel_size_A, device, cancel,
                        refine_axis, prefixed(progress, f"round {r + 1}, a wider bound: "),
                        max_angle_change_deg=WIDER_BOUND * given_bound,
                        per_image_width=per_image_width, return_images=model_trials is not None,
                    )  # fmt: skip
                    if not why_untrusted(
                        wider, max_angle_change_deg=WIDER_BOUND * given_bound,
                        noise_variance=noise,
                    ):  # fmt: skip
                        max_angle_change_deg = WIDER_BOUND * given_bound
                        notes.append(
                            f"round {r + 1}: {why} again; refitted with a bound of "
                            f"{max_angle_change_deg:g} deg, which this and every later fit keep"
                        )
                        fitted, why = wider, ""
                if why and _bound_only(fitted, noise):
                    held = _held_refit(
                        fitted, target, ang, pixel_size_A, device, cancel, refine_axis,
                        prefixed(progress, f"round {r + 1}, angles held: "),
                    )  # fmt: skip
                bound_held = held is not None
                if held is not None:
                    notes.append(
                        f"round {r + 1}: {why}; refitted with the angles held: offsets and "
                        "tilt axis from the atom model"
                    )
                    fitted = held
                elif why:
                    notes.append(f"round {r + 1}: {why}; shifts only")
                    fitted = None
                elif noisy_held(fitted, noise, f"round {r + 1}", per_image_width):
                    fitted = _angles_held(fitted, ang)
        sig = None
        last_fit = None
        if fitted is not None:
            model = fitted
            last_fit = (fitted, target)
            d, dang, ccs = model.offsets_px, model.angle_corrections_deg, model.image_correlation
            report(progress, (r + 1) * n, limit * n, f"round {r + 1}: model refined")
        else:
            d, dang, ccs, sig = _match_to_tomogram(
                vol,
                aligned
                if register_images is None
                else apply_alignment(reg_arr, tilt_axis_angle_deg=tilt_axis_angle_deg, shifts_px=s),
                ang,
                refine_angles and angle_method == "tomogram",
                angle_step_deg,
                max_angle_change_deg,
                lambda i, r=r, limit=limit: report(
                    progress, r * n + i + 1, limit * n, f"round {r + 1}: image {i + 1}/{n}"
                ),
                cancel,
            )
        if refine_angles:
            dang -= dang.mean()
        d[:, 0] -= d[:, 0].mean()
        d[:, 1] = split_object_translation(d[:, 1], ang + dang)[0]
        s += d @ m.T  # offsets measured in the aligned frame -> raw coordinates
        ang += dang
        if fitted is not None and refine_axis:
            # the offsets were measured after the turn: the old frame's matrix took them to
            # raw coordinates above; the next round aligns with the axis turned
            tilt_axis_angle_deg += fitted.axis_correction_deg
            axis_changes.append(float(fitted.axis_correction_deg))
            m = axis_matrix(tilt_axis_angle_deg)
        rnd = RefinementRound(
            float(np.abs(d).max()),
            float(np.sqrt((d**2).sum(axis=1).mean())),
            float(np.abs(dang).max()),
            float(np.sqrt((dang**2).mean())),
            float(ccs.mean()),
        )
        history.append(rnd)
        held_before = bound_held
        turn = float(fitted.axis_correction_deg) if fitted is not None and refine_axis else 0.0
        half_px_deg = half_pixel_turn_deg(arr.shape)
        turning = abs(turn) > AXIS_TURNING * half_px_deg
        small = rnd.max_shift_change_px < shift_tol_px and rnd.max_angle_change_deg < angle_tol_deg
        small = small and not turning
        if small and not bound_held:  # held angles did not converge: they were not fitted
            converged = True
            break
        if fitted is not None and not bound_held and rnd.rms_angle_change_deg > 0:
            angle_rms.append(rnd.rms_angle_change_deg)  # an atom-model fit of the angles
        if bound_held and limit < rounds + EXTRA_ROUNDS:  # a round that fitted no angles
            limit += 1
            notes.append(f"round {r + 1} held the angles: round {limit} added")
        elif turning and r + 1 == limit < rounds + EXTRA_ROUNDS:
            limit += 1
            notes.append(
                f"the tilt axis still turning ({turn:+.3f} deg in round {r + 1}, more than the "
                f"{half_px_deg:.2f} deg that moves the image edges by half a pixel): round "
                f"{limit} added"
            )
        elif fitted is not None and r + 1 == limit < rounds + EXTRA_ROUNDS:
            if len(angle_rms) == 1 and not bound_held and rnd.rms_angle_change_deg > 0:
                # the first round that fitted the angles was the last: its change is the
                # correction itself, which as the round-to-round jitter would judge every
                # correction by itself (an independent Pt dumbbell at a third of the counts,
                # rounds 1-2 at the bound: 1 of 21 corrections kept, 0.45 deg RMS left of 0.58)
                limit += 1
                notes.append(
                    f"the angles were fitted in the last round only ({angle_rms[-1]:.3f} deg "
                    f"RMS): round {limit} added"
                )
            elif len(angle_rms) >= 2 and angle_rms[-1] < CONVERGING_RATIO * angle_rms[-2]:
                limit += 1
                notes.append(
                    f"angles still converging (changed by {angle_rms[-2]:.3f} and then "
                    f"{angle_rms[-1]:.3f} deg RMS): round {limit} added"
                )
    last = (dang, d) if history else (None, None)
    trial_effect = None
    image_width = None
    if last_fit is not None:
        # the last round fitted an atom model: fit it again, with trial atoms where it lacks
        # density, to convergence and with calibrated standard errors (the rounds, which
        # re-trace the model anyway, stop at ROUND_ITERATIONS and have none)
        check_cancel(cancel, "projection matching")
        report(progress, limit * n, limit * n, "final atom-model fit")
        target = apply_alignment(fit_arr, tilt_axis_angle_deg=tilt_axis_angle_deg, shifts_px=s)
        final, with_trials, n_trials = _final_model_fit(
            *last_fit, target, ang, pixel_size_A, model_trials, max_angle_change_deg, device,
            cancel, progress, refine_axis=refine_axis, per_image_width=per_image_width,
        )  # fmt: skip
        noise = _aligned_noise(raw_noise, arr.shape, tilt_axis_angle_deg, s)
        why = why_untrusted(final, max_angle_change_deg=max_angle_change_deg, noise_variance=noise)
        if why and _bound_only(final, noise):
            final, with_trials, n_trials = _final_model_fit(
                *last_fit, target, ang, pixel_size_A, model_trials, max_angle_change_deg, device,
                cancel, progress, refine_axis=refine_axis, hold_angles=True,
                per_image_width=per_image_width,
            )  # fmt: skip
            if not why_untrusted(final):  # the plain bar, as in _held_refit
                notes.append(f"final fit: {why}; fitted again with the angles held")
                why = ""
                final = _angles_held(final, ang)
                with_trials = None if with_trials is None else _angles_held(with_trials, ang)
        if why:
            notes.append(f"final fit: {why}; no standard errors")
            model = None
        else:
            if noisy_held(final, noise, "final fit", per_image_width):
                final = _angles_held(final, ang)
                with_trials = None if with_trials is None else _angles_held(with_trials, ang)
            model = final
            if with_trials is not None:
                why_t = why_untrusted(
                    with_trials, max_angle_change_deg=max_angle_change_deg, noise_variance=noise
                )
                if why_t:
                    notes.append(f"final fit with {n_trials} trial atoms: {why_t}; not used")
                else:
                    notes.append(f"final fit: {n_trials} trial atoms from the residual")
                    # the estimate with the trial atoms, the standard errors of the fit
                    # without (the same images and noise), and how far the two differ
                    trial_effect = (
                        np.abs(with_trials.angle_corrections_deg - final.angle_corrections_deg),
                        np.abs(with_trials.offsets_px - final.offsets_px),
                    )
                    final = replace(
                        with_trials,
                        angle_sigma_deg=final.angle_sigma_deg,
                        offset_sigma_px=final.offset_sigma_px,
                        axis_sigma_deg=final.axis_sigma_deg,
                    )
                    model = final
            held_now = final.angle_sigma_deg is None or not np.isfinite(final.angle_sigma_deg).any()
            if refine_angles and not held_now:
                if per_image_width:  # the final fit has a width per image already
                    widths = final.image_sigma_A
                    blur = None if widths is None else np.zeros(n)
                else:  # how much of each angle correction a width per image would take back
                    blur, widths = _blur_effect(
                        final, target, pixel_size_A, max_angle_change_deg, noise, device,
                        cancel, refine_axis, prefixed(progress, "final fit, a width per image: "),
                    )  # fmt: skip
                    if blur is None:
                        notes.append("final fit with a width per image: not trusted; not used")
                    else:
                        notes.append(
                            f"final fit with a width per image: angles moved by up to "
                            f"{blur.max():.3f} deg (the image model's uncertainty)"
                        )
                if blur is not None:
                    image_width = widths
                    out_of_focus, blurred = blurred_images(
                        widths, np.asarray(angles_deg, float), image_indices=image_indices
                    )
                    if len(out_of_focus):
                        notes.append(f"final fit: {blurred}")
                        # the image model does not fit them: their angles are not established
                        blur[out_of_focus] = max_angle_change_deg
                    t_ang, t_off = trial_effect or (np.zeros(n), np.zeros((n, 2)))
                    trial_effect = (np.hypot(t_ang, blur), t_off)
            if refine_angles and not held_now and split and split[0] is not None:
                # what the halves of the counts disagree by is an uncertainty of the angles
                # that the images' noise does not show (a model traced from noise)
                t_ang, t_off = trial_effect or (np.zeros(n), np.zeros((n, 2)))
                trial_effect = (np.hypot(t_ang, split[0].spread_deg), t_off)
            fd, fdang = final.offsets_px.copy(), final.angle_corrections_deg.copy()
            if refine_angles:
                fdang -= fdang.mean()
                ang += fdang
                trial_effect = _runaway_held(
                    ang, angles_deg, RUNAWAY_BOUNDS * max_angle_change_deg, trial_effect,
                    notes, image_indices,
                )  # fmt: skip
            fd[:, 0] -= fd[:, 0].mean()
            fd[:, 1] = split_object_translation(fd[:, 1], ang)[0]
            s += fd @ m.T
            if refine_axis:
                tilt_axis_angle_deg += final.axis_correction_deg
                axis_changes.append(float(final.axis_correction_deg))
                axis_sigma = final.axis_sigma_deg
    return ProjectionMatchingResult(
        s,
        ang,
        history,
        converged,
        model,
        notes,
        *last,
        shift_sigma_px=sig if history else None,
        model_spread=trial_effect,
        image_width_A=image_width,
        tilt_axis_angle_deg=float(tilt_axis_angle_deg),
        axis_sigma_deg=axis_sigma,
        axis_changes_deg=axis_changes,
    )
