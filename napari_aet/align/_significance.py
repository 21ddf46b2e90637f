"""Which corrections of an alignment are established: significance against standard errors
(:func:`keep_significant`), the coarse shifts' error from replicates of the counts
(:func:`coarse_shift_error`), and the tilt axis's (:func:`significant_tilt_axis`)."""

from __future__ import annotations

import numpy as np

from ._preprocess import is_counts, lowpass_filter, subtract_background
from ._shifts import (
    apply_alignment,
    axis_matrix,
    center_of_mass_offsets,
    common_line_offsets,
    estimate_tilt_axis_angle,
)

#: A correction is applied only when it exceeds this many of its standard errors.
SIGNIFICANCE_K = 3.0
#: ... and, over the n images of a series, at most this chance that any correction of one kind
#: (angle, shift) is applied to an image that needs none (a family-wise level: the threshold
#: grows with the number of images, 3.34 standard errors for 60).
FAMILY_ALPHA = 0.05


def significance_k(n_images: int, k: float = SIGNIFICANCE_K) -> float:
    """The standard errors a correction of one of ``n_images`` images must exceed: ``k``,
    raised so that the chance of any needless correction among them stays at
    :data:`FAMILY_ALPHA` (two-sided; 3.34 for 60 images)."""
    from scipy.stats import norm

    return max(float(k), float(norm.isf(FAMILY_ALPHA / (2 * max(n_images, 1)))))


def keep_significant(
    angles_in,
    angles_out,
    shifts_px,
    tilt_axis_deg,
    model,
    *,
    k=SIGNIFICANCE_K,
    jitter=None,
    model_spread=None,
    image_shape=None,
    group=True,
):
    """Keep only the corrections that the images establish.

    Every image's angle change and shift (relative to the series as given) is compared with
    its standard error from the final joint fit (:attr:`ModelRefinementResult.angle_sigma_deg`,
    ``offset_sigma_px``, calibrated by a bootstrap replicate). A change below ``k`` standard
    errors is reverted: an already aligned series stays as it was instead of taking on the
    noise of the estimates. The reverted angle changes are then judged as a group: when they
    are together larger than their errors allow, the series has angle errors that no single
    image establishes, and each of them is applied shrunk by the group's evidence
    (:func:`_shrink_the_rest`; ``info["angle_group"]``). ``k`` grows with the number of
    images so that the chance of any needless correction in the series stays at
    :data:`FAMILY_ALPHA` (3.34 for 60 images); the given ``k`` is the floor. Shifts are
    judged in the aligned frame after taking out the part a translation of the object explains
    (which moves the reconstruction, not the images' errors; it is kept only when significant
    as a whole).

    ``jitter``: the last projection-matching round's per-image angle and shift changes. Their
    RMS (how much the estimates still move from round to round, as the atom model is traced
    and fitted again) adds in quadrature to every standard error: the images' noise alone
    understates the uncertainty of a model-based estimate (measured on simulated Pt particles
    of 300-500 atoms: the bootstrap gives 0.05 deg where a perfectly aligned series drifts by
    0.15-0.2 deg RMS).

    ``model_spread``: per image, how far the estimates moved when trial atoms joined the
    final fit (``ProjectionMatchingResult.model_spread``, angles [deg] and offsets [px]); each
    adds in quadrature to that image's standard error: an estimate that depends on which atoms
    the model has is not established by the images (Si at 1.2 counts per pixel: up to 1.9 deg);
    so is one that a width per image takes back (an image blurred by its own focus), and one
    that two halves of the counts, fitted apart, disagree on (images that are mostly noise).

    ``group``: judge the reverted angle changes as a group (False where the standard errors
    are not calibrated by a noise model: a series processed elsewhere, whose denoiser's
    artifacts on the atoms move the angles more than the residual's spectrum says; on such a
    Pt series at a third of the counts the group rule applied 18 spurious changes).

    Returns ``(angles, shifts_px, info)``.
    """
    a_in = np.asarray(angles_in, float)
    a_out = np.asarray(angles_out, float).copy()
    s = np.asarray(shifts_px, float)
    k_given = k
    k = significance_k(len(a_in), k)
    m = axis_matrix(tilt_axis_deg)
    d = s @ m  # raw -> aligned frame (m is a rotation)
    sa = np.asarray(model.angle_sigma_deg, float)
    so = np.asarray(model.offset_sigma_px, float)
    j_ang, j_sh = jitter if jitter is not None else (None, None)
    if j_ang is not None and len(j_ang):
        sa = np.hypot(sa, float(np.sqrt(np.mean(np.square(j_ang)))))
    if j_sh is not None and len(j_sh):
        so = np.hypot(so, np.sqrt(np.mean(np.square(j_sh), axis=0)))
    if model_spread is not None:
        sa = np.hypot(sa, np.asarray(model_spread[0], float))
        so = np.hypot(so, np.asarray(model_spread[1], float))
    dang = a_out - a_in
    keep_ang = np.abs(dang) > k * sa
    a_out[~keep_ang] = a_in[~keep_ang]
    if group:
        weights, group = _shrink_the_rest(dang, sa, ~keep_ang)
    else:
        weights, group = None, {"applied": False, "why": "no noise model: not judged as a group"}
    if weights is not None:
        a_out[~keep_ang] += weights * dang[~keep_ang]
    # the object's translation: rows' mean, columns' tx cos + tz sin; fitted again without
    # the images whose shifts stand out, so that one badly placed image does not move it
    th = np.deg2rad(a_out)
    basis = np.column_stack([np.cos(th), np.sin(th)])
    inliers = np.ones(len(d), bool)
    for _ in range(2):
        ty = float(d[inliers, 0].mean())
        (tx, tz), *_ = np.linalg.lstsq(basis[inliers], d[inliers, 1], rcond=None)
        rest = np.column_stack([d[:, 0] - ty, d[:, 1] - basis @ np.array([tx, tz])])
        inliers = (np.abs(rest) <= k * so).all(axis=1)
        if inliers.sum() < 3:
            break
    keep_sh = np.abs(rest) > k * so
    rest[~keep_sh] = 0.0
    trans = np.column_stack([np.full(len(d), ty), tx * np.cos(th) + tz * np.sin(th)])
    # a translation of the object is no alignment error (the geometry stays consistent): it
    # is applied only to bring an object far off the rotation centre (a tenth of the field)
    # back to it
    field = 0.1 * float(max(image_shape)) if image_shape else np.inf
    keep_t = bool(np.abs(trans).max() > field)
    d_new = rest + (trans if keep_t else 0.0)
    info = {
        "k_sigma": k,
        "k_sigma_asked": k_given,
        "family_alpha": FAMILY_ALPHA,
        "angle_sigma_deg_median": float(np.median(sa)),
        "shift_sigma_px_median": [float(v) for v in np.median(so, axis=0)],
        "angle_corrections_kept": int(keep_ang.sum()),
        "angle_corrections_reverted": int((~keep_ang).sum()),
        "shift_corrections_kept": int(keep_sh.any(axis=1).sum()),
        "shift_corrections_reverted": int((~keep_sh).any(axis=1).sum()),
        "object_translation_px": [ty, float(tx), float(tz)],
        "object_translation_kept": keep_t,
        "trial_atom_spread_deg_median": (
            None if model_spread is None else float(np.median(model_spread[0]))
        ),
        "angle_sigma_deg": [float(v) for v in sa],
        "angle_changes_fit_deg": [float(v) for v in dang],
        "angle_group": group,
        "shift_sigma_px": [[float(v) for v in r] for r in so],
    }
    return a_out, d_new @ m.T, info


def _shrink_the_rest(dang, sigma, rest) -> tuple[np.ndarray | None, dict]:
    """What the angle changes that no image establishes on its own (``rest``) say as a group:
    ``(weights for the changes in rest, or None when the group shows nothing; the record)``.

    A series with real angle errors (sd 0.5 deg, say) has many that are smaller than three
    standard errors of their estimate; reverting them all leaves them in the data. When the
    changes in ``rest`` together are larger than their standard errors allow (chi-squared at
    :data:`FAMILY_ALPHA`), the series has angle errors: each change is then shrunk toward none
    by the weight ``tau^2 / (tau^2 + sigma^2)``, with ``tau^2`` the variance of all the changes
    beyond their noise (method of moments over every image: an empirical-Bayes posterior mean
    under a normal prior for the series' angle errors). An aligned series passes the test only
    by chance (5 %), and even then no change exceeds its three standard errors.
    """
    from scipy.stats import chi2

    dang, sigma = np.asarray(dang, float), np.asarray(sigma, float)
    d, s = dang[rest], sigma[rest]
    ok = np.isfinite(s) & (s > 0)
    out = {"applied": False, "n": int(ok.sum())}
    if ok.sum() < 3:
        return None, out
    stat = float(np.sum((d[ok] / s[ok]) ** 2))
    bar = float(chi2.isf(FAMILY_ALPHA, int(ok.sum())))
    every = np.isfinite(sigma) & (sigma > 0)
    tau2 = max(0.0, float(np.mean(dang[every] ** 2 - sigma[every] ** 2)))
    out.update(chi2=stat, chi2_bar=bar, prior_sd_deg=float(np.sqrt(tau2)))
    if stat <= bar or tau2 <= 0.0:
        return None, out
    w = np.where(ok, tau2 / (tau2 + np.where(ok, s, 1.0) ** 2), 0.0)
    out.update(applied=True, weight_median=float(np.median(w[ok])))
    return w, out


def _coarse_shifts(images, shifts_px, alpha, center_of_mass, common_line) -> np.ndarray:
    """The coarse registration after the first centre-of-mass pass (``shifts_px``) and the
    tilt axis ``alpha``: centres of mass across the axis and the common line along it, in the
    frame turned by ``alpha``; returns the shifts in raw coordinates."""
    aligned = apply_alignment(images, tilt_axis_angle_deg=alpha, shifts_px=shifts_px)
    d = np.zeros((len(images), 2))
    if center_of_mass:
        d[:, 1] = center_of_mass_offsets(aligned)[:, 1]
    if common_line:
        d[:, 0] = common_line_offsets(aligned)
    elif center_of_mass:
        d[:, 0] = center_of_mass_offsets(aligned)[:, 0]
    return shifts_px + d @ axis_matrix(alpha).T


def coarse_shift_error(raw, alpha, *, counts=None, center_of_mass=True, common_line=True,
                       background="plane", lowpass=None, seed=0) -> np.ndarray | None:  # fmt: skip
    """Standard error ``(row, col)`` [px] of the coarse shifts (centre of mass, common line)
    of a series of counts, from two simulated replicates of it; None for images that are not
    counts (``counts``: whether they are; default: integer and non-negative).

    The replicates are Poisson draws around the counts smoothed by a 1.5 px Gaussian (the
    series at the same dose, with the same particle where it is; the coarse steps see only
    its outline), each through the same background subtraction, low-pass and coarse steps
    with the tilt axis held; the spread of their difference (1.4826 MAD over the images, the
    common offset removed) is sqrt(2) times the standard error. At 5 counts on the brightest
    column of an aligned 299-atom Pt series the coarse shifts were 0.8 px RMS off, and
    registration to a tomogram made with the image does not move them (see
    :func:`align_tilt_series`).
    """
    from scipy import ndimage

    arr = np.asarray(raw)
    if not (is_counts(arr) if counts is None else counts):
        return None
    lam = np.clip(ndimage.gaussian_filter(arr.astype(np.float64), (0, 1.5, 1.5)), 0, None)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(2):
        work = rng.poisson(lam).astype(np.float32)
        if background:
            work, _ = subtract_background(work, method=background)
        if lowpass:
            work = lowpass_filter(work, **lowpass)
        try:
            s0 = center_of_mass_offsets(work) if center_of_mass else np.zeros((len(work), 2))
            out.append(_coarse_shifts(work, s0, alpha, center_of_mass, common_line))
        except ValueError:  # a replicate with an empty image: no estimate
            return None
    diff = (out[0] - out[1]) @ axis_matrix(alpha)  # raw -> aligned frame
    diff -= np.median(diff, axis=0)
    return 1.4826 * np.median(np.abs(diff), axis=0) / np.sqrt(2.0)


def half_pixel_turn_deg(shape) -> float:
    """The in-plane turn [deg] that moves the edges of images of ``shape`` (``(..., rows,
    cols)``) by half a pixel (``1 / width`` radians): a smaller turn of the tilt axis is
    negligible."""
    return float(np.rad2deg(1.0 / max(shape[-2:])))


def significant_tilt_axis(data, *, search_range_deg: float = 90.0) -> tuple[float, dict]:
    """The in-plane tilt axis to apply, and what was measured.

    The axis is estimated from all images and, for its uncertainty, from the even and the odd
    images separately (``uncertainty_deg`` is half their difference). It is applied only when
    it is significant and matters: off vertical by more than three uncertainties plus the turn
    that would move the image edges by half a pixel (``1 / width`` radians), and not flagged
    uncertain by :func:`estimate_tilt_axis_angle`. Otherwise the series keeps its vertical axis
    (an already aligned series is not turned by noise or the estimate's bias), and ``note``
    says why (the CLI prints it; alignment.json keeps it).
    """
    import warnings

    arr = np.asarray(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alpha, info = estimate_tilt_axis_angle(arr, search_range_deg=search_range_deg, details=True)
        sigma = float("nan")
        if len(arr) >= 6:
            halves = [
                estimate_tilt_axis_angle(arr[k::2], search_range_deg=search_range_deg)
                for k in (0, 1)
            ]
            sigma = abs((halves[0] - halves[1] + 90.0) % 180.0 - 90.0) / 2.0
    # a turn that moves no pixel of the image by half a pixel is negligible
    negligible = half_pixel_turn_deg(arr.shape)
    out = {"estimated_deg": alpha, "uncertainty_deg": sigma, **info}
    applied, note = alpha, ""
    if info["uncertain"]:
        applied, note = 0.0, f"estimate uncertain ({info['why']}): kept vertical"
    elif abs(alpha) - 3.0 * np.nan_to_num(sigma) <= negligible:
        applied = 0.0
        note = (
            f"{alpha:+.3f} +- {np.nan_to_num(sigma):.3f} deg is not significantly off vertical "
            f"(a turn of {negligible:.2f} deg moves the image edges by half a pixel): kept "
            "vertical"
        )
    out.update(applied_deg=applied, note=note)
    return applied, out


def _model_tilt_axis(res, shape, record: dict) -> float:
    """The tilt axis after the atom-model fits measured what was left of it
    (``refine_axis``): the final fit's axis, kept vertical when it is not significantly off
    vertical (as :func:`significant_tilt_axis` rules); the rounds' axis when there was no
    trusted final fit. Records what it did in ``record`` (``note`` says it in words)."""
    a, sigma = float(res.tilt_axis_angle_deg), res.axis_sigma_deg
    before = record.get("applied_deg", 0.0)  # the common line's (refine_axis: "estimate")
    record.update(model_deg=a, model_sigma_deg=sigma, model_changes_deg=res.axis_changes_deg)
    negligible = half_pixel_turn_deg(shape)
    if sigma is None:
        note = f"the atom-model rounds put it at {a:+.3f} deg (no trusted final fit to judge it)"
    elif abs(a) - 3.0 * sigma <= negligible:
        note = (
            f"the atom-model fits put it at {a:+.3f} +- {sigma:.3f} deg, not significantly off "
            "vertical: kept vertical"
        )
        a = 0.0
    else:
        note = f"the atom-model fits put it at {a:+.3f} +- {sigma:.3f} deg: applied"
    if record.get("note"):
        note = f"common line: {record['note']}; {note}"
    elif abs(a - before) < 1e-9:
        note = ""  # the common line's axis stood
    record.update(applied_deg=a, note=note)
    return a
