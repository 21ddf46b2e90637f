"""Which series places the atoms better, a denoised one or its counts: a parametric bootstrap.

A denoiser lowers the noise that the positions are fitted to, and biases them in its own way:
BM3D matches similar patches, which a crystal has many of and an amorphous particle few. On
independent series at a third of the study's counts (docs/benchmarks.md) positions fitted to
the BM3D images of a twinned Pt dumbbell were 12.7 pm from the truth against 24.9 pm for the
counts, and on an amorphous Pt particle 24.2 pm against 16.6 pm. Neither source is right for
every particle, and which one is cannot be read off either fit: both fit their own images.

The replicate answers it with a truth that is known: the refined model's own images at the
measured counts (its fitted scale and background), with Poisson noise drawn on them, put
through the same denoiser; positions fitted to the replicate's counts and to its denoised
images from the model's positions are compared with those positions. The replicate has the
particle's own arrangement of atoms (what the denoiser's bias depends on) and the series'
counts (what the counts' noise depends on). On the two series above it gave 22.2 pm
(denoised) against 17.0 pm (counts) and 12.9 against 23.4 pm: the right choice on both, and
close to the errors measured against the truth.

The denoised side is scored as the refine stage leaves it: with the smooth part of what the
counts move its positions by, where that stands above the counts' noise
(:func:`~napari_aet.trace._counts_correction.counts_correction`, from the replicate's two
fits, no extra fit). Scored without it, a dumbbell at a third of the counts whose two fits
were close (12.4 against 11.9 pm) went to the counts and came out 10.7 pm from the truth;
corrected, the denoised positions scored 11.1 pm and came out at 8.7 pm.
"""

from __future__ import annotations

import time

import numpy as np

from ..forward import MIN_MODEL_CORRELATION, refine_atomic_model, why_untrusted
from ._counts_correction import counts_correction

#: The replicate's noise draw (fixed, so that a run is reproducible).
REPLICATE_SEED = 0
#: Each atom's replicate error counts at most this many times the median error of both fits
#: (a Winsorised RMS): one draw can send a single atom of one fit off by an atomic distance,
#: and that atom alone then decided (a dumbbell at a third of the counts: 1 atom of 301 at
#: 146 pm took the denoised fit from 10.7 to 13.8 pm RMS, the choice went to the counts and
#: the atoms came out 10.6 pm from the truth instead of 8.4). For Gaussian errors 4 times the
#: median is 6 standard deviations: nothing but such an atom is capped.
OUTLIER_FACTOR = 4.0


def _errors_pm(error_A) -> np.ndarray:
    """Each atom's error [pm] from its ``(dz, dy, dx)`` [A]."""
    return 100.0 * np.sqrt(np.sum(np.asarray(error_A, np.float64) ** 2, axis=1))


def _capped_rms(errors_pm, cap_pm) -> float:
    return float(np.sqrt(np.mean(np.minimum(errors_pm, cap_pm) ** 2)))


def choose_position_source(
    judged,
    denoiser,
    *,
    pixel_size_A: float,
    iterations: int = 60,
    atoms=None,
    weighting: str = "uniform",
    min_correlation: float = MIN_MODEL_CORRELATION,
    device: str = "auto",
    cancel=None,
) -> dict:
    """Whether the atoms' positions are better fitted to a denoised series or to its counts.

    Parameters
    ----------
    judged : ModelRefinementResult
        An atom-model fit to the counts (:func:`napari_aet.forward.refine_atomic_model` with
        ``return_images=True``): its positions, angles and model images (in counts) make the
        replicate.
    denoiser : callable
        ``denoiser(counts) -> images``: what made the denoised series from the counts (e.g.
        :func:`napari_aet.align.denoise` with the align stage's method), applied to the
        replicate's counts (an ``(n_images, rows, cols)`` float32 array). Its attribute
        ``background_counts`` (per image, :func:`napari_aet.align.recorded_denoiser`), when
        set, is the background the series had before it was subtracted: the replicate's
        counts are drawn with it and have it taken off again.
    pixel_size_A : float
    iterations : int
        L-BFGS iterations of each fit to the replicate (as for the real one).
    atoms : array of bool or int, optional
        Which of ``judged``'s atoms to score (e.g. those kept); default all.
    weighting : {"uniform", "variance"}
        How the fits weigh the pixels (as the real fit does).
    min_correlation : float
        The bar on a fit's correlation with the images (:func:`napari_aet.forward.why_untrusted`)
        below which that source is not chosen.

    Returns
    -------
    dict
        ``source`` (``"counts"`` or ``"denoised"``: the one whose fit came closer to the
        replicate's positions; the denoised fit with the counts' smooth correction where it
        applies, as the refine stage would give it), ``replicate_rms_pm`` (each source's RMS
        position error on the replicate, each atom's error capped at
        ``replicate_error_cap_pm``, :data:`OUTLIER_FACTOR` times the median of both fits': an
        estimate of the real fit's precision at these counts; None for a fit that could not
        be trusted; ``"denoised_corrected"`` where the correction applied),
        ``replicate_outliers`` (per source, the atoms beyond the cap),
        ``replicate_counts_correction`` (the correction's record on the
        replicate, :func:`~napari_aet.trace._counts_correction.counts_correction`),
        ``seconds``.
    """
    t0 = time.perf_counter()
    if judged.model_images is None:
        raise ValueError("choose_position_source needs the fit's model images (return_images)")
    truth = np.asarray(judged.positions_A, float)
    score = slice(None) if atoms is None else np.asarray(atoms)  # a mask or indices
    expected = np.clip(np.asarray(judged.model_images, np.float64), 0, None)
    # the background the align stage subtracted is noise the series has: drawn, then taken off
    level = getattr(denoiser, "background_counts", None)
    level = 0.0 if level is None else np.asarray(level, np.float64)[:, None, None]
    rng = np.random.default_rng(REPLICATE_SEED)
    counts = (rng.poisson(expected + level) - level).astype(np.float32)
    denoised = np.asarray(denoiser(counts), np.float32)
    if denoised.shape != counts.shape:
        raise ValueError(
            f"the denoiser returned shape {denoised.shape} for images of {counts.shape}"
        )
    errors, fitted = {}, {}
    rms: dict = {}
    for name, images in (("denoised", denoised), ("counts", counts)):
        fit = refine_atomic_model(
            images,
            judged.angles_deg,
            truth,
            pixel_size_A=pixel_size_A,
            refine_angles=False,
            refine_offsets=False,
            iterations=iterations,
            weighting=weighting,
            device=device,
            cancel=cancel,
        )
        if why_untrusted(fit, min_correlation=min_correlation):
            rms[name] = None  # a fit that cannot be trusted is not chosen
            continue
        fitted[name] = fit.positions_A
        errors[name] = _errors_pm(fit.positions_A[score] - truth[score])
    correction = None
    if len(fitted) == 2:
        # the denoised positions as the refine stage would leave them: with the smooth part
        # of what the counts move them by, where it stands above the counts' noise
        smooth, correction = counts_correction(
            fitted["denoised"], fitted["counts"] - fitted["denoised"]
        )
        if smooth is not None:
            errors["denoised_corrected"] = _errors_pm(
                (fitted["denoised"] + smooth)[score] - truth[score]
            )
    cap = np.inf
    if errors:
        cap = OUTLIER_FACTOR * float(np.median(np.concatenate(list(errors.values()))))
    rms.update({name: _capped_rms(e, cap) for name, e in errors.items()})
    outliers = {name: int(np.sum(e > cap)) for name, e in errors.items()}
    c = rms["counts"]
    d = rms.get("denoised_corrected", rms["denoised"])
    source = "counts" if c is not None and (d is None or c < d) else "denoised"
    return {
        "source": source,
        "replicate_rms_pm": rms,
        "replicate_error_cap_pm": cap if np.isfinite(cap) else None,
        "replicate_outliers": outliers,
        "replicate_counts_correction": correction,
        "seed": REPLICATE_SEED,
        "seconds": time.perf_counter() - t0,
    }
