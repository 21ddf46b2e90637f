"""The tilt axis's direction where the common line cannot tell: decided by which direction's
tomogram predicts the images it was not made from.

The common-line estimate (:func:`estimate_tilt_axis_angle`) is flagged uncertain where another
direction fits the images' lines almost as well (a crystal's lattice lines, a round particle)
or none fits well. Keeping such a series vertical is right only for a series that was
vertical: a series exported from GENFIRE's world as its images lie (the tilt axis along the
rows) went through the whole run unturned and lost 201 of its 262 atoms. Here each candidate
direction is tested tomographically: the series turned by it and coarsely registered, binned
to at most 64 px, reconstructed from the even images (GENFIRE, 20 iterations) and made to
predict the odd ones, and the other way round. The wrong direction's tomogram predicts the
held-out images badly (on that series, the held-out residual was 0.275 of the images'
variance upright against 0.125 at the true horizontal axis and 0.161 at the common line's
second best, -78 deg); the direction that predicts best
is taken where it beats the vertical axis by more than three standard errors of the images'
differences.
"""

from __future__ import annotations

import numpy as np

from ._shifts import apply_alignment

#: candidate directions closer than this [deg] (modulo 180) are one
_SAME_DEG = 5.0
#: images binned to at most this side [px] for the test reconstructions
_TEST_SIDE_PX = 64


def _bin(images: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return images
    n, r, c = images.shape
    r2, c2 = r // factor * factor, c // factor * factor
    return images[:, :r2, :c2].reshape(n, r2 // factor, factor, c2 // factor, factor).mean((2, 4))


def held_out_residuals(aligned, angles_deg, *, device: str = "auto") -> np.ndarray:
    """Each image's residual, as a share of its variance, when predicted by the tomogram of the
    other half of the series (even images predict odd ones and the other way round): the
    tomogram re-projected at the image's angle, scaled and offset by least squares."""
    from ..recon import genfire
    from ._reproject import reproject

    arr = np.asarray(aligned, np.float32)
    ang = np.asarray(angles_deg, np.float64)
    arr = _bin(arr, int(np.ceil(max(arr.shape[1:]) / _TEST_SIDE_PX)))
    out = np.zeros(len(arr))
    for k in (0, 1):
        train, test = np.arange(k, len(arr), 2), np.arange(1 - k, len(arr), 2)
        vol = genfire(arr[train], ang[train], iterations=20, oversampling=2.0,
                      rfree_fraction=0.0, device=device).volume  # fmt: skip
        pred = reproject(vol, ang[test], image_shape=arr.shape[1:])
        for p, i in zip(pred, test, strict=True):
            m = arr[i].ravel().astype(np.float64)
            a = np.stack([p.ravel().astype(np.float64), np.ones(m.size)], axis=1)
            coef, *_ = np.linalg.lstsq(a, m, rcond=None)
            r = m - a @ coef
            var = float(((m - m.mean()) ** 2).sum())
            out[i] = float(r @ r) / var if var > 0 else 1.0
    return out


def _distinct(angles) -> list[float]:
    kept: list[float] = []
    for a in angles:
        if a is None or not np.isfinite(a):
            continue
        a = float((a + 90.0) % 180.0 - 90.0)
        if all(abs((a - b + 90.0) % 180.0 - 90.0) > _SAME_DEG for b in kept):
            kept.append(a)
    return kept


def choose_axis_by_prediction(
    images, angles_deg, candidates, register, *, device: str = "auto"
) -> tuple[float, dict]:
    """The tilt-axis direction [deg from vertical] among vertical, horizontal and
    ``candidates`` (one within 5 deg of an earlier one is that one) whose tomogram best
    predicts held-out images; vertical where no direction beats it by three standard errors.
    The direction is not refined here: the atom-model rounds of the alignment measure what is
    left of it.

    ``register(alpha) -> shifts`` gives the coarse shifts [px, raw frame] for a direction
    (centre of mass and common line in its frame). Returns the angle and a record:
    each candidate's mean held-out residual, the choice and ``why``.
    """
    arr = np.asarray(images, np.float32)
    ang = np.asarray(angles_deg, np.float64)
    cache: dict[float, np.ndarray] = {}

    def residuals(alpha: float) -> np.ndarray:
        key = round(float(alpha), 3)
        if key not in cache:
            s = register(alpha)
            aligned = apply_alignment(arr, tilt_axis_angle_deg=alpha, shifts_px=s)
            cache[key] = held_out_residuals(aligned, ang, device=device)
        return cache[key]

    tried = _distinct([0.0, -90.0, *candidates])
    scores = {a: float(residuals(a).mean()) for a in tried}
    best = min(scores, key=scores.get)
    record = {"method": "held-out prediction", "mean_residual": {f"{a:+.2f}": round(v, 4)
              for a, v in scores.items()}}  # fmt: skip
    if best == 0.0:
        record.update(chosen_deg=0.0, why="no direction predicts the held-out images better")
        return 0.0, record
    d = residuals(0.0) - residuals(best)
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    if d.mean() <= 3.0 * se:
        record.update(chosen_deg=0.0, why=(
            f"{best:+.2f} deg predicts the held-out images better by only {d.mean():.4f} "
            f"(+- {se:.4f}) of their variance"))  # fmt: skip
        return 0.0, record
    alpha = best
    record.update(chosen_deg=round(alpha, 3), why=(
        f"its tomogram predicts the held-out images with {scores[best]:.4f} of their "
        f"variance left, upright {scores[0.0]:.4f}"))  # fmt: skip
    return alpha, record


#: an axis within this of horizontal [deg] takes the sense of GENFIRE's images as they lie
HORIZONTAL_SENSE_DEG = 3.0


def horizontal_sense(alpha_deg: float) -> float:
    """The tilt axis ``alpha_deg`` with the sense the images cannot give chosen for a
    horizontal axis: near +-90 deg, the side of -90.

    The images give an axis's line, not its sense: ``a`` and ``a + 180`` fit them equally,
    and one tomogram is the other's mirror image. Elsewhere the sense within +-90 of upright
    is taken; at the seam, where an estimate falls on either side by noise, that rule would be
    a coin toss. A horizontal axis is what a series from GENFIRE's or RESIRE's world has as
    its images lie (their first index is ``x``), with GENFIRE's tilt angles (their sign the
    other way from napari-aet's): taken at -90 deg such a series gives the particle itself
    (turned half round about an axis across the beam), at +90 its mirror image (measured on an
    independent Pt dumbbell: 262 of 262 atoms against none).
    """
    a = float((alpha_deg + 90.0) % 180.0 - 90.0)
    return a - 180.0 if a > 90.0 - HORIZONTAL_SENSE_DEG else a
