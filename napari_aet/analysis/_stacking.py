"""(111) stacking analysis: the close-packed direction, layers, A/B/C, fcc/hcp, faults, twist.

Everything here is measured from the atoms' own neighbourhoods so that it holds for traced
atoms with tens of picometres of error, in any orientation:

- the bond length from the first-shell distances, corrected for the outward (Rice) bias that
  isotropic position noise gives every distance;
- the stacking normal from the nearest-neighbour bond directions (the common {111} plane of a
  twinned particle holds the in-plane bonds of both clusters), refined as the normal of the
  in-plane bonds, which isotropic noise does not bias;
- layers by the heights along the normal, with the spacing and each layer's height fitted;
- the stacking letters from the in-plane offsets between the bonded atoms of adjacent layers
  (B on A and C on A differ by the sense of that triangle), so no global reference net is
  needed and a twist between clusters does not scramble them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from ..core.geometry import first_shell, in_plane_basis

#: Two atoms closer than this are one atom traced twice, not a bond [A].
_DUPLICATE_A = 0.5


def _check_positions(positions_A, minimum: int = 2) -> np.ndarray:
    pos = np.asarray(positions_A, np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3) in Angstrom, got {pos.shape}")
    if not np.isfinite(pos).all():
        raise ValueError(
            f"{int((~np.isfinite(pos)).any(axis=1).sum())} atom positions are not finite "
            "(NaN or inf): remove those atoms first"
        )
    if len(pos) < minimum:
        raise ValueError(f"need at least {minimum} atom positions of shape (N, 3) in Angstrom")
    return pos


def nearest_neighbour_distance(positions_A: np.ndarray) -> float:
    """Nearest-neighbour bond length [A], robust to positional noise.

    Each atom's closest distance gives a rough value (biased low by noise: the minimum of
    twelve noisy bonds); the first shell is then the distances within 0.8-1.2 times the
    estimate, re-centred until it settles. The median of that shell is corrected for the bias
    of isotropic noise, which lengthens every distance on average: with a spread ``s`` of the
    shell along the bonds (from its median absolute deviation), the two components across a
    bond add ``s^2 / d`` to a bond ``d``.
    Atom pairs closer than 0.5 A (one atom traced twice) are ignored.
    """
    pos = _check_positions(positions_A)
    est, shell = first_shell(pos, min_distance=_DUPLICATE_A)
    if len(shell) < 10:
        return est
    spread = 1.4826 * float(np.median(np.abs(shell - est)))
    return float(est - spread**2 / est)


def _fibonacci_hemisphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = i / n  # upper hemisphere (z >= 0)
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z**2)
    return np.stack([z, r * np.sin(phi), r * np.cos(phi)], axis=1)  # (z, y, x)


def bond_vectors(positions_A, d_nn: float) -> tuple[np.ndarray, np.ndarray]:
    """First-shell bonds: atom index pairs ``(M, 2)`` and vectors ``(M, 3)`` (second - first)."""
    pos = np.asarray(positions_A, np.float64)
    pairs = cKDTree(pos).query_pairs(1.2 * d_nn, output_type="ndarray")
    if not len(pairs):
        return np.zeros((0, 2), int), np.zeros((0, 3))
    b = pos[pairs[:, 1]] - pos[pairs[:, 0]]
    keep = np.linalg.norm(b, axis=1) > _DUPLICATE_A
    return pairs[keep], b[keep]


def _plane_normal_of_bonds(b: np.ndarray, n0: np.ndarray, iterations: int = 6) -> np.ndarray:
    """Normal of the plane that holds the bonds nearly perpendicular to ``n0`` (refined)."""
    n = n0 / np.linalg.norm(n0)
    u = b / np.linalg.norm(b, axis=1, keepdims=True)
    for _ in range(iterations):
        inplane = np.abs(u @ n) < 0.35  # in-plane bonds; out-of-plane ones sit at 0.82
        if inplane.sum() < 3:
            break
        w, v = np.linalg.eigh(u[inplane].T @ u[inplane])
        new = v[:, 0]
        if new @ n < 0:
            new = -new
        if np.linalg.norm(new - n) < 1e-10:
            n = new
            break
        n = new
    return n


@dataclass
class _Layering:
    k: np.ndarray  # layer index per atom, 0 at the lowest
    centres: np.ndarray  # height of each layer along the normal [A]
    spacing: float
    score: float


def _fit_layers(h: np.ndarray, spacing0: float) -> _Layering:
    """Layers along one direction: the spacing and phase that best layer the heights ``h``,
    then each layer's own height (1D k-means from the regular grid), so that a strained
    particle's uneven spacing does not move atoms into the wrong layer."""
    h = np.asarray(h, float)

    def score(sp):
        return float(np.abs(np.exp(2j * np.pi * h / sp).mean()))

    # the spacing from the bond length is within a few per cent: scan, then refine by least
    # squares of the heights on their layer indices
    trial = spacing0 * np.linspace(0.94, 1.06, 121)
    sp = float(trial[np.argmax([score(t) for t in trial])])
    for _ in range(5):
        phase = np.angle(np.exp(2j * np.pi * h / sp).mean()) / (2 * np.pi) * sp
        k = np.round((h - phase) / sp)
        if np.ptp(k) < 1:
            break
        a = np.stack([np.ones_like(k), k], axis=1)
        (c0, new), *_ = np.linalg.lstsq(a, h, rcond=None)
        if not np.isfinite(new) or new <= 0.5 * spacing0 or new >= 1.5 * spacing0:
            break
        done = abs(new - sp) < 1e-9
        sp = float(new)
        if done:
            break
    phase = np.angle(np.exp(2j * np.pi * h / sp).mean()) / (2 * np.pi) * sp
    k = np.round((h - phase) / sp).astype(int)
    kmin = int(k.min())
    k -= kmin
    centres = np.array(
        [np.median(h[k == L]) if (k == L).any() else np.nan for L in range(k.max() + 1)]
    )
    for _ in range(3):  # k-means in 1D from the regular layers
        idx = np.arange(len(centres))
        grid = np.where(np.isfinite(centres), centres, phase + (idx + kmin) * sp)
        k_new = _nearest_index(grid, h)
        if np.array_equal(k_new, k):
            break
        k = k_new
        centres = np.array([np.median(h[k == L]) if (k == L).any() else np.nan for L in idx])
    used = np.unique(k)
    remap = np.full(len(centres), -1)
    remap[used] = np.arange(len(used))
    return _Layering(remap[k], centres[used], sp, score(sp))


def _nearest_index(grid: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Index of the nearest value of the increasing ``grid`` for each ``h`` (no N x M array)."""
    j = np.clip(np.searchsorted(grid, h), 1, len(grid) - 1) if len(grid) > 1 else None
    if j is None:
        return np.zeros(len(h), int)
    return np.where(np.abs(h - grid[j - 1]) <= np.abs(grid[j] - h), j - 1, j)


def find_stacking_direction(
    positions_A,
    *,
    spacing_A: float | None = None,
    n_directions: int = 4000,
    n_candidates: int = 6,
    bond_A: float | None = None,
) -> tuple[np.ndarray, float]:
    """The direction along which the atoms form close-packed layers.

    The nearest-neighbour bonds are scored against the directions of a hemisphere: a (111)
    normal has six of the twelve fcc bonds in its plane, any other direction at most four, and
    in a twinned particle only the common [111] has the in-plane bonds of both clusters. The
    best distinct candidates are refined as the normal of their in-plane bonds (isotropic noise
    of the positions does not bias it) and the one whose layers are sharpest wins.
    ``spacing_A`` (default: the (111) spacing of the bond length, ``d_nn sqrt(2/3)``) only
    seeds the layer fit, which refines it. ``bond_A``: the bond length when already measured
    (:func:`nearest_neighbour_distance`).

    Returns
    -------
    normal : ndarray of shape (3,)
        Unit vector ``(z, y, x)``.
    score : float
        Layering score ``|mean exp(2 pi i h / d)|`` in [0, 1] (1: every atom on a plane).
    """
    pos = _check_positions(positions_A, minimum=4)
    pos = pos - pos.mean(axis=0)
    d_nn = bond_A or nearest_neighbour_distance(pos)
    spacing = spacing_A or d_nn * np.sqrt(2.0 / 3.0)
    _, b = bond_vectors(pos, d_nn)
    dirs = _fibonacci_hemisphere(n_directions)
    if len(b) < 3:
        return dirs[0], 0.0
    u = b / np.linalg.norm(b, axis=1, keepdims=True)
    scores = np.zeros(len(dirs))
    for s in range(0, len(u), 4000):
        c = u[s : s + 4000] @ dirs.T
        scores += np.exp(-0.5 * (c / 0.12) ** 2).sum(axis=0)
    order = np.argsort(-scores)
    picked: list[np.ndarray] = []
    for i in order:
        if len(picked) >= n_candidates:
            break
        if all(abs(dirs[i] @ q) < np.cos(np.deg2rad(15.0)) for q in picked):
            picked.append(dirs[i])
    best_n, best_s = picked[0], -1.0
    for q in picked:
        n = _plane_normal_of_bonds(b, q)
        s = _fit_layers(pos @ n, spacing).score
        if s > best_s + 1e-9:
            best_n, best_s = n, s
    n = best_n / np.linalg.norm(best_n)
    if n[np.argmax(np.abs(n))] < 0:
        n = -n
    return n, float(best_s)


@dataclass
class StackingResult:
    """Layers along the stacking direction and their labels.

    Attributes
    ----------
    normal : ndarray of shape (3,)
        Stacking direction [111] ``(z, y, x)``, pointing from cluster 0 to cluster 1.
    layer : ndarray of int, shape (N,)
        Layer index per atom, 0 at the interface when there is one (else at the lowest layer).
    abc : ndarray of str, shape (N,)
        Stacking letter of the atom's layer (relative: the lowest labelled layer is A); ``?``
        where the layer's place in the sequence could not be measured.
    stacking : ndarray of str, shape (N,)
        ``fcc`` or ``hcp`` by the letters of the two neighbouring layers; ``other`` for the first
        and last layers and where a neighbouring layer's offset could not be measured.
    cluster : ndarray of int, shape (N,)
        0 at and below the interface, 1 above it.
    layers : list of dict
        Per layer: ``index``, ``abc``, ``stacking``, ``n_atoms``, ``orientation_deg`` (in-plane
        angle of the hexagonal net, modulo 60 degrees), ``height_A`` and ``step_confidence``
        (how clearly the offset to the next layer says B-on-A or C-on-A, 0 to 1).
    interface_layer : int or None
        Layer index of the interface before renumbering (None without a fault).
    twin_boundaries : list of int
        Indices (after renumbering) of the hcp layers at the interface's fault.
    faults : list of dict
        Every fault found, bottom to top: ``type`` (``extrinsic``: hcp-X-hcp, the inserted
        layer X; ``intrinsic``: two adjacent hcp layers; ``twin``: a lone hcp layer),
        ``hcp_layers`` and ``layer`` (its interface layer), indices after renumbering.
    relative_rotation_deg : float
        Rotation of cluster 1's layers relative to cluster 0's about [111] from the in-plane
        bond orientations (the structure analysis replaces it by the fitted lattices' value).
    notes : list of str
        What could not be measured, and why.
    host : str
        ``"fcc"``, or ``"hcp"`` when at least 4 and more than twice as many well-populated
        layers are hcp-stacked as fcc-stacked (an hcp crystal, ABAB: Co, Ru, Ti, ...). An hcp
        crystal's faults are its runs of fcc-stacked layers (``type`` ``intrinsic I1``: one,
        ``intrinsic I2``: two, ``extrinsic``: three, ``fcc lamella``: more; ``fcc_layers``,
        ``layer`` the run's first), and it has no interface, twin boundaries or clusters.
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
    faults: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    host: str = "fcc"


def _circular_mean_60(angles_rad: np.ndarray, weights=None) -> float:
    """Mean of angles with 6-fold symmetry [rad], in (-30, 30] degrees; NaN without angles."""
    a = np.asarray(angles_rad, float)
    if not a.size:
        return float("nan")
    w = np.ones_like(a) if weights is None else np.asarray(weights, float)
    z = (w * np.exp(6j * a)).sum()
    return float(np.angle(z) / 6.0) if abs(z) > 0 else float("nan")


def _wrap60(x: float) -> float:
    """``x`` [rad] wrapped into [-30, 30) degrees."""
    return float((x + np.pi / 6) % (np.pi / 3) - np.pi / 6)


def _find_faults(stack_layer, big) -> list[dict]:
    """Every hcp run among well-populated layers, classified (indices before renumbering)."""
    hcp = [L for L in range(len(stack_layer)) if stack_layer[L] == "hcp" and big[L]]
    faults, used = [], set()
    for L in hcp:
        if L in used:
            continue
        if L + 2 in hcp and L + 1 not in hcp and stack_layer[L + 1] == "fcc":
            faults.append({"type": "extrinsic", "hcp_layers": [L, L + 2], "layer": L + 1})
            used |= {L, L + 2}
        elif L + 1 in hcp:
            faults.append({"type": "intrinsic", "hcp_layers": [L, L + 1], "layer": L})
            used |= {L, L + 1}
        else:
            faults.append({"type": "twin", "hcp_layers": [L], "layer": L})
            used.add(L)
    return faults


def _faults_in_hcp(stack_layer, big) -> list[dict]:
    """Every run of fcc-stacked, well-populated layers in an hcp crystal (indices before
    renumbering)."""
    kinds = {1: "intrinsic I1", 2: "intrinsic I2", 3: "extrinsic"}
    faults, run = [], []
    for L in [*range(len(stack_layer)), None]:
        if L is not None and stack_layer[L] == "fcc" and big[L]:
            run.append(L)
            continue
        if run:
            kind = kinds.get(len(run), "fcc lamella")
            faults.append({"type": kind, "fcc_layers": list(run), "layer": run[0]})
            run = []
    return faults


def analyze_stacking(
    positions_A, *, normal=None, min_layer_atoms: int = 3, bond_A: float | None = None
) -> StackingResult:
    """Find the (111) layers, label them A/B/C and fcc/hcp, locate the faults and the twist.

    1. The stacking direction (:func:`find_stacking_direction`) unless given.
    2. Layers: heights along the normal on a fitted regular spacing, each layer's height then
       refined (1D k-means), so uneven spacing and noise do not mix layers.
    3. In-plane orientation of each layer's hexagonal net from its in-plane bonds (6-fold
       circular mean), made continuous from layer to layer.
    4. Steps: the bonds between two adjacent layers, projected on the plane, point along one of
       two triangles relative to the lower layer's net (B on A, or C on A): the sign of
       ``Im mean exp(3 i (phi - theta))`` says which. Letters follow by chaining the steps
       (relative: the lowest layer is A); a layer is hcp where the steps below and above it
       differ, fcc where they agree.
    5. Faults: every hcp run among well-populated layers (``hcp - X - hcp``: extrinsic, the
       inserted layer X; two adjacent hcp layers: intrinsic; a lone hcp layer: twin). The
       interface is the fault with the most hcp atoms; layers are renumbered from it.
    6. Clusters either side of the interface, and their relative rotation about [111] from
       the in-plane bond orientations (interface excluded).

    ``bond_A``: the bond length when already measured (:func:`nearest_neighbour_distance`).
    """
    pos = _check_positions(positions_A, minimum=10)
    d_nn = bond_A or nearest_neighbour_distance(pos)
    spacing0 = d_nn * np.sqrt(2.0 / 3.0)
    score = float("nan")
    if normal is None:
        n, score = find_stacking_direction(pos, spacing_A=spacing0, bond_A=d_nn)
    else:
        n = np.asarray(normal, np.float64)
        if n.shape != (3,) or not np.isfinite(n).all() or np.linalg.norm(n) == 0:
            raise ValueError("normal must be a finite, non-zero 3-vector (z, y, x)")
        n = n / np.linalg.norm(n)
    centre = pos.mean(axis=0)
    lay = _fit_layers((pos - centre) @ n, spacing0)
    if normal is not None:
        score = lay.score
    k = lay.k
    n_layers = int(k.max()) + 1
    counts = np.bincount(k, minlength=n_layers)
    notes: list[str] = []
    e1, e2 = in_plane_basis(n)
    pairs, b = bond_vectors(pos, d_nn)
    k0, k1 = k[pairs[:, 0]], k[pairs[:, 1]]
    # in-plane bonds: orientation of each layer's net, continuous from layer to layer
    same = k0 == k1
    ang = np.arctan2(b[same] @ e2, b[same] @ e1)
    orient = np.full(n_layers, np.nan)
    for L in range(n_layers):
        sel = k0[same] == L
        if sel.sum() >= 3:
            orient[L] = _circular_mean_60(ang[sel])
    cont = orient.copy()
    prev = np.nan
    for L in range(n_layers):
        if not np.isfinite(cont[L]):
            continue
        if np.isfinite(prev):
            cont[L] = prev + _wrap60(cont[L] - prev)
        prev = cont[L]
    # steps between adjacent layers from the bonds that join them (lower -> upper atom)
    up = k1 == k0 + 1
    down = k0 == k1 + 1
    cross_lo = np.concatenate([pairs[up, 0], pairs[down, 1]])
    cross_v = np.concatenate([b[up], -b[down]])
    phi = np.arctan2(cross_v @ e2, cross_v @ e1)
    lower = k[cross_lo]
    step = np.zeros(max(n_layers - 1, 0), int)  # +1: B on A; -1: C on A; 0: unknown
    confidence = np.zeros(max(n_layers - 1, 0))
    for L in range(n_layers - 1):
        sel = lower == L
        th = cont[L] if np.isfinite(cont[L]) else cont[L + 1]
        if sel.sum() < 3 or not np.isfinite(th):
            continue
        t = float(np.exp(3j * (phi[sel] - th)).mean().imag)
        confidence[L] = abs(t)
        if abs(t) >= 0.2:
            step[L] = 1 if t > 0 else -1
    letters = np.full(n_layers, "?", dtype=object)
    known = np.nonzero(step)[0]
    if len(known):
        cur = 0
        letters[known[0]] = "A"
        for L in range(known[0], n_layers - 1):
            if step[L] == 0:
                break
            cur = (cur + step[L]) % 3
            letters[L + 1] = "ABC"[cur]
        if (step[known[0] :] == 0).any():
            notes.append(
                "the offset between some adjacent layers could not be measured (too few bonds "
                "between them): their letters are '?' and their stacking 'other'"
            )
    stack_layer = np.full(n_layers, "other", dtype=object)
    for L in range(1, n_layers - 1):
        if step[L - 1] and step[L]:
            stack_layer[L] = "hcp" if step[L - 1] != step[L] else "fcc"
    big = counts >= max(min_layer_atoms, 0.2 * np.median(counts[counts > 0]))
    n_hcp = int(np.sum((stack_layer == "hcp") & big))
    n_fcc = int(np.sum((stack_layer == "fcc") & big))
    # an hcp crystal only by a clear majority: a small fcc particle with an extrinsic fault has
    # two hcp layers around one fcc one
    host = "hcp" if n_hcp > 2 * n_fcc and n_hcp >= 4 else "fcc"
    interface = None
    boundaries: list[int] = []
    if host == "hcp":
        faults = _faults_in_hcp(stack_layer, big)
        notes.append(
            f"an hcp crystal ({n_hcp} of {n_hcp + n_fcc} inner layers hcp-stacked, ABAB): its "
            "faults are the runs of fcc-stacked layers; no interface, twin boundaries or clusters"
        )
    else:
        faults = _find_faults(stack_layer, big)
    if faults and host == "fcc":
        main_fault = max(faults, key=lambda f: (counts[f["hcp_layers"]].sum(), -f["layer"]))
        interface, boundaries = main_fault["layer"], list(main_fault["hcp_layers"])
    zero = interface if interface is not None else 0
    layer = k - zero
    cluster = (layer > 0).astype(np.int64) if interface is not None else np.zeros(len(k), int)
    rot = float("nan")
    if interface is not None:
        lo = [L for L in range(interface) if np.isfinite(orient[L]) and big[L]]
        hi = [L for L in range(interface + 1, n_layers) if np.isfinite(orient[L]) and big[L]]
        if lo and hi:
            m_lo = _circular_mean_60(orient[lo], counts[lo])
            m_hi = _circular_mean_60(orient[hi], counts[hi])
            rot = float(np.rad2deg(_wrap60(m_hi - m_lo)))
    layers = [
        {
            "index": int(L - zero),
            "abc": str(letters[L]),
            "stacking": str(stack_layer[L]),
            "n_atoms": int(counts[L]),
            "orientation_deg": float(np.rad2deg(orient[L])) if np.isfinite(orient[L]) else None,
            "height_A": float(lay.centres[L]),
            "step_confidence": float(confidence[L]) if L < n_layers - 1 else None,
        }
        for L in range(n_layers)
    ]
    for f in faults:
        key = "hcp_layers" if "hcp_layers" in f else "fcc_layers"
        f[key] = [int(x - zero) for x in f[key]]
        f["layer"] = int(f["layer"] - zero)
    return StackingResult(
        n,
        layer.astype(np.int64),
        np.array([str(letters[L]) for L in k]),
        np.array([str(stack_layer[L]) for L in k]),
        cluster,
        layers,
        None if interface is None else int(interface),
        [int(x - zero) for x in boundaries],
        rot,
        float(lay.spacing),
        float(score),
        faults,
        notes,
        host,
    )
