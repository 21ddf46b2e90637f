"""Composition by depth: each element's share shell by shell from the surface inward.

Whether a particle's surface is richer in one element than its core (segregation, a core-shell
particle) is what an alloy's atoms are traced for; it is also what a tomogram that misses a
faint element's atoms where the particle is thick looks like. So the profile comes with each
element's measurement there: where the atom model carries the refine stage's significance
(``refine_significance``, amplitude over its standard error), its median per shell.

Depth is measured without a lattice (crystals, twins and amorphous particles alike): the
particle is the union of spheres of 0.8 bonds about its atoms, closed over one bond (the gaps
between atoms filled), and an atom's depth is its distance to the outside of that body less
the spheres' radius, so that the outermost atoms lie at about 0 and each shell is one bond
deep.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core.memory import check_memory
from ._crystal import UNSET_ELEMENTS, element_kinds

#: the spheres' radius and the voxels' size, in bonds
SPHERE_BONDS = 0.8
VOXEL_BONDS = 0.25
#: fewest atoms a shell of the profile holds: deeper shells are joined into one core bin
MIN_SHELL_ATOMS = 30
#: a difference of an element's share between the surface shell and the inner half beyond
#: this many binomial standard errors gets a note
NOTE_Z = 3.0
#: an element whose atoms the counts measure to fewer standard errors than this (median
#: ``refine_significance``; the refine stage's bar for its verdicts,
#: ``trace._verdicts.HELD_VERDICT_SIGNIFICANCE``) gets a note: its atoms may be missed or
#: misplaced, and its shares by depth with them (a 40-A Fe-Pt particle at the study's counts,
#: Fe at 3.6-4.0: 0.38-0.39 of the surface shell against the truth's 0.47-0.48)
MEASURED_SIGNIFICANCE = 5.0


def atom_depths(positions_A, d_nn: float) -> np.ndarray:
    """Each atom's depth below the particle's surface [A] (see the module's text)."""
    pos = np.asarray(positions_A, float)
    if len(pos) == 0:
        return np.zeros(0)
    vox = VOXEL_BONDS * d_nn
    radius = SPHERE_BONDS * d_nn
    pad = int(np.ceil((radius + 2 * d_nn) / vox)) + 1
    lo = pos.min(axis=0) - pad * vox
    shape = tuple(int(v) for v in np.ceil((pos.max(axis=0) - lo) / vox).astype(int) + pad + 1)
    # the grid's masks and its distance transform (float64) with scipy's index arrays
    check_memory(
        20.0 * np.prod(shape, dtype=np.float64), f"the depth grid of {shape} voxels",
        hint="the atoms span more than a nanoparticle: check the model's units (A)",
    )  # fmt: skip
    idx = np.round((pos - lo) / vox).astype(int)
    body = np.zeros(shape, bool)
    body[tuple(idx.T)] = True
    body = ndimage.binary_dilation(body, structure=_ball(radius / vox))
    body = ndimage.binary_closing(body, structure=_ball(d_nn / vox))
    body = ndimage.binary_fill_holes(body)
    edt = ndimage.distance_transform_edt(body, sampling=vox)
    return np.clip(edt[tuple(idx.T)] - radius, 0.0, None)


def _ball(radius_vox: float) -> np.ndarray:
    """A ball of ``radius_vox`` voxels as a boolean structuring element."""
    r = int(np.ceil(radius_vox))
    g = np.arange(-r, r + 1)
    return (g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2) <= radius_vox**2


def _shells(depth_A, d_nn: float) -> np.ndarray:
    """Shell index per atom: 0 for the outermost bond of depth, 1 for the next, ...; the
    deepest shells joined until the last holds :data:`MIN_SHELL_ATOMS` atoms."""
    shell = np.floor(np.asarray(depth_A, float) / d_nn + 0.5).astype(int)
    while len(shell) and shell.max() > 0 and np.sum(shell == shell.max()) < MIN_SHELL_ATOMS:
        top = shell.max()
        shell[shell == top] = top - 1
    return shell


def composition_by_depth(positions_A, species, d_nn: float, significance=None) -> dict:
    """Each element's share per shell from the surface inward and, with ``significance`` (per
    atom), its median there; ``shell`` per atom; the surface shell against the inner half
    (atoms deeper than the median) per element, with a note where an element's share differs
    by more than :data:`NOTE_Z` binomial standard errors."""
    species = np.asarray(species).astype(str)
    if len(species) == 0 or len(species) != len(positions_A):
        raise ValueError(
            f"{len(positions_A)} positions and {len(species)} species: give one element per "
            "atom (and at least one atom)"
        )
    depth = atom_depths(positions_A, d_nn)
    shell = _shells(depth, d_nn)
    elements = sorted(str(e) for e in set(species) - UNSET_ELEMENTS)  # shares of all atoms
    sig = None if significance is None else np.asarray(significance, float)
    rows = []
    for k in range(int(shell.max()) + 1):
        sel = shell == k
        row = {"shell": k, "n_atoms": int(sel.sum()), "depth_A": float(np.median(depth[sel]))}
        for e in elements:
            share = float(np.mean(species[sel] == e)) if sel.any() else 0.0
            row[e] = {
                "share": share,
                "share_error": float(np.sqrt(share * (1 - share) / max(sel.sum(), 1))),
            }
            mine = sel & (species == e)
            if sig is not None and mine.any():
                row[e]["median_significance"] = float(np.nanmedian(sig[mine]))
        rows.append(row)
    outer = shell == 0
    inner = depth > np.median(depth)
    compare = {}
    notes = []
    if outer.sum() >= MIN_SHELL_ATOMS and inner.sum() >= MIN_SHELL_ATOMS:
        worst = None
        for e in elements:
            p_out, p_in = float(np.mean(species[outer] == e)), float(np.mean(species[inner] == e))
            pooled = float(np.mean(species[outer | inner] == e))
            se = np.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / outer.sum() + 1 / inner.sum()))
            z = (p_out - p_in) / se
            compare[e] = {"surface_share": p_out, "inner_share": p_in, "z": float(z)}
            if sig is not None:
                for part, sel in (("surface", outer), ("inner", inner)):
                    mine = sel & (species == e)
                    if mine.any():
                        compare[e][f"{part}_median_significance"] = float(np.nanmedian(sig[mine]))
            if z > NOTE_Z and (worst is None or z > compare[worst]["z"]):
                worst = e  # the element richest at the surface (another is then poorer)
        if worst is not None and len(elements) > 1:
            c = compare[worst]
            note = (
                f"{worst} is richer at the surface: a share of {c['surface_share']:.2f} in the "
                f"surface shell against {c['inner_share']:.2f} in the inner half "
                f"({c['z']:.1f} standard errors)"
            )
            if "inner_median_significance" in c and "surface_median_significance" in c:
                s_out, s_in = c["surface_median_significance"], c["inner_median_significance"]
                note += (
                    f"; its atoms are measured to a median of {s_out:.1f} standard errors at "
                    f"the surface and {s_in:.1f} inside"
                )
            note += (
                ". Segregation, or a faint element's atoms missed where the particle is thick "
                "(they look the same): check the profile against the atoms' significance"
            )
            notes.append(note)
    if sig is not None and len(elements) > 1:
        for e in elements:
            med = float(np.nanmedian(sig[species == e]))
            if med < MEASURED_SIGNIFICANCE:
                notes.append(
                    f"{e}'s atoms are measured to a median of {med:.1f} standard errors (below "
                    f"{MEASURED_SIGNIFICANCE:g}): some of them may be missed or misplaced, and "
                    f"{e}'s shares by depth with them"
                )
    return {
        "elements": elements,
        "bond_A": float(d_nn),
        "shells": rows,
        "surface_vs_inner": compare,
        "shell": shell,
        "notes": notes,
    }


def add_composition_by_depth(f, pos, d_nn: float) -> dict | None:
    """:func:`composition_by_depth` of a model of several elements (the ``element`` column of
    the feature table ``f``), its ``refine_significance`` when present; adds the feature
    ``depth_shell`` to ``f`` and returns the ``composition_by_depth`` part of
    ``analysis.json`` with its ``notes``; None for one element or without a bond length."""
    got = element_kinds(f)
    if got is None or len(got[1]) < 2 or not np.isfinite(d_nn) or len(f) < 2 * MIN_SHELL_ATOMS:
        return None
    species = got[0]
    sig = f["refine_significance"].to_numpy(float) if "refine_significance" in f else None
    out = composition_by_depth(pos, species, d_nn, sig)
    f["depth_shell"] = out.pop("shell")
    return out
