"""The atom-model fits of projection matching's rounds and its final fit: a round's fit of a
traced model with the angles and offsets, what is done when its angles run to their bound or
the images are mostly noise, and the final fit with standard errors and trial atoms."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..core.progress import check_cancel, prefixed
from ..forward import refine_atomic_model, signal_correlation, why_untrusted
from ._shifts import apply_alignment

#: L-BFGS iterations of each round's joint atom-model fit: rounds re-trace the model, so they
#: need not converge; the final fit (:func:`_final_model_fit`) does.
ROUND_ITERATIONS = 60
#: An image whose fitted atom width (:func:`_blur_effect`) is above this many times the
#: median image's is named in the notes (:func:`blurred_images`): on independent series with
#: a defocus spread of 2 nm, the image 4.7 nm out of focus fitted 2.2 times the median width,
#: those 2.5 nm out 1.3 times, the rest (and every image of a focused series) within 1.1.
BLURRED_RATIO = 1.5
#: Most iterations of the final fit, which stops when converged (an aligned Pt series: 60
#: iterations left two noise draws 0.08 deg RMS apart, converged fits 0.036).
FINAL_ITERATIONS = 200
#: The factor by which the angles' bound is widened, once, when a round's angles run to it
#: again after the round before held them (:func:`_round_fit`).
WIDER_BOUND = 2.0


def _aligned_noise(raw_noise, shape, tilt_axis_angle_deg, shifts_px):
    """The white-noise variance of each image after :func:`apply_alignment` resampled it with
    this axis and these shifts (the cubic interpolation averages neighbouring pixels' noise:
    a shift of half a pixel along both axes keeps 0.56 of it, a 3-degree turn 0.75), from
    ``raw_noise``, the recorded images'."""
    if raw_noise is None:
        return None
    white = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    moved = apply_alignment(white, tilt_axis_angle_deg=tilt_axis_angle_deg, shifts_px=shifts_px)
    return raw_noise * moved.reshape(len(moved), -1).var(axis=1)


def _noisy(fit, max_change_deg, noise) -> str:
    """Why a fit that explains the images' signal (:func:`why_untrusted` with the noise)
    may still not establish each image's angle: it fails the plain correlation bar, i.e. the
    images are mostly noise ('' when it passes).

    Such images establish what all of them or every atom share (the tilt axis, each image's
    offset, measured by hundreds of atoms) but not necessarily each image's angle: at a tenth
    of the study's counts a model with 62 % of its atoms wrong explained the signal as well
    as the true one and set an angle 1.5 deg off at "3 standard errors". Their angles are
    held unless two halves of their counts, fitted apart, measure that uncertainty
    (:func:`napari_aet.align._split_counts.split_half_angles`)."""
    if not why_untrusted(fit, max_angle_change_deg=max_change_deg):
        return ""
    plain = float(np.median(fit.image_correlation))
    signal = float(np.median(signal_correlation(fit, noise)))
    return f"noisy images (median correlation {plain:.2f}, {signal:.2f} with their signal)"


def _angles_held(fit, ang):
    """``fit`` with no angle corrections and no standard error on them (none is applied)."""
    n = len(fit.angle_corrections_deg)
    return replace(
        fit,
        angles_deg=np.asarray(ang, np.float64).copy(),
        angle_corrections_deg=np.zeros(n),
        angle_sigma_deg=None if fit.angle_sigma_deg is None else np.full(n, np.inf),
    )


def _bound_only(fit, noise) -> bool:
    """Whether the angle corrections running to their bound is all that is wrong with ``fit``.

    Angles that run to the bound absorb an error the model has no other way to fit: a tilt
    axis turned by more than the common line saw (an independent Pt dumbbell with shifts of
    up to 12 px and its axis 3 deg off, at a third of the study's counts: the common line put
    the axis at 1.0 deg and every round's angles ran to the bound). Held, the same fit sets
    the offsets and the tilt axis, which all images and atoms measure."""
    return not why_untrusted(fit, noise_variance=noise)


def _round_fit(target, ang, positions_A, pixel_size_A, device, cancel, refine_axis, progress,
               **options):  # fmt: skip
    """A round's joint fit of atoms at ``positions_A`` with the angles and offsets against
    ``target`` from the angles ``ang`` (:data:`ROUND_ITERATIONS`); ``options`` go to
    :func:`refine_atomic_model` (the bound, a width per image, angles held, model images).

    Every refit of a round goes through here: with the angles held when they ran to the bound
    (:func:`_held_refit`); with a width per image when they ran there again after a held
    round (images blurred unlike each other: the focus found anew at each tilt, off by more
    than the probe's depth of field; an independent Pt dumbbell with a defocus spread of 4 nm
    had 3 angles at the bound in every round and shifts of up to 2.6 px applied to a series
    that had none; with a width per image, no angle at the bound and no correction kept. Not
    the first choice: a width per image also trades against an angle error, and on a series
    with angle errors of sd 0.5 deg at a third of the counts it let 3 angles run to the bound
    where one width fitted them all); and with the bound widened by :data:`WIDER_BOUND` when a
    width per image did not settle them (angle errors of sd 0.5-0.7 deg over 21 images reach
    past 1 deg in 1-4 of them, which run to the bound in every round; more than 10 % at the
    bound refuses the round, so a held round never moves them: an independent Pt polyhedron
    at a third of the counts, errors of up to 1.47 deg, held six rounds. Angles that are
    really off settle inside the wider bound; angles that absorb what the model cannot fit
    run to it again, and the fit is refused as before)."""
    return refine_atomic_model(
        target, ang, positions_A, pixel_size_A=pixel_size_A, iterations=ROUND_ITERATIONS,
        refine_axis=refine_axis, device=device, progress=progress, cancel=cancel, **options,
    )  # fmt: skip


def _held_refit(fitted, target, ang, pixel_size_A, device, cancel, refine_axis, progress):
    """``fitted`` fitted again with the angles held (offsets, tilt axis and atoms free), or
    None when that fit does not pass the plain correlation bar (noisy images, whose model's
    angles ran to the bound, are registered to the tomogram as before)."""
    refit = _round_fit(
        target, ang, fitted.positions_A, pixel_size_A, device, cancel, refine_axis, progress,
        refine_angles=False,
    )  # fmt: skip
    if why_untrusted(refit):  # the plain bar: on noisy images a model whose angles ran off
        return None  # also sets offsets 1-5 px off (an aligned Pt series at a tenth of the counts)
    return _angles_held(refit, ang)


def _blur_effect(final, target, pixel_size_A, max_change_deg, noise, device, cancel, refine_axis,
                 progress):  # fmt: skip
    """Per image, how far the final fit's angle would move if each image had its own atom
    width, and that width [A]: ``final`` fitted on from where it ended (its angles and
    atoms) with :func:`refine_atomic_model`'s ``per_image_width``; ``(None, None)`` when
    that fit is not trusted.

    An image blurred unlike the others (its focus found anew at that tilt) fits one width
    badly, and a small turn of its angle, which smears the columns too, takes up part of the
    misfit without reaching the bound: independent series with a defocus spread of 2 nm kept
    false corrections of 0.1-0.8 deg at "3 standard errors" (the noise does not count a model
    error). A real angle error smears the columns by their depth, across the tilt axis,
    which one width per image cannot mimic, so its correction stays where it was. How far the
    angle moves is the image model's own uncertainty about that image's angle
    (:func:`napari_aet.align.keep_significant`'s ``model_spread``)."""
    check_cancel(cancel, "projection matching")
    try:
        wide = refine_atomic_model(
            target, final.angles_deg, final.positions_A, pixel_size_A=pixel_size_A,
            max_angle_change_deg=max_change_deg, iterations=FINAL_ITERATIONS,
            refine_axis=refine_axis, per_image_width=True, device=device, progress=progress,
            cancel=cancel,
        )  # fmt: skip
    except ValueError:  # a check, not an estimate: the final fit stands without it
        return None, None
    if why_untrusted(wide, max_angle_change_deg=max_change_deg, noise_variance=noise):
        return None, None
    moved = np.asarray(wide.angle_corrections_deg, np.float64)
    return np.abs(moved - moved.mean()), np.asarray(wide.image_sigma_A, np.float64)


def blurred_images(
    widths_A, angles_deg, ratio=BLURRED_RATIO, image_indices=None
) -> tuple[np.ndarray, str]:
    """The images whose fitted atom width is above ``ratio`` times the median image's (out of
    focus, most likely) and a note naming them (``""`` when there is none). The returned
    positions index ``widths_A``; the note names each image by ``image_indices`` (default the
    positions): its index in the file, which ``--exclude-images`` takes, when some images of
    the file were already left out.

    Their angle corrections are not applied: far out of focus the probe is no wider Gaussian
    (its peak at an eighth of the focused one, 4.7 nm out), the image model fits such an
    image badly, and its angle or shift moves to make up for it (independent series: a false
    0.64 deg on a polyhedron, a false 0.85 px shift on a 256-px dumbbell), which neither the
    noise nor a width of its own accounts for."""
    w = np.asarray(widths_A, np.float64)
    med = float(np.median(w))
    wide = np.flatnonzero(w > ratio * med)
    if not len(wide):
        return wide, ""
    label = np.arange(len(w)) if image_indices is None else np.asarray(image_indices)
    which = ", ".join(f"{label[i]} ({angles_deg[i]:+.1f} deg, {w[i]:.2f} A)" for i in wide)
    return wide, (
        f"images blurred beyond the others (atom width over {ratio:g} x the median "
        f"{med:.2f} A; out of focus?): {which}; their angles are held, and a reconstruction "
        "without them (--exclude-images) may be sharper"
    )


def round_tomogram(aligned, angles_deg, *, recon_iterations, oversampling, device, cancel):
    """A round's quick tomogram of the aligned images: GENFIRE with an automatic support and
    no R-free (every image counts), what the rounds and the split halves trace atoms from."""
    from ..recon import genfire

    return genfire(
        aligned, angles_deg, iterations=recon_iterations, oversampling=oversampling,
        support="auto", rfree_fraction=0.0, device=device, cancel=cancel,
    ).volume  # fmt: skip


def _refine_traced_model(vol, aligned, ang, pixel_size_A, builder, max_change_deg, device, cancel,
                         return_images=False, progress=None, refine_axis=False,
                         per_image_width=False):  # fmt: skip
    """Build an atom model from the tomogram with ``builder`` (the tracer, after the U-Net when
    the caller chose one) and refine it jointly with the angles and offsets against the
    images (:data:`ROUND_ITERATIONS`)."""
    check_cancel(cancel, "projection matching")
    positions = np.asarray(builder(vol, pixel_size_A, cancel), np.float64).reshape(-1, 3)
    if len(positions) < 4:
        raise ValueError(
            f"only {len(positions)} atoms were traced in the tomogram: angle refinement against "
            "an atom model needs atomic resolution (use angle_method='tomogram' or "
            "refine_angles=False for this series)"
        )
    return _round_fit(
        aligned, ang, positions, pixel_size_A, device, cancel, refine_axis, progress,
        max_angle_change_deg=max_change_deg, return_images=return_images,
        per_image_width=per_image_width,
    )  # fmt: skip


def _final_model_fit(round_fit, round_target, target, ang, pixel_size_A, trials, max_change_deg,
                     device, cancel, progress=None, refine_axis=False,
                     hold_angles=False, per_image_width=False):  # fmt: skip
    """The last round's atom model fitted again to convergence, with the standard errors
    calibrated; and, with ``trials``, once more with trial atoms where its residual shows
    density it lacks.

    Atoms the model misses are a model error that the images' noise does not count: they pull
    the angles of the images where they stand apart (an aligned Si series at 4.5 counts per
    pixel, 7 of 287 atoms missed: 0.35 deg at 3.7 standard errors). Trial atoms on noise keep
    an amplitude near 0. But at very low counts trial atoms can also let the fit wander (Si at
    1.2 counts per pixel, 47 trials: angles moved by up to 1.9 deg): how far the two fits'
    corrections differ, image by image, is the model's own uncertainty.

    Returns ``(result, with_trials or None, n_trials)``: ``result`` without trial atoms, with
    standard errors; ``with_trials`` the fit with them (no standard errors of its own).
    ``hold_angles``: the angles are held (:func:`_bound_only`); ``per_image_width``: each
    image gets its own atom width (:func:`_round_fit`)."""
    pos = round_fit.positions_A
    kw = dict(pixel_size_A=pixel_size_A, max_angle_change_deg=max_change_deg,
              iterations=FINAL_ITERATIONS, refine_axis=refine_axis, device=device,
              cancel=cancel, refine_angles=not hold_angles,
              per_image_width=per_image_width)  # fmt: skip
    # the alignment keeps only significant corrections: standard errors
    plain = refine_atomic_model(
        target, ang, pos, calibrate_sigmas=True, progress=prefixed(progress, "final fit: "), **kw
    )
    extra = np.empty((0, 3))
    if trials is not None and round_fit.model_images is not None:
        extra = np.asarray(
            trials(round_target - round_fit.model_images, round_fit.angles_deg, pos,
                   pixel_size_A=pixel_size_A, device=device, cancel=cancel),
            np.float64,
        ).reshape(-1, 3)  # fmt: skip
    if not len(extra):
        return plain, None, 0
    # from where the plain fit ended (a short way to go): its angles, its atoms and the trials
    more = refine_atomic_model(
        target, plain.angles_deg, np.vstack([plain.positions_A, extra]),
        progress=prefixed(progress, f"final fit with {len(extra)} trial atoms: "), **kw,
    )  # fmt: skip
    total = more.angle_corrections_deg + plain.angle_corrections_deg
    total -= total.mean()
    with_trials = replace(
        more, angle_corrections_deg=total, angles_deg=np.asarray(ang, np.float64) + total
    )
    return plain, with_trials, len(extra)


#: An image whose angle ended more than this many bounds (the bound in force at the end) from
#: its nominal angle ran away over the rounds: each round's bound holds from where the last
#: round left it, so a fit that keeps pushing one image walks it off. A resampled Pt
#: polyhedron at a third of the counts walked image 12 by 1.3 deg a round to 7 deg off (its
#: true error a few tenths), and the significance test kept it (7 deg at 3.2 of its
#: standard errors). Real errors settle within the bound or run to it and hold the round; at
#: 2.5 bounds a series with errors of sd 0.5 deg (1.65 deg at most in 21 images) keeps them.
RUNAWAY_BOUNDS = 2.5


def _runaway_held(ang, nominal, limit_deg, spread, notes, image_indices=None):
    """``spread`` (the model's per-image uncertainty, ``(angles, offsets)`` or None) with the
    angles that ended more than ``limit_deg`` from their nominal ones (common offset removed)
    made uncertain beyond any correction, so that the significance test holds them at the
    nominal angle; a note names them (:data:`RUNAWAY_BOUNDS`)."""
    total = np.asarray(ang, float) - np.asarray(nominal, float)
    total -= total.mean()
    off = np.abs(total) > limit_deg
    if not off.any():
        return spread
    n = len(total)
    t_ang, t_off = spread or (np.zeros(n), np.zeros((n, 2)))
    t_ang = np.asarray(t_ang, float).copy()
    t_ang[off] = 1e3
    label = np.arange(n) if image_indices is None else np.asarray(image_indices)
    which = ", ".join(f"{label[i]} ({total[i]:+.2f} deg)" for i in np.flatnonzero(off))
    notes.append(
        f"angles walked more than {limit_deg:g} deg from their nominal ones over the rounds "
        f"(each round's bound holds from where the last left them): {which}; held at the "
        "nominal angle"
    )
    return t_ang, t_off
