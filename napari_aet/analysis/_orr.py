"""ORR activity from surface local strain, per facet, through a relation the user supplies.

The study combined a microkinetic volcano of ORR activity against the OH binding energy
(Viswanathan et al. 2012; Norskov et al. 2004) with DFT slopes of the OH binding energy against
strain on Pt(111) and Pt(100) (Dietze & Gronbeck 2020) into one curve per facet, activity
``log(j / j_Pt(111))`` against strain (its Fig. S7c). Those numbers are not in the study's text
and could not be read from a source available to this project, so napari-aet ships no curve:
the relation is a CSV table that you build from the papers (or your own DFT)::

    # source: <paper, table or figure the points come from>
    # strain: fraction            (or: percent)
    # activity: log10(j/j_Pt(111)) (or: ln(j/j_Pt(111)); converted to log10)
    facet,strain,activity
    111,-0.02,-0.61
    ...

Activities are interpolated linearly within each facet's strain range and NaN outside it
(no extrapolation); the source line travels into ``analysis.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

FACETS = ("111", "100")


@dataclass
class OrrRelation:
    """Activity ``log10(j / j_Pt(111))`` against strain (fraction), one curve per facet.

    Attributes
    ----------
    curves : dict of str -> (ndarray, ndarray)
        Facet (``"111"``, ``"100"``) -> strictly increasing strains and their activities.
    source : str
        Where the points come from.
    header : dict
        The file's ``# key: value`` lines.
    """

    curves: dict
    source: str = ""
    header: dict = field(default_factory=dict)

    def activity(self, strain, facet: str) -> np.ndarray:
        """Interpolated activity at ``strain`` (fraction) on ``facet``; NaN outside the data."""
        facet = _facet_name(facet)
        if facet not in self.curves:
            raise ValueError(f"the ORR relation has no {{{facet}}} curve (has {list(self.curves)})")
        x, y = self.curves[facet]
        s = np.asarray(strain, float)
        out = np.interp(s, x, y)
        out[(s < x[0]) | (s > x[-1]) | ~np.isfinite(s)] = np.nan
        return out


def _facet_name(f) -> str:
    return str(f).strip().strip("{}()").replace(" ", "")


def read_orr_relation(path) -> OrrRelation:
    """Read a strain -> ORR activity table (see the module docstring for the format)."""
    path = Path(path)
    header = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") and ":" in line:
            k, v = line[1:].split(":", 1)
            header[k.strip().lower()] = v.strip()
    try:
        table = pd.read_csv(path, comment="#", dtype={"facet": str})
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"{path} is not a readable ORR table ({err})") from err
    missing = {"facet", "strain", "activity"} - set(table.columns)
    if missing:
        raise ValueError(
            f"{path} lacks the column(s) {', '.join(sorted(missing))}; the table needs "
            "facet,strain,activity (see docs/methods.md, 'ORR activity')"
        )
    if "source" not in header:
        raise ValueError(
            f"{path} does not say where its points come from: add a line '# source: ...'"
        )
    unit = header.get("strain", "fraction").lower()
    scale_strain = 0.01 if unit.startswith("percent") or unit.startswith("%") else 1.0
    act = header.get("activity", "log10").lower().replace(" ", "")
    scale_act = 1 / math.log(10) if act.startswith("ln") else 1.0
    curves = {}
    for facet, grp in table.groupby(table["facet"].map(_facet_name)):
        g = grp.sort_values("strain")
        x = g["strain"].to_numpy(float) * scale_strain
        if np.any(np.diff(x) <= 0):
            raise ValueError(f"{path}: the {{{facet}}} strains repeat; give one value per strain")
        curves[facet] = (x, g["activity"].to_numpy(float) * scale_act)
    if not curves:
        raise ValueError(f"{path} has no data rows")
    return OrrRelation(curves, header["source"], header)


def orr_activity(features: pd.DataFrame, relation: OrrRelation) -> np.ndarray:
    """Per-atom activity from ``local_strain`` on {111} and {100} facet atoms (NaN elsewhere)."""
    if "local_strain" not in features.columns or "facet" not in features.columns:
        raise ValueError("ORR activity needs local_strain and facet: analyze with strain first")
    out = np.full(len(features), np.nan)
    facet = features["facet"].astype(str).map(_facet_name).to_numpy()
    strain = features["local_strain"].to_numpy(float)
    for f in relation.curves:
        sel = facet == f
        if sel.any():
            out[sel] = relation.activity(strain[sel], f)
    return out


def facet_summary(features: pd.DataFrame) -> dict:
    """Per facet ({111}, {100}, both): atom count, mean and spread of the per-atom local strain,
    of the surface local strain (``facet_local_strain``: averaged over the facet's atoms with
    the 2.7 A Gaussian, as the study maps it) and of the ORR activity."""
    if "facet" not in features.columns or "local_strain" not in features.columns:
        return {}
    facet = features["facet"].astype(str).map(_facet_name).to_numpy()
    out = {}
    for name, sel in (
        ("111", facet == "111"),
        ("100", facet == "100"),
        ("both", np.isin(facet, FACETS)),
    ):
        entry = {"n_atoms": int(sel.sum())}
        for col in ("local_strain", "facet_local_strain", "orr_activity"):
            if col in features.columns:
                v = features[col].to_numpy(float)[sel]
                v = v[np.isfinite(v)]
                entry[f"{col}_mean"] = float(v.mean()) if v.size else None
                entry[f"{col}_std"] = float(v.std()) if v.size else None
        out[name] = entry
    return out


def gaussian_map(positions_A, values, *, sigma_A: float = 2.7, spacing_A: float = 1.0):
    """Per-atom values smoothed onto a grid: ``sum w v / sum w`` with Gaussian weights.

    Returns ``(grid, origin_A)``; grid points farther than ``1.5 sigma`` from every atom with a
    finite value are NaN. This is the study's 2.7 A mapping of local strain and ORR activity.
    """
    from scipy.spatial import cKDTree

    p = np.asarray(positions_A, float)
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    p, v = p[ok], v[ok]
    if not len(p):
        raise ValueError("no finite values to map")
    lo = p.min(0) - 2 * sigma_A
    hi = p.max(0) + 2 * sigma_A
    axes = [np.arange(lo[k], hi[k] + spacing_A, spacing_A) for k in range(3)]
    shape = tuple(len(a) for a in axes)
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    near, _ = cKDTree(p).query(pts, distance_upper_bound=1.5 * sigma_A)
    inside = np.nonzero(np.isfinite(near))[0]
    num = np.full(len(pts), np.nan)
    num[inside] = _gaussian_average(pts[inside], p, v, sigma_A)
    return num.reshape(shape).astype(np.float32), lo


def _gaussian_average(points, positions, values, sigma_A: float) -> np.ndarray:
    """``sum w v / sum w`` at each point over the atoms within 3 sigma (NaN where none)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(positions)
    out = np.full(len(points), np.nan)
    for start in range(0, len(points), 20000):
        chunk = points[start : start + 20000]
        m = cKDTree(chunk).sparse_distance_matrix(tree, 3 * sigma_A, output_type="coo_matrix")
        w = np.exp(-(m.data**2) / (2 * sigma_A**2))
        num = np.bincount(m.row, weights=w * values[m.col], minlength=len(chunk))
        den = np.bincount(m.row, weights=w, minlength=len(chunk))
        good = den > 0
        out[start : start + len(chunk)][good] = num[good] / den[good]
    return out


def smooth_per_atom(positions_A, values, *, sigma_A: float = 2.7) -> np.ndarray:
    """Per-atom values averaged over the atoms around each one with a Gaussian of ``sigma_A``
    (the study's 2.7 A kernel); atoms with NaN values do not contribute."""
    p = np.asarray(positions_A, float)
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    if not ok.any():
        return np.full(len(p), np.nan)
    return _gaussian_average(p, p[ok], v[ok], sigma_A)
