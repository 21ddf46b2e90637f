"""How well images at low counts establish each angle: the counts split in two halves.

At a few counts per pixel the atom model traced from the tomogram is partly made of noise,
and the angle corrections fitted with it can absorb its errors at "3 standard errors" (the
noise does not count a model error). The images' correlation with the model is no test of
that: it falls with the dose whether the angles are right or not (an independent Pt dumbbell
at a third of the study's counts over a background of 3 counts correlated 0.48-0.50 and had
true angle errors of 0.5 deg; an aligned Pt polyhedron at a tenth of them, 0.41-0.45).

Counts can be split instead (binomial thinning, as in count-splitting cross-validation):
each count goes to one of two halves with probability one half, and the halves are
independent Poisson series with half the dose and the same signal. Each half is
reconstructed, traced and fitted on its own; how far their angle corrections disagree is
what noise and a model traced from noise do to them, and sets the standard error that the
alignment's significance test judges the whole series' corrections by
(:func:`napari_aet.align.keep_significant`'s ``model_spread``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.progress import check_cancel, prefixed
from ..forward import why_untrusted
from ._model_rounds import _refine_traced_model, round_tomogram
from ._shifts import apply_alignment


def count_halves(counts, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split a series of counts into two independent halves with half the dose each.

    Each count goes to either half with probability 1/2 (binomial thinning: Poisson counts
    of mean ``m`` give two independent Poisson halves of mean ``m / 2``). Counts that are
    not integers (converted from a detector's units, :func:`napari_aet.core.counts.as_counts`)
    are first rounded at random to a neighbouring integer with their fraction as the chance
    of rounding up, so that the mean is kept; negative values count as 0.
    """
    arr = np.asarray(counts)
    rng = np.random.default_rng(seed)
    a = np.empty(arr.shape, np.float32)
    b = np.empty(arr.shape, np.float32)
    images = arr.reshape(-1, *arr.shape[-2:])
    a_images, b_images = a.reshape(images.shape), b.reshape(images.shape)  # views
    for i, image in enumerate(images):  # an image at a time
        c = np.clip(image.astype(np.float64), 0.0, None)
        whole = np.floor(c)
        n = (whole + (rng.random(c.shape) < c - whole)).astype(np.int64)
        h = rng.binomial(n, 0.5)
        a_images[i] = h
        b_images[i] = n - h
    return a, b


@dataclass(frozen=True)
class SplitHalfAngles:
    """The angle corrections fitted on each half of the counts and what they say about the
    full series' estimates.

    ``corrections_deg`` (2, n): each half's; ``spread_deg`` (n,): the standard error of the
    full series' estimate that the halves' disagreement shows, per image the larger of the
    pooled one and the image's own (:func:`split_half_angles`); ``agreement``: the halves'
    correlation; ``n_atoms``: atoms traced in each half; ``note``: one line for the notes."""

    corrections_deg: np.ndarray
    spread_deg: np.ndarray
    agreement: float
    n_atoms: tuple[int, int]
    note: str


def _half_fit(work, fit, ang, *, pixel_size_A, builder, max_angle_change_deg,
              recon_iterations, oversampling, per_image_width, device, progress,
              cancel):  # fmt: skip
    """One half's tomogram, traced, and its atom model fitted with the angles free as a
    round's is (:func:`_refine_traced_model`, which raises ValueError when fewer than 4
    atoms are traced)."""
    check_cancel(cancel, "projection matching")
    vol = round_tomogram(work, ang, recon_iterations=recon_iterations, oversampling=oversampling,
                         device=device, cancel=cancel)  # fmt: skip
    return _refine_traced_model(
        vol, fit, ang, pixel_size_A, builder, max_angle_change_deg, device, cancel,
        progress=progress, per_image_width=per_image_width,
    )  # fmt: skip


def split_half_angles(halves, angles_deg, shifts_px, tilt_axis_angle_deg, *, pixel_size_A,
                      builder, max_angle_change_deg, recon_iterations=20, oversampling=2.0,
                      per_image_width=False, device="auto", progress=None,
                      cancel=None) -> tuple[SplitHalfAngles | None, str]:  # fmt: skip
    """Fit the angles on each half of the counts, each with its own tomogram and traced
    model, and measure from their disagreement how well the whole series establishes them.

    The halves share the particle and the alignment as it stands and nothing else: what
    their corrections differ by is each half's noise and the errors of a model traced from
    it, which the images' standard errors do not count. Each half has the variance of the
    full series' noise twice over, and two halves' difference twice that again, so the full
    series' estimate has about a quarter of the difference's variance: its standard error is
    ``1.4826 * median(|d|) / 2`` pooled over the images (robust to a few that disagree more)
    and, where larger, the image's own ``|d| / 2``. At half the counts the traced model is
    worse than at the whole (its errors grow faster than the noise as the dose falls), so
    the estimate errs on the large side. It cannot see what both halves share: an error of
    the image model or the tracer that the particle itself causes.

    Parameters
    ----------
    halves : tuple of four arrays (n, rows, cols)
        In the raw frame: half A prepared for reconstruction (as the series itself:
        background subtracted, denoised and filtered) and background subtracted only (what
        its atom model is fitted to), then half B the same; :func:`count_halves` splits the
        counts.
    angles_deg, shifts_px, tilt_axis_angle_deg
        The alignment as it stands.
    builder : callable
        ``(volume, voxel_size_A, cancel) -> positions (n, 3) [A]``, the tracer.
    max_angle_change_deg, recon_iterations, oversampling, per_image_width, device
        As in the projection-matching rounds.

    Returns ``(result, note)``: ``result`` None when a half gave no trusted fit (fewer than
    4 atoms traced, or unresolved atoms), and the note says why.
    """
    al = [
        apply_alignment(h, tilt_axis_angle_deg=tilt_axis_angle_deg, shifts_px=shifts_px)
        for h in halves
    ]
    ang = np.asarray(angles_deg, np.float64)
    fits = []
    for name, (work, fit) in zip("AB", (al[:2], al[2:]), strict=True):
        try:
            f = _half_fit(
                work, fit, ang, pixel_size_A=pixel_size_A, builder=builder,
                max_angle_change_deg=max_angle_change_deg, recon_iterations=recon_iterations,
                oversampling=oversampling, per_image_width=per_image_width, device=device,
                progress=prefixed(progress, f"half {name} of the counts: "), cancel=cancel,
            )  # fmt: skip
        except ValueError as err:  # no atom model (too few atoms traced)
            return None, f"half {name} of the counts: no atom model ({err})"
        # the atoms' width alone: angles at their bound are no reason here (a true error
        # beyond it is corrected in part by each half), nor is the correlation, which the
        # dose caps
        why = why_untrusted(f, min_correlation=0)
        if why:
            return None, f"half {name} of the counts: {why}"
        fits.append(f)
    ca, cb = (f.angle_corrections_deg for f in fits)
    d = np.abs(ca - cb)
    pooled = 1.4826 * float(np.median(d)) / 2.0
    spread = np.maximum(pooled, d / 2.0)
    r = float(np.corrcoef(ca, cb)[0, 1]) if ca.std() > 0 and cb.std() > 0 else 0.0
    n_atoms = (len(fits[0].positions_A), len(fits[1].positions_A))
    note = (
        f"halves of the counts: angle corrections {np.sqrt(np.mean(ca**2)):.3f} and "
        f"{np.sqrt(np.mean(cb**2)):.3f} deg RMS ({n_atoms[0]} and {n_atoms[1]} atoms traced), "
        f"correlated {r:.2f}; the whole series' angles have a standard error of {pooled:.3f} "
        "deg from their disagreement"
    )
    return SplitHalfAngles(np.array([ca, cb]), spread, r, n_atoms, note), note
