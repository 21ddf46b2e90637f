"""Lattice fits by search-and-assign: 2D hexagonal per (111) layer, 3D fcc (or bcc) per
cluster."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..core.geometry import FCC_STEPS

_HEX_STEPS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [1, -1], [-1, 1]])
_FCC_STEPS = FCC_STEPS  # nearest-neighbour steps of fcc in cubic lattice units
#: The 8 nearest-neighbour steps of a bcc lattice in cubic lattice units.
BCC_STEPS = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)]) * 0.5
#: Nearest-neighbour steps (cubic lattice units) and bond length per lattice constant.
CUBIC_LATTICES = {"fcc": (_FCC_STEPS, 1.0 / np.sqrt(2.0)), "bcc": (BCC_STEPS, np.sqrt(3.0) / 2.0)}


class DegenerateFit(ValueError):
    """A lattice fit that cannot be made: too few atoms on the lattice, or a collapsed lattice."""


def _search_and_assign(positions, start, predict, steps, tol_A):
    """Grow an assignment of atoms to lattice sites from ``start`` through neighbour steps.

    ``predict(sites)`` gives the positions of an ``(n, d)`` array of sites; an unassigned atom
    within ``tol_A`` of a site's position is assigned to it. ``steps`` is an array of neighbour
    steps, or ``steps(site)`` gives them (hcp: they differ between the A and B layers).
    Returns ``{atom_index: site}``.

    Breadth first, one generation of sites at a time: every site a generation tries is
    predicted and looked up at once, then taken in the order a site-by-site search would take
    them (an atom near two sites goes to the first), so the assignment is that search's.
    """
    tree = cKDTree(positions)
    start_site = np.zeros(3 if callable(steps) else steps.shape[1])
    if not np.isfinite(predict(start_site[None])).all():
        raise DegenerateFit("the lattice's origin or vectors are not finite")
    assigned = {int(start): start_site}
    taken_sites = {tuple(np.round(start_site * 2).astype(int).tolist())}
    frontier = start_site[None]
    while len(frontier):
        if callable(steps):
            tried = np.concatenate([site + steps(site) for site in frontier])
        else:
            tried = (frontier[:, None, :] + steps[None]).reshape(-1, frontier.shape[1])
        where = predict(tried)
        if not np.isfinite(where).all():
            raise DegenerateFit("the lattice's origin or vectors are not finite")
        d, j = tree.query(where, distance_upper_bound=tol_A)
        keys = np.round(tried * 2).astype(np.int64)
        grown = []
        for k in np.flatnonzero(np.isfinite(d)):
            key, atom = tuple(keys[k].tolist()), int(j[k])
            if key in taken_sites or atom in assigned:
                continue
            assigned[atom] = tried[k]
            taken_sites.add(key)
            grown.append(k)
        frontier = tried[grown]
    return assigned


@dataclass
class HexLayerFit:
    """2D hexagonal lattice fitted to one (111) layer."""

    assigned: np.ndarray  # atom indices (into the layer's atoms)
    residuals_A: np.ndarray  # in-plane distance of each assigned atom from its site
    origin: np.ndarray
    a1: np.ndarray
    a2: np.ndarray

    @property
    def bond_length_A(self) -> float:
        return float(np.linalg.norm(self.a1))

    @property
    def orientation_deg(self) -> float:
        return float(np.rad2deg(np.arctan2(self.a1[1], self.a1[0])))

    @property
    def rmsd_A(self) -> float:
        return float(np.sqrt((self.residuals_A**2).mean())) if len(self.residuals_A) else np.nan


def fit_hexagonal_layer(
    points_2d,
    *,
    bond_A: float,
    orientation_rad: float = 0.0,
    tol_A: float = 0.7,
    max_iter: int = 50,
    converge_A: float = 1e-5,
) -> HexLayerFit:
    """Search-and-assign 2D hexagonal fit of one layer (the study's 2D RMSD procedure).

    From the atom nearest the layer's centre, neighbour sites of the current lattice are
    searched for atoms within ``tol_A`` (0.7 A in the study), the lattice (origin, orientation,
    bond length: linear least squares in ``origin`` and ``(b cos, b sin)``) is fitted to the
    assigned atoms, and both steps repeat until the lattice vectors change by less than
    ``converge_A`` in total.
    """
    p = np.asarray(points_2d, np.float64)
    c = p.mean(axis=0)
    start = int(np.argmin(np.linalg.norm(p - c, axis=1)))
    origin = p[start].copy()
    cs = bond_A * np.array([np.cos(orientation_rad), np.sin(orientation_rad)])
    h = np.sqrt(3) / 2

    def vecs(cs_):
        a1 = cs_.copy()
        a2 = np.array([0.5 * cs_[0] - h * cs_[1], 0.5 * cs_[1] + h * cs_[0]])
        return a1, a2

    for _ in range(max_iter):
        a1, a2 = vecs(cs)
        o0 = origin
        assigned = _search_and_assign(
            p,
            start,
            lambda s, o0=o0, a1=a1, a2=a2: o0 + s[:, :1] * a1 + s[:, 1:2] * a2,
            _HEX_STEPS,
            tol_A,
        )
        idx = np.array(list(assigned))
        if len(idx) < 3:
            raise DegenerateFit(
                f"only {len(idx)} atom(s) of the layer sit on a hexagonal lattice of bond "
                f"{bond_A:.2f} A within {tol_A} A"
            )
        ij = np.array([assigned[k] for k in idx])
        # p = o + i a1 + j a2, linear in (ox, oy, c, s)
        i, j = ij[:, 0], ij[:, 1]
        rows = np.zeros((2 * len(idx), 4))
        rows[0::2, 0] = 1
        rows[1::2, 1] = 1
        rows[0::2, 2] = i + 0.5 * j
        rows[0::2, 3] = -h * j
        rows[1::2, 2] = h * j
        rows[1::2, 3] = i + 0.5 * j
        sol, *_ = np.linalg.lstsq(rows, p[idx].reshape(-1), rcond=None)
        new_origin, new_cs = sol[:2], sol[2:]
        n1, n2 = vecs(new_cs)
        change = np.abs(n1 - a1).sum() + np.abs(n2 - a2).sum()
        origin, cs = new_origin, new_cs
        if change < converge_A:
            break
    a1, a2 = vecs(cs)
    fitted = origin + ij[:, :1] * a1 + ij[:, 1:] * a2
    res = np.linalg.norm(p[idx] - fitted, axis=1)
    return HexLayerFit(idx, res, origin, a1, a2)


def _umeyama(src: np.ndarray, dst: np.ndarray):
    """Similarity transform ``dst ~ s R src + t`` by least squares (Umeyama 1991)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sgn = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sgn[2, 2] = -1
    r = u @ sgn @ vt
    s = np.trace(np.diag(d) @ sgn) / (a**2).sum(axis=1).mean()
    t = mu_d - s * r @ mu_s
    return s, r, t


#: hcp sites are integers ``(i, j, l)``: ``i``, ``j`` the in-plane lattice steps (60 deg
#: apart, one bond ``a`` long) and ``l`` the layer; odd (B) layers sit at ``(1/2, 1/(2 sqrt 3))
#: a`` from even (A) ones, ``c / 2`` above. The 12 neighbour steps from an A site (6 in its
#: layer, 3 in each B layer beside it); from a B site the out-of-layer ones point the other way.
HCP_STEPS_FROM_A = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [1, -1, 0], [-1, 1, 0]]
    + [[0, 0, 1], [-1, 0, 1], [0, -1, 1], [0, 0, -1], [-1, 0, -1], [0, -1, -1]]
)
HCP_STEPS_FROM_B = HCP_STEPS_FROM_A * np.array([-1, -1, 1])
#: The ideal close packing's c / a.
IDEAL_C_OVER_A = float(np.sqrt(8.0 / 3.0))


def _hcp_steps(site) -> np.ndarray:
    return HCP_STEPS_FROM_B if int(round(site[2])) % 2 else HCP_STEPS_FROM_A


def hcp_coordinates(sites, c_over_a: float) -> np.ndarray:
    """Cartesian crystal coordinates (units of ``a``; x along the first in-plane step, z along
    c) of hcp sites ``(i, j, l)``."""
    s = np.atleast_2d(np.asarray(sites, float))
    odd = np.mod(np.round(s[:, 2]), 2)
    x = s[:, 0] + 0.5 * s[:, 1] + 0.5 * odd
    y = np.sqrt(3.0) / 2.0 * s[:, 1] + odd / (2.0 * np.sqrt(3.0))
    return np.stack([x, y, 0.5 * c_over_a * s[:, 2]], axis=1)


def _hcp_predictor(origin, a: float, rotation, c_over_a: float):
    """``sites -> positions`` of an ``(n, 3)`` array of hcp sites (:func:`hcp_coordinates`)."""
    r = a * np.asarray(rotation, float)

    def predict(sites):
        return origin + hcp_coordinates(sites, c_over_a) @ r.T

    return predict


@dataclass
class LatticeFit:
    """A 3D lattice fitted to a cluster: cubic (``kind`` fcc or bcc; ``sites`` in cubic units)
    or hcp (``sites`` are ``(i, j, l)``, see :func:`hcp_coordinates`; ``lattice_constant_A``
    is its ``a``, ``c_over_a`` its ratio)."""

    assigned: np.ndarray  # atom indices (into the given positions)
    sites: np.ndarray  # lattice sites of the assigned atoms
    lattice_constant_A: float
    rotation: np.ndarray  # crystal axes -> lab (z, y, x)
    origin_A: np.ndarray
    displacements_A: np.ndarray  # assigned atom minus its fitted site
    kind: str = "fcc"
    c_over_a: float | None = None  # hcp only

    @property
    def rmsd_A(self) -> float:
        d = self.displacements_A
        return float(np.sqrt((d**2).sum(axis=1).mean())) if len(d) else np.nan

    def crystal_coordinates(self, sites) -> np.ndarray:
        """Sites in Cartesian crystal coordinates, units of the lattice constant (``a``)."""
        if self.kind == "hcp":
            return hcp_coordinates(sites, self.c_over_a)
        return np.atleast_2d(np.asarray(sites, float))

    def site_positions(self, sites) -> np.ndarray:
        xyz = self.crystal_coordinates(sites)
        return self.origin_A + self.lattice_constant_A * xyz @ self.rotation.T


def fit_hcp_lattice(
    positions_A,
    *,
    a_A: float,
    rotation: np.ndarray,
    c_over_a: float = IDEAL_C_OVER_A,
    tol_A: float = 0.7,
    max_iter: int = 50,
    converge_A: float = 1e-5,
) -> LatticeFit:
    """Search-and-assign 3D hcp lattice fit, as :func:`fit_cubic_lattice` with ``c / a`` fitted
    too.

    ``rotation`` maps crystal axes (x along an in-plane bond, z along c) to lab ``(z, y, x)``.
    From the atom nearest the centre (an A site) the 12 neighbour sites are searched for atoms
    within ``tol_A``; origin, orientation and ``a`` are fitted to the assigned atoms
    (similarity transform at the current ``c / a``), then ``c / a`` from their heights along
    c; both steps repeat until the lattice changes by less than ``converge_A``.
    """
    p = np.asarray(positions_A, np.float64)
    start = int(np.argmin(np.linalg.norm(p - p.mean(0), axis=1)))
    a, q = float(a_A), float(c_over_a)
    rot, origin = np.asarray(rotation, float), p[start].copy()
    for _ in range(max_iter):
        o0, a0, r0, q0 = origin, a, rot, q
        assigned = _search_and_assign(p, start, _hcp_predictor(o0, a0, r0, q0), _hcp_steps, tol_A)
        idx = np.array(list(assigned))
        sites = np.array([assigned[k] for k in idx])
        if len(idx) < 4 or np.ptp(sites[:, 2]) == 0:
            raise DegenerateFit(
                f"only {len(idx)} atom(s) in {len(np.unique(sites[:, 2]))} layer(s) sit on an "
                f"hcp lattice of a = {a:.2f} A within {tol_A} A of the sites grown from the "
                "central atom"
            )
        s, r, t = _umeyama(hcp_coordinates(sites, q), p[idx])
        if not (np.isfinite(s) and s > 0 and np.isfinite(r).all() and np.isfinite(t).all()):
            raise DegenerateFit("the fitted hcp lattice collapsed (the assigned atoms are flat)")
        # heights along c (units of a) against the layer index: c / 2a per layer
        height = ((p[idx] - t) @ r)[:, 2] / s
        l_half = 0.5 * sites[:, 2]
        q_new = float((height * l_half).sum() / (l_half**2).sum())
        change = np.abs(s * r - a * rot).sum() + abs(s * q_new - a * q)
        a, rot, origin, q = float(s), r, t, q_new
        if change < converge_A:
            break
    fitted = origin + a * hcp_coordinates(sites, q) @ rot.T
    return LatticeFit(idx, sites, a, rot, origin, p[idx] - fitted, "hcp", q)


def fit_cubic_lattice(
    positions_A,
    *,
    lattice_constant_A: float,
    rotation: np.ndarray,
    tol_A: float = 0.7,
    max_iter: int = 50,
    converge_A: float = 1e-5,
    kind: str = "fcc",
) -> LatticeFit:
    """Search-and-assign 3D cubic lattice fit: fcc (the study's procedure for strain), or
    ``kind="bcc"`` a bcc lattice the same way.

    From the atom nearest the centre, the 12 (bcc: 8) nearest-neighbour sites of the current
    lattice are searched for atoms within ``tol_A``; origin, orientation and lattice constant
    are fitted to the assigned atoms (similarity transform); both steps repeat until the
    lattice vectors change by less than ``converge_A``.
    """
    if kind not in CUBIC_LATTICES:
        raise ValueError(f"unknown lattice {kind!r}; choose one of {', '.join(CUBIC_LATTICES)}")
    steps = CUBIC_LATTICES[kind][0]
    p = np.asarray(positions_A, np.float64)
    start = int(np.argmin(np.linalg.norm(p - p.mean(0), axis=1)))
    a, rot, origin = float(lattice_constant_A), np.asarray(rotation, float), p[start].copy()
    for _ in range(max_iter):
        o0, a0, r0 = origin, a, rot
        assigned = _search_and_assign(
            p, start, lambda s, o0=o0, a0=a0, r0=r0: o0 + a0 * (s @ r0.T), steps, tol_A
        )
        idx = np.array(list(assigned))
        if len(idx) < 4:
            raise DegenerateFit(
                f"only {len(idx)} atom(s) sit on an {kind} lattice of constant {a:.2f} A within "
                f"{tol_A} A of the sites grown from the central atom"
            )
        sites = np.array([assigned[k] for k in idx])
        s, r, t = _umeyama(sites, p[idx])
        if not (np.isfinite(s) and s > 0 and np.isfinite(r).all() and np.isfinite(t).all()):
            raise DegenerateFit(
                f"the fitted {kind} lattice collapsed (the assigned atoms are flat)"
            )
        change = np.abs(s * r - a * rot).sum()
        a, rot, origin = float(s), r, t
        if change < converge_A:
            break
    fitted = origin + a * sites @ rot.T
    return LatticeFit(idx, sites, a, rot, origin, p[idx] - fitted, kind)


def cubic_axes_from_bonds(positions_A, d_nn: float) -> np.ndarray | None:
    """Crystal-to-lab rotation of a bcc crystal from its second-neighbour bonds, which run along
    the cubic axes (<100>, 1.155 bond lengths long). The direction that most such bonds follow
    (within 12 deg, either sense) is [100]; the one most follow at right angles to it, [010].
    None when fewer than 6 such bonds are found. Uses the 400 atoms nearest the centre."""
    p = np.asarray(positions_A, float)
    p = p[np.argsort(np.linalg.norm(p - p.mean(axis=0), axis=1))[:400]]
    tree = cKDTree(p)
    pairs = tree.query_pairs(1.25 * d_nn, output_type="ndarray")
    v = p[pairs[:, 1]] - p[pairs[:, 0]]
    r = np.linalg.norm(v, axis=1)
    v = v[(r > 1.08 * d_nn) & (r < 1.25 * d_nn)]
    if len(v) < 6:
        return None
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    cos_tol = np.cos(np.deg2rad(12.0))
    align = np.abs(u @ u.T)
    first = int(np.argmax((align > cos_tol).sum(axis=1)))
    ax1 = _mean_axis(u[align[first] > cos_tol], u[first])
    perp = np.abs(u @ ax1) < np.sin(np.deg2rad(12.0))
    if perp.sum() < 2:
        return None
    up = u[perp]
    a2 = np.abs(up @ up.T)
    second = int(np.argmax((a2 > cos_tol).sum(axis=1)))
    ax2 = _mean_axis(up[a2[second] > cos_tol], up[second])
    ax2 = ax2 - (ax2 @ ax1) * ax1
    ax2 /= np.linalg.norm(ax2)
    return np.stack([ax1, ax2, np.cross(ax1, ax2)], axis=1)


def _mean_axis(u: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Mean of unit vectors ``u`` taken in the sense of ``ref`` (an axis, not a direction)."""
    m = (u * np.sign(u @ ref)[:, None]).sum(axis=0)
    return m / np.linalg.norm(m)


def fcc_rotation_from_stacking(normal, bond_dir) -> np.ndarray:
    """Crystal-to-lab rotation that puts [111] on ``normal`` and [1 -1 0] on ``bond_dir``."""
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    e = np.asarray(bond_dir, float)
    e = e - (e @ n) * n
    e /= np.linalg.norm(e)
    lab = np.stack([n, e, np.cross(n, e)], axis=1)
    nc = np.array([1.0, 1.0, 1.0]) / np.sqrt(3)
    ec = np.array([1.0, -1.0, 0.0]) / np.sqrt(2)
    crys = np.stack([nc, ec, np.cross(nc, ec)], axis=1)
    return lab @ crys.T
