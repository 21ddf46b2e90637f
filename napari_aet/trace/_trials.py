"""Trial atoms for the refine stage's verdicts: the tracer's rejected candidates worth a try,
and peaks of a tomogram of the residual images where the refined model lacks density. The
images then decide which join (:func:`napari_aet.trace.refine_atom_positions`)."""

from __future__ import annotations

import numpy as np

from ..core.atoms import AtomModel
from ..core.geometry import median_nearest_distance
from ._tracer import SITE_MIN_NEIGHBOURS, SITE_NEIGHBOUR_RADIUS, _greedy_min_distance

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
#: With ``split_halves``: a peak of the residual tomogram of one half of the images (every
#: other angle) is a trial only where the other half's stands this many of its robust
#: standard deviations above its voxels around the particle (the same bar: each half must show
#: it on its own). A peak chosen on the same images that then judge it is a winner of the
#: noise (the brightest of hundreds of maxima; the positivity-clipped tomogram's robust
#: deviation puts hundreds over "4 sigma" even in white noise): on independent alloy series,
#: whose bars are set by a light element, the residual pass added far more false atoms than
#: real ones (docs/benchmarks.md, twenty-ninth session, where a bar of 2 was tried too). The
#: other half's noise is independent of the choice.
RESIDUAL_CONFIRM_SIGMAS = RESIDUAL_SIGMAS


def residual_trials(
    residual_images,
    angles_deg,
    positions_A,
    *,
    pixel_size_A: float,
    device: str = "auto",
    cancel=None,
    split_halves: bool = False,
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

    With ``split_halves`` (and at least 6 images) each half of the images (every other angle)
    is reconstructed on its own; a peak of one half's tomogram is a trial only where the other
    half's stands :data:`RESIDUAL_CONFIRM_SIGMAS` above its voxels around the particle
    (``info["n_unconfirmed"]`` counts those dropped): the choice and the confirmation see
    independent noise.
    """
    pos = np.asarray(positions_A, float).reshape(-1, 3)
    info = {"sigmas": RESIDUAL_SIGMAS, "iterations": RESIDUAL_ITERATIONS, "n_peaks": 0}
    if len(pos) < 4:
        return np.empty((0, 3)), info
    d_nn = median_nearest_distance(pos)
    imgs = np.asarray(residual_images, np.float32)
    angles = np.asarray(angles_deg, float)
    px = float(pixel_size_A)
    size_px = max(3, int(2 * np.floor(0.35 * d_nn / px) + 1))
    if split_halves and len(angles) >= 6:
        order = np.argsort(angles, kind="stable")
        halves = [np.sort(order[0::2]), np.sort(order[1::2])]
        tomos = [
            _residual_tomogram(imgs[h], angles[h], pos, d_nn, px, device, cancel) for h in halves
        ]
        cand, height = [], []
        n_unconfirmed = 0
        for k in (0, 1):
            vol, near, med, sd = tomos[k]
            other, _, med_o, sd_o = tomos[1 - k]
            peaks = _peaks(vol, near, med + RESIDUAL_SIGMAS * sd, size_px)
            # the other half's value there
            seen = other[tuple(peaks.T)]
            ok = seen > med_o + RESIDUAL_CONFIRM_SIGMAS * sd_o
            n_unconfirmed += int(np.sum(~ok))
            cand.append(peaks[ok].astype(float) * px)
            height.append((vol[tuple(peaks[ok].T)] - med) / sd + (seen[ok] - med_o) / sd_o)
        cand, height = np.concatenate(cand), np.concatenate(height)
        info.update(
            {
                "split_halves": True,
                "confirm_sigmas": RESIDUAL_CONFIRM_SIGMAS,
                "n_unconfirmed": n_unconfirmed,
                "threshold": [float(t[2] + RESIDUAL_SIGMAS * t[3]) for t in tomos],
                "noise_sd": [float(t[3]) for t in tomos],
            }
        )
    else:
        vol, near, med, sd = _residual_tomogram(imgs, angles, pos, d_nn, px, device, cancel)
        threshold = med + RESIDUAL_SIGMAS * sd
        peaks = _peaks(vol, near, threshold, size_px)
        cand = peaks.astype(float) * px
        height = vol[tuple(peaks.T)]
        info.update({"threshold": threshold, "noise_sd": sd})
    info["n_peaks"] = int(len(cand))
    if not len(cand):
        return np.empty((0, 3)), info
    order = np.argsort(-height)
    accepted = _greedy_min_distance(cand, order, TRIAL_SPACING * d_nn, existing=pos)
    cap = max(1, int(RESIDUAL_MAX_FRACTION * len(pos)))
    chosen = order[accepted[order]][:cap]
    info["n_trials"] = len(chosen)
    info["cap_reached"] = bool(len(chosen) >= cap)
    return cand[chosen].reshape(-1, 3), info


def _residual_tomogram(images, angles_deg, pos, d_nn, px, device, cancel):
    """The residual images' GENFIRE tomogram (smoothed by 0.3 A), the particle's neighbourhood
    (voxels within 1.2 nearest-neighbour distances of an atom), and the median and robust
    standard deviation of the tomogram there."""
    from scipy import ndimage

    from ..recon import genfire

    vol = genfire(
        images, angles_deg, iterations=RESIDUAL_ITERATIONS, support="box", positivity=True,
        rfree_fraction=0.0, device=device, cancel=cancel,
    ).volume  # fmt: skip
    vol = ndimage.gaussian_filter(np.asarray(vol, np.float32), 0.3 / px)
    near = np.zeros(vol.shape, bool)
    idx = np.clip(np.round(pos / px).astype(int), 0, np.array(vol.shape) - 1)
    near[tuple(idx.T)] = True
    near = ndimage.distance_transform_edt(~near) * px <= 1.2 * d_nn
    vals = vol[near]
    med = float(np.median(vals))
    sd = 1.4826 * float(np.median(np.abs(vals - med)))
    return vol, near, med, sd


def _peaks(vol, near, threshold: float, size_px: int) -> np.ndarray:
    """Voxel indices ``(m, 3)`` of the local maxima of ``vol`` in ``near`` above
    ``threshold``."""
    from scipy import ndimage

    peaks = (vol == ndimage.maximum_filter(vol, size=size_px)) & near & (vol > threshold)
    return np.argwhere(peaks)


def _trial_candidates(atoms: AtomModel, candidates) -> tuple[np.ndarray, np.ndarray]:
    """Rejected tracer candidates worth a trial in the images: not atoms, integrated intensity
    at least :data:`TRY_FRACTION` of the faintest accepted atom's (or atoms of the tomogram
    that told an alloy's elements apart, ``species_volume_atom``, whatever their intensity in
    the traced one), and farther than
    :data:`TRIAL_SPACING` nearest-neighbour distances from every atom and from each other
    (brightest first)."""
    cand = candidates
    none = (np.empty((0, 3)), np.empty(0))
    if cand is None or not len(cand) or atoms.n_atoms < 4:
        return none
    is_atom = cand["is_atom"].to_numpy(bool)
    inten = cand["intensity"].to_numpy(float)
    pos = cand[["z", "y", "x"]].to_numpy(float)
    floor = TRY_FRACTION * float(np.min(inten[is_atom])) if is_atom.any() else np.inf
    d_nn = median_nearest_distance(atoms.positions)
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


def site_trials(positions_A, *, min_neighbours: int = SITE_MIN_NEIGHBOURS) -> np.ndarray:
    """Empty sites of the atoms' own lattice: trial atom positions [A].

    Each bond ``a-b`` continued one step past ``a`` (``2a - b``) lands on a site of the
    lattice ``a`` belongs to: a lattice translation in fcc and bcc and within an hcp layer,
    whatever the grain's orientation, and at a twin plane or a fault the atoms on either side
    continue their own stacking, so no lattice is fitted and none is assumed. Landing points
    closer than 0.3 nearest-neighbour distances are one site (their mean, most landings
    first); a site is returned where it stands at least :data:`TRIAL_SPACING`
    nearest-neighbour distances from every atom (and from the other sites) and has
    ``min_neighbours`` atoms within :data:`SITE_NEIGHBOUR_RADIUS` of them. A missed atom
    inside a crystal, or on its facet, leaves such a hole; an amorphous particle has few.
    They are trials: the images then decide (:func:`refine_atom_positions`).
    """
    from scipy.spatial import cKDTree

    pos = np.asarray(positions_A, float).reshape(-1, 3)
    if len(pos) < max(4, min_neighbours):
        return np.empty((0, 3))
    tree, d_nn, land = _bond_landings(pos)
    if not len(land):
        return np.empty((0, 3))
    land = land[tree.query(land)[0] >= TRIAL_SPACING * d_nn]
    if not len(land):
        return np.empty((0, 3))
    groups = cKDTree(land).query_ball_point(land, 0.3 * d_nn)
    taken = np.zeros(len(land), bool)
    sites, votes = [], []
    for i in np.argsort([-len(g) for g in groups], kind="stable"):
        if taken[i]:
            continue
        g = [j for j in groups[i] if not taken[j]]
        taken[g] = True
        sites.append(land[g].mean(axis=0))
        votes.append(len(g))
    sites, votes = np.asarray(sites), np.asarray(votes)
    n_near = np.array([len(x) for x in tree.query_ball_point(sites, SITE_NEIGHBOUR_RADIUS * d_nn)])
    ok = (n_near >= min_neighbours) & (tree.query(sites)[0] >= TRIAL_SPACING * d_nn)
    sites, votes = sites[ok], votes[ok]
    order = np.argsort(-votes, kind="stable")
    keep = _greedy_min_distance(sites, order, TRIAL_SPACING * d_nn, existing=pos)
    return sites[order[keep[order]]].reshape(-1, 3)


#: :func:`off_lattice_of_close_pairs`: two atoms closer than this many nearest-neighbour
#: distances cannot both be there (no metal packs so: a glass's closest pairs stand at 0.85
#: bonds) ...
CLOSE_PAIR = 0.8
#: ... and when the images kept both, the one whose place this many fewer of the bonds around
#: it predict (:func:`lattice_support`) goes.
SUPPORT_MARGIN = 2


def lattice_support(positions_A) -> np.ndarray:
    """How many bonds of the other atoms, continued one step (``2a - b``, as in
    :func:`site_trials`), land within 0.2 nearest-neighbour distances of each atom: 12 inside
    an fcc crystal, 3-9 on its surface (a 571-atom particle), 0-2 for most atoms of a glass
    (median 1) and for an atom off every neighbour's lattice."""
    pos = np.asarray(positions_A, float).reshape(-1, 3)
    if len(pos) < 4:
        return np.zeros(len(pos), int)
    _, d_nn, land = _bond_landings(pos)
    return _support(pos, d_nn, land)


def _bond_landings(pos: np.ndarray):
    """The atoms' KD-tree, their median nearest-neighbour distance, and where every bond
    (atoms within :data:`SITE_NEIGHBOUR_RADIUS` of it) lands continued one step past either
    end (``2a - b`` and ``2b - a``; none without bonds)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(pos)
    d_nn = median_nearest_distance(pos, tree)
    bonds = tree.query_pairs(SITE_NEIGHBOUR_RADIUS * d_nn, output_type="ndarray")
    if not len(bonds):
        return tree, d_nn, np.empty((0, 3))
    a, b = pos[bonds[:, 0]], pos[bonds[:, 1]]
    return tree, d_nn, np.vstack([2 * a - b, 2 * b - a])


def _support(pos: np.ndarray, d_nn: float, land: np.ndarray) -> np.ndarray:
    """:func:`lattice_support` from :func:`_bond_landings`' landing points."""
    from scipy.spatial import cKDTree

    if not len(land):
        return np.zeros(len(pos), int)
    hits = cKDTree(land).query_ball_point(pos, 0.2 * d_nn)
    return np.array([len(x) for x in hits])


def off_lattice_of_close_pairs(positions_A, amplitudes=None) -> np.ndarray:
    """Which atoms (a boolean mask) go of the pairs closer than :data:`CLOSE_PAIR`
    nearest-neighbour distances, which cannot both be there: the less supported one, its
    :func:`lattice_support` at least :data:`SUPPORT_MARGIN` below its partner's and, given
    their ``amplitudes`` (fitted to the counts), fainter than it (two real atoms the fit
    squeezed together, each some tenths of an angstrom off its site, both show as atoms).
    Where the lattice predicts neither (both supported less than :data:`SUPPORT_MARGIN`: a
    glass, or a disordered patch), the fainter one on the counts goes; without
    ``amplitudes`` such pairs, and those whose support differs by less, are left to the
    images. The clearest pairs are settled first (the largest difference of support, then the
    lowest ratio of amplitudes), and an atom that goes is no longer anyone's partner: a false
    atom that goes for a clearer pair takes no other atom with it."""
    pos = np.asarray(positions_A, float).reshape(-1, 3)
    drop = np.zeros(len(pos), bool)
    if len(pos) < 4:
        return drop
    tree, d_nn, land = _bond_landings(pos)
    pairs = tree.query_pairs(CLOSE_PAIR * d_nn, output_type="ndarray")
    if not len(pairs):
        return drop
    support = _support(pos, d_nn, land)
    first_weaker = support[pairs[:, 0]] < support[pairs[:, 1]]
    weak = np.where(first_weaker, pairs[:, 0], pairs[:, 1])
    strong = np.where(first_weaker, pairs[:, 1], pairs[:, 0])
    margin = support[strong] - support[weak]
    go = margin >= SUPPORT_MARGIN
    blind = np.zeros(len(pairs), bool)
    if amplitudes is not None:
        amp = np.asarray(amplitudes, float)
        go &= amp[weak] < amp[strong]
        # neither on a lattice: the counts alone tell which of the two is there
        blind = support[strong] < SUPPORT_MARGIN
        first_fainter = amp[pairs[:, 0]] < amp[pairs[:, 1]]
        fainter = np.where(first_fainter, pairs[:, 0], pairs[:, 1])
        brighter = np.where(first_fainter, pairs[:, 1], pairs[:, 0])
        weak, strong = np.where(blind, fainter, weak), np.where(blind, brighter, strong)
        blind &= amp[weak] < amp[strong]  # NaN: both stay
    order = list(np.nonzero(go)[0][np.argsort(-margin[go], kind="stable")])
    if blind.any():
        faint = np.nonzero(blind)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = amp[weak[faint]] / amp[strong[faint]]
        order += list(faint[np.argsort(ratio, kind="stable")])
    for j in order:
        if not (drop[weak[j]] or drop[strong[j]]):
            drop[weak[j]] = True
    return drop
