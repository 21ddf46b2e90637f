"""Validation of an atom model against the measured tilt series: R-factors and residuals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.elements import parse_elements
from ..core.geometry import images_and_angles
from ..core.memory import check_memory
from ..core.progress import report
from ..forward import project_positions, render_projection


@dataclass
class RFactorResult:
    """R-factors between measured images and forward projections of an atom model.

    Attributes
    ----------
    r_per_image : ndarray of shape (n,)
        ``sum |I_meas - s I_calc| / sum |I_meas|`` per image.
    scales : ndarray of shape (n,)
        Least-squares intensity scale ``s`` per image (one shared value when not per image).
    calculated : ndarray of shape (n, rows, cols)
        Scaled forward projections.
    residuals : ndarray of shape (n, rows, cols)
        ``measured - calculated``.
    """

    r_per_image: np.ndarray
    scales: np.ndarray
    calculated: np.ndarray
    residuals: np.ndarray

    @property
    def r_mean(self) -> float:
        return float(np.mean(self.r_per_image))


def _per_atom_elements(element, n: int) -> np.ndarray:
    """One element for every atom (the heaviest of an alloy given as a string) or a per-atom
    array (an alloy's ``element`` feature), checked."""
    if isinstance(element, str):
        return np.full(n, parse_elements(element)[0])
    el = np.asarray(element).astype(str)
    if el.shape != (n,):
        raise ValueError(f"{el.size} elements for {n} atoms: give one per atom, or one symbol")
    known = {s: parse_elements(s)[0] for s in np.unique(el)}
    return np.array([known[s] for s in el])


def r_factor(
    positions_A,
    measured,
    angles_deg,
    *,
    pixel_size_A: float,
    blur_sigma_A: float = 0.45,
    element="Pt",
    per_image_scale: bool = True,
    progress=None,
) -> RFactorResult:
    """R-factor of an atom model against an aligned tilt series.

    Each image is compared with the model's forward projection at its angle: the projected
    potentials of the element (Kirkland parametrization) blurred by a Gaussian of
    ``blur_sigma_A`` (the study: 0.45 A), the convention of docs/conventions.md (rotation centre
    at the image centre). The projections are scaled to the measurement by least squares, per
    image or once for the series; ``R = sum |I_meas - I_calc| / sum |I_meas|``.

    Parameters
    ----------
    positions_A : ndarray of shape (N, 3)
        Atom positions ``(z, y, x)`` [A] in the volume frame of the aligned series.
    measured : ndarray of shape (n, rows, cols)
        Aligned, background-free tilt series.
    angles_deg : array-like of shape (n,)
    """

    meas, ang = images_and_angles(measured, angles_deg, dtype=np.float64)
    pos = np.asarray(positions_A, np.float64).reshape(-1, 3)
    shape = meas.shape[1:]
    if not len(pos):
        raise ValueError("the atom model has no atoms: there is nothing to compare with the images")
    if not np.isfinite(pos).all():
        raise ValueError("some atom positions are NaN or infinite: drop those atoms first")
    if not np.abs(meas).sum() > 0:
        raise ValueError("the measured images are all zero: nothing to compare with")
    outside = len(pos)  # in the image that sees the most of the model (a particle larger
    for a in ang:  # than the field at high tilt is cut by those images, but not by all)
        rc = project_positions(pos, a, shape_px=shape, pixel_size_A=pixel_size_A)
        out = (rc < 0) | (rc > np.array(shape) - 1)
        outside = min(outside, int(out.any(axis=1).sum()))
    if outside > 0.05 * len(pos):
        raise ValueError(
            f"{outside} of {len(pos)} atoms project outside the {shape[0]} x {shape[1]}-pixel "
            f"images at {pixel_size_A:g} A per pixel: the atoms are not in this series' volume "
            "frame (another pixel size, or atoms from another series?)"
        )
    el = _per_atom_elements(element, len(pos))

    check_memory(4 * meas.nbytes, "the forward projections of the R-factor")
    calc = np.empty_like(meas)
    for i, a in enumerate(ang):
        rc = project_positions(pos, a, shape_px=shape, pixel_size_A=pixel_size_A)
        calc[i] = render_projection(
            rc, el, shape_px=shape, pixel_size_A=pixel_size_A, blur_sigma_A=blur_sigma_A
        )
        report(progress, i + 1, len(ang), f"forward projection {i + 1}/{len(ang)}")
    num = (meas * calc).sum(axis=(1, 2))
    den = (calc * calc).sum(axis=(1, 2))
    if per_image_scale:
        scales = np.where(den > 0, num / np.maximum(den, 1e-300), 0.0)
    else:
        scales = np.full(len(ang), num.sum() / max(den.sum(), 1e-300))
    calc *= scales[:, None, None]
    resid = meas - calc
    r = np.abs(resid).sum(axis=(1, 2)) / np.maximum(np.abs(meas).sum(axis=(1, 2)), 1e-300)
    return RFactorResult(r, scales, calc.astype(np.float32), resid.astype(np.float32))


#: An atom whose projection comes within this distance [A] of an image's edge (or lies
#: beyond it) is cut by that image: about two probe widths, where its image is cut off.
FIELD_EDGE_MARGIN_A = 1.0


@dataclass
class FieldCoverage:
    """Where an atom model leaves the images' field (:func:`field_coverage`).

    Attributes
    ----------
    images_outside : ndarray of int, shape (N,)
        For each atom, the number of images whose field it lies outside of (or within
        :data:`FIELD_EDGE_MARGIN_A` of the edge).
    atoms_outside : ndarray of int, shape (n,)
        For each image, the number of atoms it does not fully see.
    """

    images_outside: np.ndarray
    atoms_outside: np.ndarray

    @property
    def n_atoms(self) -> int:
        """Atoms that at least one image does not see."""
        return int(np.count_nonzero(self.images_outside))

    @property
    def images(self) -> np.ndarray:
        """Indices of the images that cut the particle."""
        return np.flatnonzero(self.atoms_outside)

    def note(self, angles_deg) -> str | None:
        """What it means for the user, or None when every image sees every atom."""
        if not self.n_atoms:
            return None
        idx = self.images
        ang = np.sort(np.asarray(angles_deg, float)[idx])
        if len(ang) <= 6:
            tilts = ", ".join(f"{a:+.1f}" for a in ang)
        else:  # the cut images' range on each side of 0
            sides = [ang[ang < 0], ang[ang >= 0]]
            tilts = " and ".join(f"{g[0]:+.1f} to {g[-1]:+.1f}" for g in sides if len(g))
        return (
            f"{self.n_atoms} of {len(self.images_outside)} atoms lie outside the field (or "
            f"within {FIELD_EDGE_MARGIN_A:g} A of its edge) in {len(idx)} of "
            f"{len(self.atoms_outside)} images (tilts {tilts} deg): those images cut the "
            "particle, so the reconstruction lacks what lay beyond "
            "their edges (more of it the further out); atoms there are less certain and some "
            "may be missing. Record a larger field, or centre the particle, so that every "
            "image holds all of it"
        )

    def record(self, angles_deg) -> dict:
        """JSON-ready summary (the validate stage's ``outside_field``)."""
        return {
            "n_atoms": self.n_atoms,
            "margin_A": FIELD_EDGE_MARGIN_A,
            "atoms": [int(i) for i in np.flatnonzero(self.images_outside)],
            "images": [int(i) for i in self.images],
            "angles_deg": [float(np.asarray(angles_deg, float)[i]) for i in self.images],
            "atoms_per_image": [int(v) for v in self.atoms_outside],
        }


def field_coverage(positions_A, angles_deg, *, shape_px, pixel_size_A: float) -> FieldCoverage:
    """Which atoms each image of an aligned series does not fully see: their projection
    (:func:`napari_aet.forward.project_positions`) outside the image or within
    :data:`FIELD_EDGE_MARGIN_A` of its edge. A particle larger than the field at high tilt
    (its extent along the beam grows into the field's width as ``sin(tilt)``) is cut by those
    images; what they did not record is missing from the reconstruction, and nothing in the
    images says so."""
    pos = np.asarray(positions_A, np.float64).reshape(-1, 3)
    ang = np.asarray(angles_deg, np.float64).ravel()
    m = FIELD_EDGE_MARGIN_A / pixel_size_A
    hi = np.asarray(shape_px[:2], np.float64) - 1 - m
    out = np.zeros((len(ang), len(pos)), bool)
    for i, a in enumerate(ang):
        rc = project_positions(pos, a, shape_px=tuple(shape_px[:2]), pixel_size_A=pixel_size_A)
        out[i] = ((rc < m) | (rc > hi)).any(axis=1)
    return FieldCoverage(out.sum(axis=0), out.sum(axis=1))


#: The study's Gaussian broadening of the forward projections [A] (Fig. S8: 0.45 A).
STUDY_BLUR_SIGMA_A = 0.45
#: The blur is searched between these widths [A] ...
BLUR_SEARCH_A = (0.15, 1.2)
#: ... on at most this many images spread over the series (then the R-factor of every image is
#: computed at the width found).
BLUR_SEARCH_IMAGES = 7


def fit_blur_sigma(
    positions_A,
    measured,
    angles_deg,
    *,
    pixel_size_A: float,
    element="Pt",
    per_image_scale: bool = True,
) -> tuple[float, float]:
    """The Gaussian broadening [A] of the forward projections that minimises the mean
    R-factor (the field's B factor, fitted as the Miao group's R-factors do: a microscope's
    probe, vibration and the atoms' thermal motion make its own width; the study's 0.45 A is
    one microscope's), by a bounded scalar search over :data:`BLUR_SEARCH_A` on up to
    :data:`BLUR_SEARCH_IMAGES` images spread over the series.

    Returns ``(sigma_A, r_mean on those images)``.
    """
    from scipy.optimize import minimize_scalar

    meas, ang = images_and_angles(measured, angles_deg, dtype=np.float64)
    pick = np.unique(np.linspace(0, len(ang) - 1, min(BLUR_SEARCH_IMAGES, len(ang))).round())
    pick = pick.astype(int)

    def cost(sigma):
        return r_factor(
            positions_A,
            meas[pick],
            ang[pick],
            pixel_size_A=pixel_size_A,
            blur_sigma_A=float(sigma),
            element=element,
            per_image_scale=per_image_scale,
        ).r_mean

    res = minimize_scalar(cost, bounds=BLUR_SEARCH_A, method="bounded", options={"xatol": 0.002})
    return float(res.x), float(res.fun)
