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

The fit's standard errors count the counts' noise with the atoms taken as right; the model's
own errors (missed and false atoms, a wrong stacking patch) pull the angles too, and there
they were 2-3.5 times too small: a 256-px faulted Pt dumbbell at a third of the study's
counts, refined with 8 % of its atoms wrong and given its true angles, had "corrections" of
0.22 deg RMS at standard errors of 0.064 deg, six of them kept; tenth-of-the-dose Fe, Co and
Ni particles at exact angles kept 3-7 of 0.5-0.9 deg RMS. So the scatter is measured: the
particle is cut across the tilt axis into two slabs of equal atom counts (the images' rows
above and below the cut), and each slab's angles are fitted on its own rows alone. A real
angle error turns both slabs alike; the noise and the model's errors in the two slabs are
their own, so half the slabs' difference scatters as the whole fit's error does, and the
standard errors are widened by that scatter over the images where it exceeds them
(:func:`slab_scatter`; the dumbbell 3.8x, Fe, Co and Ni at a tenth 2.7, 1.8 and 1.7x: none
kept, against 4, 7, 5 and 3), and a correction is kept only where both slabs moved the angle
the same way as the whole fit did. Where the model is right the slabs agree (factors
0.84-1.14 on series whose angles were put 0.34-0.72 deg RMS off) and the corrections stand.
The slabs are fitted only where the fit's own standard errors keep corrections that would be
applied: the two fits took 79 of the 149 s of the check on an 8,080-atom particle (256 px)
whose corrections moved its atoms by 2.5 pm.
"""

from __future__ import annotations

import numpy as np

from ..align import significance_k
from ..core.progress import prefixed
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
    error, widened by the slabs' scatter), ``sigma_fit_deg`` (the fit's own), ``slabs``
    (:func:`slab_scatter`'s record), ``kept`` (per image), ``k_sigma``, ``rms_kept_deg``,
    ``effect_A`` (that RMS angle times the particle's radius) and ``why`` when not applied.
    """
    ang = np.asarray(angles_deg, np.float64)
    pos = np.asarray(positions_A, np.float64).reshape(-1, 3)
    n = len(ang)
    record: dict = {"applied": False, "n_images": int(n)}
    if n < 5 or len(pos) < 10:
        record["why"] = f"{n} images and {len(pos)} atoms: too few to measure the angles"
        return record
    fit = dict(pixel_size_A=pixel_size_A, device=device, cancel=cancel)
    res = _fit(pos, images, ang, progress=prefixed(progress, "all rows: "), **fit)
    why = why_untrusted(res, max_angle_change_deg=MAX_CHANGE_DEG)
    dang = np.asarray(res.angle_corrections_deg, np.float64)
    sigma = np.asarray(res.angle_sigma_deg, np.float64)
    k = significance_k(n)
    radius = float(np.linalg.norm(pos - pos.mean(axis=0), axis=1).max())
    # the slabs can only take corrections away (wider errors, both slabs' sign): where the
    # fit's own errors keep none that would matter, their two fits would change nothing
    scatter = {}
    if not why and _effect_A(np.where(np.abs(dang) > k * sigma, dang, 0.0), radius) > EFFECT_A:
        scatter = slab_scatter(pos, images, ang, sigma, progress=progress, **fit)
    widen = max(scatter.get("factor", 1.0), 1.0)
    record.update(slabs=scatter, sigma_fit_deg=[float(v) for v in sigma])
    sigma = sigma * widen
    keep = np.abs(dang) > k * sigma
    if "factor" in scatter:  # a real error turns both slabs the way it turns the whole
        for name in ("top", "bottom"):
            keep &= np.sign(scatter[name]["corrections_deg"]) == np.sign(dang)
    # the fit's changes have zero mean (a common change is a rotation of the model); the kept
    # ones alone may not, which is the same gauge
    applied = np.where(keep, dang, 0.0)
    rms = float(np.sqrt(np.mean(applied**2)))
    effect = _effect_A(applied, radius)
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
        if widen > 1.0:
            record["why"] += (
                f" (the standard errors widened {widen:.1f}x by the scatter between the "
                "particle's two halves along the tilt axis)"
            )
    elif effect <= EFFECT_A:
        record["why"] = (
            f"{int(keep.sum())} corrections kept, {rms:.3f} deg RMS: they move the atoms at "
            f"the radius by {100 * effect:.1f} pm (<= {100 * EFFECT_A:.0f} pm), not applied"
        )
    else:
        record["applied"] = True
    return record


def _effect_A(applied_deg, radius_A: float) -> float:
    """How far [A] the RMS of the applied corrections moves the atoms at ``radius_A``."""
    return float(radius_A * np.deg2rad(np.sqrt(np.mean(np.square(applied_deg)))))


#: Fewest atoms in each slab for the slabs' scatter to be measured.
MIN_SLAB_ATOMS = 20
#: Each slab is fitted on its own rows of images cut this far [A] beyond them, the rows
#: beyond given no weight: the image model blurs by Fourier transforms, which wrap an
#: image's edge onto the opposite one, and an edge cut through the particle (a slab's own
#: rows alone) wraps atoms onto the far edge (0.5 deg RMS of false angle changes, alike in
#: both slabs, on exact noise-free images of a 754-atom particle).
SLAB_PAD_A = 4.0


def _fit(pos, images, ang, *, pixel_size_A, device, cancel, progress=None, weights=None):
    """The check's joint fit of the angles, offsets and atoms, standard errors calibrated."""
    return refine_atomic_model(
        images, ang, pos, pixel_size_A=pixel_size_A, calibrate_sigmas=weights is None,
        iterations=ITERATIONS, max_angle_change_deg=MAX_CHANGE_DEG, pixel_weights=weights,
        device=device, progress=progress, cancel=cancel,
    )  # fmt: skip


def slab_scatter(positions_A, images, angles_deg, sigma_deg, *, pixel_size_A: float,
                 device: str = "auto", progress=None, cancel=None) -> dict:  # fmt: skip
    """How far the angle corrections scatter beyond their standard errors ``sigma_deg``,
    measured by fitting two slabs of the particle apart (see the module's description).

    The atoms are cut at their median row (the tilt axis runs along the rows of aligned
    images, so each slab projects onto its own rows at every tilt); each slab's angles are
    fitted to its rows alone, on images cut :data:`SLAB_PAD_A` beyond them (those rows
    weighted 0), with every atom on the cut images or within as far again beyond them.
    Returns ``factor`` (the RMS over the images of half the slabs' difference over
    ``sigma_deg``: 1 when the standard errors hold), ``cut_row`` and each slab's corrections
    (their mean removed) and atom count; an empty record when a slab has fewer than
    :data:`MIN_SLAB_ATOMS` atoms."""
    pos = np.asarray(positions_A, np.float64).reshape(-1, 3)
    data = np.asarray(images)
    rows = data.shape[1]
    row = pos[:, 1] / pixel_size_A
    cut = int(round(float(np.median(row))))
    pad = int(np.ceil(SLAB_PAD_A / pixel_size_A))
    out: dict = {"cut_row": cut}
    corrections = []
    for name, (r0, r1) in (("top", (0, cut)), ("bottom", (cut, rows))):
        n_atoms = int(np.count_nonzero((row >= r0) & (row < r1)))
        if n_atoms < MIN_SLAB_ATOMS:
            return {}
        a, b = max(r0 - pad, 0), min(r1 + pad, rows)  # the rows given, a pad beyond the slab's
        sel = (row >= a - pad) & (row < b + pad)
        part = pos[sel] - np.array([0.0, a * pixel_size_A, 0.0])  # in the cut images' frame
        weights = np.zeros((b - a, data.shape[2]), np.float32)
        weights[r0 - a : r1 - a] = 1.0
        res = _fit(part, data[:, a:b], angles_deg, pixel_size_A=pixel_size_A, device=device,
                   cancel=cancel, progress=prefixed(progress, f"{name} rows: "),
                   weights=weights)  # fmt: skip
        c = np.asarray(res.angle_corrections_deg, np.float64)
        c = c - c.mean()  # the gauge: a common change turns the slab
        corrections.append(c)
        out[name] = {"n_atoms": n_atoms, "corrections_deg": [float(v) for v in c]}
    half = (corrections[0] - corrections[1]) / 2
    out["factor"] = float(np.sqrt(np.mean((half / np.maximum(sigma_deg, 1e-12)) ** 2)))
    return out


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
