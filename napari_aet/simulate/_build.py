"""One entry point that builds a named structure, centred in the volume frame, as an AtomModel."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
from ._structures import (
    amorphous_particle,
    apply_point_defects,
    decahedral_particle,
    fcc_particle,
    hcp_particle,
    icosahedral_particle,
    thermal_jitter,
    twinned_dumbbell,
)

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
    jitter_A: float = 0.022,
    twist_deg: float = 1.6,
    shape_px: tuple[int, int] = (256, 256),
    pixel_size_A: float = 0.358,
    seed=None,
) -> AtomModel:
    """Build ``"fcc"``, ``"bcc"``, ``"hcp"``, ``"amorphous"``, ``"twinned dumbbell"``,
    ``"decahedron"`` (five twinned fcc segments about a common axis, a rounded shape) or
    ``"icosahedron"`` (a Mackay icosahedron of twenty, ``radius_A`` to its vertices) and centre
    it in the volume.

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
        Shape of fcc, bcc and amorphous particles (hcp: "blob" or "sphere").
    vacancy_fraction : float
        Fraction of atoms removed at random (point defects).
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
    order = [elements.index(g) for g in given]  # as given -> canonical
    fractions = np.ones(len(elements))
    if composition is not None:
        comp = np.asarray(composition, float).ravel()
        if len(comp) != len(elements) or not np.all(comp >= 0) or comp.sum() <= 0:
            raise ValueError(
                f"composition {list(comp)} must hold one non-negative fraction per element "
                f"({', '.join(given)})"
            )
        fractions = np.zeros(len(elements))
        fractions[order] = comp
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
    if structure in ("fcc", "bcc"):
        pos = fcc_particle(
            lattice_constant_A=a, radius_A=radius_A, shape=shape, seed=rng, lattice=structure
        )
    elif structure == "hcp":
        if shape not in ("blob", "sphere"):
            raise ValueError(f"an hcp particle is a 'blob' or a 'sphere', not {shape!r}")
        pos = hcp_particle(
            bond_A=a, c_over_a=hcp_c_over_a(elements), radius_A=radius_A, shape=shape, seed=rng
        )
    elif structure == "amorphous":
        # Pt's packing (min distance 2.0 A, 95 % of fcc density) scaled to the element's bond
        pos = amorphous_particle(
            radius_A=radius_A,
            min_distance_A=MIN_DISTANCE_PER_BOND * bond,
            number_density_per_A3=0.95 * 4 / (bond * np.sqrt(2.0)) ** 3,
            shape=shape,
            seed=rng,
        )
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
    keep = apply_point_defects(len(pos), vacancy_fraction=vacancy_fraction, seed=rng)
    pos = thermal_jitter(pos[keep], sigma_A=jitter_A, seed=rng)
    pos = pos + rotation_center_A(shape_px, pixel_size_A)
    species = (
        rng.choice(np.array(elements), size=len(pos), p=fractions)
        if len(elements) > 1
        else np.full(len(pos), elements[0])
    )
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
        **({"note": lattice_note} if lattice_note and structure != "amorphous" else {}),
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
