"""Cropping a tilt series to its particle before alignment.

A microscope records far more field than the particle: a 40-A Pt particle at 0.358 A per pixel
spans about 110 pixels of a 1,024-pixel image. GENFIRE reconstructs a cube of the image's side,
oversampled twice in Fourier space, in every projection-matching round and in the recon stage:
about 3.8 GB for 256-pixel images, 30 GB for 512 and 180 GB for 1,024 (61 images). Each image is
therefore cut, at whole pixels (no resampling), to one square box around the particle's centre
in that image (so that drift of tens of pixels stays inside), wide enough for the particle's
largest extent in any image, turned any way, with a margin of vacuum for the background fit and
the noise model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..recon._support import above_vacuum, disk_footprint

#: The box's margin beyond the particle's largest extent from its centre (in any image): this
#: fraction of that extent plus :data:`CROP_MARGIN_PX` pixels, on every side. The vacuum it
#: keeps carries the background plane and the noise model.
CROP_MARGIN_FRACTION = 0.25
CROP_MARGIN_PX = 24
#: ``"auto"`` crops only when the box is at most this fraction of the images' shorter side
#: (a particle that fills the field is left as it is).
CROP_MAX_FRACTION = 0.75
#: Box sides are multiples of this (FFT sizes with small factors).
CROP_MULTIPLE = 8


@dataclass(frozen=True)
class ParticleCrop:
    """One square box per image around the particle.

    Attributes
    ----------
    box_px : int
        Side of the square box [pixels].
    image_shape : tuple of int
        ``(rows, cols)`` of the images it was measured on.
    corners_px : ndarray of int, shape (n, 2)
        Row and column of each box's first pixel in its image.
    extent_px : float
        The particle's largest distance from its centre in any image [pixels].
    """

    box_px: int
    image_shape: tuple[int, int]
    corners_px: np.ndarray
    extent_px: float

    def apply(self, images: np.ndarray) -> np.ndarray:
        """The boxes cut out of ``images`` (same count and shape as measured on)."""
        arr = np.asarray(images)
        if arr.shape[1:] != tuple(self.image_shape) or len(arr) != len(self.corners_px):
            raise ValueError(
                f"images of shape {arr.shape} do not match the crop's {len(self.corners_px)} "
                f"images of {self.image_shape}"
            )
        b = self.box_px
        return np.stack([arr[i, r : r + b, c : c + b] for i, (r, c) in enumerate(self.corners_px)])

    def record(self) -> dict:
        """JSON-ready description (``alignment.json``'s ``crop``)."""
        return {
            "applied": True,
            "box_px": int(self.box_px),
            "image_shape": [int(v) for v in self.image_shape],
            "particle_extent_px": round(float(self.extent_px), 1),
            "corners_px_row_col": self.corners_px.astype(int).tolist(),
            "note": "each image was cut to this box (whole pixels) before alignment; shifts are "
            "in the box's pixels, and an image's box starts at its corner in the file",
        }


#: Foreground parts closer than twice this [px] are one object (a dumbbell's lobes that a
#: low-count image's threshold splits at the neck).
JOIN_PX = 4.0
#: Other foreground objects with at least this fraction of the particle's signal may not
#: reach across the box's edge: the box widens to hold them, or the images stay whole.
OTHER_OBJECT_FRACTION = 0.02


def _objects(image: np.ndarray, smooth_px: float):
    """The foreground objects of one image, most signal first (at most 50): ``(signal, rows,
    cols, weights)`` each, the weights each pixel's smoothed signal above the vacuum; None
    when nothing stands out, ``"strips"`` when the vacuum cannot be measured
    (:func:`~napari_aet.recon._support.vacuum`)."""
    found = above_vacuum(image, smooth_px)
    if found is None:
        return "strips"
    sm, fg = found
    if fg is None or not fg.any():
        return None
    joined = ndimage.binary_dilation(fg, structure=disk_footprint(JOIN_PX))
    labels, n = ndimage.label(joined)
    labels[~fg] = 0  # the objects' own pixels, grouped by the joined parts
    signal = ndimage.sum_labels(sm, labels, index=np.arange(1, n + 1))
    out = []
    for k in np.argsort(-signal)[:50] + 1:
        rows, cols = np.nonzero(labels == k)
        if rows.size:
            w = np.clip(sm[rows, cols], 0, None)
            out.append((float(signal[k - 1]), rows, cols, w))
    return out or None


def _extent(rows, cols, centre) -> float:
    return float(np.sqrt(((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2).max()))


def particle_crop(
    images: np.ndarray,
    *,
    box_px: int | None = None,
    per_image: bool = True,
    smooth_px: float = 3.0,
    margin_fraction: float = CROP_MARGIN_FRACTION,
    margin_px: float = CROP_MARGIN_PX,
    max_fraction: float = CROP_MAX_FRACTION,
) -> tuple[ParticleCrop | None, str]:
    """Find the particle in every image and the square box that holds it in all of them.

    Each image is smoothed by ``smooth_px``; the vacuum (a plane) and its noise come from its
    outer strips, and its foreground is what stands 2 noise deviations above the vacuum in parts
    that reach 6 (:func:`~napari_aet.recon._support.above_vacuum`; hysteresis: a threshold
    fitted to the whole histogram, as Li's, falls into the noise when the particle is a
    hundredth of the field). The particle is the object (parts closer than ``2 JOIN_PX``
    joined) that holds the most signal; the box is centred on its intensity-weighted centre,
    where the particle's centre of mass projects. Its side is twice the largest distance of
    the particle's pixels from that centre in any image, widened by the margin (so that the
    particle turned by the tilt axis's angle still fits), rounded up to a multiple of
    :data:`CROP_MULTIPLE`. A box that reaches past an image's edge is moved inside. The
    images stay whole, with the reason, when an image has no foreground, when its outer
    strips are not vacuum, when the particle touches an image's edge, when its area differs
    more than 2.5x between images (another object), or when ``auto``'s box exceeds
    ``max_fraction`` of the images.

    Parameters
    ----------
    images : ndarray of shape (n, rows, cols)
        The raw tilt series (counts or a detector's units, particle brighter than the vacuum).
    box_px : int, optional
        Use this side instead of measuring it (e.g. the first series' box for a second axis).
    per_image : bool
        One box per image, centred on the particle there (for a series that is registered
        afterwards); False: one box for all, around the centres' mean (a series that arrives
        aligned keeps its registration).

    Returns
    -------
    crop : ParticleCrop or None
        None when the images are not cropped.
    why : str
        Why not, or what was found.
    """
    arr = np.asarray(images)
    n, rows, cols = arr.shape
    found = [_objects(img, smooth_px) for img in arr]
    filled = [i for i, f in enumerate(found) if isinstance(f, str)]
    if filled:
        return None, (
            f"the images' outer strips are not vacuum (image(s) {filled[:5]}: the particle "
            "fills the field): not cropped"
        )
    missing = [i for i, f in enumerate(found) if f is None]
    if missing:
        return None, f"no particle stands out in image(s) {missing[:5]}: not cropped"
    mains = [f[0] for f in found]  # each image's particle: the object with the most signal
    edge = [i for i, (_, r, c, _w) in enumerate(mains)
            if r.min() < 2 or c.min() < 2 or r.max() > rows - 3 or c.max() > cols - 3]  # fmt: skip
    if edge:
        return None, f"the particle reaches the edge of image(s) {edge[:5]}: not cropped"
    centres = np.array([[np.average(r, weights=w), np.average(c, weights=w)]
                        for _, r, c, w in mains])  # fmt: skip
    areas = np.array([m[1].size for m in mains], float)
    med = float(np.median(areas))
    odd = np.nonzero((areas > 2.5 * med) | (areas < med / 2.5))[0]
    if odd.size:
        # the same particle projects to a similar area at every tilt; an object far from
        # that is something else (a neighbour, the support's edge, a gradient)
        return None, (
            f"the particle's outline differs between images (image(s) {odd[:5].tolist()}: "
            f"{areas[odd[0]]:.0f} px against a median of {med:.0f}): not cropped"
        )
    if not per_image:
        centres = np.broadcast_to(centres.mean(axis=0), centres.shape)
    extents = np.array([_extent(m[1], m[2], c) for m, c in zip(mains, centres, strict=True)])

    def side_for(extent: float) -> int:
        side = 2 * (extent * (1 + margin_fraction) + margin_px)
        return int(np.ceil(side / CROP_MULTIPLE) * CROP_MULTIPLE)

    extent = float(extents.max())
    side = side_for(extent) if box_px is None else int(box_px)
    for _ in range(3):
        # another object that reaches across the box's edge would be cut: widen the box to it
        reach = extent
        for objs, c in zip(found, centres, strict=True):
            for sig, r, cc, _w in objs[1:]:
                if sig < OTHER_OBJECT_FRACTION * objs[0][0]:
                    break
                d = np.maximum(np.abs(r - c[0]), np.abs(cc - c[1]))  # the box is a square
                if (d < side / 2).any() and (d >= side / 2 - 1).any():
                    reach = max(reach, _extent(r, cc, c))
        if reach <= extent or box_px is not None:
            break
        extent = reach
        side = side_for(extent)
    else:
        return None, "objects beside the particle reach across every box tried: not cropped"
    if box_px is None:
        if side > max_fraction * min(rows, cols):
            return None, (
                f"the particle and its margin need {side} px of the {rows} x {cols} images: "
                "not cropped"
            )
    elif side > min(rows, cols):
        return None, f"a box of {side} px does not fit the {rows} x {cols} images"
    corners = np.empty((n, 2), int)
    corners[:, 0] = np.clip(np.rint(centres[:, 0]).astype(int) - side // 2, 0, rows - side)
    corners[:, 1] = np.clip(np.rint(centres[:, 1]).astype(int) - side // 2, 0, cols - side)
    crop = ParticleCrop(side, (rows, cols), corners, extent)
    return crop, (
        f"cropped the {rows} x {cols} images to {side} x {side} px around the particle "
        f"(largest extent {extent:.0f} px from its centre; centres moved up to "
        f"{np.ptp(centres, axis=0).max():.0f} px between images)"
    )
