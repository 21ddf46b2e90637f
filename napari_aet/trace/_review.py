"""Guided review: a doubt score for every traced atom and for likely missing atoms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from ..analysis import analyze_stacking, fit_cluster_lattices, nearest_neighbour_distance
from ..core.geometry import FCC_STEPS
from ._tracer import _integrated, fit_peaks

#: Weights of the doubt signals in the score (each signal is in [0, 1]).
DOUBT_WEIGHTS = {
    "doubt_close_pair": 1.0,
    "doubt_layer": 1.0,
    "doubt_lattice": 0.5,
    "doubt_intensity": 0.6,
    "doubt_fit": 0.4,
    "doubt_missing": 1.0,
    "doubt_disagree": 0.8,
    "doubt_refine": 0.8,
}


@dataclass
class ReviewList:
    """Atoms and missing-atom candidates ordered by doubt.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per item, most doubtful first: ``kind`` (``atom`` or ``missing``), ``index``
        (atom index, -1 for candidates), ``z, y, x`` [A], each signal ``doubt_*``, ``score``,
        ``reasons`` (the signals above 0.5, in words).
    """

    table: pd.DataFrame

    def top_fraction(self, fraction: float) -> pd.DataFrame:
        n = max(1, int(np.ceil(fraction * len(self.table))))
        return self.table.iloc[:n]

    def injected_hits(self, injected, fraction: float) -> dict[str, int]:
        """How many known errors (:class:`~napari_aet.simulate.InjectedErrors`) rank in the
        first ``fraction`` of the list: displaced and duplicated atoms by index, removed atoms
        by a missing-atom candidate within 0.7 A."""
        top = self.top_fraction(fraction)
        atoms = top[top.kind == "atom"]["index"].to_numpy()
        cand = top[top.kind == "missing"][["z", "y", "x"]].to_numpy()
        missing = 0
        if len(cand) and len(injected.removed_A):
            missing = int((cKDTree(cand).query(injected.removed_A)[0] < 0.7).sum())
        return {
            "displaced": int(np.isin(injected.displaced, atoms).sum()),
            "duplicated": int(np.isin(injected.duplicates, atoms).sum()),
            "removed": missing,
        }


_REASONS = {
    "doubt_close_pair": "closer to a neighbour than the bond length allows",
    "doubt_layer": "off its (111) layer's hexagonal net",
    "doubt_lattice": "off its lattice site",
    "doubt_intensity": "intensity near the atom/non-atom threshold",
    "doubt_fit": "poor Gaussian fit",
    "doubt_missing": "empty lattice site with intensity (missed atom?)",
    "doubt_disagree": "not traced in the other tomogram (raw vs augmented)",
    "doubt_refine": "moved far or faded when refined against the images",
}


def doubt_scores(
    positions_A,
    volume,
    *,
    voxel_size_A: float,
    lattice_sites_A=None,
    site_of_atom=None,
    threshold: float | None = None,
    bond_A: float | None = None,
    layer_deviation_A=None,
    other_positions_A=None,
    refine_shift_A=None,
    refine_amplitude=None,
) -> ReviewList:
    """Rank traced atoms, and lattice sites without an atom, by how likely they are wrong.

    Signals (each in [0, 1], documented in docs/methods.md):

    - ``doubt_close_pair``: the atom is closer than 0.8 bond lengths to another one
      (duplicates, split peaks); 1 at half a bond;
    - ``doubt_layer``: deviation [A] of the atom from its (111) layer's fitted hexagonal net
      (in plane and in height; ``layer_deviation_A``), 1 at 0.7 A: fault layers fit their own
      net, so they are not suspects;
    - ``doubt_lattice``: distance from the atom's site of the fitted 3D lattice, 1 at 0.7 A or
      when it has no site (weighted less: stacking-fault layers are legitimately off it);
    - ``doubt_intensity``: integrated intensity close to the classification threshold;
    - ``doubt_fit``: Gaussian-fit residual far above the median (robust z-score / 6);
    - ``doubt_missing`` (candidates): lattice sites with no atom within 0.7 A, surrounded by
      atoms, where the tomogram is at least half as bright as at a typical atom;
    - ``doubt_disagree``: with ``other_positions_A`` (the atoms traced in the other tomogram,
      e.g. the augmented one when these come from the raw one), an atom without a partner
      there within 0.7 A scores 1 (0.35 A: 0.5); the other model's atoms without a partner
      here become candidates (``kind`` ``missing``) with this signal.
    - ``doubt_refine``: with the features of :func:`refine_atom_positions`, the larger of the
      move (1 at 0.7 A) and the fading (1 at amplitude 0, 0 at half the median amplitude).

    The score is the largest weighted signal (:data:`DOUBT_WEIGHTS`) plus a tenth of the other
    weighted signals.

    Parameters
    ----------
    positions_A : ndarray of shape (N, 3)
    volume : ndarray (z, y, x)
        The tomogram the atoms were traced in.
    lattice_sites_A : ndarray of shape (M, 3), optional
        Sites of the fitted lattice(s) [A] (assigned and empty), for the lattice signals.
    site_of_atom : ndarray of shape (N, 3), optional
        Each atom's own site [A] (NaN where unassigned).
    threshold : float, optional
        The tracer's integrated-intensity threshold.
    bond_A : float, optional
        Nearest-neighbour distance [A]; from the data when None.
    """

    pos = np.asarray(positions_A, float)
    vol = np.asarray(volume, np.float32)
    px = float(voxel_size_A)
    n = len(pos)
    bond = bond_A or nearest_neighbour_distance(pos)
    tree = cKDTree(pos)
    d, _ = tree.query(pos, k=2)
    nn = d[:, 1]
    close = np.clip((0.8 * bond - nn) / (0.3 * bond), 0, 1)
    vox = pos / px
    inside = np.all((vox >= 1) & (vox <= np.array(vol.shape) - 2), axis=1)
    _, heights, resid = fit_peaks(
        vol, np.clip(np.round(vox).astype(int), 1, np.array(vol.shape) - 2)
    )
    bg = float(np.median(vol))
    inten = _integrated(vol - bg, vox, 0.8 / px)
    typical = float(np.median(inten))
    thr = 0.4 * typical if threshold is None else float(threshold)
    # 1 at the threshold, 0 at a typical atom (or further above it)
    near_thr = np.clip(1 - np.abs(inten - thr) / max(typical - thr, 1e-12), 0, 1)
    med = np.median(resid)
    mad = 1.4826 * np.median(np.abs(resid - med)) + 1e-12
    fit = np.clip((resid - med) / (6 * mad), 0, 1)
    lattice = np.zeros(n)
    if site_of_atom is not None:
        s = np.asarray(site_of_atom, float)
        off = np.linalg.norm(pos - s, axis=1)
        lattice = np.where(np.isfinite(off), np.clip(off / 0.7, 0, 1), 1.0)
    layer_dev = np.zeros(n)
    if layer_deviation_A is not None:
        dev = np.nan_to_num(np.asarray(layer_deviation_A, float), nan=0.7)
        layer_dev = np.clip(dev / 0.7, 0, 1)
    atoms = pd.DataFrame(
        {
            "kind": "atom",
            "index": np.arange(n),
            "z": pos[:, 0],
            "y": pos[:, 1],
            "x": pos[:, 2],
            "doubt_close_pair": close,
            "doubt_lattice": lattice,
            "doubt_intensity": near_thr,
            "doubt_fit": np.where(inside, fit, 1.0),
            "doubt_missing": 0.0,
        }
    )
    atoms.insert(atoms.columns.get_loc("doubt_lattice"), "doubt_layer", layer_dev)
    atoms["doubt_disagree"] = 0.0
    rows = [atoms]
    if other_positions_A is not None and len(other_positions_A):
        other = np.asarray(other_positions_A, float).reshape(-1, 3)
        d_o, _ = cKDTree(other).query(pos)
        atoms["doubt_disagree"] = np.clip(d_o / 0.7, 0, 1)
        d_h, _ = tree.query(other)
        extra = other[d_h > 0.7]
        if len(extra):
            rows.append(
                pd.DataFrame(
                    {
                        "kind": "missing",
                        "index": -1,
                        "z": extra[:, 0],
                        "y": extra[:, 1],
                        "x": extra[:, 2],
                        "doubt_close_pair": 0.0,
                        "doubt_layer": 0.0,
                        "doubt_lattice": 0.0,
                        "doubt_intensity": 0.0,
                        "doubt_fit": 0.0,
                        "doubt_missing": 0.0,
                        "doubt_disagree": 1.0,
                    }
                )
            )
    if lattice_sites_A is not None:
        sites = np.asarray(lattice_sites_A, float).reshape(-1, 3)
        dd, _ = tree.query(sites, distance_upper_bound=0.7)
        empty = sites[~np.isfinite(dd)]
        if len(empty):
            # surrounded: at least 8 atoms within 1.2 bonds (an interior or surface vacancy)
            cnt = np.array([len(x) for x in tree.query_ball_point(empty, 1.2 * bond)])
            empty = empty[cnt >= 8]
        if len(empty):
            sm = ndimage.gaussian_filter(vol, 0.3 / px)
            val = ndimage.map_coordinates(sm, (empty / px).T, order=1) - bg
            peak_typ = float(np.median(ndimage.map_coordinates(sm, vox[inside].T, order=1))) - bg
            miss = np.clip((val / max(peak_typ, 1e-12) - 0.25) / 0.5, 0, 1)
            keep = miss > 0
            cand = pd.DataFrame(
                {
                    "kind": "missing",
                    "index": -1,
                    "z": empty[keep, 0],
                    "y": empty[keep, 1],
                    "x": empty[keep, 2],
                    "doubt_close_pair": 0.0,
                    "doubt_layer": 0.0,
                    "doubt_lattice": 0.0,
                    "doubt_intensity": 0.0,
                    "doubt_fit": 0.0,
                    "doubt_missing": miss[keep],
                    "doubt_disagree": 0.0,
                }
            )
            rows.append(cand)
    table = pd.concat(rows, ignore_index=True)
    refine = np.zeros(len(pos))
    if refine_shift_A is not None:
        refine = np.maximum(refine, np.clip(np.nan_to_num(refine_shift_A) / 0.7, 0, 1))
    if refine_amplitude is not None:
        fade = (0.5 - np.nan_to_num(refine_amplitude, nan=1.0)) / 0.5
        refine = np.maximum(refine, np.clip(fade, 0, 1))
    table["doubt_refine"] = 0.0
    table.loc[table["kind"] == "atom", "doubt_refine"] = refine  # atoms come first, in order
    w = DOUBT_WEIGHTS
    weighted = np.stack([table[k].to_numpy() * v for k, v in w.items()], axis=1)
    # the strongest reason decides, further reasons add a little: one clear problem must not be
    # outranked by atoms with several faint ones
    top = weighted.max(axis=1)
    table["score"] = top + 0.1 * (weighted.sum(axis=1) - top)
    table["reasons"] = [
        "; ".join(_REASONS[k] for k in w if r[k] > 0.5) for _, r in table.iterrows()
    ]
    table = table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    return ReviewList(table)


def empty_sites_of_fit(fit, radius_sites: int = 1) -> np.ndarray:
    """Nearest-neighbour sites [A] of a lattice fit's assigned atoms (candidates for missing
    atoms; occupied ones are filtered out by :func:`doubt_scores`)."""

    sites = fit.sites
    cand = (sites[:, None, :] + FCC_STEPS[None]).reshape(-1, 3)
    key = np.unique(np.round(cand * 2).astype(int), axis=0) / 2.0
    return fit.site_positions(key)


def review_atoms(
    positions_A,
    volume,
    *,
    voxel_size_A: float,
    threshold: float | None = None,
    other_positions_A=None,
    refine_shift_A=None,
    refine_amplitude=None,
) -> ReviewList:
    """:func:`doubt_scores` with the lattice signals from the stacking analysis and a
    search-and-assign fcc fit of each cluster (the crystal-analysis stage's fits);
    ``other_positions_A``: atoms traced in the other tomogram (raw vs augmented);
    ``refine_shift_A``, ``refine_amplitude``: the refinement's features, when refined."""

    pos = np.asarray(positions_A, float)
    st = analyze_stacking(pos)
    d_nn = nearest_neighbour_distance(pos)
    site_of_atom = np.full_like(pos, np.nan)
    sites = []
    for _, sel, fit in fit_cluster_lattices(pos, st.normal, st.cluster, d_nn=d_nn):
        site_of_atom[sel[fit.assigned]] = fit.site_positions(fit.sites)
        sites.append(empty_sites_of_fit(fit))
    return doubt_scores(
        pos,
        volume,
        voxel_size_A=voxel_size_A,
        lattice_sites_A=np.vstack(sites) if sites else None,
        site_of_atom=site_of_atom,
        threshold=threshold,
        bond_A=d_nn,
        other_positions_A=other_positions_A,
        refine_shift_A=refine_shift_A,
        refine_amplitude=refine_amplitude,
    )
