"""Which of a denoised fit's long moves the counts undo: an atom that a fit to a denoised
series moved far from where the tracer put it goes back when the counts' own residual says
the traced position explains them better (:func:`counts_prefer_origin`).

A patch-based denoiser (BM3D) can paint a region of a crystal on the wrong lattice sites
where the crystal changes (a stacking fault, two twisted halves meeting); the position fit to
that series then pulls the atoms there, by the stacking shift, a distance no noise moves them.
The counts do not carry the painted lattice, and one atom's move between two positions is
cheap to judge on them: to first order in the residual, with the exact overlap of the atom's
image at the two places (docs/methods.md, "Moves the counts undo").
"""

from __future__ import annotations

import numpy as np

from ..forward import project_positions

#: Only atoms that the fit moved further than this from their traced positions are judged
#: [A]: a fit's ordinary corrections (tens of picometres) are left alone; the denoiser's
#: painted lattice moves atoms by a stacking shift (1.6 A in Pt).
MIN_MOVE_A = 0.5


def move_scores(residual_images, angles_deg, offsets_px, image_sigma_A, atom_intensity,
                start_A, end_A, *, pixel_size_A: float) -> np.ndarray:  # fmt: skip
    """How much each atom's move from ``start_A`` to ``end_A`` lowers the squared residual,
    in units of what a moved atom gains when it leaves a place with nothing for one with a
    whole missing atom (> 0: the images prefer ``end``; 1: that case).

    The atom's image in image ``i`` is a Gaussian of width ``s`` (``image_sigma_A[i]``, in
    pixels) and peak ``a`` holding ``atom_intensity[i, j] = 2 pi s^2 a``. With ``S`` the
    residual smoothed by that Gaussian (a matched filter) and ``p``, ``q`` the atom's
    projected positions, the move changes image ``i``'s squared residual by
    ``2 pi s^2 a^2 [(1 - exp(-d^2 / 4 s^2)) - 2 (S(q) - S(p)) / a]`` (``d = |p - q|``): exact
    for that image model given the residual, the atom's overlap with itself included, its
    neighbours' through the residual. Returns ``(n,)``: the images' sum of minus the change,
    over the sum of ``2 pi s^2 a^2``.
    """
    from scipy import ndimage

    res = np.asarray(residual_images, np.float64)
    n_img, rows, cols = res.shape
    start = np.asarray(start_A, float).reshape(-1, 3)
    end = np.asarray(end_A, float).reshape(-1, 3)
    inten = np.asarray(atom_intensity, float).reshape(n_img, -1)
    gain = np.zeros(len(start))
    scale = np.zeros(len(start))
    for i in range(n_img):
        s = max(float(image_sigma_A[i]) / pixel_size_A, 1e-3)
        smooth = ndimage.gaussian_filter(res[i], s)  # unit-integral kernel: (r * g) / 2 pi s^2
        kw = dict(shape_px=(rows, cols), pixel_size_A=pixel_size_A, shift_px=offsets_px[i])
        p = project_positions(start, float(angles_deg[i]), **kw)
        q = project_positions(end, float(angles_deg[i]), **kw)
        peak = np.maximum(inten[i] / (2.0 * np.pi * s * s), 1e-30)
        d_smooth = ndimage.map_coordinates(smooth, q.T, order=1) - ndimage.map_coordinates(
            smooth, p.T, order=1
        )
        overlap = 1.0 - np.exp(-np.sum((p - q) ** 2, axis=1) / (4.0 * s * s))
        w = peak**2 * s * s
        gain += w * (2.0 * d_smooth / peak - overlap)
        scale += w
    return gain / np.maximum(scale, 1e-30)


def traced_starts(origin_A, features) -> np.ndarray:
    """``origin_A`` (where each atom started) with NaN rows for the atoms a refinement pass
    added (``features["refine_added"]``): their start is a trial's place, not the tracer's,
    and their moves are never judged (:func:`far_moves`)."""
    start = np.asarray(origin_A, float).copy()
    if "refine_added" in features:
        start[features["refine_added"].to_numpy(np.int8) != 0] = np.nan
    return start


def far_moves(positions_A, origin_A, min_move_A: float = MIN_MOVE_A) -> np.ndarray:
    """Indices of the atoms more than ``min_move_A`` from their ``origin_A`` (NaN rows, atoms
    without an origin, never)."""
    moved = np.linalg.norm(np.asarray(positions_A, float) - np.asarray(origin_A, float), axis=1)
    return np.nonzero(np.isfinite(moved) & (moved > min_move_A))[0]


def atom_image_terms(fit) -> tuple[np.ndarray, np.ndarray]:
    """``(intensity (n_images, n_atoms), sigma_A (n_images,))`` of ``fit`` (a
    :class:`~napari_aet.forward.ModelRefinementResult` with its model images): each image's
    share of the atoms' summed image split by their fitted amplitudes, and each image's atom
    width (the one width when the fit had no width per image)."""
    model = np.asarray(fit.model_images, np.float64)
    amp = np.asarray(fit.amplitudes, float)
    total = (model - np.asarray(fit.image_offset, float)[:, None, None]).sum(axis=(1, 2))
    inten = total[:, None] * amp[None, :] / max(float(amp.sum()), 1e-30)
    sigma = fit.image_sigma_A if fit.image_sigma_A is not None else [fit.sigma_A] * len(model)
    return inten, np.asarray(sigma, float)


def counts_prefer_origin(fit, counts, origin_A, *, pixel_size_A: float,
                         min_move_A: float = MIN_MOVE_A) -> tuple[np.ndarray, dict]:  # fmt: skip
    """Which of ``fit``'s atoms (a :class:`~napari_aet.forward.ModelRefinementResult` on the
    ``counts``, its model images returned, positions held where a denoised fit put them) the
    counts would rather have at ``origin_A`` (their traced positions; NaN rows for atoms
    without one): moved further than ``min_move_A`` and :func:`move_scores` of the way back
    above 0. Returns the mask and a record."""
    pos = np.asarray(fit.positions_A, float)
    origin = np.asarray(origin_A, float)
    far = far_moves(pos, origin, min_move_A)
    record = {"min_move_A": min_move_A, "n_judged": int(len(far)), "n_back": 0}
    mask = np.zeros(len(pos), bool)
    if not len(far) or fit.model_images is None:
        return mask, record
    inten, sigma = atom_image_terms(fit)
    residual = np.asarray(counts, np.float64) - np.asarray(fit.model_images, np.float64)
    score = move_scores(
        residual, fit.angles_deg, fit.offsets_px, sigma, inten[:, far], pos[far], origin[far],
        pixel_size_A=pixel_size_A,
    )  # fmt: skip
    mask[far[score > 0]] = True
    record["n_back"] = int(mask.sum())
    return mask, record
