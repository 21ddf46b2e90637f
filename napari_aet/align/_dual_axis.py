"""Dual-axis tilt series: the second series' in-plane turn relative to the first, and the
joint geometry GENFIRE reconstructs from.

For a dual-axis acquisition the specimen is turned in its plane (by about 90 degrees) between
two single-axis series. Each series is aligned on its own (its tilt axis vertical); the second
one's object is then the first one's turned by ``delta`` about the beam, so its image at tilt
``theta`` has the Euler angles ``(0, theta, delta)`` of :func:`napari_aet.recon.projection_axes`
(``R = Ry(theta) Rz(delta)``). ``delta`` is measured from the two untilted images: every turn
in 2-degree steps is tried on blurred copies (the particle's outline; the lattice alone would
tie turns related by its symmetry), each after the shift that phase correlation gives, then
0.2-degree steps on the full images around the best.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ._reproject import reproject
from ._tomogram_matching import _ncc

#: The untilted images must be within this many degrees of 0 for the in-plane registration.
MAX_REFERENCE_TILT_DEG = 10.0


@dataclass
class DualAxisRegistration:
    """How the second series sits relative to the first.

    Attributes
    ----------
    rotation_deg : float
        ``delta``: the second object is the first turned by this angle about the beam.
    shift_px : tuple of float
        Residual (row, col) offset of the second untilted image after the turn (both series
        should be centred on the same point; a large one is reported, not applied).
    correlation : float
        Normalised correlation of the untilted images after the turn and shift (1 = equal).
    reference_angles_deg : tuple of float
        The tilts of the two images compared.
    candidates_deg : list of float
        Other turns the untilted images allow (their outlines' symmetry), for
        :func:`refine_second_axis_turn` to decide among.
    """

    rotation_deg: float
    shift_px: tuple[float, float]
    correlation: float
    reference_angles_deg: tuple[float, float]
    candidates_deg: list[float] = field(default_factory=list)


def _turn(image: np.ndarray, delta_deg: float) -> np.ndarray:
    """``image`` of the turned object sampled back on the first object's grid: output pixel
    ``(y, x)`` (centred) takes the value at ``(x sin d + y cos d, x cos d - y sin d)``."""
    rows, cols = image.shape
    y, x = np.mgrid[0:rows, 0:cols].astype(float)
    y -= rows // 2
    x -= cols // 2
    d = np.deg2rad(delta_deg)
    ys = x * np.sin(d) + y * np.cos(d) + rows // 2
    xs = x * np.cos(d) - y * np.sin(d) + cols // 2
    return ndimage.map_coordinates(image, [ys, xs], order=1, mode="constant", cval=0.0)


def register_second_axis(
    images_a, angles_a, images_b, angles_b, *, rotation_deg: float | None = None
) -> DualAxisRegistration:
    """Measure the in-plane turn of a second tilt series relative to the first from their
    untilted images (each series aligned on its own first: tilt axis vertical, centred).

    ``rotation_deg`` skips the search (a turn known from the holder) and only measures the
    residual shift and correlation.
    """
    from skimage.registration import phase_cross_correlation

    ia = int(np.argmin(np.abs(angles_a)))
    ib = int(np.argmin(np.abs(angles_b)))
    a0 = np.asarray(images_a[ia], float)
    b0 = np.asarray(images_b[ib], float)
    if a0.shape != b0.shape:
        raise ValueError(
            f"the two series' images differ in size ({a0.shape} and {b0.shape}); crop or pad "
            "them to one size (and one pixel size) first"
        )
    far = max(abs(float(angles_a[ia])), abs(float(angles_b[ib])))
    if rotation_deg is None and far > MAX_REFERENCE_TILT_DEG:
        raise ValueError(
            f"the series' images nearest 0 deg are at {angles_a[ia]:g} and {angles_b[ib]:g} "
            f"deg: the in-plane turn is measured between untilted views (within "
            f"{MAX_REFERENCE_TILT_DEG:g} deg); give the turn (--second-axis-rotation)"
        )

    def score(a, b, d, upsample):
        turned = _turn(b, d)
        shift, _, _ = phase_cross_correlation(a, turned, upsample_factor=upsample)
        return _ncc(a, ndimage.shift(turned, shift, order=1, mode="constant")), d, shift

    candidates: list[float] = []
    if rotation_deg is None:
        # the particle's outline first (a blurred view: the lattice's own symmetry would tie
        # turns that differ by its symmetry), then the full images around the best turn
        blur = max(1.0, 0.03 * min(a0.shape))
        ga, gb = ndimage.gaussian_filter(a0, blur), ndimage.gaussian_filter(b0, blur)
        grid = np.arange(0.0, 360.0, 2.0)
        coarse = np.array([score(ga, gb, d, 1)[0] for d in grid])
        peaks = np.nonzero((coarse >= np.roll(coarse, 1)) & (coarse >= np.roll(coarse, -1)))[0]
        peaks = peaks[np.argsort(-coarse[peaks])][:4]
        candidates = [float(grid[k]) for k in peaks]
        # an outline can look alike turned by 180 degrees: keep both for the tomogram to decide
        candidates += [(c + 180.0) % 360.0 for c in candidates]
        candidates = list(dict.fromkeys(candidates))
        fa, fb = ndimage.gaussian_filter(a0, 1.0), ndimage.gaussian_filter(b0, 1.0)
        fine = [
            score(fa, fb, d, 10)
            for d in np.arange(candidates[0] - 3.0, candidates[0] + 3.001, 0.25)
        ]
        c = np.array([t[0] for t in fine])
        k = int(np.clip(np.argmax(c), 1, len(c) - 2))
        den = c[k - 1] - 2 * c[k] + c[k + 1]
        step = 0.5 * (c[k - 1] - c[k + 1]) / den if den < 0 else 0.0
        best = fine[k][1] + 0.25 * float(np.clip(step, -1, 1))
        results = [score(a0, b0, best, 10)]
    else:
        results = [score(a0, b0, float(rotation_deg), 10)]
    corr, d, shift = max(results, key=lambda t: t[0])
    d = (d + 180.0) % 360.0 - 180.0
    return DualAxisRegistration(
        rotation_deg=float(d),
        shift_px=(float(shift[0]), float(shift[1])),
        correlation=float(corr),
        reference_angles_deg=(float(angles_a[ia]), float(angles_b[ib])),
        candidates_deg=[(c + 180.0) % 360.0 - 180.0 for c in candidates],
    )


def dual_axis_euler(angles_a, angles_b, rotation_deg: float) -> np.ndarray:
    """Euler angles ``(phi, theta, psi)`` [deg] of the joined series: ``(0, theta, 0)`` for
    the first, ``(0, theta, delta)`` for the second."""
    a = np.asarray(angles_a, float).ravel()
    b = np.asarray(angles_b, float).ravel()
    first = np.column_stack([np.zeros_like(a), a, np.zeros_like(a)])
    second = np.column_stack([np.zeros_like(b), b, np.full_like(b, float(rotation_deg))])
    return np.vstack([first, second])


def _turn_score(vol, imgs, angles_b, d) -> float:
    """Mean correlation of the second series' images with the first tomogram turned by ``d``
    about the beam (``V_B(p) = V_A(R(-d) p)``) and reprojected at their tilts."""
    turned = np.stack([_turn(s, -d) for s in vol]).astype(np.float32)
    proj = reproject(turned, angles_b, image_shape=imgs.shape[1:])
    # a 1-pixel blur on both sides: the turn's own interpolation blur (none at multiples of
    # 90 degrees, most half-way) would otherwise favour some turns
    proj = ndimage.gaussian_filter(proj, (0, 1.0, 1.0))
    return float(np.mean([_ncc(p, m) for p, m in zip(proj, imgs, strict=True)]))


def _parabola_peak(trials, scores, step) -> float:
    c = np.asarray(scores)
    k = int(np.clip(np.argmax(c), 1, len(c) - 2))
    den = c[k - 1] - 2 * c[k] + c[k + 1]
    frac = 0.5 * (c[k - 1] - c[k + 1]) / den if den < 0 else 0.0
    return float(trials[k] + step * np.clip(frac, -1.0, 1.0))


def refine_second_axis_turn(
    volume_a,
    images_b,
    angles_b,
    rotation_deg: float,
    *,
    candidates=(),
) -> tuple[float, float]:
    """Decide and refine the turn against every image of the second series.

    The first series' tomogram, turned by a trial ``delta`` about the beam and reprojected at
    the second series' tilts, is compared with its images (mean normalised correlation).
    ``rotation_deg`` and the ``candidates`` (other turns the untilted images allow) are
    scored, then the best is refined in 0.5-degree steps over +-2 degrees and 0.1-degree steps
    over +-0.4, each time through a parabola at the best step. Returns
    ``(delta, correlation)``.
    """
    vol = np.asarray(volume_a, np.float32)
    imgs = ndimage.gaussian_filter(np.asarray(images_b, float), (0, 1.0, 1.0))
    if imgs.shape[1:] != vol.shape[1:]:
        raise ValueError(
            f"the second series' images {imgs.shape[1:]} do not match the tomogram's (y, x) "
            f"{vol.shape[1:]}"
        )
    starts = list(dict.fromkeys([float(rotation_deg), *map(float, candidates)]))
    best = max(starts, key=lambda d: _turn_score(vol, imgs, angles_b, d))
    for span, step in ((2.0, 0.5), (0.4, 0.1)):
        trials = best + np.arange(-span, span + 1e-9, step)
        scores = [_turn_score(vol, imgs, angles_b, d) for d in trials]
        best = _parabola_peak(trials, scores, step)
    best = (best + 180.0) % 360.0 - 180.0
    return best, _turn_score(vol, imgs, angles_b, best)
