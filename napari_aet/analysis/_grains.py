"""Twin domains (grains) of an fcc particle from each atom's local lattice orientation.

A twinned dumbbell has one set of parallel {111} twin planes, and the stacking analysis
describes it along their common normal. Most Pt, Pd and Au particles below 10 nm are
*multiply* twinned instead: five tetrahedral segments about a common <110> axis (a decahedron)
or twenty about a centre (an icosahedron), whose twin planes are not parallel. No single
stacking normal describes them, so the domains are found from the atoms themselves:

1. each atom with twelve neighbours gets the rotation that best maps the twelve ideal fcc
   bond directions onto its bonds (started from one bond pair at 60 deg, then matched and
   refitted by Kabsch's method), with the fit's RMS misfit; atoms of twin planes (an hcp
   environment), surfaces and defects fit badly and are left out;
2. neighbouring well-fitted atoms whose rotations differ by less than a few degrees (after
   the 24 rotations of the cube) are joined, and the connected groups of at least
   ``min_atoms`` are the grains;
3. the atoms left out join the grain most of their neighbours belong to (twin-plane atoms,
   equally shared, the larger grain's);
4. each pair of grains that share a plane gets its misorientation (a coherent twin, Sigma 3,
   is 60 deg about a common <111>) and the plane, fitted through its own atoms; pairs that
   touch along a line only are junctions;
5. the twin planes' arrangement names the particle: parallel (lamellar twins), about one
   common axis (decahedral: the five-fold axis), about several (icosahedral).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ._lattice import DegenerateFit, fit_cubic_lattice

#: The twelve nearest-neighbour bond directions of fcc (unit <110>), crystal frame.
_FCC_BONDS = np.array(
    [[a, b, 0] for a in (1, -1) for b in (1, -1)]
    + [[a, 0, b] for a in (1, -1) for b in (1, -1)]
    + [[0, a, b] for a in (1, -1) for b in (1, -1)],
    dtype=np.float64,
) / np.sqrt(2.0)
#: The 24 proper rotations of the cube.
_CUBIC = Rotation.create_group("O").as_matrix()
#: The <110> directions (up to sign).
_AXES_110 = np.array(
    [[1, 1, 0], [1, -1, 0], [1, 0, 1], [1, 0, -1], [0, 1, 1], [0, 1, -1]], float
) / np.sqrt(2.0)
#: The <111> directions (up to sign).
_AXES_111 = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]], float) / np.sqrt(3.0)

#: Largest RMS misfit of an atom's twelve unit bonds to the fitted fcc directions for its
#: orientation to count (an ideal twin-plane atom fits at 0.24; fcc atoms at 5, 12 and 20 pm
#: of noise per axis at medians of 0.04, 0.09 and 0.15).
MAX_MISFIT = 0.16
#: The highest the misfit bar is raised for noisy positions (see :func:`_misfit_bar`).
MAX_MISFIT_NOISY = 0.21
#: Neighbours whose orientations differ by less than this [deg] belong to one grain (a twin
#: differs by 60 deg; the homogeneous strain of a decahedron turns a segment by under 1 deg).
JOIN_DEG = 6.0
#: Grains whose bonds across spread less than this [A] (RMS) across their longest direction
#: meet along a line (a junction), not across a plane (measured: lines of a decahedron's and
#: an icosahedron's five-fold axes 0.04-1.0 A, their twin planes 3.0-5.4 A).
LINE_WIDTH_A = 1.6
#: Grains turned by less than this [deg] meet at a low-angle boundary (sub-grains, e.g. the
#: twist between coalesced clusters), not a grain boundary that needs its own description.
LOW_ANGLE_DEG = 15.0
#: The share of a model's atoms that must be oriented atoms of its grains for the grains to
#: describe it (:meth:`Grains.describe`).
MIN_GRAIN_SHARE = 0.1
#: A Sigma-3 twin: within this of 60 deg about a <111> [deg], widened by the two grains'
#: orientation uncertainty (:func:`_orientation_error_deg`).
TWIN_TOLERANCE_DEG = 5.0
#: The fewest and the most oriented atoms a grain needs (:func:`grain_min_atoms`).
MIN_GRAIN_ATOMS = (4, 10)
#: Two twins in turn (Sigma 9): 38.94 deg about a <110>; a decahedron's segments two apart
#: are turned so (36 deg once strained to close the gap; an icosahedron's tetrahedra, whose
#: strain is larger, about an axis up to 7 deg off <110>): within the tolerance [deg] and
#: 10 deg of a <110>.
SIGMA9_DEG = 38.94
SIGMA9_TOLERANCE_DEG = 4.5


@dataclass
class Grains:
    """Twin domains of a particle.

    Attributes
    ----------
    label : ndarray of int, shape (N,)
        Each atom's grain, 0 the largest; -1 for an atom with no grain around it.
    oriented : ndarray of bool, shape (N,)
        Atoms whose own fcc orientation was measured (twelve neighbours, a good fit).
    rotations : list of ndarray (3, 3)
        Each grain's mean crystal-to-lab rotation (acting on ``(z, y, x)`` vectors as the
        lattice fits' do).
    boundaries : list of dict
        Grain pairs that share a plane: ``grains``, ``n_bonds`` (bonds across),
        ``misorientation_deg``, ``axis_crystal`` (in the first grain's cubic frame), ``twin``
        (Sigma 3), ``plane_normal_zyx`` and ``plane_point_zyx`` (in the lab [A]: the plane
        through the boundary's own atoms, those without an fcc orientation between the two
        grains, or through the bonds across it where it has too few), ``plane_flatness_A``
        (the bonds' RMS spread along their plane's normal) and, for a twin,
        ``lattice_plane_normal_zyx`` (the {111} both grains' lattices share there; the
        five-fold axes are found from these) and ``plane_to_twin_axis_deg`` (the angle between
        the two planes: near 0 for a coherent twin between unstrained grains);
        ``second_order_twin`` for a boundary between two grains that are both twins of a
        third, or turned as two twins in turn are (Sigma 9: 38.94 deg about <110>, 36 deg in a
        strained decahedron), which a missing or wrongly traced patch of the third leaves
        (not counted as a grain boundary of a polycrystal).
    junctions : list of [int, int]
        Grain pairs that touch only along a line (their bonds across lie within
        :data:`LINE_WIDTH_A` of one: a decahedron's segments two apart, at its axis).
    kind : str
        ``"not measured"`` (no grain found: too few atoms with twelve neighbours, as in
        multiply twinned particles under about 1.2 nm in radius), ``"single crystal"``,
        ``"low-angle grains"`` (turned by less than :data:`LOW_ANGLE_DEG`),
        ``"lamellar twins"`` (parallel twin planes), ``"decahedral"`` (four or more grains
        whose twin planes share an axis), ``"icosahedral"`` (eight or more grains, twin
        planes about two or more five-fold axes), ``"multiply twinned"`` (twin planes not
        parallel) or ``"polycrystalline"`` (a boundary that is neither a twin nor low-angle).
    fivefold_axis_zyx : ndarray of shape (3,) or None
        The decahedron's common axis.
    fivefold_axes_zyx : list of ndarray (3,)
        Every direction four or more twin planes share (an icosahedron has six).
    segment_angles_deg : list
        A decahedron's grains' angles between their two twin planes about the axis (sum 360:
        72 each when the 7.35-deg gap of five ideal tetrahedra, 70.53 deg each, is shared
        evenly; one much wider where a segment takes it, or a disclination sits); None for a
        grain without two twin planes there.
    notes : list of str
    atom_rotations, misfit : ndarray or None
        Each atom's own orientation and its misfit (:func:`local_fcc_orientations`), for
        analyses that read the atoms' bonds on their cube axes.
    rotation_errors_deg : list of float
        Each grain's mean orientation's standard error [deg] (its oriented atoms' spread):
        a twin between small grains is recognised within it.
    """

    label: np.ndarray
    oriented: np.ndarray
    rotations: list = field(default_factory=list)
    boundaries: list = field(default_factory=list)
    junctions: list = field(default_factory=list)
    kind: str = "not measured"
    fivefold_axis_zyx: np.ndarray | None = None
    fivefold_axes_zyx: list = field(default_factory=list)
    segment_angles_deg: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    atom_rotations: np.ndarray | None = None
    misfit: np.ndarray | None = None
    rotation_errors_deg: list = field(default_factory=list)

    @property
    def n_grains(self) -> int:
        return len(self.rotations)

    def describe(self) -> bool:
        """Whether the grains, not one stacking normal, describe the particle: twin planes
        not parallel or a polycrystal's boundary (:data:`MULTIPLY_TWINNED`), and the grains'
        own oriented atoms :data:`MIN_GRAIN_SHARE` of the model or more (an icosahedron's
        28 %: a few fcc-like clusters in a glass are no polycrystal)."""
        own = np.mean(self.oriented & (self.label >= 0)) if len(self.label) else 0.0
        return self.kind in MULTIPLY_TWINNED and own >= MIN_GRAIN_SHARE

    def summary(self) -> dict:
        """What ``analysis.json`` reports about the grains."""
        sizes = np.bincount(self.label[self.label >= 0], minlength=self.n_grains)
        return {
            "kind": self.kind,
            "n_grains": self.n_grains,
            "grain_atoms": [int(s) for s in sizes],
            "oriented_fraction": float(self.oriented.mean()) if len(self.oriented) else 0.0,
            "boundaries": [
                {
                    k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
                    for k, v in b.items()
                }
                for b in self.boundaries
            ],
            "junctions": self.junctions,
            "twin_plane_angles_deg": _twin_plane_angles(self.boundaries),
            "fivefold_axis_zyx": None
            if self.fivefold_axis_zyx is None
            else [float(v) for v in self.fivefold_axis_zyx],
            "fivefold_axes_zyx": [[float(v) for v in a] for a in self.fivefold_axes_zyx],
            "segment_angles_deg": self.segment_angles_deg,
        }


def _frames(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Right-handed orthonormal frames (columns) from first vectors ``a`` and second ``b``."""
    e1 = a / np.linalg.norm(a, axis=-1, keepdims=True)
    e2 = b - np.sum(b * e1, axis=-1, keepdims=True) * e1
    e2 /= np.linalg.norm(e2, axis=-1, keepdims=True)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=-1)


def _kabsch(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotations ``R`` (batch) that best map each row of ``v`` onto ``u``: ``u ~ R v``."""
    m = np.einsum("nja,njb->nab", u, v)
    uu, _, wt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(uu @ wt))
    uu[:, :, 2] *= d[:, None]
    return uu @ wt


def local_fcc_orientations(positions_A, d_nn: float, *, iterations: int = 3):
    """Each atom's fcc lattice orientation from its twelve nearest bonds.

    Returns ``(rotations, misfit)``: crystal-to-lab rotations of shape (N, 3, 3) and the RMS
    distance between the atom's unit bonds and the rotated ideal directions matched to them
    (NaN, and an identity rotation, for an atom without twelve neighbours within 1.25
    ``d_nn``: a surface atom).
    """
    pos = np.asarray(positions_A, np.float64)
    n = len(pos)
    rot = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    misfit = np.full(n, np.nan)
    if n < 13 or not np.isfinite(d_nn):
        return rot, misfit
    dist, idx = cKDTree(pos).query(pos, k=13)
    # twelve bonds in the first shell, none to an atom traced twice (closer than half a bond)
    full = (dist[:, 12] < 1.25 * d_nn) & (dist[:, 1] > 0.5 * d_nn)
    sel = np.nonzero(full)[0]
    if not len(sel):
        return rot, misfit
    bonds = pos[idx[sel, 1:]] - pos[sel, None, :]
    u = bonds / np.linalg.norm(bonds, axis=-1, keepdims=True)
    # start: the first bond and the one nearest 60 deg to it onto [110] and [101]
    cos = np.einsum("nja,na->nj", u[:, 1:], u[:, 0])
    j2 = 1 + np.argmin(np.abs(cos - 0.5), axis=1)
    b2 = u[np.arange(len(sel)), j2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return _fit_orientations(u, b2, iterations, rot, misfit, sel)


def _fit_orientations(u, b2, iterations, rot, misfit, sel):
    """Fill ``rot`` and ``misfit`` of atoms ``sel`` from their unit bonds ``u`` (see
    :func:`local_fcc_orientations`), ``b2`` the bond nearest 60 deg to the first."""
    lab = _frames(u[:, 0], b2)
    best_r, best_m = None, None
    # the pair fixes the orientation up to the {111} mirror through it (a twin): try both
    for second in (4, 5):  # [101] and [10-1], each 60 deg from [110]
        ideal = _frames(_FCC_BONDS[None, 0], _FCC_BONDS[None, second])
        r = lab @ np.swapaxes(ideal, -1, -2)
        for _ in range(iterations):
            w = np.einsum("nab,kb->nka", r, _FCC_BONDS)  # rotated ideal directions
            match = np.argmax(np.einsum("nja,nka->njk", u, w), axis=2)
            r = _kabsch(u, _FCC_BONDS[match])
        w = np.einsum("nab,kb->nka", r, _FCC_BONDS)
        m = np.sqrt(
            np.mean(
                np.min(np.maximum(2.0 - 2.0 * np.einsum("nja,nka->njk", u, w), 0.0), axis=2), axis=1
            )
        )
        if best_r is None:
            best_r, best_m = r, m
        else:
            better = m < best_m
            best_r[better], best_m[better] = r[better], m[better]
    good = np.isfinite(best_m) & np.isfinite(best_r).all(axis=(1, 2))
    rot[sel[good]] = best_r[good]
    misfit[sel[good]] = best_m[good]
    return rot, misfit


def misorientation_deg(ra: np.ndarray, rb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest angle [deg] between cubic orientations ``ra`` and ``rb`` (batches of 3x3),
    and the index into the cube's 24 rotations that gives it (``rb @ S`` nearest ``ra``)."""
    rel = np.einsum("eba,ebc->eac", ra, rb)  # ra^T rb
    tr = np.einsum("eab,sba->es", rel, _CUBIC)
    best = np.argmax(tr, axis=1)
    c = np.clip((tr[np.arange(len(tr)), best] - 1.0) / 2.0, -1.0, 1.0)
    return np.rad2deg(np.arccos(c)), best


def _mean_rotation(rots: np.ndarray, weights=None) -> np.ndarray:
    """Mean of cubic orientations: each brought to the variant nearest the first's, averaged
    and projected back onto a rotation."""
    ref = rots[len(rots) // 2]
    _, s = misorientation_deg(np.broadcast_to(ref, rots.shape), rots)
    aligned = np.einsum("eab,ebc->eac", rots, _CUBIC[s])
    m = np.average(aligned, axis=0, weights=weights)
    uu, _, wt = np.linalg.svd(m)
    if np.linalg.det(uu @ wt) < 0:
        uu[:, 2] *= -1
    return uu @ wt


def _twin_check(ra: np.ndarray, rb: np.ndarray, error_deg: float = 0.0):
    """Misorientation angle [deg], its axis in ``ra``'s crystal frame, and whether it is a
    Sigma-3 twin (60 deg about <111>, within :data:`TWIN_TOLERANCE_DEG` plus twice
    ``error_deg``, the relative orientation's standard error) with its plane normal in the
    lab."""
    ang, s = misorientation_deg(ra[None], rb[None])
    rel = ra.T @ rb @ _CUBIC[s[0]]
    rv = Rotation.from_matrix(rel).as_rotvec()
    norm = float(np.linalg.norm(rv))
    axis = rv / norm if norm > 1e-9 else np.array([0.0, 0.0, 1.0])
    off = np.rad2deg(np.arccos(np.clip(np.max(np.abs(_AXES_111 @ axis)), -1.0, 1.0)))
    tol = TWIN_TOLERANCE_DEG + 2.0 * error_deg
    twin = abs(float(ang[0]) - 60.0) < tol and off < tol
    normal = ra @ axis
    return float(ang[0]), axis, twin, normal / np.linalg.norm(normal)


def _twin_plane_angles(boundaries) -> list[float]:
    """Angles [deg] between the twin planes of the boundaries (each pair once)."""
    normals = [np.asarray(b["plane_normal_zyx"]) for b in boundaries if b.get("twin")]
    out = []
    for i in range(len(normals)):
        for j in range(i + 1, len(normals)):
            c = abs(float(normals[i] @ normals[j]))
            out.append(float(np.rad2deg(np.arccos(min(c, 1.0)))))
    return out


def grain_min_atoms(n_oriented: int) -> int:
    """The oriented atoms a grain needs: a twentieth of the model's (an icosahedron, the most
    divided fcc particle, has twenty grains), within :data:`MIN_GRAIN_ATOMS`. Large particles
    keep ten, which no patch of a tracer's wrong atoms reaches; a 2.8-nm icosahedron (561
    atoms) has four oriented atoms per tetrahedron and a 2-nm decahedron seven per segment,
    which a fixed ten left "not measured"."""
    lo, hi = MIN_GRAIN_ATOMS
    return int(np.clip(n_oriented // 20, lo, hi))


def _orientation_error_deg(rots: np.ndarray, mean: np.ndarray) -> float:
    """Standard error [deg] of a grain's mean orientation ``mean``: its atoms' RMS
    misorientation from it over the square root of their number (0 for one atom)."""
    if len(rots) < 2:
        return 0.0
    ang, _ = misorientation_deg(np.broadcast_to(mean, rots.shape), rots)
    return float(np.sqrt(np.mean(ang**2) / (len(rots) - 1)))


def _misfit_bar(misfit: np.ndarray) -> float:
    """The misfit below which an atom's orientation counts: :data:`MAX_MISFIT`, raised with
    the positions' noise (the lower quartile of the misfits, mostly bulk fcc atoms, at 1.6
    times) up to :data:`MAX_MISFIT_NOISY`, below an ideal twin-plane atom's 0.24."""
    m = misfit[np.isfinite(misfit)]
    if not len(m):
        return MAX_MISFIT
    return float(np.clip(1.6 * np.percentile(m, 25), MAX_MISFIT, MAX_MISFIT_NOISY))


def segment_grains(
    positions_A,
    d_nn: float,
    *,
    min_atoms: int | None = None,
    join_deg: float = JOIN_DEG,
    max_misfit: float | None = None,
) -> Grains:
    """Twin domains of an fcc particle (see the module's description).

    ``d_nn`` is the nearest-neighbour distance [A]; a grain needs ``min_atoms`` atoms whose
    own orientation was measured (default :func:`grain_min_atoms` of the oriented atoms).
    Any positions give a result: too few oriented atoms give no grain (every label -1) with
    the reason in ``notes``.
    """
    pos = np.asarray(positions_A, np.float64)
    n = len(pos)
    label = np.full(n, -1, np.int64)
    rot, misfit = local_fcc_orientations(pos, d_nn)
    if max_misfit is None:
        max_misfit = _misfit_bar(misfit)
    oriented = np.isfinite(misfit) & (misfit < max_misfit)
    out = Grains(label, oriented, kind="not measured", atom_rotations=rot, misfit=misfit)
    if min_atoms is None:
        min_atoms = grain_min_atoms(int(oriented.sum()))
    if oriented.sum() < min_atoms:
        out.notes.append(
            f"{int(oriented.sum())} atoms have a measurable fcc orientation (twelve neighbours, "
            f"misfit < {max_misfit}): no grains"
        )
        return out
    tree = cKDTree(pos)
    pairs = tree.query_pairs(1.25 * d_nn, output_type="ndarray")
    both = oriented[pairs[:, 0]] & oriented[pairs[:, 1]]
    p = pairs[both]
    ang, _ = misorientation_deg(rot[p[:, 0]], rot[p[:, 1]])
    p = p[ang < join_deg]
    graph = coo_matrix((np.ones(len(p)), (p[:, 0], p[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    comp = np.where(oriented, comp, -1)
    ids, counts = np.unique(comp[comp >= 0], return_counts=True)
    big = ids[counts >= min_atoms][np.argsort(-counts[counts >= min_atoms], kind="stable")]
    for g, c in enumerate(big):
        label[comp == c] = g
    if not len(big):
        out.notes.append(f"no group of {min_atoms} or more atoms shares one fcc orientation")
        return out
    out.rotations = [_mean_rotation(rot[label == g]) for g in range(len(big))]
    out.rotation_errors_deg = [
        _orientation_error_deg(rot[label == g], out.rotations[g]) for g in range(len(big))
    ]
    # the rest join the grain most of their neighbours are in (ties: the larger grain)
    nbrs = tree.query_ball_point(pos, 1.25 * d_nn)
    core = label.copy()  # the oriented atoms' grains, before the rest join them
    for _ in range(6):
        todo = np.nonzero(label < 0)[0]
        if not len(todo):
            break
        new = label.copy()
        for i in todo:
            lab = label[nbrs[i]]
            lab = lab[lab >= 0]
            if len(lab):
                new[i] = np.argmax(np.bincount(lab))
        if (new == label).all():
            break
        label[:] = new
    _boundaries(out, pos, pairs, _sandwiched(core, oriented, nbrs))
    _classify(out)
    if out.kind == "decahedral":
        out.segment_angles_deg = _segment_angles(out, pos)
    return out


def _segment_angles(out: Grains, pos: np.ndarray) -> list:
    """Each decahedral grain's angle [deg] between its two twin planes, about the five-fold
    axis (72 for a segment strained to close the gap, 70.53 for a perfect tetrahedron); None
    for a grain without two twin planes on the axis. Each plane's trace runs from the axis
    out to the side where its two grains lie."""
    axis = out.fivefold_axis_zyx
    centre = pos.mean(axis=0)
    traces: dict[int, list] = {g: [] for g in range(out.n_grains)}
    for b in out.boundaries:
        n = np.asarray(b["plane_normal_zyx"])
        if not b["twin"] or abs(n @ axis) > np.sin(np.deg2rad(8.0)):
            continue
        t = np.cross(axis, n)
        side = pos[np.isin(out.label, b["grains"])].mean(axis=0) - centre
        t = t if side @ t >= 0 else -t
        for g in b["grains"]:
            traces[g].append(t / np.linalg.norm(t))
    angles = []
    for g in range(out.n_grains):
        if len(traces[g]) != 2:
            angles.append(None)
            continue
        c = float(np.clip(traces[g][0] @ traces[g][1], -1.0, 1.0))
        angles.append(float(np.rad2deg(np.arccos(c))))
    return angles


def _sandwiched(core: np.ndarray, oriented: np.ndarray, nbrs) -> dict:
    """Atoms with no orientation of their own whose oriented neighbours belong to exactly two
    grains, by grain pair: a coherent twin plane's own atoms (an hcp environment between
    two fcc grains)."""
    out: dict[tuple, list] = {}
    for i in np.nonzero(~oriented)[0]:
        g = np.unique(core[nbrs[i]])
        g = g[g >= 0]
        if len(g) == 2:
            out.setdefault((int(g[0]), int(g[1])), []).append(i)
    return out


def _boundaries(out: Grains, pos: np.ndarray, pairs: np.ndarray, sandwiched: dict) -> None:
    la, lb = out.label[pairs[:, 0]], out.label[pairs[:, 1]]
    across = (la >= 0) & (lb >= 0) & (la != lb)
    if not across.any():
        return
    a, b = np.minimum(la[across], lb[across]), np.maximum(la[across], lb[across])
    mid = 0.5 * (pos[pairs[across, 0]] + pos[pairs[across, 1]])
    keys, inverse = np.unique(np.stack([a, b], 1), axis=0, return_inverse=True)
    for key, (ga, gb) in enumerate(keys):
        m = mid[inverse.ravel() == key]
        # a plane shared by two grains spreads its bonds across over an area; grains that
        # meet only along a line (a decahedron's segments two apart, at its axis; an
        # icosahedron's along its five-fold axes) have them within a bond or so of that line
        if len(m) < 3:
            out.junctions.append([int(ga), int(gb)])
            continue
        _, sv, vt = np.linalg.svd(m - m.mean(0), full_matrices=False)
        sv = sv / np.sqrt(len(m))
        if sv[1] < LINE_WIDTH_A:
            out.junctions.append([int(ga), int(gb)])
            continue
        err = float(np.hypot(out.rotation_errors_deg[ga], out.rotation_errors_deg[gb]))
        ang, axis, twin, twin_normal = _twin_check(out.rotations[ga], out.rotations[gb], err)
        # the plane itself: through the twin plane's own atoms where it has enough of them
        # (exact, and unbiased where one grain is strained more than the other), else
        # through the bonds across it; and the {111} both grains' lattices share there
        plane, point = vt[2], m.mean(0)
        own = pos[sandwiched.get((int(ga), int(gb)), [])]
        if len(own) >= 6:
            _, sv_own, vt_own = np.linalg.svd(own - own.mean(0), full_matrices=False)
            if sv_own[1] / np.sqrt(len(own)) >= LINE_WIDTH_A:
                plane, point = vt_own[2], own.mean(0)
        plane = plane * np.sign(plane @ twin_normal or 1.0)
        lattice_plane = plane
        if twin:
            both = []
            for rot in (out.rotations[ga], out.rotations[gb]):
                h = rot @ _AXES_111.T  # the grain's four <111> in the lab
                k = int(np.argmax(np.abs(plane @ h)))
                both.append(h[:, k] * np.sign(plane @ h[:, k]))
            lattice_plane = (both[0] + both[1]) / np.linalg.norm(both[0] + both[1])
        out.boundaries.append(
            {
                "grains": [int(ga), int(gb)],
                "n_bonds": int(len(m)),
                "misorientation_deg": ang,
                "axis_crystal": [float(v) for v in axis],
                "twin": bool(twin),
                "plane_normal_zyx": [float(v) for v in plane],
                "plane_point_zyx": [float(v) for v in point],
                "lattice_plane_normal_zyx": [float(v) for v in lattice_plane] if twin else None,
                "plane_flatness_A": float(sv[2]),
                # a coherent twin's plane is the {111} the grains share
                "plane_to_twin_axis_deg": float(
                    np.rad2deg(np.arccos(min(1.0, abs(float(lattice_plane @ plane)))))
                )
                if twin
                else None,
            }
        )


def _classify(out: Grains) -> None:
    if out.n_grains < 2:
        out.kind = "single crystal"
        return
    twins = [b for b in out.boundaries if b["twin"]]
    twin_of: dict[int, set] = {}
    for b in twins:
        ga, gb = b["grains"]
        twin_of.setdefault(ga, set()).add(gb)
        twin_of.setdefault(gb, set()).add(ga)
    for b in out.boundaries:
        # two grains that are both twins of a third meet where the third is missing there
        # (a decahedron's segments two apart, across a patch of wrongly traced atoms)
        ga, gb = b["grains"]
        axis = np.asarray(b["axis_crystal"], float)
        off110 = np.rad2deg(np.arccos(min(1.0, float(np.max(np.abs(_AXES_110 @ axis))))))
        sigma9 = abs(b["misorientation_deg"] - SIGMA9_DEG) < SIGMA9_TOLERANCE_DEG and off110 < 10.0
        b["second_order_twin"] = bool(
            not b["twin"] and (sigma9 or twin_of.get(ga, set()) & twin_of.get(gb, set()))
        )
    high = [
        b
        for b in out.boundaries
        if not b["twin"] and not b["second_order_twin"] and b["misorientation_deg"] >= LOW_ANGLE_DEG
    ]
    # the planes from the grains' lattices: steadier than through a small boundary's few atoms,
    # and where one grain is strained more they turn about the five-fold axis, not off it
    normals = (
        np.array([b["lattice_plane_normal_zyx"] for b in twins]) if twins else np.zeros((0, 3))
    )
    if high:
        out.notes.append(
            f"{len(high)} of {len(out.boundaries)} grain boundaries are neither coherent twins "
            f"(60 deg about <111>) nor low-angle (< {LOW_ANGLE_DEG:g} deg)"
        )
        out.kind = "polycrystalline"
        return
    if not len(normals):
        out.kind = "low-angle grains"  # e.g. two clusters twisted a degree or two apart
        return
    if np.all(np.abs(normals @ normals[0]) > np.cos(np.deg2rad(8.0))):
        out.kind = "lamellar twins"
        return
    out.kind = "multiply twinned"
    axes = fivefold_axes(normals)
    out.fivefold_axes_zyx = axes
    if len(axes) == 1 and out.n_grains >= 4:
        out.kind = "decahedral"
        out.fivefold_axis_zyx = axes[0]
    elif len(axes) >= 2 and out.n_grains >= 8:
        out.kind = "icosahedral"


def fivefold_axes(normals: np.ndarray, *, min_planes: int = 4, tol_deg: float = 8.0) -> list:
    """Directions that lie in ``min_planes`` or more distinct twin planes (``normals``, unit):
    a decahedron's one five-fold axis, an icosahedron's six (its three- and two-fold axes lie
    in three and two). Candidates are the lines where
    two planes meet; each is refined as the direction least along the normals of the planes
    that hold it."""
    sin_tol = np.sin(np.deg2rad(tol_deg))
    planes: list[np.ndarray] = []  # each plane once (an icosahedron's opposite faces share one)
    for n in np.asarray(normals, float).reshape(-1, 3):
        if all(abs(n @ q) < np.cos(np.deg2rad(tol_deg)) for q in planes):
            planes.append(n)
    normals = np.array(planes).reshape(-1, 3)
    found: list[np.ndarray] = []
    for i in range(len(normals)):
        for j in range(i + 1, len(normals)):
            c = np.cross(normals[i], normals[j])
            if np.linalg.norm(c) < sin_tol:
                continue  # parallel planes meet nowhere
            c /= np.linalg.norm(c)
            held = np.abs(normals @ c) < sin_tol
            if held.sum() < min_planes:
                continue
            axis = np.linalg.svd(normals[held])[2][2]
            axis = axis * np.sign(axis[np.argmax(np.abs(axis))])
            if all(abs(axis @ f) < np.cos(np.deg2rad(tol_deg)) for f in found):
                found.append(axis)
    return found


#: The kinds of particle whose twin planes are not parallel: no single stacking normal.
MULTIPLY_TWINNED = ("decahedral", "icosahedral", "multiply twinned", "polycrystalline")


def fit_grain_lattices(positions_A, grains: Grains, *, d_nn: float, notes: list | None = None):
    """Search-and-assign fcc fit of every grain, started from its mean orientation; yields
    ``(grain, atom indices, LatticeFit)`` as :func:`fit_cluster_lattices` does. A grain that
    cannot be fitted is skipped with the reason appended to ``notes``."""
    notes = [] if notes is None else notes
    pos = np.asarray(positions_A, np.float64)
    for g, rot in enumerate(grains.rotations):
        sel = np.nonzero(grains.label == g)[0]
        if len(sel) < 20:
            notes.append(f"grain {g}: {len(sel)} atoms, too few for an fcc lattice fit")
            continue
        try:
            fit = fit_cubic_lattice(pos[sel], lattice_constant_A=d_nn * np.sqrt(2.0), rotation=rot)
        except DegenerateFit as err:
            notes.append(f"grain {g}: no fcc lattice fit ({err})")
            continue
        yield g, sel, fit


def grains_note(grains: Grains, *, layered: bool = True) -> str:
    """What an analyst reads about a particle whose twin planes are not parallel
    (``layered``: the stacking analysis still found layers along one normal)."""
    what = {
        "decahedral": "a decahedral (five-fold twinned) particle",
        "icosahedral": "an icosahedral particle",
        "multiply twinned": "a multiply twinned particle",
        "polycrystalline": "a polycrystalline particle",
    }[grains.kind]
    n_twin = sum(b["twin"] for b in grains.boundaries)
    stacking = (
        "The layers, A/B/C letters, faults and twist are measured along one stacking normal and "
        "describe only the grains whose {111} planes lie across it"
        if layered
        else "No one stacking normal holds for the whole particle, so it has no layers or "
        "stacking letters"
    )
    return (
        f"{what}: {grains.n_grains} grains, {n_twin} coherent twin boundaries, twin planes not "
        f"parallel. {stacking}; 'grain' (and 'cluster') hold the twin domains, and strain is "
        "measured on each grain's own lattice"
    )
