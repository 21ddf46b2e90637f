"""A metallic glass: random close packing relaxed under a pair potential.

Random sequential addition (:func:`~napari_aet.simulate.amorphous_particle`) reaches a metal's
density only with a hard core far below its bond: at 95 % of Pt's fcc density with a 2.0 A
core, half the atoms have a neighbour nearer than 2.1 A, where a metallic glass has next to none
(its first shell peaks at the bond, 2.7-2.8 A for Pt, with a hard core near 0.85 of it). Such a
packing is much harder to trace than a glass: pairs at 2.0 A along the missing wedge merge. A
glass is what a dense liquid quenches to: here the packing's energy under a Lennard-Jones pair
potential whose minimum lies at the bond is minimised (L-BFGS, positions only: a steepest quench
from a random start, which traps the atoms in a disordered local minimum rather than a crystal).
The first shell then sits at the bond with about 12 neighbours and no pair nearer than about
0.85 bonds, as in the published atomic models of metallic-glass particles.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.spatial import cKDTree

#: The pair potential's range, in bonds (the energy and force shifted to 0 there).
CUTOFF_BONDS = 1.8


def _lj_energy(flat, bond_A, cutoff_A):
    """A cut and shifted Lennard-Jones energy with its minimum (-1) at ``bond_A``, summed over
    pairs nearer than ``cutoff_A``, and its gradient."""
    pos = flat.reshape(-1, 3)
    pairs = cKDTree(pos).query_pairs(cutoff_A, output_type="ndarray")
    if not len(pairs):
        return 0.0, np.zeros_like(flat)
    d = pos[pairs[:, 0]] - pos[pairs[:, 1]]
    r = np.linalg.norm(d, axis=1)
    s6 = (bond_A / r) ** 6
    sc6 = (bond_A / cutoff_A) ** 6
    v_cut = sc6 * sc6 - 2.0 * sc6
    dv_cut = -12.0 * (sc6 * sc6 - sc6) / cutoff_A  # dV/dr at the cutoff
    energy = float(np.sum(s6 * s6 - 2.0 * s6 - v_cut - dv_cut * (r - cutoff_A)))
    dvdr = -12.0 * (s6 * s6 - s6) / r - dv_cut
    f = (dvdr / r)[:, None] * d
    grad = np.zeros_like(pos)
    np.add.at(grad, pairs[:, 0], f)
    np.add.at(grad, pairs[:, 1], -f)
    return energy, grad.ravel()


def relax_packing(positions_A, *, bond_A: float, iterations: int = 400) -> np.ndarray:
    """``positions_A`` (``(n, 3)`` [A]) at a local minimum of a Lennard-Jones energy whose pair
    minimum lies at ``bond_A`` (cut and shifted at :data:`CUTOFF_BONDS` bonds): a quench, which
    keeps a random packing disordered. The free surface relaxes too (a particle, not a piece
    of bulk)."""
    pos = np.asarray(positions_A, np.float64).reshape(-1, 3)
    if bond_A <= 0:
        raise ValueError(f"bond_A must be positive (Angstrom); got {bond_A}")
    if len(pos) < 2:
        return pos.copy()
    res = minimize(
        _lj_energy,
        pos.ravel(),
        args=(float(bond_A), CUTOFF_BONDS * float(bond_A)),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": int(iterations), "gtol": 1e-6},
    )
    out = res.x.reshape(-1, 3)
    return out - out.mean(axis=0) + pos.mean(axis=0)  # the particle where it was
