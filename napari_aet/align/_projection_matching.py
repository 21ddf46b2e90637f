"""Projection-matching refinement of image shifts and tilt angles against a reconstruction."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..core.filters import white_noise_variance
from ..core.progress import check_cancel, report
from ..forward import (
    ModelRefinementResult,
    refine_atomic_model,
    signal_correlation,
    split_object_translation,
    why_untrusted,
)
from ..recon import genfire
from ._reproject import reproject
from ._shifts import apply_alignment, axis_matrix


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
    # atoms (where the model lacked density) joined it: the model's own uncertainty
    model_spread: tuple[np.ndarray, np.ndarray] | None = None
    # with refine_axis: the in-plane tilt-axis angle [deg] the images were last aligned with
    # plus the final fit's turn (apply_alignment's sense), the final fit's standard error of
    # it, and each fit's turn in order (rounds, then the final fit)
    tilt_axis_angle_deg: float = 0.0
    axis_sigma_deg: float | None = None
    axis_changes_deg: list = field(default_factory=list)


def _register(reference: np.ndarray, moving: np.ndarray, upsample: int = 20):
    """``(d, cc)``: offset ``d`` (row, col) with ``moving(p + d) ~ reference(p)``, and the
    normalized correlation after that shift."""
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(
        reference, moving, upsample_factor=upsample, normalization=None
    )
    d = -np.asarray(shift, np.float64)
    moved = ndimage.shift(moving, -d, order=1, mode="constant")
    a = reference - reference.mean()
    b = moved - moved.mean()
    cc = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-30))
    return d, cc


def _fourier_shift(img: np.ndarray, shift) -> np.ndarray:
    """Image moved by ``shift`` (row, col) [pixels], exactly (periodic) via the Fourier domain."""
    from scipy import ndimage

    return np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(img), shift)).real


def shift_standard_error(reference: np.ndarray, image: np.ndarray, shift) -> np.ndarray:
    """Standard errors (row, col) [px] of the offset ``shift`` registering ``image`` to
    ``reference`` (``image ~ a * reference(p - shift) + b``).

    The sandwich estimate of a least-squares fit of the offset, scale and background:
    ``A^-1 B A^-1`` with ``A = J^T J`` and ``B = J^T C J``, ``J`` the derivatives of the placed
    reference and ``C`` the residual's covariance taken from its own periodogram, so that
    correlated noise (denoised or low-passed images) and the misfit of a noisy reference count
    as what they are instead of as white noise.
    """
    ref = _fourier_shift(np.asarray(reference, np.float64), shift)
    img = np.asarray(image, np.float64)
    rows, cols = img.shape
    design = np.column_stack([ref.ravel(), np.ones(ref.size)])
    (a, b), *_ = np.linalg.lstsq(design, img.ravel(), rcond=None)
    resid = img - (a * ref + b)
    gy, gx = np.gradient(a * ref)
    jac = np.stack([gy, gx, ref - ref.mean(), np.ones_like(ref)])  # (4, rows, cols)
    amat = np.einsum("ipq,jpq->ij", jac, jac)
    weight = np.full(cols // 2 + 1, 2.0)
    weight[0] = 1.0
    if cols % 2 == 0:
        weight[-1] = 1.0
    r_hat = np.abs(np.fft.rfft2(resid)) ** 2 * weight
    jf = np.fft.rfft2(jac)
    bmat = np.einsum("ipq,jpq,pq->ij", jf, jf.conj(), r_hat).real / float(rows * cols) ** 2
    ainv = np.linalg.pinv(amat)
    cov = ainv @ bmat @ ainv
    return np.sqrt(np.clip(np.diag(cov)[:2], 0.0, None))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-30))


def _match_to_tomogram(vol, aligned, ang, refine_angles, step_deg, max_change_deg, tick, cancel):
    """Per image: the offset registering it to the tomogram's re-projection and, optionally,
    the angle at the vertex of a parabola through the correlations at trial angles."""
    n = len(aligned)
    d = np.zeros((n, 2))
    sig = np.zeros((n, 2))
    dang = np.zeros(n)
    ccs = np.zeros(n)
    for i in range(n):
        check_cancel(cancel, "projection matching")
        ref = reproject(vol, [ang[i]])[0]
        d0, _ = _register(ref, aligned[i])
        if refine_angles:
            # correlations at a fixed shift over a symmetric set of trial angles; the vertex
            # of a least-squares parabola is the angle correction
            offs = step_deg * np.arange(-2, 3)
            proj = reproject(vol, ang[i] + offs)
            moved = _fourier_shift(aligned[i], -d0)
            c = np.array([_ncc(p, moved) for p in proj])
            a2, a1, _ = np.polyfit(offs, c, 2)
            delta = -a1 / (2 * a2) if a2 < 0 else offs[int(np.argmax(c))]
            dang[i] = float(np.clip(delta, -max_change_deg, max_change_deg))
            ref = reproject(vol, [ang[i] + dang[i]])[0]
            d[i], ccs[i] = _register(ref, aligned[i])
        else:
            d[i] = d0
            ccs[i] = _ncc(ref, _fourier_shift(aligned[i], -d0))
        sig[i] = shift_standard_error(ref, aligned[i], d[i])
        tick(i)
    return d, dang, ccs, sig


def _prefixed(progress, prefix: str):
    """``progress`` with ``prefix`` before every message (None stays None)."""
    if progress is None:
        return None
    return lambda done, total, message="": report(progress, done, total, f"{prefix}: {message}")


#: L-BFGS iterations of each round's joint atom-model fit: rounds re-trace the model, so they
#: need not converge; the final fit (:func:`_final_model_fit`) does.
ROUND_ITERATIONS = 60
#: Most iterations of the final fit, which stops when converged (an aligned Pt series: 60
#: iterations left two noise draws 0.08 deg RMS apart, converged fits 0.036).
FINAL_ITERATIONS = 200
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


def _noisy(fit, max_change_deg, noise, notes: list, where: str) -> bool:
    """Whether a fit that explains the images' signal (:func:`why_untrusted` with the noise)
    fails the plain correlation bar, i.e. the images are mostly noise; says so in ``notes``.

    Such images establish what all of them or every atom share (the tilt axis, each image's
    offset, measured by hundreds of atoms) but not each image's angle: at a tenth of the
    study's counts a model with 62 % of its atoms wrong explained the signal as well as the
    true one and set an angle 1.5 deg off at "3 standard errors"."""
    why = why_untrusted(fit, max_angle_change_deg=max_change_deg)
    if not why:
        return False
    plain = float(np.median(fit.image_correlation))
    signal = float(np.median(signal_correlation(fit, noise)))
    notes.append(
        f"{where}: noisy images (median correlation {plain:.2f}, {signal:.2f} with their "
        "signal): offsets and tilt axis from the atom model, angles held"
    )
    return True


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


def _held_refit(fitted, target, ang, pixel_size_A, device, cancel, refine_axis, progress):
    """``fitted`` fitted again with the angles held (offsets, tilt axis and atoms free), or
    None when that fit does not pass the plain correlation bar (noisy images, whose model's
    angles ran to the bound, are registered to the tomogram as before)."""
    refit = refine_atomic_model(
        target, ang, fitted.positions_A, pixel_size_A=pixel_size_A, refine_angles=False,
        iterations=ROUND_ITERATIONS, refine_axis=refine_axis, device=device,
        progress=progress, cancel=cancel,
    )  # fmt: skip
    if why_untrusted(refit):  # the plain bar: on noisy images a model whose angles ran off
        return None  # also sets offsets 1-5 px off (an aligned Pt series at a tenth of the counts)
    return _angles_held(refit, ang)


def _refine_traced_model(vol, aligned, ang, pixel_size_A, builder, max_change_deg, device, cancel,
                         return_images=False, progress=None, refine_axis=False):  # fmt: skip
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
    return refine_atomic_model(
        aligned,
        ang,
        positions,
        pixel_size_A=pixel_size_A,
        max_angle_change_deg=max_change_deg,
        iterations=ROUND_ITERATIONS,
        refine_axis=refine_axis,
        return_images=return_images,
        device=device,
        progress=progress,
        cancel=cancel,
    )


def _final_model_fit(round_fit, round_target, target, ang, pixel_size_A, trials, max_change_deg,
                     device, cancel, progress=None, refine_axis=False,
                     hold_angles=False):  # fmt: skip
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
    ``hold_angles``: the angles are held (:func:`_bound_only`)."""
    pos = round_fit.positions_A
    kw = dict(pixel_size_A=pixel_size_A, max_angle_change_deg=max_change_deg,
              iterations=FINAL_ITERATIONS, refine_axis=refine_axis, device=device,
              cancel=cancel, refine_angles=not hold_angles)  # fmt: skip
    # the alignment keeps only significant corrections: standard errors
    plain = refine_atomic_model(
        target, ang, pos, calibrate_sigmas=True, progress=_prefixed(progress, "final fit"), **kw
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
        progress=_prefixed(progress, f"final fit with {len(extra)} trial atoms"), **kw,
    )  # fmt: skip
    total = more.angle_corrections_deg + plain.angle_corrections_deg
    total -= total.mean()
    with_trials = replace(
        more, angle_corrections_deg=total, angles_deg=np.asarray(ang, np.float64) + total
    )
    return plain, with_trials, len(extra)


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
    shift_tol_px: float = 0.05,
    angle_tol_deg: float = 0.02,
    refine_axis: bool = False,
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
        Bound on each angle correction per round [degrees].
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
    shift_tol_px, angle_tol_deg : float
        Convergence: stop when every change of a round is below both.
    refine_axis : bool
        With the model method: each atom-model fit also measures the in-plane turn left in
        the images (:func:`refine_atomic_model`'s ``refine_axis``), and the next round (and
        the result's ``tilt_axis_angle_deg``) aligns the images with the tilt axis turned by
        it: a common-line estimate at low counts can be degrees off on a thick particle.
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
    r = -1
    while r + 1 < limit:
        r += 1
        check_cancel(cancel, "projection matching")
        aligned = apply_alignment(arr, tilt_axis_angle_deg=tilt_axis_angle_deg, shifts_px=s)
        vol = genfire(
            aligned,
            ang,
            iterations=recon_iterations,
            oversampling=oversampling,
            support="auto",
            rfree_fraction=0.0,
            device=device,
            cancel=cancel,
        ).volume
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
                    progress=_prefixed(progress, f"round {r + 1}"), refine_axis=refine_axis,
                )  # fmt: skip
            except ValueError as err:
                notes.append(f"round {r + 1}: no atom model ({err}); shifts only")
            else:
                noise = _aligned_noise(raw_noise, arr.shape, tilt_axis_angle_deg, s)
                why = why_untrusted(
                    fitted, max_angle_change_deg=max_angle_change_deg, noise_variance=noise
                )
                held = None
                if why and _bound_only(fitted, noise):
                    held = _held_refit(
                        fitted, target, ang, pixel_size_A, device, cancel, refine_axis,
                        _prefixed(progress, f"round {r + 1}, angles held"),
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
                elif _noisy(fitted, max_angle_change_deg, noise, notes, f"round {r + 1}"):
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
        small = rnd.max_shift_change_px < shift_tol_px and rnd.max_angle_change_deg < angle_tol_deg
        if small and not bound_held:  # held angles did not converge: they were not fitted
            converged = True
            break
        if fitted is not None and refine_angles and angle_method == "model" and not bound_held:
            if rnd.rms_angle_change_deg > 0:  # not held as noisy
                angle_rms.append(rnd.rms_angle_change_deg)
        if bound_held and limit < rounds + EXTRA_ROUNDS:  # a round that fitted no angles
            limit += 1
            notes.append(f"round {r + 1} held the angles: round {limit} added")
        elif fitted is not None and r + 1 == limit < rounds + EXTRA_ROUNDS:
            if len(angle_rms) >= 2 and angle_rms[-1] < CONVERGING_RATIO * angle_rms[-2]:
                limit += 1
                notes.append(
                    f"angles still converging (changed by {angle_rms[-2]:.3f} and then "
                    f"{angle_rms[-1]:.3f} deg RMS): round {limit} added"
                )
    last = (dang, d) if history else (None, None)
    trial_effect = None
    if last_fit is not None:
        # the last round fitted an atom model: fit it again, with trial atoms where it lacks
        # density, to convergence and with calibrated standard errors (the rounds, which
        # re-trace the model anyway, stop at ROUND_ITERATIONS and have none)
        check_cancel(cancel, "projection matching")
        report(progress, limit * n, limit * n, "final atom-model fit")
        target = apply_alignment(fit_arr, tilt_axis_angle_deg=tilt_axis_angle_deg, shifts_px=s)
        final, with_trials, n_trials = _final_model_fit(
            *last_fit, target, ang, pixel_size_A, model_trials, max_angle_change_deg, device,
            cancel, progress, refine_axis=refine_axis,
        )  # fmt: skip
        noise = _aligned_noise(raw_noise, arr.shape, tilt_axis_angle_deg, s)
        why = why_untrusted(final, max_angle_change_deg=max_angle_change_deg, noise_variance=noise)
        if why and _bound_only(final, noise):
            final, with_trials, n_trials = _final_model_fit(
                *last_fit, target, ang, pixel_size_A, model_trials, max_angle_change_deg, device,
                cancel, progress, refine_axis=refine_axis, hold_angles=True,
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
            if _noisy(final, max_angle_change_deg, noise, notes, "final fit"):
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
            fd, fdang = final.offsets_px.copy(), final.angle_corrections_deg.copy()
            if refine_angles:
                fdang -= fdang.mean()
                ang += fdang
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
        tilt_axis_angle_deg=float(tilt_axis_angle_deg),
        axis_sigma_deg=axis_sigma,
        axis_changes_deg=axis_changes,
    )
