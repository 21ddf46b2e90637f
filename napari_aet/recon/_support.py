"""Support estimation from the projections (visual hull of thresholded images)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage


def projection_masks(
    projections: np.ndarray, *, smooth_px: float = 2.0, margin_px: float = 4.0
) -> np.ndarray:
    """Foreground mask of each image: Li threshold of a smoothed image, dilated by a margin.

    Li's minimum cross-entropy threshold keeps the dim, thin edges of a particle that Otsu's
    cuts (on the simulated nanodumbbell: 99.99 % of atom centres inside, against 95 %).
    """
    masks = np.empty(projections.shape, dtype=bool)
    disk = disk_footprint(margin_px)
    for i, img in enumerate(projections):
        m = li_foreground(ndimage.gaussian_filter(np.asarray(img, np.float64), smooth_px))
        masks[i] = ndimage.binary_dilation(m, structure=disk) if margin_px > 0 else m
    return masks


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
