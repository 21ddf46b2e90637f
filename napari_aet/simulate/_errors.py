"""Deliberate errors in an atom model, to test and benchmark the guided review."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class InjectedErrors:
    """A model with known mistakes.

    Attributes
    ----------
    positions : ndarray of shape (M, 3)
        The erroneous model [A]: true atoms minus the removed ones, some displaced, plus the
        duplicates appended at the end.
    removed_A : ndarray of shape (n_removed, 3)
        Where the removed atoms were.
    displaced : ndarray of int
        Indices into ``positions`` of the displaced atoms.
    duplicates : ndarray of int
        Indices into ``positions`` of the duplicated (extra) atoms.
    """

    positions: np.ndarray
    removed_A: np.ndarray
    displaced: np.ndarray
    duplicates: np.ndarray


def inject_model_errors(
    positions_A,
    *,
    n_removed: int = 10,
    n_duplicated: int = 10,
    n_displaced: int = 10,
    duplicate_distance_A: float = 1.0,
    displacement_A: float = 0.9,
    seed=None,
) -> InjectedErrors:
    """Remove, duplicate (a second atom ``duplicate_distance_A`` away) and displace (by
    ``displacement_A`` in a random direction) randomly chosen, distinct atoms."""
    truth = np.asarray(positions_A, float)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    idx = rng.permutation(len(truth))
    removed = idx[:n_removed]
    duplicated = idx[n_removed : n_removed + n_duplicated]
    displaced = idx[n_removed + n_duplicated : n_removed + n_duplicated + n_displaced]
    dirs = rng.normal(size=(n_displaced + n_duplicated, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    model = truth.copy()
    model[displaced] += displacement_A * dirs[:n_displaced]
    keep = np.setdiff1d(np.arange(len(truth)), removed)
    extra = truth[duplicated] + duplicate_distance_A * dirs[n_displaced:]
    positions = np.vstack([model[keep], extra])
    return InjectedErrors(
        positions,
        truth[removed],
        np.searchsorted(keep, displaced),
        np.arange(len(keep), len(positions)),
    )
