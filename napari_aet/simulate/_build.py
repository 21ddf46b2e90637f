"""One entry point that builds a named structure, centred in the volume frame, as an AtomModel."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from ..core.atoms import AtomModel
from ..core.elements import (
    FCC_LATTICE_CONSTANTS_A,
    MIN_DISTANCE_PER_BOND,
    fcc_reference_A,
    hcp_c_over_a,
    mean_bond_length_A,
    parse_elements,
    split_elements,
)
from ..forward import rotation_center_A
from ._glass import relax_packing
from ._structures import (
    amorphous_particle,
    apply_point_defects,
    decahedral_particle,
    fcc_particle,
    hcp_particle,
    icosahedral_particle,
    ordered_species,
    thermal_jitter,
    twinned_dumbbell,
)

#: structures with no lattice (no lattice note)
_DISORDERED = ("amorphous", "glass")
#: fcc lattice constants [A] at room temperature (Kittel); see :mod:`napari_aet.core.elements`.
LATTICE_CONSTANTS_A = FCC_LATTICE_CONSTANTS_A

STRUCTURES = (
    "twinned dumbbell",
    "decahedron",
    "icosahedron",
    "fcc",
    "bcc",
    "hcp",
    "amorphous",
    "glass",
)


def build_structure(
    structure: str,
    *,
    element: str = "Pt",
    composition=None,
    radius_A: float = 15.0,
    lattice_constant_A: float | None = None,
    shape: str = "blob",
    vacancy_fraction: float = 0.0,
    order: str | None = None,
    order_parameter: float = 1.0,
    jitter_A: float = 0.022,
    twist_deg: float = 1.6,
    shape_px: tuple[int, int] = (256, 256),
    pixel_size_A: float = 0.358,
    seed=None,
) -> AtomModel:
    """Build ``"fcc"``, ``"bcc"``, ``"hcp"``, ``"amorphous"`` (a random packing with a hard
    core of 0.72 bonds), ``"glass"`` (that packing quenched under a pair potential, its first
    shell at the bond: a metallic glass), ``"twinned dumbbell"``, ``"decahedron"`` (five
    twinned fcc segments about a common axis, a rounded shape) or ``"icosahedron"`` (a Mackay
    icosahedron of twenty, ``radius_A`` to its vertices) and centre it in the volume.

    Parameters
    ----------
    structure : str
        One of :data:`STRUCTURES`.
    element : str
        Chemical symbol of every atom, or several (``"Pt,Ni"``) for a random substitutional
        alloy whose fcc lattice constant follows Vegard's rule.
    composition : sequence of float, optional
        The alloy's atom fractions in the order the elements are given (default: equal).
    radius_A : float
        Particle radius [A] (each cluster's, for the dumbbell).
    lattice_constant_A : float, optional
        Cubic lattice constant [A]; default the element's (:data:`LATTICE_CONSTANTS_A`) for
        fcc, for bcc the one whose nearest-neighbour distance is the element's bond length
        (W 3.165 A, Fe 2.87 A; an alloy's by Vegard's rule). For hcp, its ``a`` (default the
        element's bond length; ``c / a`` is the element's, see :func:`hcp_c_over_a`).
    shape : {"blob", "sphere", "convex"}
        Shape of fcc, bcc, amorphous and glass particles (hcp: "blob" or "sphere").
    vacancy_fraction : float
        Fraction of atoms removed at random (point defects).
    order : {None, "L1_0", "L1_2"}
        Chemical order of a two-element fcc alloy (``structure="fcc"``): ``"L1_0"`` (FePt,
        CuAu: (001) layers of the first and the second element alternating along the
        crystal's c = [001]) or ``"L1_2"`` (FePt3, Cu3Au: the second element on the cube's
        corners, the first on its face centres; default composition 3:1). None: a random
        substitutional alloy.
    order_parameter : float
        The long-range order parameter S (0-1): each site keeps its ordered species with
        probability S and is drawn at random (with the alloy's fractions) otherwise.
    jitter_A : float
        Standard deviation of the thermal displacement per axis [A].
    twist_deg : float
        Relative twist of the dumbbell's clusters about [111] [degrees].
    shape_px, pixel_size_A
        Image size and pixel size that define the volume frame's rotation centre.
    seed : int or Generator, optional
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    given = split_elements(element)
    elements = parse_elements(given)
    as_given = [elements.index(g) for g in given]  # as given -> canonical
    fractions = np.ones(len(elements))
    if composition is not None:
        comp = np.asarray(composition, float).ravel()
        if len(comp) != len(elements) or not np.all(comp >= 0) or comp.sum() <= 0:
            raise ValueError(
                f"composition {list(comp)} must hold one non-negative fraction per element "
                f"({', '.join(given)})"
            )
        fractions = np.zeros(len(elements))
        fractions[as_given] = comp
    if order is not None:
        if order not in ("L1_0", "L1_2"):
            raise ValueError(f"order {order!r}: choose 'L1_0', 'L1_2' or None (random)")
        if structure != "fcc" or len(elements) != 2:
            raise ValueError(
                f"chemical order {order} needs an fcc alloy of two elements (got {structure!r}, "
                f"{','.join(given)})"
            )
        if not 0.0 <= order_parameter <= 1.0:
            raise ValueError(f"order_parameter must be 0-1, got {order_parameter}")
        if composition is None and order == "L1_2":  # A3B: the first element given thrice
            fractions = np.array([0.75 if e == given[0] else 0.25 for e in elements])
    fractions = fractions / fractions.sum()
    bond = mean_bond_length_A(elements, fractions)
    a = lattice_constant_A or fcc_reference_A(elements, fractions)
    lattice_note = None
    if structure == "bcc":
        a = lattice_constant_A or bond * 2.0 / np.sqrt(3.0)
    elif structure == "hcp":
        a = lattice_constant_A or bond
    elif a is None:
        # not an fcc metal (Si, Fe, Co, ...): an fcc lattice with the element's own bond length
        a = bond * np.sqrt(2.0)
        lattice_note = (
            f"{','.join(elements)} is not an fcc metal: fcc lattice with its bond length "
            f"{bond:.3f} A (a = {a:.3f} A); give --lattice-constant for another"
        )
    feats: dict = {}
    extra_meta: dict = {}
    orientation = None
    if structure in ("fcc", "bcc"):
        if order is not None:  # the crystal's axes decide each site's species
            orientation = Rotation.random(random_state=rng.integers(2**31)).as_matrix()
        pos = fcc_particle(
            lattice_constant_A=a,
            radius_A=radius_A,
            shape=shape,
            seed=rng,
            lattice=structure,
            orientation=orientation,
        )
    elif structure == "hcp":
        if shape not in ("blob", "sphere"):
            raise ValueError(f"an hcp particle is a 'blob' or a 'sphere', not {shape!r}")
        pos = hcp_particle(
            bond_A=a, c_over_a=hcp_c_over_a(elements), radius_A=radius_A, shape=shape, seed=rng
        )
    elif structure in _DISORDERED:
        # Pt's packing (min distance 2.0 A, 95 % of fcc density) scaled to the element's bond
        pos = amorphous_particle(
            radius_A=radius_A,
            min_distance_A=MIN_DISTANCE_PER_BOND * bond,
            number_density_per_A3=0.95 * 4 / (bond * np.sqrt(2.0)) ** 3,
            shape=shape,
            seed=rng,
        )
        if structure == "glass":  # quenched: the first shell at the bond (simulate._glass)
            pos = relax_packing(pos, bond_A=bond)
    elif structure in ("twinned dumbbell", "twinned", "dumbbell"):
        s = twinned_dumbbell(
            lattice_constant_A=a,
            radius_bottom_A=radius_A,
            radius_top_A=radius_A * 0.95,
            center_distance_A=radius_A * 1.57,
            twist_deg=twist_deg,
            seed=rng,
        )
        pos = s.positions
        feats = {"layer": s.layer, "abc": s.abc, "stacking": s.stacking, "cluster": s.cluster}
    elif structure in ("decahedron", "decahedral"):
        pos, segment, axis = decahedral_particle(lattice_constant_A=a, radius_A=radius_A, seed=rng)
        feats = {"segment": segment}
        extra_meta["fivefold_axis_zyx"] = [float(v) for v in axis]
    elif structure in ("icosahedron", "icosahedral"):
        pos, axes = icosahedral_particle(lattice_constant_A=a, radius_A=radius_A, seed=rng)
        extra_meta["fivefold_axes_zyx"] = axes.tolist()
    else:
        raise ValueError(f"unknown structure {structure!r}; choose one of {', '.join(STRUCTURES)}")
    ordered = None
    if order is not None:
        ordered = ordered_species(pos @ orientation / a, order, given)
        extra_meta["order"] = {"kind": order, "order_parameter": float(order_parameter),
                               "c_axis_zyx": [float(v) for v in orientation[:, 2]]}  # fmt: skip
    keep = apply_point_defects(len(pos), vacancy_fraction=vacancy_fraction, seed=rng)
    pos = thermal_jitter(pos[keep], sigma_A=jitter_A, seed=rng)
    pos = pos + rotation_center_A(shape_px, pixel_size_A)
    species = (
        rng.choice(np.array(elements), size=len(pos), p=fractions)
        if len(elements) > 1
        else np.full(len(pos), elements[0])
    )
    if ordered is not None:  # ordered sites, each disordered (drawn above) with 1 - S
        keep_order = rng.random(len(pos)) < order_parameter
        species = np.where(keep_order, ordered[keep], species)
    frame = pd.DataFrame({"element": species})
    for k, v in feats.items():
        frame[k] = np.asarray(v)[keep]
    meta = {
        "source": f"napari-aet simulate: {structure}",
        "element": ",".join(elements),
        "composition": {e: round(float(f), 6) for e, f in zip(elements, fractions, strict=True)},
        "radius_A": radius_A,
        "lattice_constant_A": a,
        "vacancy_fraction": vacancy_fraction,
        "jitter_A": jitter_A,
        **({"note": lattice_note} if lattice_note and structure not in _DISORDERED else {}),
        **extra_meta,
    }
    return AtomModel(pos, frame, meta)


def turn_about_beam(atoms: AtomModel, delta_deg: float, *, shape_px, pixel_size_A) -> AtomModel:
    """The particle turned by ``delta_deg`` about the beam (through the rotation centre of
    ``shape_px`` images of ``pixel_size_A``): the second series of a dual-axis acquisition.
    ``x' = x cos d - y sin d``, ``y' = x sin d + y cos d`` (the Euler ``psi`` of
    :func:`napari_aet.recon.projection_axes`)."""
    c = rotation_center_A(shape_px, pixel_size_A)
    rel = atoms.positions - c
    d = np.deg2rad(delta_deg)
    out = rel.copy()
    out[:, 2] = rel[:, 2] * np.cos(d) - rel[:, 1] * np.sin(d)
    out[:, 1] = rel[:, 2] * np.sin(d) + rel[:, 1] * np.cos(d)
    return AtomModel(out + c, atoms.features.copy(), dict(atoms.metadata))
