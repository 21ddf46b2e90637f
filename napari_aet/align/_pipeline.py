"""The whole preprocessing and alignment chain, each step switchable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from types import SimpleNamespace

import numpy as np

from ..core.counts import as_counts
from ..core.geometry import images_and_angles
from ..core.progress import check_cancel, report
from ._crop import particle_crop
from ._preprocess import (
    STUDY_LOWPASS_INV_A,
    background_planes,
    denoise,
    dose_denoise_choice,
    is_counts,
    lowpass_filter,
    subtract_background,
)
from ._projection_matching import projection_matching as _projection_matching
from ._shifts import (
    apply_alignment,
    axis_matrix,
    center_of_mass_offsets,
    common_line_offsets,
    estimate_tilt_axis_angle,
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


#: A correction is applied only when it exceeds this many of its standard errors.
SIGNIFICANCE_K = 3.0
#: ... and, over the n images of a series, at most this chance that any correction of one kind
#: (angle, shift) is applied to an image that needs none (a family-wise level: the threshold
#: grows with the number of images, 3.34 standard errors for 60).
FAMILY_ALPHA = 0.05


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

    Returns ``(angles, shifts_px, info)``.
    """
    from scipy.stats import norm

    a_in = np.asarray(angles_in, float)
    a_out = np.asarray(angles_out, float).copy()
    s = np.asarray(shifts_px, float)
    k_given = k
    k = max(float(k), float(norm.isf(FAMILY_ALPHA / (2 * max(len(a_in), 1)))))
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
    weights, group = _shrink_the_rest(dang, sa, ~keep_ang)
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
    negligible = float(np.rad2deg(1.0 / max(arr.shape[1:])))
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
    negligible = float(np.rad2deg(1.0 / max(shape[1:])))
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
        converted, info = as_counts(arr)
        if info["units"] != "counts":
            steps["counts"] = info
        if converted is not None:
            arr, counts, correlated = converted, True, bool(info.get("correlated"))
    total = 6
    if denoise_method == "dose":
        denoise_method, why = dose_denoise_choice(arr, counts=counts)
        steps["denoise"] = {"method": denoise_method or "none", "dose_rule": why}
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
            )  # fmt: skip
    aligned = apply_alignment(work, tilt_axis_angle_deg=alpha, shifts_px=s)
    undenoised = None
    if plain is not None:
        undenoised = apply_alignment(plain, tilt_axis_angle_deg=alpha, shifts_px=s)
    report(progress, 6, total, "aligned")
    return AlignmentResult(
        aligned, new_ang, new_ang - ang, s, alpha, bg_params, steps, rounds, undenoised
    )
