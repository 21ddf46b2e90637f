"""Rigid alignment of tilt-series images: apply, centre of mass, common line, tilt axis."""

from __future__ import annotations

import numpy as np
from scipy import ndimage, optimize

from ..forward import split_object_translation
from ..recon._support import projection_masks


def axis_matrix(tilt_axis_angle_deg: float) -> np.ndarray:
    """2x2 matrix on ``(row, col)`` taking axis-aligned coordinates to raw-image coordinates.

    A tilt axis at ``a`` degrees from vertical (counter-clockwise as displayed) runs along
    ``(cos a, sin a)`` in ``(row, col)``.
    """
    a = np.deg2rad(tilt_axis_angle_deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def apply_alignment(
    raw, *, tilt_axis_angle_deg: float = 0.0, shifts_px=None, order: int = 3
) -> np.ndarray:
    """Resample raw images into the aligned frame in one interpolation.

    The aligned image is ``A(p) = raw(M p + c + s)``: ``M`` rotates the tilt axis to vertical
    (:func:`axis_matrix`), ``c`` is the centre pixel ``(rows // 2, cols // 2)`` and ``s`` the
    image's shift ``(d_row, d_col)`` [pixels] in raw coordinates, i.e. where the content sits
    relative to where it should. Outside the raw image the value is 0.
    """
    arr = np.asarray(raw, dtype=np.float32)
    n, rows, cols = arr.shape
    s = np.zeros((n, 2)) if shifts_px is None else np.asarray(shifts_px, np.float64)
    m = axis_matrix(tilt_axis_angle_deg)
    c = np.array([rows // 2, cols // 2], np.float64)
    out = np.empty_like(arr)
    for i in range(n):
        offset = c - m @ c + s[i]
        if tilt_axis_angle_deg == 0 and order > 1:
            out[i] = ndimage.shift(arr[i], -s[i], order=order, mode="constant", prefilter=True)
        else:
            out[i] = ndimage.affine_transform(
                arr[i], m, offset=offset, order=order, mode="constant"
            )
    return out


def center_of_mass_offsets(data, *, threshold_sd: float = 3.0) -> np.ndarray:
    """``(d_row, d_col)`` of each image's centre of mass from the centre pixel.

    The sums run over the particle's foreground with the pixels' signed values: the image
    smoothed (a Gaussian of ``max(2, size / 64)`` px) above ``threshold_sd`` times its noise
    (measured on its negative pixels: a background-subtracted image's background is zero-mean),
    the connected parts of at least a tenth of the largest one's area, dilated by twice the
    smoothing. The clipped sum over the whole image that this replaces kept the positive half
    of the background's noise everywhere, a flat pedestal that pulls every centre of mass to
    the image centre: on independent Pt series (128 px) a shift of 5 px came out as 3.95 px at
    the study's counts, 2.73 px at a third of them and 1.88 px over a background of 3 counts;
    it now comes out as 5.00 px. An image where nothing stands out of its noise (or whose
    foreground sums to zero or less) falls back to the positive part of the whole image.
    """
    arr = np.asarray(data, np.float64)
    n, rows, cols = arr.shape
    pos = np.clip(arr, 0, None)
    tot = pos.sum(axis=(1, 2))
    if np.any(tot <= 0):
        raise ValueError("an image has no positive intensity; subtract the background first")
    sigma = max(2.0, min(rows, cols) / 64)
    r_idx, c_idx = np.arange(rows), np.arange(cols)
    out = np.empty((n, 2))
    for i, img in enumerate(arr):
        w = np.where(_foreground(img, sigma, threshold_sd), img, 0.0)
        total = w.sum()
        if not total > 0:
            w, total = pos[i], tot[i]
        out[i, 0] = (w.sum(axis=1) * r_idx).sum() / total - rows // 2
        out[i, 1] = (w.sum(axis=0) * c_idx).sum() / total - cols // 2
    return out


def _foreground(img: np.ndarray, sigma: float, k: float) -> np.ndarray:
    """Where an image's particle is (:func:`center_of_mass_offsets`); all False when nothing
    stands out of the noise."""
    sm = ndimage.gaussian_filter(img, sigma)
    neg = sm[sm < 0]
    if neg.size >= 0.05 * sm.size:  # a zero-mean background: its negative half is noise
        base, sd = 0.0, float(np.sqrt(np.mean(neg**2)))
    else:  # a background left in: noise about the median
        base = float(np.median(sm))
        sd = 1.4826 * float(np.median(np.abs(sm - base)))
    fg = sm > base + k * sd
    lab, n = ndimage.label(fg)
    if n == 0:
        return fg
    sizes = ndimage.sum(fg, lab, index=np.arange(1, n + 1))
    fg = np.isin(lab, 1 + np.flatnonzero(sizes >= 0.1 * sizes.max()))
    return ndimage.binary_dilation(fg, iterations=int(round(2 * sigma)))


def _shift_1d(ref: np.ndarray, line: np.ndarray, upsample: int = 50) -> float:
    """Sub-pixel offset ``d`` with ``line(t + d) ~ ref(t)`` by upsampled cross-correlation."""
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(
        ref[None, :], line[None, :], upsample_factor=upsample, normalization=None
    )
    return float(-shift[1])


def object_columns(data, *, smooth_px: float = 2.0, fraction: float = 0.01, margin_px: int = 6):
    """The columns of an aligned series where the object projects: those where the mean
    image's column profile (smoothed; background at its 5th percentile) exceeds ``fraction``
    of its peak and three times the profile's pixel-to-pixel noise, widened by ``margin_px``;
    every column when none stands out."""
    arr = np.asarray(data, np.float64)
    raw = arr.mean(axis=0).sum(axis=0)
    step = np.diff(raw)
    noise = 1.4826 * float(np.median(np.abs(step - np.median(step)))) / np.sqrt(2)
    prof = ndimage.gaussian_filter1d(raw, smooth_px)
    prof -= np.percentile(prof, 5)
    if not prof.max() > 3 * noise:
        return np.ones(arr.shape[2], bool)
    cols = prof > max(fraction * prof.max(), 3 * noise)
    return ndimage.binary_dilation(cols, iterations=margin_px)


def common_line_offsets(data, *, iterations: int = 3) -> np.ndarray:
    """Offsets along the tilt axis (rows) from the common line.

    For a single-axis series the projection of every image onto the tilt axis (the sum over
    columns) is the same line: the object projected onto the axis. Each image's line is
    registered to the mean line (updated ``iterations`` times); the offsets have zero mean
    (an overall shift along the axis is the object's position, not an error). The sums run
    over the columns where the object projects (:func:`object_columns`): the others add
    only noise (an aligned Pt series at 5 counts on the brightest column, a particle over a
    fifth of the field: 1.6 px RMS over every column, 0.5 px over the object's).
    """
    arr = np.asarray(data, np.float64)
    lines = arr[:, :, object_columns(arr)].sum(axis=2)
    d = np.zeros(len(lines))
    for _ in range(iterations):
        shifted = np.array(
            [
                ndimage.shift(ln, -di, order=3, mode="constant")
                for ln, di in zip(lines, d, strict=True)
            ]
        )
        ref = shifted.mean(axis=0)
        d = np.array([_shift_1d(ref, ln) for ln in lines])
        d -= d.mean()
    return d


def _axis_lines(arr: np.ndarray, angle_deg: float, n_bins: int) -> np.ndarray:
    """Projection of every image onto a line at ``angle_deg`` (linear binning, 1 px bins)."""
    n, rows, cols = arr.shape
    a = np.deg2rad(angle_deg)
    rr, cc = np.mgrid[0:rows, 0:cols]
    t = (rr - rows // 2) * np.cos(a) + (cc - cols // 2) * np.sin(a) + n_bins // 2
    t0 = np.floor(t).astype(np.int64)
    w1 = t - t0
    ok0 = (t0 >= 0) & (t0 < n_bins)
    ok1 = (t0 + 1 >= 0) & (t0 + 1 < n_bins)
    out = np.empty((n, n_bins))
    for i in range(n):
        img = arr[i]
        out[i] = np.bincount(t0[ok0], weights=(img * (1 - w1))[ok0], minlength=n_bins)[:n_bins]
        out[i] += np.bincount(t0[ok1] + 1, weights=(img * w1)[ok1], minlength=n_bins)[:n_bins]
    return out


def _line_disagreement(arr: np.ndarray, angle_deg: float, n_bins: int) -> float:
    # shot noise is white along the line, the common-line signal is not: smooth before comparing
    lines = ndimage.gaussian_filter1d(_axis_lines(arr, angle_deg, n_bins), 2.0, axis=1)
    # align each line by its centroid before comparing (shifts along the axis are free)
    t = np.arange(n_bins)
    com = (lines * t).sum(axis=1) / lines.sum(axis=1)
    aligned = np.array(
        [
            ndimage.shift(ln, n_bins // 2 - ci, order=1, mode="constant")
            for ln, ci in zip(lines, com, strict=True)
        ]
    )
    mean = aligned.mean(axis=0)
    return float(((aligned - mean) ** 2).sum() / (len(aligned) * (mean**2).sum()))


def estimate_tilt_axis_angle(
    data,
    *,
    search_range_deg: float = 90.0,
    step_deg: float = 1.0,
    tol_deg: float = 0.005,
    margin_px: float | None = 6.0,
    details: bool = False,
):
    """In-plane angle [degrees] of the tilt axis from vertical, by the common-line condition.

    Only along the true tilt axis are the images' projections onto the axis the same line for
    every tilt. The disagreement between the lines is scanned over ``+-search_range_deg``
    (default the whole half circle, -90..90: a horizontal axis is found too) and its minimum
    refined (bounded Brent search). Background-free, roughly centred images work best.

    The estimate is *uncertain* (a warning, and ``details``) when the best minimum is not
    clearly the lowest: another minimum more than 15 degrees away scores within a factor 2 of
    it, the lines disagree nearly as much there as anywhere (featureless or very noisy images),
    or, with a narrower search range, the best lies on its edge or a coarse look outside it
    finds a better axis.

    Returns
    -------
    float, or (float, dict) with ``details``
        The angle; the dict has ``uncertain`` (bool), ``why`` and ``second_best_deg``.
    """
    import warnings

    arr = np.clip(np.asarray(data, np.float64), 0, None)
    # background pixels only add noise to the lines: keep each image's (widened) foreground
    # (Li's: the vacuum-referenced one, which keeps a thick particle's faint rim, moved the
    # axis of two of three 256-px faulted series further from the truth)
    if margin_px is not None:
        arr = arr * projection_masks(arr, smooth_px=2.0, margin_px=margin_px, method="li")
    n_bins = int(np.ceil(np.hypot(*arr.shape[1:]))) + 4
    full = search_range_deg >= 90.0
    hi_end = 90.0 - 1e-9 if full else search_range_deg + 1e-9  # -90 and +90 are one axis
    grid = np.arange(-search_range_deg, hi_end, step_deg)
    scores = np.array([_line_disagreement(arr, a, n_bins) for a in grid])
    k = int(np.argmin(scores))
    if full:  # the scan is circular: bracket across the -90/+90 seam
        lo, hi = grid[k] - step_deg, grid[k] + step_deg
    else:
        lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    res = optimize.minimize_scalar(
        lambda a: _line_disagreement(arr, a, n_bins),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": tol_deg},
    )
    angle = float((res.x + 90.0) % 180.0 - 90.0) if full else float(res.x)
    best = float(min(res.fun, scores[k]))
    dist = np.abs((grid - angle + 90.0) % 180.0 - 90.0)
    far = dist > 15.0
    info = {"uncertain": False, "why": "", "second_best_deg": None}
    if far.any():
        j = int(np.argmin(np.where(far, scores, np.inf)))
        info["second_best_deg"] = float(grid[j])
        if scores[j] < 2.0 * best + 1e-12:
            info.update(
                uncertain=True,
                why=f"another direction ({grid[j]:+.0f} deg) fits the common line almost as well",
            )
    if best > 0.5 * float(np.median(scores)):
        info.update(uncertain=True, why="the images' lines disagree nearly as much everywhere")
    if not full:  # a coarse look outside a narrow range: is the axis elsewhere?
        outside = [a for a in np.arange(-90.0, 90.0, 5.0) if abs(a) > search_range_deg]
        other = [(_line_disagreement(arr, a, n_bins), a) for a in outside]
        if other and min(other)[0] < best:
            info.update(
                uncertain=True,
                why=f"a better axis lies outside +-{search_range_deg:g} deg (near "
                f"{min(other)[1]:+.0f} deg)",
            )
        elif abs(angle) >= search_range_deg - step_deg:
            info.update(
                uncertain=True, why=f"the best angle is at the edge of +-{search_range_deg}"
            )
    if info["uncertain"]:
        warnings.warn(
            f"tilt-axis estimate {angle:+.2f} deg is uncertain: {info['why']}; check it, or "
            "give the tilt axis (--tilt-axis DEG)",
            stacklevel=2,
        )
    return (angle, info) if details else angle


def gauge_free_shift_error(estimated_px, true_px, angles_deg) -> np.ndarray:
    """Per-image shift error ``(n, 2)`` [pixels] after removing what no alignment can know.

    For validation on simulated data: the object's position along the tilt axis (a common row
    offset) and its translation across it (column offsets ``tx cos(theta) + tz sin(theta)``)
    are fitted out of ``estimated - true``.
    """
    d = np.asarray(estimated_px, np.float64) - np.asarray(true_px, np.float64)
    d[:, 0] -= d[:, 0].mean()
    d[:, 1] = split_object_translation(d[:, 1], angles_deg)[0]
    return d
