"""(111) stacking analysis: the close-packed direction, layers, A/B/C, fcc/hcp, interface, twist."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize
from scipy.spatial import cKDTree

from .._geometry import in_plane_basis


def nearest_neighbour_distance(positions_A: np.ndarray) -> float:
    """Nearest-neighbour bond length [A]: the median of all first-shell distances.

    The median of each atom's closest distance is biased low by positional noise (the minimum
    of twelve noisy bonds), so it only sets the shell (below 1.2 times it) whose median is used.
    """
    pos = np.asarray(positions_A, np.float64)
    tree = cKDTree(pos)
    d, _ = tree.query(pos, k=2)
    rough = float(np.median(d[:, 1]))
    pairs = tree.query_pairs(1.2 * rough, output_type="ndarray")
    if not len(pairs):
        return rough
    return float(np.median(np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1)))


def _fibonacci_hemisphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = i / n  # upper hemisphere (z >= 0)
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z**2)
    return np.stack([z, r * np.sin(phi), r * np.cos(phi)], axis=1)  # (z, y, x)


def _layering(positions: np.ndarray, normal: np.ndarray, spacing: float) -> float:
    """How well positions fall on planes ``spacing`` apart along ``normal`` (1 = perfectly)."""
    h = positions @ normal
    return float(np.abs(np.exp(2j * np.pi * h / spacing).mean()))


def find_stacking_direction(
    positions_A,
    *,
    spacing_A: float | None = None,
    n_directions: int = 6000,
    n_candidates: int = 24,
) -> tuple[np.ndarray, float]:
    """The direction along which the atoms form close-packed layers ``spacing_A`` apart.

    Scans the hemisphere for the direction that best layers the whole particle (the layering
    score ``|mean exp(2 pi i h / d)|``, ``h`` the height along the direction), then refines it.
    In a twinned particle only the common [111] layers both clusters, so it wins.
    ``spacing_A`` defaults to the (111) spacing of the data's nearest-neighbour distance,
    ``d_nn sqrt(2/3)``.

    Returns
    -------
    normal : ndarray of shape (3,)
        Unit vector ``(z, y, x)``.
    score : float
        Layering score in [0, 1].
    """
    pos = np.asarray(positions_A, np.float64)
    pos = pos - pos.mean(axis=0)
    d = spacing_A or nearest_neighbour_distance(pos) * np.sqrt(2.0 / 3.0)
    dirs = _fibonacci_hemisphere(n_directions)
    scores = np.empty(len(dirs))
    for s in range(0, len(dirs), 500):
        h = pos @ dirs[s : s + 500].T
        scores[s : s + 500] = np.abs(np.exp(2j * np.pi * h / d).mean(axis=0))

    def neg(angles):
        t, p = angles
        n = np.array([np.cos(t), np.sin(t) * np.sin(p), np.sin(t) * np.cos(p)])
        return -_layering(pos, n, d)

    # the layering peak of a long particle is narrower than the scan step: refine the best
    # distinct candidates (at least 4 degrees apart) and keep the best refined one
    order = np.argsort(-scores)
    picked: list[np.ndarray] = []
    for i in order:
        if len(picked) >= n_candidates:
            break
        if all(abs(dirs[i] @ q) < np.cos(np.deg2rad(4.0)) for q in picked):
            picked.append(dirs[i])
    best_n, best_s = picked[0], -1.0
    for q in picked:
        t0 = np.arccos(np.clip(q[0], -1, 1))
        p0 = np.arctan2(q[1], q[2])
        res = optimize.minimize(
            neg,
            [t0, p0],
            method="Nelder-Mead",
            options={
                "xatol": 1e-7,
                "fatol": 1e-10,
                "initial_simplex": [[t0, p0], [t0 + 0.02, p0], [t0, p0 + 0.02]],
            },
        )
        if -res.fun > best_s:
            t, p = res.x
            best_s = float(-res.fun)
            best_n = np.array([np.cos(t), np.sin(t) * np.sin(p), np.sin(t) * np.cos(p)])
    n = best_n / np.linalg.norm(best_n)
    if n[np.argmax(np.abs(n))] < 0:
        n = -n
    return n, best_s


@dataclass
class StackingResult:
    """Layers along the stacking direction and their labels.

    Attributes
    ----------
    normal : ndarray of shape (3,)
        Stacking direction [111] ``(z, y, x)``.
    layer : ndarray of int, shape (N,)
        Layer index per atom, 0 at the interface when there is one (else at the lowest layer).
    abc : ndarray of str, shape (N,)
    stacking : ndarray of str, shape (N,)
        ``fcc`` or ``hcp`` by the letters of the two neighbouring layers; ``other`` for the first
        and last layers and for atoms off every layer.
    cluster : ndarray of int, shape (N,)
        0 at and below the interface, 1 above it.
    layers : list of dict
        Per layer: ``index``, ``abc``, ``stacking``, ``n_atoms``, ``orientation_deg`` (in-plane
        angle of the hexagonal net, modulo 60 degrees).
    interface_layer : int or None
        Layer index of the interface before renumbering (None without a fault).
    twin_boundaries : list of int
        Indices (after renumbering) of the hcp layers at the fault.
    relative_rotation_deg : float
        Rotation of the top cluster's layers relative to the bottom cluster's about [111].
    """

    normal: np.ndarray
    layer: np.ndarray
    abc: np.ndarray
    stacking: np.ndarray
    cluster: np.ndarray
    layers: list = field(default_factory=list)
    interface_layer: int | None = None
    twin_boundaries: list = field(default_factory=list)
    relative_rotation_deg: float = float("nan")
    spacing_A: float = float("nan")
    layering_score: float = float("nan")


def _circular_mean_60(angles_rad: np.ndarray) -> float:
    """Mean of angles with 6-fold symmetry [rad], in (-30, 30] degrees."""
    return float(np.angle(np.exp(6j * angles_rad).mean()) / 6.0)


def analyze_stacking(positions_A, *, normal=None, min_layer_atoms: int = 3) -> StackingResult:
    """Find the (111) layers, label them A/B/C and fcc/hcp, locate a fault and the twist.

    1. The stacking direction (:func:`find_stacking_direction`) unless given.
    2. Layer index of each atom: its height along the normal in units of the spacing, rounded
       after removing the common phase.
    3. In-plane orientation of each layer's hexagonal net from its in-plane nearest-neighbour
       bonds (6-fold circular mean).
    4. A/B/C: the offset of the layer's net against the reference net (the orientation of the
       bottom layers): the mean of ``exp(2 pi i u)`` and ``exp(2 pi i v)`` over the layer's
       fractional coordinates ``(u, v)`` in the reference hexagonal basis gives an offset of 0,
       1/3 or 2/3. Letters are relative (the lowest layer is A).
    5. fcc/hcp from the letters of the layers either side; the fault is where hcp layers appear:
       the middle of ``hcp - X - hcp`` (extrinsic fault: the inserted layer), a lone hcp layer
       (twin), or the first of two adjacent hcp layers (intrinsic fault).
    6. Clusters either side of the interface, and their relative rotation about [111] (mean
       orientation of the top layers minus that of the bottom layers, interface excluded).
    """
    pos = np.asarray(positions_A, np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) < 10:
        raise ValueError("need at least 10 atom positions of shape (N, 3) in Angstrom")
    d_nn = nearest_neighbour_distance(pos)
    spacing = d_nn * np.sqrt(2.0 / 3.0)
    score = float("nan")
    if normal is None:
        n, score = find_stacking_direction(pos, spacing_A=spacing)
    else:
        n = np.asarray(normal, np.float64)
        n = n / np.linalg.norm(n)
    centre = pos.mean(axis=0)
    h = (pos - centre) @ n
    phase = np.angle(np.exp(2j * np.pi * h / spacing).mean()) / (2 * np.pi) * spacing
    k = np.round((h - phase) / spacing).astype(int)
    k -= k.min()
    n_layers = int(k.max()) + 1
    # in-plane bonds (both atoms in the same layer, at nearest-neighbour distance)
    e1, e2 = in_plane_basis(n)
    tree = cKDTree(pos)
    pairs = tree.query_pairs(d_nn * 1.2, output_type="ndarray")
    same = k[pairs[:, 0]] == k[pairs[:, 1]]
    pairs = pairs[same]
    b = pos[pairs[:, 1]] - pos[pairs[:, 0]]
    ang = np.arctan2(b @ e2, b @ e1)
    orient = np.full(n_layers, np.nan)
    for L in range(n_layers):
        sel = k[pairs[:, 0]] == L
        if sel.sum() >= 3:
            orient[L] = _circular_mean_60(ang[sel])
    counts = np.bincount(k, minlength=n_layers)
    # reference net: orientation of the lower half of the particle
    ref = _circular_mean_60(
        orient[: max(n_layers // 3, 1)][np.isfinite(orient[: max(n_layers // 3, 1)])]
    )
    a1 = d_nn * (np.cos(ref) * e1 + np.sin(ref) * e2)
    a2 = d_nn * (np.cos(ref + np.pi / 3) * e1 + np.sin(ref + np.pi / 3) * e2)
    basis = np.linalg.pinv(np.stack([a1, a2], axis=1))  # (2, 3): in-plane -> (u, v)
    uv = (pos - centre) @ basis.T
    letters = np.full(n_layers, "?", dtype=object)
    offsets = np.full(n_layers, np.nan)
    for L in range(n_layers):
        sel = k == L
        if sel.sum() < min_layer_atoms:
            continue
        # (u + v) of A, B, C sites is 0, 2/3, 4/3 (mod 1: 0, 2/3, 1/3); u - v is 0 for all
        t = np.angle(np.exp(2j * np.pi * (uv[sel, 0] + uv[sel, 1])).mean()) / (2 * np.pi)
        offsets[L] = t % 1.0
    valid = np.isfinite(offsets)
    first = int(np.argmax(valid))
    for L in np.nonzero(valid)[0]:
        cls = int(np.round(((offsets[L] - offsets[first]) % 1.0) * 3)) % 3
        letters[L] = "ACB"[cls]  # (u+v) steps of 2/3 per A->B->C
    stack_layer = np.full(n_layers, "other", dtype=object)
    for L in range(1, n_layers - 1):
        if letters[L - 1] != "?" and letters[L + 1] != "?" and letters[L] != "?":
            stack_layer[L] = "hcp" if letters[L - 1] == letters[L + 1] else "fcc"
    # locate the fault among well-populated layers
    big = counts >= max(min_layer_atoms, 0.2 * np.median(counts[counts > 0]))
    hcp = [L for L in range(n_layers) if stack_layer[L] == "hcp" and big[L]]
    interface = None
    boundaries: list[int] = []
    for L in hcp:
        if L + 2 in hcp and stack_layer[L + 1] == "fcc":
            interface, boundaries = L + 1, [L, L + 2]
            break
    if interface is None and hcp:
        if len(hcp) >= 2 and hcp[1] == hcp[0] + 1:
            interface, boundaries = hcp[0], [hcp[0], hcp[1]]
        else:
            interface, boundaries = hcp[0], [hcp[0]]
    zero = interface if interface is not None else 0
    layer = k - zero
    cluster = (layer > 0).astype(np.int64) if interface is not None else np.zeros(len(k), int)
    rot = float("nan")
    if interface is not None:
        lo = [L for L in range(interface) if np.isfinite(orient[L]) and big[L]]
        hi = [L for L in range(interface + 1, n_layers) if np.isfinite(orient[L]) and big[L]]
        if lo and hi:
            w_lo = counts[lo]
            w_hi = counts[hi]
            m_lo = np.angle((np.exp(6j * orient[lo]) * w_lo).sum()) / 6
            m_hi = np.angle((np.exp(6j * orient[hi]) * w_hi).sum()) / 6
            rot = float(np.rad2deg(np.angle(np.exp(6j * (m_hi - m_lo))) / 6))
    layers = [
        {
            "index": int(L - zero),
            "abc": str(letters[L]),
            "stacking": str(stack_layer[L]),
            "n_atoms": int(counts[L]),
            "orientation_deg": float(np.rad2deg(orient[L])) if np.isfinite(orient[L]) else None,
        }
        for L in range(n_layers)
    ]
    return StackingResult(
        n,
        layer.astype(np.int64),
        np.array([str(letters[L]) for L in k]),
        np.array([str(stack_layer[L]) for L in k]),
        cluster,
        layers,
        None if interface is None else int(interface),
        [int(b - zero) for b in boundaries],
        rot,
        float(spacing),
        score,
    )
