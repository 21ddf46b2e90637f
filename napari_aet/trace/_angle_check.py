"""The tilt angles checked against the refined atom model.

The alignment measures each image's angle with an atom model traced from a quick tomogram.
Where that model is poor the angles' standard errors are large and no correction is
established: a 10,862-atom Pt particle (radius 30 A, 384 px, 21 images) whose tomogram
misses most of its core kept none of its 0.42-deg RMS angle errors (standard errors 0.37 deg).
The refine stage's model is far better (0.16 % of the atoms wrong there), so the angles are
measured once more with it: every image's angle and offset fitted jointly with the atoms
(:func:`napari_aet.forward.refine_atomic_model`, standard errors calibrated), and a correction
kept when it exceeds the alignment's bar (:func:`napari_aet.align.significance_k` standard
errors, 3 raised with the number of images). When the kept
corrections would move the particle's outermost atoms by more than :data:`EFFECT_A` (their RMS
angle times the particle's radius), the refinement is run again at the corrected angles
(:func:`check_angles` only measures; the refine stage decides).
"""

from __future__ import annotations

import numpy as np

from ..align import significance_k
from ..forward import refine_atomic_model, why_untrusted

#: The kept corrections are applied (and the atoms refined again) when their RMS angle moves
#: the atoms at the particle's radius by more than this [A]: below it the positions barely
#: change (traced positions carry 5-25 pm of error).
EFFECT_A = 0.05
#: The widest angle change the check's fit may make [deg] (the alignment's bound).
MAX_CHANGE_DEG = 2.0
#: L-BFGS iterations of the check's joint fit.
ITERATIONS = 200


def check_angles(
    positions_A,
    images,
    angles_deg,
    *,
    pixel_size_A: float,
    device: str = "auto",
    progress=None,
    cancel=None,
) -> dict:
    """Fit the angles (and offsets) of ``images`` jointly with the atoms at ``positions_A``
    and say which corrections are established (see the module's description).

    Returns a JSON-serialisable record: ``applied`` (whether the corrected angles should be
    used), ``angles_deg`` (the angles with the kept corrections added),
    ``corrections_deg`` and ``sigma_deg`` (every image's fitted change and its standard
    error), ``kept`` (per image), ``k_sigma``, ``rms_kept_deg``, ``effect_A`` (that RMS angle
    times the particle's radius) and ``why`` when not applied.
    """
    ang = np.asarray(angles_deg, np.float64)
    pos = np.asarray(positions_A, np.float64).reshape(-1, 3)
    n = len(ang)
    record: dict = {"applied": False, "n_images": int(n)}
    if n < 5 or len(pos) < 10:
        record["why"] = f"{n} images and {len(pos)} atoms: too few to measure the angles"
        return record
    res = refine_atomic_model(
        images, ang, pos, pixel_size_A=pixel_size_A, calibrate_sigmas=True,
        iterations=ITERATIONS, max_angle_change_deg=MAX_CHANGE_DEG, device=device,
        progress=progress, cancel=cancel,
    )  # fmt: skip
    why = why_untrusted(res, max_angle_change_deg=MAX_CHANGE_DEG)
    dang = np.asarray(res.angle_corrections_deg, np.float64)
    sigma = np.asarray(res.angle_sigma_deg, np.float64)
    k = significance_k(n)
    keep = np.abs(dang) > k * sigma
    # the fit's changes have zero mean (a common change is a rotation of the model); the kept
    # ones alone may not, which is the same gauge
    applied = np.where(keep, dang, 0.0)
    rms = float(np.sqrt(np.mean(applied**2)))
    radius = float(np.linalg.norm(pos - pos.mean(axis=0), axis=1).max())
    effect = radius * np.deg2rad(rms)
    record.update(
        corrections_deg=[float(v) for v in dang],
        sigma_deg=[float(v) for v in sigma],
        kept=[bool(v) for v in keep],
        k_sigma=k,
        rms_kept_deg=rms,
        radius_A=radius,
        effect_A=float(effect),
        angles_deg=[float(v) for v in ang + applied],
    )
    if why:
        record["why"] = f"the fit cannot be trusted ({why})"
    elif not keep.any():
        record["why"] = "no correction beyond the bar: the alignment's angles stand"
    elif effect <= EFFECT_A:
        record["why"] = (
            f"{int(keep.sum())} corrections kept, {rms:.3f} deg RMS: they move the atoms at "
            f"the radius by {100 * effect:.1f} pm (<= {100 * EFFECT_A:.0f} pm), not applied"
        )
    else:
        record["applied"] = True
    return record


def checked_angles(metadata: dict, angles_deg, *, atol_deg: float = 1e-3):
    """The tilt angles that an atom model was refined at when the refine stage's angle check
    corrected them (``metadata["provenance"]["angle_check"]``, as ``atoms.csv`` carries it),
    for a series whose angles are ``angles_deg``; None when the check applied nothing, or
    when ``angles_deg`` are not the angles the check started from (another series, or one
    that already carries the corrected angles: ``refine/angles.txt``).

    A model refined at corrected angles is judged at them: its R-factor at the alignment's
    angles would count the angle errors the check removed as the model's."""
    check = ((metadata or {}).get("provenance") or {}).get("angle_check") or {}
    if not check.get("applied") or "angles_deg" not in check:
        return None
    ang = np.asarray(angles_deg, np.float64).ravel()
    new = np.asarray(check["angles_deg"], np.float64).ravel()
    kept = np.asarray(check.get("kept", []), bool).ravel()
    corr = np.asarray(check.get("corrections_deg", []), np.float64).ravel()
    if not (len(ang) == len(new) == len(kept) == len(corr)):
        return None
    start = new - np.where(kept, corr, 0.0)
    if np.abs(start - ang).max() > atol_deg:
        return None
    return new
