"""Support estimation from the projections (visual hull of each image's particle)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

#: The particle's pixels: the smoothed image above the vacuum by :data:`LOW_SD` noise
#: deviations, in parts that reach :data:`HIGH_SD` somewhere (hysteresis); the vacuum's level
#: and noise from the image's outer strips (:func:`vacuum`).
LOW_SD, HIGH_SD = 2.0, 6.0


def projection_masks(
    projections: np.ndarray,
    *,
    smooth_px: float = 2.0,
    margin_px: float = 4.0,
    method: str = "union",
) -> np.ndarray:
    """Each image's particle: Li's threshold of the image smoothed by ``smooth_px``
    (:func:`li_foreground`) widened by ``margin_px``, and (``method="union"``, the default)
    every pixel of the vacuum-referenced foreground (:func:`vacuum_foreground`, not widened);
    ``method="li"``: Li's alone.

    Li's threshold is fitted to the whole histogram and rises with the particle's thickness:
    on the 256-px independent series at a third of the counts it cut the faint rim of thick
    particles (444 of the 8,217 atoms of a round icosahedron, 110 of 2,368 of a faulted
    dumbbell outside the hull). The vacuum-referenced foreground keeps them, but widened by the
    same margin (or used alone) its hull let the reconstruction put atom-like density in the
    vacuum over the surface (false atoms: 262 against 91 traced on the dumbbell); the union
    keeps Li's tight shadow where Li sees the particle and adds only what the counts show
    beyond it. Where the strips are not vacuum (a denoised series, a particle that fills the
    field) the union is Li's alone.

    Returns
    -------
    ndarray of bool, shape like ``projections``
    """
    if method not in ("union", "li"):
        raise ValueError(f"method must be 'union' or 'li'; got {method!r}")
    masks = np.empty(np.shape(projections), dtype=bool)
    disk = disk_footprint(margin_px)
    for i, img in enumerate(projections):
        img = np.asarray(img, np.float64)
        m = li_foreground(ndimage.gaussian_filter(img, smooth_px))
        masks[i] = ndimage.binary_dilation(m, structure=disk) if margin_px > 0 else m
        if method == "union":
            fg = vacuum_foreground(img)
            if fg is not None:
                masks[i] |= fg
    return masks


#: The vacuum-referenced foreground's smoothing [px] (the crop's, :mod:`napari_aet.align._crop`).
VACUUM_SMOOTH_PX = 3.0


def vacuum_foreground(image: np.ndarray, *, smooth_px: float = VACUUM_SMOOTH_PX):
    """One image's particle as the counts show it: the pixels of the image smoothed by
    ``smooth_px`` that stand :data:`LOW_SD` noise deviations above the vacuum, in parts that
    reach :data:`HIGH_SD` somewhere (hysteresis), their holes filled; the vacuum's level (a
    plane) and noise from the image's outer strips (:func:`vacuum`). None where the strips
    are not vacuum (a particle that fills the field, a support along an edge, a denoised
    series whose vacuum is flat), the image is under 32 px, or nothing stands out.
    """
    img = np.asarray(image, np.float64)
    if min(img.shape) < 32:
        return None
    found = above_vacuum(img, smooth_px)
    if found is None or found[1] is None or not found[1].any():
        return None
    return ndimage.binary_fill_holes(found[1])


def above_vacuum(image: np.ndarray, smooth_px: float):
    """``(above, foreground)``: the image smoothed by ``smooth_px`` less the vacuum's plane
    (:func:`vacuum`), and its pixels that stand :data:`LOW_SD` noise deviations above it in
    parts that reach :data:`HIGH_SD` (hysteresis; None where the vacuum has no noise). None
    where the strips are not vacuum."""
    from skimage.filters import apply_hysteresis_threshold

    sm = ndimage.gaussian_filter(np.asarray(image, np.float64), smooth_px)
    vac = vacuum(image, sm, smooth_px)
    if vac is None:
        return None
    plane, sd = vac
    above = sm - plane
    if sd <= 0:
        return above, None
    return above, apply_hysteresis_threshold(above, LOW_SD * sd, HIGH_SD * sd)


def li_foreground(smoothed: np.ndarray) -> np.ndarray:
    """Li's foreground of one smoothed image (:func:`projection_masks`, undilated); the whole
    image when it is flat or nothing is above the threshold."""
    from skimage.filters import threshold_li

    if np.ptp(smoothed) <= 0:
        return np.ones(smoothed.shape, bool)
    m = smoothed > threshold_li(smoothed)
    return m if m.any() else np.ones(smoothed.shape, bool)


def disk_footprint(radius_px: float) -> np.ndarray:
    """A disk of ``radius_px`` as a boolean footprint for :func:`scipy.ndimage.binary_dilation`."""
    r = int(np.ceil(radius_px))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy**2 + xx**2) <= radius_px**2


def visual_hull_support(
    projections: np.ndarray,
    row_dirs: np.ndarray,
    col_dirs: np.ndarray,
    volume_shape: tuple[int, int, int],
    *,
    smooth_px: float = 2.0,
    margin_px: float = 4.0,
    masks: np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Voxels whose projection falls inside every image's foreground mask.

    A voxel outside the particle's shadow in any image cannot hold the particle, so this is a
    conservative support; ``margin_px`` widens each shadow so that misalignment of a few pixels
    does not cut atoms. ``masks``: the foregrounds when the caller has them already
    (:func:`projection_masks` of ``projections``); ``smooth_px`` and ``margin_px`` then do
    nothing.

    Returns
    -------
    torch.Tensor of bool, shape ``volume_shape``
    """
    if masks is None:
        masks = projection_masks(projections, smooth_px=smooth_px, margin_px=margin_px)
    masks = torch.as_tensor(masks, device=device)
    nz, ny, nx = volume_shape
    rows, cols = projections.shape[1:]
    # a False border lets out-of-image coordinates be clamped onto it instead of masked
    padded = torch.zeros((len(masks), rows + 2, cols + 2), dtype=torch.bool, device=device)
    padded[:, 1:-1, 1:-1] = masks
    flat_masks = padded.reshape(len(masks), -1)
    z = torch.arange(nz, device=device, dtype=torch.float32) - nz // 2
    y = torch.arange(ny, device=device, dtype=torch.float32) - ny // 2
    x = torch.arange(nx, device=device, dtype=torch.float32) - nx // 2
    support = torch.ones(volume_shape, dtype=torch.bool, device=device)
    for i in range(len(masks)):
        rd = [float(v) for v in row_dirs[i]]
        cd = [float(v) for v in col_dirs[i]]
        if rd[0] == rd[2] == 0.0 and cd[1] == 0.0:
            # a tilt about the image rows' axis (every single-axis series): the row depends on
            # y alone and the column on (z, x) alone, so the image's mask is read once per
            # (y, z, x) without three volumes of coordinates (the same values: the general
            # path's arithmetic with the zero terms left out)
            ri = torch.round(y * rd[1] + (rows // 2 + 1)).clamp_(0, rows + 1).long()
            c = z[:, None] * cd[0] + (x[None, :] * cd[2] + (cols // 2 + 1))
            ci = torch.round(c).clamp_(0, cols + 1).long()
            support &= padded[i][ri][:, ci].permute(1, 0, 2)
            continue
        r = (z[:, None, None] * rd[0] + y[None, :, None] * rd[1]) + (
            x[None, None, :] * rd[2] + (rows // 2 + 1)
        )
        ri = torch.round(r).clamp_(0, rows + 1).to(torch.int32)
        del r
        c = (z[:, None, None] * cd[0] + y[None, :, None] * cd[1]) + (
            x[None, None, :] * cd[2] + (cols // 2 + 1)
        )
        ci = torch.round(c).clamp_(0, cols + 1).to(torch.int32)
        del c
        flat = (ri * (cols + 2)).add_(ci)
        support &= flat_masks[i][flat.long()]
        del ri, ci, flat
    return support


def vacuum(image: np.ndarray, sm: np.ndarray, smooth_px: float):
    """The vacuum under a smoothed image ``sm`` of ``image``: a plane fitted to its outer
    strips (a twentieth of each side, at least 8 px; a tilted background is a plane), and the
    noise of ``sm`` about it: the raw strips' pixel-to-pixel differences (MAD, or their
    standard deviation where most are 0, as in sparse counts; the noisiest strip's), over
    ``2 sqrt(pi) smooth_px``, what Gaussian smoothing leaves of white noise. The plane is
    fitted again without the strip pixels more than 3 noise deviations off it. Returns
    ``(plane, noise)``, where the strips are all one value the noise 1 % of the image's height
    above the plane (0 for a flat image); None when one strip's median then
    stands more than 3 noise deviations off the plane: something bright covers most of it (a
    support's edge, a particle that fills the field), and the plane is not the vacuum's."""
    rows, cols = sm.shape
    w0, w1 = max(8, rows // 20), max(8, cols // 20)
    strips = [(slice(0, w0), slice(None)), (slice(rows - w0, rows), slice(None)),
              (slice(None), slice(0, w1)), (slice(None), slice(cols - w1, cols))]  # fmt: skip
    raw_sd = 0.0
    for s in strips:  # the noisiest strip's (counting noise grows with a tilted background)
        d = np.diff(np.asarray(image[s], np.float64), axis=1).ravel()
        mad = 1.4826 * float(np.median(np.abs(d)))
        raw_sd = max(raw_sd, (mad if mad > 0 else float(d.std())) / np.sqrt(2))
    sd = raw_sd / (2 * np.sqrt(np.pi) * smooth_px)
    rr = ((np.arange(rows) - rows / 2) / rows)[:, None]  # broadcast, not two full grids
    cc = ((np.arange(cols) - cols / 2) / cols)[None, :]
    rr_full, cc_full = np.broadcast_arrays(rr, cc)
    a = np.concatenate([np.stack([np.ones(sm[s].size), rr_full[s].ravel(), cc_full[s].ravel()], 1)
                        for s in strips])  # fmt: skip
    b = np.concatenate([sm[s].ravel() for s in strips])
    keep = np.ones(b.size, bool)
    for _ in range(2):
        coef = np.linalg.lstsq(a[keep][::3], b[keep][::3], rcond=None)[0]
        res = b - a @ coef
        if sd > 0:
            keep = np.abs(res) <= 3 * sd
            if keep.sum() < 0.2 * b.size:  # most of the strips are not vacuum
                return None
    plane = coef[0] + coef[1] * rr + coef[2] * cc
    if sd <= 0:  # vacuum of exactly one value (no noise, or zero counts): 1 % of the height
        return plane, 0.01 * max(float((sm - plane).max()), 0.0)
    # noise correlated between neighbouring pixels (a series resampled before it arrives, or
    # frames registered and added) passes smoothing more than white noise does, and its pixel
    # differences are smaller: the smoothed strips' own spread about the plane, where larger
    smoothed_sd = 1.4826 * float(np.median(np.abs(res[keep])))
    sd = max(sd, smoothed_sd)
    start = 0
    for s in strips:
        n = sm[s].size
        if abs(float(np.median(res[start : start + n]))) > 3 * sd:
            return None
        start += n
    return plane, sd
