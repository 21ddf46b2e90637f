"""Trial atoms for the refine stage's verdicts: the tracer's rejected candidates worth a try,
and peaks of a tomogram of the residual images where the refined model lacks density. The
images then decide which join (:func:`napari_aet.trace.refine_atom_positions`)."""

from __future__ import annotations

import numpy as np

from ..core.atoms import AtomModel
from ._tracer import _greedy_min_distance

#: Candidates fainter than this fraction of the tracer's threshold are not tried.
TRY_FRACTION = 0.4
#: Trial atoms (candidates, residual peaks) stand at least this many nearest-neighbour
#: distances from every atom and from each other.
TRIAL_SPACING = 0.7
#: The residual pass tries the peaks of a tomogram of the residual images (measured minus the
#: refined model) that stand this many robust standard deviations above its voxels around the
#: particle: missed atoms that the tracer never proposed (merged with a neighbour, or lost in
#: a thick particle's noise) ...
RESIDUAL_SIGMAS = 4.0
#: ... reconstructed with this many GENFIRE iterations ...
RESIDUAL_ITERATIONS = 30
#: ... at most this fraction of the atoms per pass (the brightest first) ...
RESIDUAL_MAX_FRACTION = 0.2


def residual_trials(
    residual_images,
    angles_deg,
    positions_A,
    *,
    pixel_size_A: float,
    device: str = "auto",
    cancel=None,
) -> tuple[np.ndarray, dict]:
    """Where the images show density the atom model lacks: trial atom positions [A].

    The residual images (measured minus the refined model's images) are reconstructed with
    GENFIRE (positivity keeps what is missing, not what is too much), smoothed by 0.3 A, and
    its local maxima that lie next to the particle (within 1.2 nearest-neighbour distances of
    an atom), farther than :data:`TRIAL_SPACING` nearest-neighbour distances from every atom
    and from each other, and :data:`RESIDUAL_SIGMAS` robust standard deviations above the residual
    tomogram's voxels around the particle are returned, brightest first, at most
    :data:`RESIDUAL_MAX_FRACTION` of the atoms. They are trials: the images then decide
    (:func:`refine_atom_positions`).
    """
    from scipy import ndimage
    from scipy.spatial import cKDTree

    from ..recon import genfire

    pos = np.asarray(positions_A, float).reshape(-1, 3)
    info = {"sigmas": RESIDUAL_SIGMAS, "iterations": RESIDUAL_ITERATIONS, "n_peaks": 0}
    if len(pos) < 4:
        return np.empty((0, 3)), info
    d_nn = float(np.median(cKDTree(pos).query(pos, k=2)[0][:, 1]))
    vol = genfire(
        np.asarray(residual_images, np.float32), angles_deg, iterations=RESIDUAL_ITERATIONS,
        support="box", positivity=True, rfree_fraction=0.0, device=device, cancel=cancel,
    ).volume  # fmt: skip
    px = float(pixel_size_A)
    vol = ndimage.gaussian_filter(np.asarray(vol, np.float32), 0.3 / px)
    # the particle's neighbourhood: voxels within 1.2 nearest-neighbour distances of an atom
    near = np.zeros(vol.shape, bool)
    idx = np.clip(np.round(pos / px).astype(int), 0, np.array(vol.shape) - 1)
    near[tuple(idx.T)] = True
    near = ndimage.distance_transform_edt(~near) * px <= 1.2 * d_nn
    vals = vol[near]
    med = float(np.median(vals))
    sd = 1.4826 * float(np.median(np.abs(vals - med)))
    threshold = med + RESIDUAL_SIGMAS * sd
    size = max(3, int(2 * np.floor(0.35 * d_nn / px) + 1))
    peaks = (vol == ndimage.maximum_filter(vol, size=size)) & near & (vol > threshold)
    cand = np.argwhere(peaks).astype(float) * px
    height = vol[peaks]
    info.update({"threshold": threshold, "noise_sd": sd, "n_peaks": int(len(cand))})
    if not len(cand):
        return np.empty((0, 3)), info
    order = np.argsort(-height)
    accepted = _greedy_min_distance(cand, order, TRIAL_SPACING * d_nn, existing=pos)
    cap = max(1, int(RESIDUAL_MAX_FRACTION * len(pos)))
    chosen = order[accepted[order]][:cap]
    info["n_trials"] = len(chosen)
    info["cap_reached"] = bool(len(chosen) >= cap)
    return cand[chosen].reshape(-1, 3), info


def _trial_candidates(atoms: AtomModel, candidates) -> tuple[np.ndarray, np.ndarray]:
    """Rejected tracer candidates worth a trial in the images: not atoms, integrated intensity
    at least :data:`TRY_FRACTION` of the faintest accepted atom's (or atoms of the tomogram
    that told an alloy's elements apart, ``species_volume_atom``, whatever their intensity in
    the traced one), and farther than
    :data:`TRIAL_SPACING` nearest-neighbour distances from every atom and from each other
    (brightest first)."""
    from scipy.spatial import cKDTree

    cand = candidates
    none = (np.empty((0, 3)), np.empty(0))
    if cand is None or not len(cand) or atoms.n_atoms < 4:
        return none
    is_atom = cand["is_atom"].to_numpy(bool)
    inten = cand["intensity"].to_numpy(float)
    pos = cand[["z", "y", "x"]].to_numpy(float)
    floor = TRY_FRACTION * float(np.min(inten[is_atom])) if is_atom.any() else np.inf
    d_nn = float(np.median(cKDTree(atoms.positions).query(atoms.positions, k=2)[0][:, 1]))
    keep = ~is_atom & (inten >= floor)
    if "species_volume_atom" in cand:  # atoms of the species' tomogram: tried whatever
        keep |= ~is_atom & cand["species_volume_atom"].fillna(False).to_numpy(bool)
    if not keep.any():
        return none
    trial, t_int = pos[keep], inten[keep]
    order = np.argsort(-t_int)
    spacing = TRIAL_SPACING * d_nn
    chosen = order[_greedy_min_distance(trial, order, spacing, existing=atoms.positions)[order]]
    return trial[chosen].reshape(-1, 3), t_int[chosen]
