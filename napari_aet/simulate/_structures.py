"""Structure builders: fcc crystals, twinned particles, amorphous particles, shapes, defects.

All positions are ``(z, y, x)`` in Angstrom. Builders return plain arrays; the tilt-series
simulator wraps them in an :class:`~napari_aet.atoms.AtomModel` with per-atom truth features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ..core.geometry import in_plane_basis

#: Lattice constant of Pt at room temperature [A] (the study's reference value).
PT_LATTICE_CONSTANT_A = 3.912

_FCC_BASIS = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], dtype=np.float64)
_BCC_BASIS = np.array([[0, 0, 0], [0.5, 0.5, 0.5]], dtype=np.float64)
_CUBIC_BASES = {"fcc": _FCC_BASIS, "bcc": _BCC_BASIS}


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _as_rotation(orientation) -> np.ndarray:
    """Orientation as a 3x3 matrix acting on ``(z, y, x)`` column vectors."""
    if orientation is None:
        return np.eye(3)
    m = np.asarray(orientation, dtype=np.float64)
    if m.shape != (3, 3) or not np.allclose(m @ m.T, np.eye(3), atol=1e-6):
        raise ValueError("orientation must be a 3x3 rotation matrix (orthonormal) in (z, y, x)")
    return m


def fcc_lattice(
    lattice_constant_A: float,
    extent_A: float,
    *,
    orientation: np.ndarray | None = None,
    center_A: np.ndarray | tuple = (0.0, 0.0, 0.0),
    lattice: str = "fcc",
) -> np.ndarray:
    """Sites of an fcc (or, with ``lattice="bcc"``, a bcc) lattice filling a sphere of radius
    ``extent_A``.

    Parameters
    ----------
    lattice_constant_A : float
        Cubic lattice constant [A].
    extent_A : float
        Radius [A] of the sphere around ``center_A`` that is filled.
    orientation : ndarray of shape (3, 3), optional
        Rotation applied to the crystal (crystal axes to lab ``(z, y, x)``).
    center_A : array-like of shape (3,)
        Where the lattice origin (an atom) is placed [A].
    lattice : {"fcc", "bcc"}
        The cubic lattice's kind.

    Returns
    -------
    ndarray of shape (N, 3)
        Site positions ``(z, y, x)`` [A].
    """
    if lattice_constant_A <= 0 or extent_A <= 0:
        raise ValueError("lattice_constant_A and extent_A must be positive (Angstrom)")
    if lattice not in _CUBIC_BASES:
        raise ValueError(f"unknown lattice {lattice!r}; choose one of {', '.join(_CUBIC_BASES)}")
    basis = _CUBIC_BASES[lattice]
    n = int(np.ceil(extent_A * np.sqrt(3) / lattice_constant_A)) + 1
    g = np.arange(-n, n + 1, dtype=np.float64)
    cells = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 1, 3)
    pts = ((cells + basis[None]) * lattice_constant_A).reshape(-1, 3)
    pts = pts[np.linalg.norm(pts, axis=1) <= extent_A]
    rot = _as_rotation(orientation)
    return pts @ rot.T + np.asarray(center_A, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# shapes


def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def blob_mask(
    points_A: np.ndarray,
    *,
    radius_A: float,
    center_A=(0.0, 0.0, 0.0),
    roughness: float = 0.15,
    n_lobes: int = 6,
    lobe_width: float = 0.5,
    seed=None,
) -> np.ndarray:
    """Inside-test for a smooth random 'blobby' shape.

    The surface radius along unit direction ``u`` is
    ``R * (1 + roughness * sum_k w_k exp(-(1 - u.n_k) / lobe_width))`` with random directions
    ``n_k`` and weights ``w_k`` in [-1, 1]; ``roughness=0`` gives a sphere.

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    rng = _rng(seed)
    d = np.asarray(points_A, dtype=np.float64) - np.asarray(center_A, dtype=np.float64)
    r = np.linalg.norm(d, axis=1)
    u = d / np.maximum(r, 1e-12)[:, None]
    normals = _unit_vectors(rng, n_lobes)
    weights = rng.uniform(-1.0, 1.0, n_lobes)
    bumps = np.exp(-(1.0 - u @ normals.T) / lobe_width) @ weights
    return r <= radius_A * (1.0 + roughness * bumps)


def convex_mask(
    points_A: np.ndarray,
    *,
    radius_A: float,
    center_A=(0.0, 0.0, 0.0),
    orientation: np.ndarray | None = None,
    truncation_100: float = 1.1,
    jitter: float = 0.05,
    n_random_planes: int = 6,
    seed=None,
) -> np.ndarray:
    """Inside-test for a convex, faceted (truncated-octahedron-like) random shape.

    {111} planes sit at ``radius_A`` from the centre, {100} planes at ``truncation_100 *
    radius_A``, each plane distance perturbed by ``jitter`` (a fraction), plus
    ``n_random_planes`` random cuts; directions are in the crystal frame given by
    ``orientation``.
    """
    rng = _rng(seed)
    rot = _as_rotation(orientation)
    n111 = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]) / np.sqrt(3)
    n100 = np.vstack([np.eye(3), -np.eye(3)])
    normals = [n111 @ rot.T, n100 @ rot.T, _unit_vectors(rng, n_random_planes)]
    dists = [
        radius_A * (1 + jitter * rng.uniform(-1, 1, 8)),
        truncation_100 * radius_A * (1 + jitter * rng.uniform(-1, 1, 6)),
        radius_A * rng.uniform(1.0, 1.25, n_random_planes),
    ]
    nrm = np.vstack(normals)
    dist = np.concatenate(dists)
    d = np.asarray(points_A, dtype=np.float64) - np.asarray(center_A, dtype=np.float64)
    return np.all(d @ nrm.T <= dist[None, :], axis=1)


def shape_mask(points_A: np.ndarray, shape: str, **kwargs) -> np.ndarray:
    """Dispatch to :func:`blob_mask` (``"blob"``, ``"sphere"``) or :func:`convex_mask`."""
    if shape == "sphere":
        kwargs = {k: v for k, v in kwargs.items() if k in ("radius_A", "center_A")}
        return blob_mask(points_A, roughness=0.0, **kwargs)
    if shape == "blob":
        return blob_mask(points_A, **kwargs)
    if shape == "convex":
        return convex_mask(points_A, **kwargs)
    raise ValueError(f"unknown shape {shape!r}; choose 'sphere', 'blob' or 'convex'")


def fcc_particle(
    *,
    lattice_constant_A: float = PT_LATTICE_CONSTANT_A,
    radius_A: float = 15.0,
    shape: str = "blob",
    orientation: np.ndarray | None = None,
    seed=None,
    lattice: str = "fcc",
    **shape_kwargs,
) -> np.ndarray:
    """A single-crystal fcc (or ``lattice="bcc"``) particle of a random shape centred at the
    origin [A]."""
    rng = _rng(seed)
    if orientation is None:
        orientation = Rotation.random(random_state=rng.integers(2**31)).as_matrix()
    pts = fcc_lattice(lattice_constant_A, radius_A * 1.6, orientation=orientation, lattice=lattice)
    if shape == "convex":
        shape_kwargs.setdefault("orientation", orientation)
    return pts[shape_mask(pts, shape, radius_A=radius_A, seed=rng, **shape_kwargs)]


# --------------------------------------------------------------------------------------------
# (111) stacking: twinned particles


_ABC_OFFSET = {"A": 0.0, "B": 1.0 / 3.0, "C": 2.0 / 3.0}


def stacking_sequence(
    n_below: int, n_above: int, *, fault: str = "extrinsic", start: str = "A"
) -> str:
    """Labels of the (111) layers from bottom to top, with a fault after ``n_below`` layers.

    ``fault`` is ``"none"`` (perfect fcc ``ABCABC``), ``"twin"`` (mirror: ``ABCAB C BACBA``,
    one hcp layer), ``"intrinsic"`` (one layer removed: ``ABCAB ABC``, two hcp layers) or
    ``"extrinsic"`` (one layer inserted: ``...AB A CAB...``, the study's nanodumbbell: the
    inserted layer sits between two hcp twin-boundary layers).
    With ``"extrinsic"`` the inserted interface layer is at index ``n_below``.
    """
    order = "ABC"
    i0 = order.index(start)
    below = "".join(order[(i0 + i) % 3] for i in range(n_below))
    last = order.index(below[-1]) if below else i0 - 1
    if fault == "none":
        above = "".join(order[(last + 1 + i) % 3] for i in range(n_above))
        return below + above
    if fault == "twin":
        above = "".join(order[(last - 1 - i) % 3] for i in range(n_above))
        return below + above
    if fault == "intrinsic":
        above = "".join(order[(last + 2 + i) % 3] for i in range(n_above))
        return below + above
    if fault == "extrinsic":
        inserted = order[(last - 1) % 3]  # ... B [A] C ...: same letter as two layers below
        above = "".join(order[(last + 1 + i) % 3] for i in range(n_above))
        return below + inserted + above
    raise ValueError(f"unknown fault {fault!r}; choose 'none', 'twin', 'intrinsic', 'extrinsic'")


@dataclass
class StackedStructure:
    """Atoms of a (111)-stacked particle with per-atom truth.

    Attributes
    ----------
    positions : ndarray of shape (N, 3)
        ``(z, y, x)`` [A].
    layer : ndarray of int, shape (N,)
        Layer index along the stacking normal; 0 at the interface (fault) layer.
    abc : ndarray of str, shape (N,)
        Stacking letter of each atom's layer.
    stacking : ndarray of str, shape (N,)
        ``"fcc"`` or ``"hcp"`` from the letters of the neighbouring layers (``"other"`` at the
        first and last layer).
    cluster : ndarray of int, shape (N,)
        0 below the interface, 1 above it (the interface layer counts as 0).
    normal : ndarray of shape (3,)
        Unit stacking normal [111] in lab ``(z, y, x)``.
    """

    positions: np.ndarray
    layer: np.ndarray
    abc: np.ndarray
    stacking: np.ndarray
    cluster: np.ndarray
    normal: np.ndarray
    sequence: str
    interface_index: int


def _layer_stacking(seq: str) -> list[str]:
    out = []
    for i in range(len(seq)):
        if i == 0 or i == len(seq) - 1:
            out.append("other")
        else:
            out.append("hcp" if seq[i - 1] == seq[i + 1] else "fcc")
    return out


def stacked_particle(
    sequence: str,
    *,
    lattice_constant_A: float = PT_LATTICE_CONSTANT_A,
    interface_index: int | None = None,
    twist_deg: float = 0.0,
    normal=(0.0, 1.0, 0.0),
    in_plane_angle_deg: float = 0.0,
    inside=None,
    lateral_extent_A: float = 40.0,
    layer_spacing_A: float | None = None,
) -> StackedStructure:
    """Build (111) layers with a given A/B/C sequence, optionally twisting the upper part.

    Parameters
    ----------
    sequence : str
        Layer letters from bottom to top, e.g. from :func:`stacking_sequence`.
    lattice_constant_A : float
        fcc lattice constant [A]; in-plane bond ``a / sqrt(2)``, layer spacing ``a / sqrt(3)``.
    interface_index : int, optional
        Index of the interface layer (layer feature 0 there). Default: the middle layer.
    twist_deg : float
        Rotation [degrees] of every layer above the interface about the stacking normal through
        the particle axis (the relative twist of the two clusters).
    normal : array-like of shape (3,)
        Stacking direction in lab ``(z, y, x)``.
    in_plane_angle_deg : float
        Rotation of the hexagonal net about the normal.
    inside : callable, optional
        ``inside(points) -> bool mask`` that carves the shape; default keeps everything within
        ``lateral_extent_A`` of the axis.
    lateral_extent_A : float
        Half-width [A] of the generated layers before carving.
    layer_spacing_A : float, optional
        Distance between layers [A]; default the close packing of spheres, ``a / sqrt(3)``
        (an hcp metal's is ``c / 2``: Ru, Os and Ti pack their layers 3 % closer).
    """
    seq = sequence.upper()
    if not seq or set(seq) - set("ABC"):
        raise ValueError("sequence must be a non-empty string of the letters A, B, C")
    for i in range(1, len(seq)):
        if seq[i] == seq[i - 1]:
            raise ValueError(f"layers {i - 1} and {i} are both {seq[i]!r}: not a close packing")
    if interface_index is None:
        interface_index = len(seq) // 2
    a = lattice_constant_A
    bond = a / np.sqrt(2.0)
    spacing = a / np.sqrt(3.0) if layer_spacing_A is None else float(layer_spacing_A)
    if not spacing > 0:
        raise ValueError(f"layer_spacing_A must be a positive length in A, got {layer_spacing_A}")
    nvec = np.asarray(normal, dtype=np.float64)
    nvec = nvec / np.linalg.norm(nvec)
    e1, e2 = in_plane_basis(nvec)
    ang = np.deg2rad(in_plane_angle_deg)
    e1, e2 = np.cos(ang) * e1 + np.sin(ang) * e2, -np.sin(ang) * e1 + np.cos(ang) * e2
    a1 = bond * e1
    a2 = bond * (0.5 * e1 + np.sqrt(3) / 2 * e2)
    m = int(np.ceil(lateral_extent_A / bond * 1.3)) + 2
    ii, jj = np.meshgrid(np.arange(-m, m + 1), np.arange(-m, m + 1), indexing="ij")
    net = ii.reshape(-1, 1) * a1 + jj.reshape(-1, 1) * a2
    stack_labels = _layer_stacking(seq)
    twist = Rotation.from_rotvec(np.deg2rad(twist_deg) * nvec).as_matrix()
    pos, layer, abc, stk, clu = [], [], [], [], []
    for k, letter in enumerate(seq):
        off = _ABC_OFFSET[letter] * (a1 + a2)
        p = net + off + (k - interface_index) * spacing * nvec
        inplane = p - np.outer(p @ nvec, nvec)
        p = p[np.linalg.norm(inplane, axis=1) <= lateral_extent_A]
        if k > interface_index and twist_deg:
            p = p @ twist.T
        pos.append(p)
        nk = len(p)
        layer.append(np.full(nk, k - interface_index))
        abc.append(np.full(nk, letter))
        stk.append(np.full(nk, stack_labels[k]))
        clu.append(np.full(nk, int(k > interface_index)))
    positions = np.vstack(pos)
    arrays = [np.concatenate(x) for x in (layer, abc, stk, clu)]
    keep = np.ones(len(positions), bool) if inside is None else np.asarray(inside(positions))
    return StackedStructure(
        positions[keep],
        arrays[0][keep].astype(np.int64),
        arrays[1][keep],
        arrays[2][keep],
        arrays[3][keep].astype(np.int64),
        nvec,
        seq,
        interface_index,
    )


def random_stacking(n_layers: int, reversal_rate: float, *, seed=None) -> str:
    """A close-packed layer sequence with planar defects at random: a walk through A, B, C
    that continues its step (fcc) and reverses it with probability ``reversal_rate`` at each
    layer. One reversal is a twin boundary (``ABCA CBA``), two on neighbouring layers a
    stacking fault (``ABC B CA...``: intrinsic, or extrinsic with an inserted layer), a
    reversal at every other layer a slab of hcp. ``reversal_rate=0`` gives perfect fcc."""
    if n_layers < 1:
        raise ValueError("n_layers must be at least 1")
    if not 0.0 <= reversal_rate <= 1.0:
        raise ValueError(f"reversal_rate must lie in [0, 1]; got {reversal_rate}")
    rng = _rng(seed)
    idx, step = int(rng.integers(3)), 1 if rng.random() < 0.5 else -1
    seq = ["ABC"[idx]]
    for _ in range(n_layers - 1):
        if rng.random() < reversal_rate:
            step = -step
        idx = (idx + step) % 3
        seq.append("ABC"[idx])
    return "".join(seq)


def faulted_particle(
    *,
    lattice_constant_A: float = PT_LATTICE_CONSTANT_A,
    radius_A: float = 15.0,
    shape: str = "blob",
    reversal_rate: float = 0.1,
    seed=None,
) -> StackedStructure:
    """An fcc particle of a random shape whose (111) layers carry twins and stacking faults at
    random (:func:`random_stacking`), the stacking normal and the net's in-plane angle drawn at
    random; centred at the origin [A]. Real fcc nanoparticles are seldom single crystals: a
    network trained on single crystals only learns that ABC continues."""
    rng = _rng(seed)
    spacing = lattice_constant_A / np.sqrt(3.0)
    n_layers = int(np.ceil(2 * radius_A * 1.4 / spacing)) + 2
    seq = random_stacking(n_layers, reversal_rate, seed=rng)
    normal = Rotation.random(random_state=rng.integers(2**31)).apply([0.0, 0.0, 1.0])
    # a convex shape's facets in a crystal frame whose [111] is the stacking normal
    frame, _ = Rotation.align_vectors([normal], [np.ones(3) / np.sqrt(3.0)])
    shape_seed = int(rng.integers(2**31))
    kw = {"orientation": frame.as_matrix()} if shape == "convex" else {}

    def inside(p):
        return shape_mask(p, shape, radius_A=radius_A, seed=shape_seed, **kw)

    return stacked_particle(
        seq,
        lattice_constant_A=lattice_constant_A,
        normal=normal,
        in_plane_angle_deg=float(rng.uniform(0.0, 60.0)),
        inside=inside,
        lateral_extent_A=radius_A * 1.4,
    )


def twinned_dumbbell(
    *,
    lattice_constant_A: float = PT_LATTICE_CONSTANT_A,
    radius_bottom_A: float = 18.5,
    radius_top_A: float = 17.5,
    center_distance_A: float = 29.0,
    fault: str = "extrinsic",
    twist_deg: float = 1.6,
    normal=(0.25, 0.95, 0.2),
    in_plane_angle_deg: float = 17.0,
    roughness: float = 0.08,
    seed=None,
) -> StackedStructure:
    """Two coalesced clusters that share (111) faces, with a stacking fault between them.

    The clusters are blobby spheres centred at ``-/+ center_distance_A / 2`` along the stacking
    normal; the layer sequence is fcc in each cluster with a ``fault`` at the interface (the
    study's nanodumbbell: ``"extrinsic"``, one inserted layer, two hcp twin-boundary layers),
    and the top cluster twisted by ``twist_deg`` about the normal.
    """
    rng = _rng(seed)
    spacing = lattice_constant_A / np.sqrt(3.0)
    half = center_distance_A / 2.0
    n_below = int(np.ceil((half + radius_bottom_A * 1.3) / spacing))
    n_above = int(np.ceil((half + radius_top_A * 1.3) / spacing))
    seq = stacking_sequence(n_below, n_above, fault=fault)
    interface = n_below if fault == "extrinsic" else n_below - 1
    nvec = np.asarray(normal, float) / np.linalg.norm(normal)
    # fix the shape's random numbers before building so that the seed alone decides it
    seed_bottom, seed_top = rng.integers(2**31, size=2)

    def inside(p):
        # Layer 0 is at the origin; the clusters sit either side of it.
        bottom = blob_mask(
            p,
            radius_A=radius_bottom_A,
            center_A=-half * nvec,
            roughness=roughness,
            seed=seed_bottom,
        )
        top = blob_mask(
            p, radius_A=radius_top_A, center_A=half * nvec, roughness=roughness, seed=seed_top
        )
        return bottom | top

    return stacked_particle(
        seq,
        lattice_constant_A=lattice_constant_A,
        interface_index=interface,
        twist_deg=twist_deg,
        normal=nvec,
        in_plane_angle_deg=in_plane_angle_deg,
        inside=inside,
        lateral_extent_A=max(radius_bottom_A, radius_top_A) * 1.4,
    )


def decahedral_particle(
    *,
    lattice_constant_A: float = PT_LATTICE_CONSTANT_A,
    radius_A: float = 15.0,
    length_A: float | None = None,
    roughness: float = 0.08,
    strained_segments: int = 5,
    seed=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A multiply twinned (decahedral) fcc particle: five tetrahedral fcc segments around a
    common <110> axis, each bounded by two {111} twin planes it shares with its neighbours.

    Five tetrahedra leave a gap of 7.35 deg (5 x 70.53 deg of {111} dihedral angle); here each
    segment's azimuth about the axis is stretched by 72 / 70.53 (a tangential strain of 2.1 %)
    so that they close, the homogeneous strain of the Ino/Marks decahedra most Pt, Pd and Au
    nanoparticles below 10 nm grow as; ``strained_segments`` < 5 puts the whole gap into that
    many segments (one: four perfect tetrahedra and one opened to 77.9 deg). The segments
    share the atoms of their twin planes and the axis. The shape is a blob of ``radius_A`` (a
    rounded decahedron), cut to ``length_A`` along the axis (default ``1.6 radius_A``), in a
    random orientation.

    Returns
    -------
    positions : ndarray of shape (N, 3)
        ``(z, y, x)`` [A], centred at the origin.
    segment : ndarray of int, shape (N,)
        0-4, the tetrahedral segment (twin domain) of each atom; an atom of a twin plane
        belongs to the segment on its lower-azimuth side, the axis atoms to segment 0.
    axis : ndarray of shape (3,)
        The five-fold axis (unit, ``(z, y, x)``).
    """
    rng = _rng(seed)
    if lattice_constant_A <= 0 or radius_A <= 0:
        raise ValueError("lattice_constant_A and radius_A must be positive (Angstrom)")
    length = 1.6 * radius_A if length_A is None else float(length_A)
    # the segment's frame in cubic coordinates: the axis [110], the wedge's bisector [00-1]
    # between its twin planes (1-11) and (1-1-1), and the third axis [-110]
    e_axis = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)
    e_bis = np.array([0.0, 0.0, -1.0])
    e_side = np.cross(e_axis, e_bis)
    half_wedge = 0.5 * np.arccos(1.0 / 3.0)  # 35.26 deg: half the {111} dihedral angle
    # each segment's opening angle: the gap shared by the first ``strained_segments``
    if strained_segments not in range(1, 6):
        raise ValueError(f"strained_segments must be 1 to 5, got {strained_segments}")
    gap = 2.0 * np.pi - 10.0 * half_wedge
    opening = np.full(5, 2.0 * half_wedge)
    opening[:strained_segments] += gap / strained_segments
    centre = np.concatenate([[0.0], np.cumsum(opening)[:-1]]) + 0.5 * (opening - opening[0])
    pts = fcc_lattice(lattice_constant_A, 1.6 * max(radius_A, 0.5 * length) + lattice_constant_A)
    along, bis, side = pts @ e_axis, pts @ e_bis, pts @ e_side
    rho = np.hypot(bis, side)
    phi = np.arctan2(side, bis)
    on_axis = rho < 1e-6
    tol = 1e-6
    wedge = (phi >= -half_wedge - tol) & (phi < half_wedge - tol) & ~on_axis
    parts, labels = [], []
    for k in range(5):
        sel = wedge | (on_axis if k == 0 else np.zeros_like(on_axis))
        stretch = opening[k] / (2.0 * half_wedge)
        ang = centre[k] + np.where(on_axis[sel], 0.0, phi[sel] * stretch)
        local = np.stack([along[sel], rho[sel] * np.cos(ang), rho[sel] * np.sin(ang)], axis=1)
        parts.append(local)
        labels.append(np.full(len(local), k))
    local = np.concatenate(parts)
    segment = np.concatenate(labels)
    keep = blob_mask(
        local * [radius_A / (0.5 * length), 1.0, 1.0],
        radius_A=radius_A,
        roughness=roughness,
        seed=rng,
    )
    rot = Rotation.random(random_state=rng.integers(2**31)).as_matrix()
    return local[keep] @ rot.T, segment[keep], rot[:, 0]


def icosahedral_particle(
    *, lattice_constant_A: float = PT_LATTICE_CONSTANT_A, radius_A: float = 15.0, seed=None
) -> tuple[np.ndarray, np.ndarray]:
    """A Mackay icosahedron (:class:`ase.cluster.Icosahedron`): twenty fcc tetrahedra about a
    centre, sharing thirty {111} twin planes and six five-fold axes, in a random orientation.
    ``radius_A`` is the distance from the centre to a vertex (rounded to whole shells of one
    bond each). Returns the positions ``(z, y, x)`` [A], centred at the origin, and the
    six five-fold axes (unit rows)."""
    from ase.cluster import Icosahedron

    rng = _rng(seed)
    bond = lattice_constant_A / np.sqrt(2.0)
    shells = max(2, int(round(radius_A / bond)) + 1)
    pos = Icosahedron("Pt", shells, latticeconstant=lattice_constant_A).positions
    pos = pos - pos.mean(axis=0)
    # the vertices: the atoms farthest out; opposite pairs give the six axes
    r = np.linalg.norm(pos, axis=1)
    tips = pos[r > r.max() - 0.1 * bond]
    tips = tips / np.linalg.norm(tips, axis=1, keepdims=True)
    axes = [t for t in tips if t @ np.array([0.3, 0.5, 0.8]) > 0]
    rot = Rotation.random(random_state=rng.integers(2**31)).as_matrix()
    return pos @ rot.T, np.array(axes) @ rot.T


def ordered_species(sites, order: str, elements) -> np.ndarray:
    """Each fcc site's element in a chemically ordered binary alloy.

    ``sites`` are the atoms' positions in cubic crystal coordinates (units of the lattice
    constant, one atom at the origin); ``elements`` the two elements, the first the one on
    the origin's sublattice for ``"L1_0"`` ((001) layers alternating along c = [001]: the
    first element where ``2 z`` is even) and the majority for ``"L1_2"`` (the second element
    on the cube's corners, where every coordinate is whole).
    """
    a, b = elements
    half = np.rint(2.0 * np.asarray(sites, float)).astype(int) % 2
    if order == "L1_0":
        return np.where(half[:, 2] == 0, a, b)
    if order == "L1_2":
        return np.where((half == 0).all(axis=1), b, a)
    raise ValueError(f"order {order!r}: choose 'L1_0' or 'L1_2'")


def hcp_particle(
    *,
    bond_A: float,
    c_over_a: float = np.sqrt(8.0 / 3.0),
    radius_A: float = 15.0,
    shape: str = "blob",
    seed=None,
    **shape_kwargs,
) -> np.ndarray:
    """A single-crystal hcp particle (ABAB stacking of close-packed layers: Co, Ru, Ti, Mg, ...)
    of a random shape and orientation, centred at the origin [A].

    ``bond_A`` is the in-plane bond (the hcp ``a``), ``c_over_a`` the ratio of the cell's
    height to it (the layer spacing is ``c / 2``; ideal close packing ``sqrt(8/3)``).
    """
    rng = _rng(seed)
    if not (bond_A > 0 and c_over_a > 0 and radius_A > 0):
        raise ValueError("bond_A, c_over_a and radius_A must be positive")
    normal = Rotation.random(random_state=rng.integers(2**31)).apply([0.0, 0.0, 1.0])
    in_plane = float(rng.uniform(0.0, 60.0))
    spacing = 0.5 * c_over_a * bond_A
    n = int(np.ceil(radius_A * 1.6 / spacing))
    seq = "AB" * (n + 1)
    shape_seed = int(rng.integers(2**31))

    def inside(p):
        return shape_mask(p, shape, radius_A=radius_A, seed=shape_seed, **shape_kwargs)

    st = stacked_particle(
        seq[: 2 * n + 1],
        lattice_constant_A=bond_A * np.sqrt(2.0),
        interface_index=n,
        normal=normal,
        in_plane_angle_deg=in_plane,
        inside=inside,
        lateral_extent_A=radius_A * 1.6,
        layer_spacing_A=spacing,
    )
    return st.positions


# --------------------------------------------------------------------------------------------
# amorphous


def amorphous_particle(
    *,
    radius_A: float = 15.0,
    min_distance_A: float = 2.0,
    number_density_per_A3: float = 0.95 * 4 / PT_LATTICE_CONSTANT_A**3,
    shape: str = "blob",
    seed=None,
    max_rounds: int = 400,
    **shape_kwargs,
) -> np.ndarray:
    """Random close-ish packing with a minimum distance, carved to a shape.

    Random sequential addition in batches: candidates are drawn uniformly, and a candidate is
    accepted if it is at least ``min_distance_A`` from every accepted atom and from earlier
    candidates of its batch. Stops at the target ``number_density_per_A3`` (default 95 % of Pt
    fcc density) or when additions stall.
    """
    rng = _rng(seed)
    if min_distance_A <= 0 or radius_A <= 0:
        raise ValueError("radius_A and min_distance_A must be positive (Angstrom)")
    box = radius_A * 1.6
    volume = (2 * box) ** 3
    # the shape is decided on a fixed cloud so that its random numbers are independent of RSA
    shape_seed = int(rng.integers(2**31))

    def inside(p):
        return shape_mask(p, shape, radius_A=radius_A, seed=shape_seed, **shape_kwargs)

    target = int(number_density_per_A3 * volume)
    accepted = np.empty((0, 3))
    batch = max(2000, target // 20)
    stalled = 0
    for _ in range(max_rounds):
        cand = rng.uniform(-box, box, size=(batch, 3))
        if len(accepted):
            d, _ = cKDTree(accepted).query(cand, k=1, distance_upper_bound=min_distance_A)
            cand = cand[np.isinf(d)]
        if len(cand):
            pairs = cKDTree(cand).query_pairs(min_distance_A, output_type="ndarray")
            drop = np.zeros(len(cand), bool)
            if len(pairs):
                # keep the earlier of each close pair (greedy, like sequential addition)
                drop[np.maximum(pairs[:, 0], pairs[:, 1])] = True
            new = cand[~drop]
            accepted = np.vstack([accepted, new])
            stalled = stalled + 1 if len(new) < batch * 0.002 else 0
        if len(accepted) >= target or stalled > 5:
            break
    accepted = accepted[:target]
    return accepted[inside(accepted)]


# --------------------------------------------------------------------------------------------
# defects and jitter


def apply_point_defects(n_atoms: int, *, vacancy_fraction: float = 0.0, seed=None) -> np.ndarray:
    """Boolean keep-mask that removes a random ``vacancy_fraction`` of the atoms."""
    if not 0.0 <= vacancy_fraction < 1.0:
        raise ValueError("vacancy_fraction must be in [0, 1)")
    rng = _rng(seed)
    keep = np.ones(n_atoms, bool)
    n_vac = int(round(vacancy_fraction * n_atoms))
    if n_vac:
        keep[rng.choice(n_atoms, n_vac, replace=False)] = False
    return keep


def thermal_jitter(positions_A: np.ndarray, *, sigma_A: float, seed=None) -> np.ndarray:
    """Displace each atom by an isotropic Gaussian of standard deviation ``sigma_A`` per axis."""
    if sigma_A < 0:
        raise ValueError("sigma_A must be >= 0 Angstrom")
    rng = _rng(seed)
    return positions_A + rng.normal(scale=sigma_A, size=positions_A.shape)
