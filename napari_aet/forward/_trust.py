"""Whether a refined atom model may be used: how well it explains the images (their signal,
when their noise is known) and whether its atoms are resolved."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._model_fit import ModelRefinementResult

#: Below this median image correlation a refined atom model is not trusted.
MIN_MODEL_CORRELATION = 0.5
#: Above this fitted width [A] the atoms are not resolved and a refined model is not trusted
#: (resolved atoms image with a width of ~0.4-0.8 A: probe, thermal motion, filtering).
MAX_ATOM_SIGMA_A = 0.9


def signal_correlation(result: ModelRefinementResult, noise_variance) -> np.ndarray:
    """Each image's correlation with the model, corrected for the noise's share of the image's
    variance: ``r / sqrt(1 - noise / variance)``.

    White noise of variance ``v`` caps the correlation of even the true model with an image of
    variance ``V`` at ``sqrt(1 - v / V)`` (0.43 for a Pt particle at 17 counts on its brightest
    column over 3 counts of background: the correlation alone then judges the dose, not the
    model). The corrected value is the correlation with the image's signal, which the noise
    does not lower; at high counts the two agree.
    """
    r = np.asarray(result.image_correlation, np.float64)
    var = result.image_variance
    if noise_variance is None or var is None:
        return r
    share = np.clip(np.asarray(noise_variance, np.float64) / np.maximum(var, 1e-30), 0.0, 0.99)
    return r / np.sqrt(1.0 - share)


def why_untrusted(
    result: ModelRefinementResult,
    *,
    max_angle_change_deg: float | None = None,
    noise_variance=None,
    min_correlation: float = MIN_MODEL_CORRELATION,
):
    """Why a refined atom model should not be used ('' when it may): it fits the images
    poorly, its atoms are not resolved, or (with ``max_angle_change_deg``) more than 10 % of
    its angle corrections ran to the bound.

    With ``noise_variance`` (per image, in the units of the images fitted: the white noise's
    variance after any resampling) the fit is judged by its correlation with the images'
    signal (:func:`signal_correlation`), so that a model is not rejected for the dose alone.
    ``min_correlation`` is the bar on that correlation (:data:`MIN_MODEL_CORRELATION`; 0 judges
    the fit by its atoms' width and angles alone, for a model that other evidence, such as
    images it was not fitted to, has to vindicate).
    """
    med = float(np.median(result.image_correlation))
    if noise_variance is not None and result.image_variance is not None:
        med_s = float(np.median(signal_correlation(result, noise_variance)))
        if med_s < min_correlation:
            return (
                f"the atom model fits the images poorly (median correlation {med:.2f}, "
                f"{med_s:.2f} with their signal)"
            )
    elif med < min_correlation:
        return f"the atom model fits the images poorly (median correlation {med:.2f})"
    if result.sigma_A > MAX_ATOM_SIGMA_A:
        return (
            f"the atoms are not resolved (fitted width {result.sigma_A:.2f} A > "
            f"{MAX_ATOM_SIGMA_A} A)"
        )
    if max_angle_change_deg:
        at_bound = np.abs(result.angle_corrections_deg) > 0.95 * max_angle_change_deg
        if at_bound.mean() > 0.1:
            return (
                f"{int(at_bound.sum())} angle corrections ran to the bound of "
                f"{max_angle_change_deg} deg"
            )
    return ""
