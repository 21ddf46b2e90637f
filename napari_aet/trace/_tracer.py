"""Atom tracing: local maxima, sub-voxel fits, minimum distance, fit-accept-subtract, classes."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from ..core.atoms import AtomModel
from ..core.elements import element_data, parse_elements, tracer_min_distance_A
from ..core.geometry import median_nearest_distance
from ..core.progress import check_cancel, report

#: ADF-STEM contrast goes about as Z**1.7 (Krivanek et al., Nature 464, 571 (2010)): the
#: starting ratio of the species' intensities when several elements are told apart.
Z_CONTRAST_EXPONENT = 1.7
#: :func:`napari_aet.trace.site_trials`: an empty site is tried where at least this many
#: atoms stand within :data:`SITE_NEIGHBOUR_RADIUS` nearest-neighbour distances of it: half
#: a close-packed shell, more than any adatom's hollow on a facet has (3 on {111}, 4 on
#: {100}), as many as a missing atom of a facet, an edge or a twin plane keeps when a
#: neighbour is missing too. The tracer asks as much of an alloy's doubtful peaks
#: (:func:`_left_out_of_a_flat_tomogram`).
SITE_MIN_NEIGHBOURS = 6
#: ... (the shell counted out to this many nearest-neighbour distances).
SITE_NEIGHBOUR_RADIUS = 1.2
#: :func:`_left_out_of_a_flat_tomogram`: an alloy's traced tomogram is flat (every atom alike)
#: where its lightest element's atoms are at least this fraction of the heaviest's median
#: intensity (and nearer 1 than the Z**1.7 ratio). After the U-Net: 0.99-1.02 on L1_0 Fe-Pt
#: and Pd-Pt series, 0.84-0.90 on random Fe-Pt; 0.58-0.67 for the Ni of Ni-Pd-Pt glasses,
#: whose faint atoms the U-Net leaves fainter (a class of their own, not ghosts).
FLAT_RATIO = 0.8

# design matrix of a quadratic in the 27 voxels of a 3x3x3 box:
# log I = c + g.x + 1/2 x^T H x  ->  10 unknowns (c, gz, gy, gx, Hzz, Hyy, Hxx, Hzy, Hzx, Hyx)
_OFF = np.array([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)], float)
_DESIGN = np.column_stack(
    [
        np.ones(27),
        _OFF,
        0.5 * _OFF[:, 0] ** 2,
        0.5 * _OFF[:, 1] ** 2,
        0.5 * _OFF[:, 2] ** 2,
        _OFF[:, 0] * _OFF[:, 1],
        _OFF[:, 0] * _OFF[:, 2],
        _OFF[:, 1] * _OFF[:, 2],
    ]
)
_PINV = np.linalg.pinv(_DESIGN)


@dataclass
class TraceResult:
    """Traced atoms and every candidate with its class.

    Attributes
    ----------
    atoms : AtomModel
        Accepted atoms (``z, y, x`` in A) with features ``intensity``, ``peak_height``,
        ``fit_residual``, ``manual`` (0).
    candidates : pandas.DataFrame
        Every candidate peak: ``z, y, x`` [A], ``intensity``, ``peak_height``,
        ``fit_residual``, ``is_atom``.
    threshold : float
        Integrated-intensity threshold that separates atoms from non-atoms.
    settings : dict
    """

    atoms: AtomModel
    candidates: pd.DataFrame
    threshold: float
    settings: dict = field(default_factory=dict)


def fit_peaks(volume: np.ndarray, peaks: np.ndarray):
    """Sub-voxel position, height and fit residual of peaks by a Gaussian (log-quadratic) fit.

    A 3D Gaussian is a quadratic in log-intensity, so a linear least-squares fit of
    ``log I`` over the 3x3x3 voxels around each integer peak gives its centre
    ``x* = -H^-1 g`` and height ``exp(c - g^T H^-1 g / 2)`` for all peaks at once. Offsets are
    clipped to one voxel (a broken fit falls back to the voxel).

    Returns
    -------
    positions : ndarray of shape (N, 3)
        Sub-voxel positions [voxels].
    heights : ndarray of shape (N,)
    residuals : ndarray of shape (N,)
        RMS of the log-intensity residual (a shape-quality measure; 0 for a perfect Gaussian).
    """
    vol = np.asarray(volume, np.float64)
    pk = np.asarray(peaks, np.int64)
    shape = np.array(vol.shape)
    idx = pk[:, None, :] + _OFF.astype(np.int64)[None]
    idx = np.clip(idx, 0, shape - 1)
    vals = vol[idx[..., 0], idx[..., 1], idx[..., 2]]
    floor = np.maximum(vals.max(axis=1, keepdims=True) * 1e-3, 1e-12)
    logv = np.log(np.maximum(vals, floor))
    coef = logv @ _PINV.T  # (N, 10)
    c, g = coef[:, 0], coef[:, 1:4]
    h = np.empty((len(pk), 3, 3))
    h[:, 0, 0], h[:, 1, 1], h[:, 2, 2] = coef[:, 4], coef[:, 5], coef[:, 6]
    h[:, 0, 1] = h[:, 1, 0] = coef[:, 7]
    h[:, 0, 2] = h[:, 2, 0] = coef[:, 8]
    h[:, 1, 2] = h[:, 2, 1] = coef[:, 9]
    ok = np.linalg.det(h) < 0  # a maximum needs a negative-definite-ish curvature
    off = np.zeros((len(pk), 3))
    if ok.any():
        off[ok] = -np.linalg.solve(h[ok], g[ok][..., None])[..., 0]
    bad = ~np.isfinite(off).all(axis=1) | (np.abs(off) > 1.0).any(axis=1)
    off[bad] = np.clip(np.nan_to_num(off[bad]), -1.0, 1.0) * 0.0
    height = np.exp(c + 0.5 * np.einsum("ni,ni->n", g, off))
    height[bad | ~ok] = vals[bad | ~ok, 13]
    resid = np.sqrt(((logv - coef @ _DESIGN.T) ** 2).mean(axis=1))
    return pk + off, height, resid


def _integrated(volume: np.ndarray, positions_vox: np.ndarray, radius_vox: float) -> np.ndarray:
    """Sum of the volume within ``radius_vox`` of each (rounded) position."""
    r = int(np.ceil(radius_vox))
    g = np.arange(-r, r + 1)
    offs = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    offs = offs[(offs**2).sum(axis=1) <= radius_vox**2]
    base = np.round(positions_vox).astype(np.int64)
    idx = np.clip(base[:, None, :] + offs[None], 0, np.array(volume.shape) - 1)
    return volume[idx[..., 0], idx[..., 1], idx[..., 2]].sum(axis=1)


def _greedy_min_distance(
    pos: np.ndarray, order: np.ndarray, min_dist: float, existing: np.ndarray | None = None
) -> np.ndarray:
    """Accept positions in ``order`` unless closer than ``min_dist`` to one accepted earlier."""
    tree = cKDTree(pos)
    pairs = tree.query_pairs(min_dist, output_type="ndarray")
    neighbours: list[list[int]] = [[] for _ in range(len(pos))]
    for a, b in pairs:
        neighbours[a].append(b)
        neighbours[b].append(a)
    blocked = np.zeros(len(pos), bool)
    if existing is not None and len(existing):
        d, _ = cKDTree(existing).query(pos, distance_upper_bound=min_dist)
        blocked |= np.isfinite(d)
    accepted = np.zeros(len(pos), bool)
    for i in order:
        if blocked[i]:
            continue
        accepted[i] = True
        for j in neighbours[i]:
            blocked[j] = True
    return accepted


def _subtract_gaussians(
    residual: np.ndarray, pos_vox: np.ndarray, heights: np.ndarray, sigma_vox: np.ndarray
) -> None:
    """Subtract isotropic 3D Gaussians (in place) from the residual volume."""
    r = int(np.ceil(3 * sigma_vox.max()))
    g = np.arange(-r, r + 1)
    offs = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    base = np.round(pos_vox).astype(np.int64)
    for start in range(0, len(base), 2000):
        b = base[start : start + 2000]
        idx = b[:, None, :] + offs[None]
        d2 = ((idx - pos_vox[start : start + 2000, None, :]) ** 2).sum(axis=2)
        w = heights[start : start + 2000, None] * np.exp(
            -d2 / (2 * sigma_vox[start : start + 2000, None] ** 2)
        )
        inside = ((idx >= 0) & (idx < np.array(residual.shape))).all(axis=2)
        np.subtract.at(
            residual, (idx[inside][:, 0], idx[inside][:, 1], idx[inside][:, 2]), w[inside]
        )


#: A bright class of candidates smaller than this share of the positive ones is not taken
#: for the atoms (a few bright artefacts are no particle).
BRIGHT_CLASS_MIN_SHARE = 0.05


def _bright_class_median(vals: np.ndarray, fraction: float) -> float:
    """The median of the brightest class of candidate intensities: the positive ones split
    in two by Otsu's threshold of their logarithms, the bright part split again, for as long
    as the two parts' medians differ by more than ``1 / fraction`` (atoms of one element lie
    within that factor of each other, so the split then separates classes, not atoms) and
    the bright part keeps at least :data:`BRIGHT_CLASS_MIN_SHARE` of the positive candidates;
    0 when the candidates do not split so. Noise maxima in a clean vacuum (the U-Net's) lie
    orders of magnitude below the atoms, in classes of their own: on a log scale the atoms
    are the brightest class however many noise peaks there are. Where atoms outnumber the
    noise peaks a fraction of this median lies below the brighter half's, and the rule of
    :func:`trace_atoms` keeps its threshold."""
    from skimage.filters import threshold_otsu

    pos = np.asarray(vals, float)
    pos = pos[pos > 0]
    cls, found = pos, False
    while len(np.unique(cls)) >= 2:
        logs = np.log(cls)
        cut = threshold_otsu(logs)
        hi, lo = cls[logs > cut], cls[logs <= cut]
        if len(hi) < max(3, BRIGHT_CLASS_MIN_SHARE * len(pos)):
            break
        if np.median(hi) < np.median(lo) / fraction:
            break
        cls, found = hi, True
    return float(np.median(cls)) if found else 0.0


def trace_atoms(
    volume,
    *,
    voxel_size_A: float,
    smooth_sigma_A: float = 0.3,
    min_distance_A: float | None = None,
    integration_radius_A: float = 0.8,
    threshold: str | float = "auto",
    threshold_fraction: float = 0.4,
    max_rounds: int = 3,
    element="Pt",
    species_volume=None,
    progress=None,
    cancel=None,
) -> TraceResult:
    """Trace atoms in a tomogram.

    1. Optional Gaussian smoothing (``smooth_sigma_A``).
    2. Local maxima at least half the minimum distance apart, above the background.
    3. Sub-voxel refinement by a Gaussian fit of the 3x3x3 box (:func:`fit_peaks`).
    4. Candidates in order of peak height are accepted unless closer than
       ``min_distance_A`` to an accepted one.
    5. "Fit, accept, subtract": the accepted atoms' Gaussians are subtracted and new maxima in
       the residual join the candidates (``max_rounds`` rounds), so that a faint atom next to a
       bright one is not lost.
    6. Classification: candidates whose integrated intensity (within
       ``integration_radius_A``) is below the threshold are non-atoms. ``"auto"`` sets it at
       ``threshold_fraction`` of the median intensity of the brighter half of the candidates
       (robust whether or not noise peaks form a class of their own), or of the bright class
       of their log-intensities where that is higher (noise peaks that outnumber the atoms:
       :func:`_bright_class_median`); ``"otsu"`` takes Otsu's threshold of the histogram; a
       number is used as given.
    7. Several elements (an alloy, ``element="Pt,Ni"``): the candidates' intensities are
       split by 1D K-means into noise and one class per element (started at the Z**1.7
       ratios of :data:`Z_CONTRAST_EXPONENT`, heaviest brightest) instead of the threshold
       rule, and each atom's ``element`` feature is its class. With one element every atom
       gets that element. With ``species_volume`` the atoms are those classes' atoms, but
       their elements are told apart by their intensities in ``species_volume``, and the
       atoms that ``species_volume`` traced alone would have found where ``volume`` has none
       join the candidates (``species_volume_atom``; not atoms: the refine stage tries
       them in the images). Where ``volume`` shows every species alike, its faint class is
       no element: the peaks between noise and the one atom class stay atoms only where
       the lattice holds them (:func:`_left_out_of_a_flat_tomogram`; ``settings["species_flat"]``).

    Parameters
    ----------
    volume : ndarray of shape (z, y, x)
    voxel_size_A : float
        Voxel size [A].
    smooth_sigma_A : float
        Gaussian smoothing [A] before peak finding (0.3 A traced the simulated nanodumbbell
        best: see docs/benchmarks.md).
    threshold : "auto", "otsu" or float
        Integrated-intensity threshold.
    threshold_fraction : float
        For ``"auto"``: fraction of the bright candidates' median intensity.
    min_distance_A : float, optional
        Minimum distance between atoms [A]; default from the element(s)
        (:func:`napari_aet.core.elements.tracer_min_distance_A`: 2.0 A for Pt, 1.7 for Si).
    element : str or sequence of str
        The element, or several for an alloy (``"Pt,Ni"``).
    species_volume : ndarray of shape (z, y, x), optional
        For an alloy: a tomogram of the same grid whose intensities keep the species'
        contrast, to tell the atoms' elements apart when ``volume`` has lost it. A U-Net
        trained on one element makes every atom alike (on independent Pd-Pt series the
        traced atoms' Pt / Pd intensity ratio was 1.04 after the U-Net and 1.9 in the GENFIRE
        tomogram it was given: 41 % of the atoms got the wrong element, against 0.4 %).

    Returns
    -------
    TraceResult
    """
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu

    vol = np.asarray(volume, np.float32)
    if vol.ndim != 3:
        raise ValueError(f"a tomogram must be 3D (z, y, x); got shape {vol.shape}")
    if not np.all(np.isfinite(vol)):
        raise ValueError("the tomogram contains NaN or infinite values")
    if vol.size and np.ptp(vol) == 0:
        raise ValueError(
            f"the tomogram is blank (every voxel {float(vol.flat[0]):g}): nothing to trace; "
            "check the reconstruction (its iterations, support and input series)"
        )
    elements = parse_elements(element)
    if min_distance_A is None:
        min_distance_A = tracer_min_distance_A(elements)
    if voxel_size_A <= 0 or min_distance_A <= 0:
        raise ValueError("voxel_size_A and min_distance_A must be positive (Angstrom)")
    px = float(voxel_size_A)
    if species_volume is not None:
        species_volume = np.asarray(species_volume, np.float32)
        if species_volume.shape != vol.shape:
            raise ValueError(
                f"the species' tomogram has shape {species_volume.shape}, the traced one "
                f"{vol.shape}: give one of the same grid (e.g. the GENFIRE tomogram the U-Net "
                "was applied to)"
            )
    work = ndimage.gaussian_filter(vol, smooth_sigma_A / px) if smooth_sigma_A > 0 else vol
    bg = float(np.median(work))
    noise = float(1.4826 * np.median(np.abs(work - bg)))
    floor = bg + 3 * noise if noise > 0 else bg + 0.02 * float(work.max() - bg)
    min_d_vox = min_distance_A / px
    sep = max(1, int(np.floor(min_d_vox / 2)))
    report(progress, 0, max_rounds + 1, "finding local maxima")
    residual = work.astype(np.float64).copy()
    all_pos = np.empty((0, 3))
    all_h = np.empty(0)
    all_r = np.empty(0)
    accepted_pos = np.empty((0, 3))
    for rnd in range(max_rounds):
        check_cancel(cancel, "atom tracing")
        src = work if rnd == 0 else residual
        pk = peak_local_max(src, min_distance=sep, threshold_abs=floor, exclude_border=1)
        if len(pk) == 0:
            break
        pos, h, res = fit_peaks(src, pk)
        if rnd > 0 and len(accepted_pos):
            # a new peak must not sit on an accepted atom (subtraction leftovers)
            d, _ = cKDTree(accepted_pos).query(pos, distance_upper_bound=min_d_vox)
            keep = ~np.isfinite(d)
            pos, h, res = pos[keep], h[keep], res[keep]
        if len(pos) == 0:
            break
        acc = _greedy_min_distance(pos, np.argsort(-h), min_d_vox, accepted_pos)
        all_pos = np.vstack([all_pos, pos])
        all_h = np.concatenate([all_h, h])
        all_r = np.concatenate([all_r, res])
        new = pos[acc]
        accepted_pos = np.vstack([accepted_pos, new])
        if rnd < max_rounds - 1:
            sig = np.full(len(new), 0.45 / px + 0.5)
            _subtract_gaussians(residual, new, h[acc] - bg, sig)
        report(progress, rnd + 1, max_rounds + 1, f"round {rnd + 1}: {len(new)} new peaks")
        if acc.sum() == 0:
            break
    # final greedy pass over all candidates (bright first) and classification
    order = np.argsort(-all_h)
    acc = _greedy_min_distance(all_pos, order, min_d_vox)
    inten = _integrated(work - bg, all_pos, integration_radius_A / px)
    cand_ok = acc
    vals = inten[cand_ok]
    species = np.full(len(inten), elements[0], dtype=object)
    other = None
    if len(elements) > 1 and species_volume is not None:
        other = species_volume
        if smooth_sigma_A > 0:
            other = ndimage.gaussian_filter(other, smooth_sigma_A / px)
        other_bg = other - float(np.median(other))  # what the species' intensities integrate
    flat, left_out = None, np.zeros(len(inten), bool)
    if len(elements) > 1 and threshold in ("auto", "otsu") and len(vals) > 3 * len(elements):
        thr, centres, lab = classify_species(vals, elements)
        species[np.nonzero(cand_ok)[0]] = [elements[k] if k >= 0 else "" for k in lab]
        if other is not None and threshold == "auto":
            left_out, flat = _left_out_of_a_flat_tomogram(
                inten, cand_ok, all_pos, other_bg, thr, elements, integration_radius_A / px
            )
    elif threshold == "auto":
        # atoms have consistent intensities: the brighter half of the candidates is atoms when
        # noise peaks are fewer than atoms, so a fraction of its median separates the classes
        # whether or not a noise population exists (Otsu splits a one-class histogram)
        upper = np.sort(vals)[len(vals) // 2 :]
        thr = float(threshold_fraction * np.median(upper)) if len(upper) else 0.0
        # ... unless noise peaks outnumber the atoms (a small particle in a large, clean
        # field: the U-Net leaves many faint maxima in the vacuum): then the brighter half is
        # noise too, and the atoms are the bright class of the candidates' log-intensities
        thr = max(thr, threshold_fraction * _bright_class_median(vals, threshold_fraction))
    elif threshold == "otsu":
        thr = float(threshold_otsu(vals)) if len(np.unique(vals)) > 1 else float(vals.min())
    else:
        thr = float(threshold)
    is_atom = cand_ok & (inten >= thr) & ~left_out
    by_volume = len(elements) > 1 and species_volume is not None and is_atom.sum() >= 3
    if by_volume:
        other_inten = _integrated(other_bg, all_pos[is_atom], integration_radius_A / px)
        _, _, lab = classify_species(other_inten, elements, noise=False)
        species[np.nonzero(is_atom)[0]] = [elements[k] for k in lab]
    elif len(elements) > 1 and threshold not in ("auto", "otsu") and is_atom.any():
        _, _, lab = classify_species(inten[is_atom], elements, noise=False)
        species[np.nonzero(is_atom)[0]] = [elements[k] for k in lab]
    cand = pd.DataFrame(
        {
            "z": all_pos[:, 0] * px,
            "y": all_pos[:, 1] * px,
            "x": all_pos[:, 2] * px,
            "intensity": inten,
            "peak_height": all_h,
            "fit_residual": all_r,
            "is_atom": is_atom,
        }
    )
    if left_out.any():  # above the threshold, left out all the same
        cand["doubtful_left_out"] = left_out
    n_other = 0
    if by_volume:
        # atoms the species' tomogram shows where the traced one has none: a U-Net trained
        # on one element erases atoms much fainter than its training's (Fe beside Pt); they
        # join the candidates, not the atoms, and the refine stage's images decide
        other_res = trace_atoms(  # ``other``: the species' tomogram already smoothed
            other, voxel_size_A=px, smooth_sigma_A=0.0,
            min_distance_A=min_distance_A, integration_radius_A=integration_radius_A,
            threshold=threshold if isinstance(threshold, str) else "auto",  # other units
            threshold_fraction=threshold_fraction, max_rounds=max_rounds, element=elements,
            cancel=cancel,
        )  # fmt: skip
        found = other_res.atoms.positions / px
        if len(found) and is_atom.any():
            d, _ = cKDTree(all_pos[is_atom]).query(found, distance_upper_bound=min_d_vox)
            found = found[~np.isfinite(d)]
        n_other = len(found)
        if n_other:
            cand["species_volume_atom"] = False
            h = ndimage.map_coordinates(work, found.T, order=1)
            extra = pd.DataFrame(
                {
                    "z": found[:, 0] * px,
                    "y": found[:, 1] * px,
                    "x": found[:, 2] * px,
                    "intensity": _integrated(work - bg, found, integration_radius_A / px),
                    "peak_height": h,
                    "fit_residual": np.nan,
                    "is_atom": False,
                    "species_volume_atom": True,
                }
            )
            if "doubtful_left_out" in cand:
                extra["doubtful_left_out"] = False
            cand = pd.concat([cand, extra], ignore_index=True)
    sel = np.nonzero(is_atom)[0]
    feats = pd.DataFrame(
        {
            "intensity": inten[sel],
            "peak_height": all_h[sel],
            "fit_residual": all_r[sel],
            "manual": np.zeros(len(sel), np.int8),
            "element": species[sel].astype(str),
        }
    )
    settings = {
        "stage": "trace",
        "voxel_size_A": px,
        "smooth_sigma_A": smooth_sigma_A,
        "min_distance_A": min_distance_A,
        "integration_radius_A": integration_radius_A,
        "threshold": thr,
        "threshold_mode": threshold if isinstance(threshold, str) else "given",
        "threshold_fraction": threshold_fraction,
        "max_rounds": max_rounds,
        "element": ",".join(elements),
        "species_from": "species_volume" if by_volume else "volume",
        "species_flat": flat,
        "n_species_volume_candidates": int(n_other),
        "n_candidates": int(len(cand)),
        "n_atoms": int(len(sel)),
    }
    model = AtomModel(
        all_pos[sel] * px,
        feats,
        {"trace_settings": settings, "n_manual_added": 0, "n_manual_removed": 0},
    )
    if len(elements) > 1:
        settings["species_counts"] = {e: int((species[sel] == e).sum()) for e in elements}
    report(progress, max_rounds + 1, max_rounds + 1, f"{len(sel)} atoms")
    return TraceResult(model, cand, thr, settings)


def _left_out_of_a_flat_tomogram(inten, cand_ok, pos_vox, other_bg, thr, elements, radius_vox):
    """The candidates an alloy's classes took that are half-formed peaks, not atoms, when the
    traced tomogram shows every species alike: ``(left_out, record)``.

    :func:`classify_species` splits the traced tomogram's candidates into noise and one class
    per element. A tomogram that has lost the species' contrast (a U-Net makes every atom
    alike; ``other_bg``, the species' tomogram less its median, keeps it) has one atom
    class, and the faint element's class then takes the half-formed peaks between noise and
    atoms (a bond outside the surface, where a reconstruction's halo leaves them): on an
    independent L1_0 Fe-Pt series at a third of the counts 32 of them became Fe atoms, and
    the counts were too few for the refine stage to remove them.

    The atoms the classes found (above ``thr``) are told apart in ``other_bg``; when the
    lightest element's atoms are, in the traced tomogram, nearer the heaviest's intensity
    than the Z**1.7 ratio expects (above the ratio's square root, halfway in log) and at
    least :data:`FLAT_RATIO` of it, the traced tomogram is taken as flat. Its candidates are
    then split into noise and one atom class as well (:func:`classify_species` with one
    element); those between the two splits are doubtful, and stay atoms only where the
    lattice of the atoms above both holds them: at least :data:`SITE_MIN_NEIGHBOURS` of
    those within :data:`SITE_NEIGHBOUR_RADIUS` of their nearest-neighbour distance (a faint
    atom of a facet or an edge has them; a peak hanging outside the surface, in an adatom's
    hollow, has 3 or 4), the doubtful peaks so held counting for the others in turn (until
    none joins). The others (``left_out``, a mask over the candidates) stay
    candidates (the refine stage tries them in the images where their intensity reaches
    :data:`~napari_aet.trace._trials.TRY_FRACTION` of the faintest atom's).
    """
    els = parse_elements(elements)
    left_out = np.zeros(len(inten), bool)
    thr_one = classify_species(inten[cand_ok], els[:1])[0]
    z = np.array([element_data(e).atomic_number for e in els], float)
    expected = float((z.min() / z.max()) ** Z_CONTRAST_EXPONENT)
    bar = max(float(np.sqrt(expected)), FLAT_RATIO)
    record = {"threshold_one_class": float(thr_one), "expected_ratio": expected, "flat_bar": bar,
              "ratio": None, "applied": False, "n_doubtful": 0, "n_left_out": 0}  # fmt: skip
    above = np.nonzero(cand_ok & (inten >= thr))[0]
    if len(above) < 6:
        return left_out, record
    other_inten = _integrated(other_bg, pos_vox[above], radius_vox)
    _, _, lab = classify_species(other_inten, els, noise=False)
    light, heavy = inten[above][lab == len(els) - 1], inten[above][lab == 0]
    if len(light) < 3 or len(heavy) < 3 or np.median(heavy) <= 0:
        return left_out, record
    ratio = float(np.median(light) / np.median(heavy))
    record["ratio"] = ratio
    sure = cand_ok & (inten >= thr_one)
    doubtful = np.nonzero(cand_ok & (inten >= thr) & ~sure)[0]
    if ratio <= bar or not len(doubtful) or sure.sum() < SITE_MIN_NEIGHBOURS:
        return left_out, record
    held = held_by_the_lattice(pos_vox[sure], pos_vox[doubtful], SITE_MIN_NEIGHBOURS)
    left_out[doubtful[~held]] = True
    record.update(applied=True, n_doubtful=int(len(doubtful)), n_left_out=int((~held).sum()))
    return left_out, record


def held_by_the_lattice(atoms, points, min_neighbours: int) -> np.ndarray:
    """Which ``points`` the atoms' lattice holds: at least ``min_neighbours`` of ``atoms``
    within :data:`SITE_NEIGHBOUR_RADIUS` of the atoms' median nearest-neighbour distance, the
    points so held counting for the others in turn until none joins (a facet's corner, then
    its edge). None is held where there are fewer than 4 atoms (no lattice to tell)."""
    points = np.asarray(points, float).reshape(-1, 3)
    atoms = np.asarray(atoms, float).reshape(-1, 3)
    if len(atoms) < 4 or not len(points):
        return np.zeros(len(points), bool)
    tree = cKDTree(atoms)
    shell = SITE_NEIGHBOUR_RADIUS * median_nearest_distance(atoms, tree)
    n_atoms = np.asarray(tree.query_ball_point(points, shell, return_length=True), int)
    i, k = cKDTree(points).query_pairs(shell, output_type="ndarray").reshape(-1, 2).T
    held = n_atoms >= min_neighbours
    n = len(points)
    while True:
        n_held = np.bincount(i, weights=held[k], minlength=n) + np.bincount(
            k, weights=held[i], minlength=n
        )
        grown = n_atoms + n_held >= min_neighbours
        if (grown == held).all():
            return held
        held = grown


def classify_species(intensity, elements, *, noise: bool = True):
    """Split integrated intensities into (noise and) one class per element by 1D K-means.

    The classes start at the Z**1.7 ratios of the elements (:data:`Z_CONTRAST_EXPONENT`)
    below the bright candidates' intensity (95th percentile), and noise at zero; K-means then
    moves them to the data, so the exponent only has to order the species.

    Returns
    -------
    threshold : float
        Halfway between the noise class and the faintest element's (0 without noise).
    centres : ndarray
        The elements' class centres, in the order of ``elements``.
    labels : ndarray of int
        Per value: the index into ``elements``, or -1 for noise.
    """
    from scipy.cluster.vq import kmeans2

    els = parse_elements(elements)
    v = np.asarray(intensity, float)
    z = np.array([element_data(e).atomic_number for e in els], float)
    top = float(np.percentile(v, 95)) if len(v) else 1.0
    start = top * (z / z.max()) ** Z_CONTRAST_EXPONENT
    init = np.r_[0.0, start] if noise else start
    with warnings.catch_warnings():  # an emptied class is handled below
        warnings.filterwarnings("ignore", "One of the clusters is empty", UserWarning)
        centres, _ = kmeans2(v[:, None], init[:, None], minit="matrix", iter=50)
    c = centres[:, 0]
    # K-means may swap or empty a class: keep the order of the start (noise < light < heavy)
    c = np.where(np.isfinite(c), c, init)
    order = np.argsort(c)
    c_sorted = c[order]
    cut = 0.5 * (c_sorted[1:] + c_sorted[:-1])
    cls = np.searchsorted(cut, v)  # 0 = faintest class
    n_el = len(els)
    # class k of the sorted centres -> element index (heaviest = brightest = index 0)
    if noise:
        lab = np.where(cls == 0, -1, n_el - cls)
        thr = float(cut[0])
        el_centres = c_sorted[1:][::-1]
    else:
        lab = n_el - 1 - cls
        thr = 0.0
        el_centres = c_sorted[::-1]
    return thr, el_centres, lab.astype(int)
