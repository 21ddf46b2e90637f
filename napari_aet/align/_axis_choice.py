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

At a few counts per pixel the comparison must be fair to noise: the images are smoothed
before any turn (an interpolation smooths noise, and a tomogram of smoother images predicts
held-out noise better) and every direction's predictions are compared with the same images,
mapped back into the raw frame. Without both, every turned direction predicted better than
upright: on independent upright series at 6-7 counts on the brightest column, a Ru particle
was turned by 28.6 deg and an amorphous Pt one by 34.8 deg, and both runs failed (130 % of
their atoms wrong).
"""

from __future__ import annotations

import numpy as np

from ._shifts import apply_alignment

#: candidate directions closer than this [deg] (modulo 180) are one
_SAME_DEG = 5.0
#: images binned to at most this side [px] for the test reconstructions
_TEST_SIDE_PX = 64
#: the Gaussian [px] the images are smoothed with before any direction's turn: it takes out
#: the frequencies near the pixels' Nyquist limit that an interpolation would smooth
_SMOOTH_PX = 1.0


def _bin(images: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return images
    n, r, c = images.shape
    r2, c2 = r // factor * factor, c // factor * factor
    return images[:, :r2, :c2].reshape(n, r2 // factor, factor, c2 // factor, factor).mean((2, 4))


def _to_raw_frame(pred, alpha_deg: float, shifts_px, factor: int, raw_shape) -> np.ndarray:
    """Images in the aligned frame of a series binned by ``factor`` mapped back into its raw
    frame (binned the same way): the inverse of :func:`apply_alignment` with the tilt axis
    ``alpha_deg`` and the raw frame's ``shifts_px`` about the centre of the unbinned images
    (``raw_shape``: rows, cols), in binned pixels (a binned pixel ``k`` is centred on the raw
    pixel ``f k + (f - 1) / 2``)."""
    from scipy import ndimage

    from ._shifts import axis_matrix

    f = float(factor)
    rows, cols = raw_shape
    c = (np.array([rows // 2, cols // 2], np.float64) - (f - 1) / 2) / f
    mt = axis_matrix(alpha_deg).T
    out = np.empty_like(pred)
    for i in range(len(pred)):
        s = np.asarray(shifts_px[i], np.float64) / f
        out[i] = ndimage.affine_transform(pred[i], mt, offset=c - mt @ (c + s), order=1,
                                          mode="constant")  # fmt: skip
    return out


def held_out_residuals(
    aligned, angles_deg, *, raw, alpha_deg: float, shifts_px, device: str = "auto"
) -> np.ndarray:
    """Each raw image's residual, as a share of its variance, when predicted by the tomogram of
    the other half of the series (even images predict odd ones and the other way round): the
    tomogram of ``aligned`` (made from ``raw`` by :func:`apply_alignment` with ``alpha_deg``
    and ``shifts_px``) re-projected at the image's angle, mapped back into the raw frame,
    scaled and offset by least squares: the same target for every direction tried.

    Compared in the aligned frame, a turn by an angle that is not a multiple of 90 deg
    interpolates, and so smooths, the held-out images' noise: at a few counts per pixel that
    alone made a wrong direction predict better (an upright Ru series at 6 counts on its
    brightest column: +28.6 deg 0.804 of the variance left against 0.815 upright, by more than
    three standard errors)."""
    from ..recon import genfire
    from ._reproject import reproject

    arr = np.asarray(aligned, np.float32)
    ang = np.asarray(angles_deg, np.float64)
    factor = int(np.ceil(max(arr.shape[1:]) / _TEST_SIDE_PX))
    arr = _bin(arr, factor)
    target = _bin(np.asarray(raw, np.float32), factor)
    out = np.zeros(len(arr))
    for k in (0, 1):
        train, test = np.arange(k, len(arr), 2), np.arange(1 - k, len(arr), 2)
        vol = genfire(arr[train], ang[train], iterations=20, oversampling=2.0,
                      rfree_fraction=0.0, device=device).volume  # fmt: skip
        pred = reproject(vol, ang[test], image_shape=arr.shape[1:])
        pred = _to_raw_frame(np.asarray(pred, np.float32), alpha_deg,
                             np.asarray(shifts_px)[test], factor, raw.shape[1:])  # fmt: skip
        for p, i in zip(pred, test, strict=True):
            m = target[i].ravel().astype(np.float64)
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
    from scipy import ndimage

    # smoothed first, so that turning the images by a direction's angle (an interpolation,
    # which smooths) barely changes their noise: a tomogram of smoother images predicts
    # held-out noise better, which favoured every turned direction at a few counts
    arr = ndimage.gaussian_filter(np.asarray(images, np.float32), (0, _SMOOTH_PX, _SMOOTH_PX))
    ang = np.asarray(angles_deg, np.float64)
    cache: dict[float, np.ndarray] = {}

    def residuals(alpha: float) -> np.ndarray:
        key = round(float(alpha), 3)
        if key not in cache:
            s = register(alpha)
            aligned = apply_alignment(arr, tilt_axis_angle_deg=alpha, shifts_px=s)
            cache[key] = held_out_residuals(aligned, ang, raw=arr, alpha_deg=alpha,
                                            shifts_px=s, device=device)  # fmt: skip
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
