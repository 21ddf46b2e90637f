"""The packing verdicts on a refinement's final positions (:func:`~._refine._refine_once`,
one element, once the traced positions' share and the last site pass have made them): two
atoms squeezed into one place, faint atoms the packing does not vouch for, atoms hanging off
the particle. Each returns ``(model, info, origin)`` with the atoms it took out counted in
``info``."""

from __future__ import annotations

import numpy as np

from ._packing import (
    SPARSE_SITE_NEIGHBOURS,
    TRIAL_MIN_NEIGHBOURS,
    _hanging_trials,
    _sparse_faint_atoms,
    _squeezed_atoms,
)
from ._trials import CLOSE_PAIR
from ._verdicts import ADD_AMPLITUDE, REFINE_FEATURES


def _without_squeezed_atoms(model, info, origin):
    """``(model, info, origin)`` without the atoms that stand too close to another to be on
    their neighbours' lattice (:func:`~._packing._squeezed_atoms`; ``info["squeezed_atoms"]``
    counts them over the calls): the site passes' rule (:func:`~._refine._site_passes`) met by the
    final positions, where the traced positions' share and the last site pass make new
    pairs. On the final model of an independent 256-px Pt icosahedron (a third of the counts,
    acquisition faults) 97 false atoms stood 1.7-2.4 A from a real one (60 added by the
    passes, most 1-1.6 A off a missed atom's site); the rule took 68 false and 19 real atoms
    (3.85 -> 3.25 % offline)."""
    drop = _squeezed_atoms(model.positions)
    before = (info.get("squeezed_atoms") or {}).get("n_removed", 0)
    record = {"max_nearest_distances": CLOSE_PAIR, "n_removed": before + int(drop.sum())}
    return _dropped(model, {**info, "squeezed_atoms": record}, origin, drop)


def _without_sparse_faint_atoms(model, info, origin):
    """``(model, info, origin)`` without the atoms of a dense packing with few neighbours
    that the images show fainter than a trial must be to join
    (:func:`~._packing._sparse_faint_atoms` at :data:`~._verdicts.ADD_AMPLITUDE`;
    ``info["sparse_atoms"]``)."""
    amp = model.features.get(REFINE_FEATURES[1])
    drop = np.zeros(model.n_atoms, bool)
    if amp is not None:
        drop = _sparse_faint_atoms(model.positions, amp.to_numpy(float), ADD_AMPLITUDE)
    record = {"max_neighbours": SPARSE_SITE_NEIGHBOURS, "amplitude_bar": ADD_AMPLITUDE,
              "n_removed": int(drop.sum())}  # fmt: skip
    return _dropped(model, {**info, "sparse_atoms": record}, origin, drop)


def _dropped(model, info, origin, drop):
    """``(model, info, origin)`` without the atoms ``drop`` (counted in ``n_removed``)."""
    if drop.any():
        info["n_removed"] = int(info.get("n_removed", 0)) + int(drop.sum())
        model = model.subset(~drop)
        if origin is not None and len(origin) == len(drop):
            origin = np.asarray(origin)[~drop]
    model.metadata["refinement"] = info
    return model, info, origin


def _without_hanging_atoms(model, info, origin):
    """``(model, info, origin)`` without the atoms, traced or added, that hang off a dense
    packing in the final positions (fewer than :data:`~._packing.TRIAL_MIN_NEIGHBOURS`
    neighbours, peeled; :func:`~._packing._hanging_trials`; ``info["hanging_atoms"]``): the
    rule the trials meet when they join, met by every atom at the end, when the positions are
    final and the atoms beside a real one are in (before, a real atom whose neighbours the
    tracer missed hangs for a while)."""
    drop = _hanging_trials(model.positions, np.ones(model.n_atoms, bool), 0)
    record = {"min_neighbours": TRIAL_MIN_NEIGHBOURS, "n_removed": int(drop.sum())}
    return _dropped(model, {**info, "hanging_atoms": record}, origin, drop)
