"""One entry point that builds a named structure, centred in the volume frame, as an AtomModel."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.atoms import AtomModel
from ..forward import rotation_center_A
from ._structures import (
    PT_LATTICE_CONSTANT_A,
    amorphous_particle,
    apply_point_defects,
    fcc_particle,
    thermal_jitter,
    twinned_dumbbell,
)

#: fcc lattice constants [A] at room temperature (Kittel, Introduction to Solid State Physics).
LATTICE_CONSTANTS_A = {
    "Pt": PT_LATTICE_CONSTANT_A,
    "Au": 4.078,
    "Pd": 3.891,
    "Ag": 4.086,
    "Ni": 3.524,
    "Cu": 3.615,
    "Al": 4.050,
    "Ir": 3.839,
    "Rh": 3.803,
}

STRUCTURES = ("twinned dumbbell", "fcc", "amorphous")


def build_structure(
    structure: str,
    *,
    element: str = "Pt",
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
    """Build ``"fcc"``, ``"amorphous"`` or ``"twinned dumbbell"`` and centre it in the volume.

    Parameters
    ----------
    structure : str
        One of :data:`STRUCTURES`.
    element : str
        Chemical symbol of every atom.
    radius_A : float
        Particle radius [A] (each cluster's, for the dumbbell).
    lattice_constant_A : float, optional
        fcc lattice constant [A]; default the element's (:data:`LATTICE_CONSTANTS_A`).
    shape : {"blob", "sphere", "convex"}
        Shape of fcc and amorphous particles.
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
    a = lattice_constant_A or LATTICE_CONSTANTS_A.get(element)
    if a is None and structure != "amorphous":
        raise ValueError(
            f"{element!r} is not one of the tabulated fcc metals; give its fcc lattice constant "
            "(--lattice-constant in A; lattice_constant_A in Python), or --structure amorphous "
            f"(known: {', '.join(LATTICE_CONSTANTS_A)})"
        )
    feats: dict = {}
    if structure == "fcc":
        pos = fcc_particle(lattice_constant_A=a, radius_A=radius_A, shape=shape, seed=rng)
    elif structure == "amorphous":
        pos = amorphous_particle(radius_A=radius_A, shape=shape, seed=rng)
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
    else:
        raise ValueError(f"unknown structure {structure!r}; choose one of {', '.join(STRUCTURES)}")
    keep = apply_point_defects(len(pos), vacancy_fraction=vacancy_fraction, seed=rng)
    pos = thermal_jitter(pos[keep], sigma_A=jitter_A, seed=rng)
    pos = pos + rotation_center_A(shape_px, pixel_size_A)
    frame = pd.DataFrame({"element": np.full(len(pos), element)})
    for k, v in feats.items():
        frame[k] = np.asarray(v)[keep]
    meta = {
        "source": f"napari-aet simulate: {structure}",
        "element": element,
        "radius_A": radius_A,
        "lattice_constant_A": a,
        "vacancy_fraction": vacancy_fraction,
        "jitter_A": jitter_A,
    }
    return AtomModel(pos, frame, meta)
