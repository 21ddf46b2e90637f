"""Bond-length restraints of an atom-position fit (:func:`napari_aet.forward.refine_atomic_model`).

At a few counts per pixel each atom's position fitted on its own is noisy (tens of pm) and
some atoms slide off into their neighbours' images; the bonds of a dense packing say where an
atom can be. As in real-space refinement of macromolecular models, where bond lengths are
restrained to their known values and the restraints' weight is chosen against data the fit did
not see, each first-shell bond is restrained to the median length of the bonds about it: a
smooth strain field, which stretches all the bonds of a region alike, costs nothing; a single
atom pushed off its neighbours by the noise does. The weight is a prior bond-length spread
``sigma_A``, chosen by the caller (:func:`napari_aet.trace.refine_atom_positions` asks the
images held out of each half's fit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Bonds of the restraint: pairs closer than this many first-shell bond lengths
#: (:func:`napari_aet.core.geometry.first_shell`; a fitted model's bonds spread by 1-2 %) ...
BOND_SHELL = 1.2
#: ... or, where a second shell stands inside that (bcc's, at 1.155 bonds: at least this
#: fraction as many pairs at 1.1-1.25 bonds as at 0.9-1.1), pairs closer than
#: :data:`NEAR_SECOND_SHELL` bonds, between the two.
SECOND_SHELL_FRACTION = 0.25
NEAR_SECOND_SHELL = 1.075
#: Each bond's target is the median length of the bonds whose midpoints lie within this many
#: first-shell bonds of its own (about 300 bonds inside a crystal): a strain field that varies
#: over a few bonds is kept, the noise of one bond's length is not.
LOCAL_RADIUS = 2.0
#: A bond's penalty grows as its squared deviation (in ``sigma_A``) up to about this many
#: ``sigma_A`` and only logarithmically beyond (Cauchy): one wrongly placed atom, or a pair
#: that is no bond, does not drag its neighbours.
CAP = 3.0


@dataclass(frozen=True)
class BondRestraint:
    """Bond-length restraints: ``pairs`` ``(m, 2)`` atom indices, their target
    ``lengths_A`` ``(m,)``, the prior spread ``sigma_A`` of a bond's length about its target
    and the deviation (in ``sigma_A``) where the penalty turns from quadratic to logarithmic
    (``cap``)."""

    pairs: np.ndarray
    lengths_A: np.ndarray
    sigma_A: float
    cap: float = CAP

    def __post_init__(self):
        pairs = np.asarray(self.pairs)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) != len(self.lengths_A):
            raise ValueError(
                f"pairs must be (m, 2) with one target length each, got {pairs.shape} and "
                f"{np.shape(self.lengths_A)}"
            )
        if not (self.sigma_A > 0 and self.cap > 0):
            raise ValueError(
                f"sigma_A ({self.sigma_A}) and cap ({self.cap}) must be positive: a bond "
                "length's prior spread [A] and where its penalty turns"
            )

    def penalty(self, positions, torch):
        """``sum rho((|r_i - r_j| - b_ij) / sigma)`` over the bonds, ``rho(x) = c^2 log(1 +
        x^2 / c^2)`` (``~ x^2`` for small ``x``), for a torch tensor of positions [A]."""
        return self.penalty_of(torch, positions.device, positions.dtype)(positions)

    def penalty_of(self, torch, device, dtype):
        """:meth:`penalty` as a function of the positions, the bonds moved to ``device`` once
        (a fit evaluates it at every step)."""
        idx = torch.as_tensor(np.asarray(self.pairs), dtype=torch.long, device=device)
        b0 = torch.as_tensor(np.asarray(self.lengths_A), dtype=dtype, device=device)
        sigma, cap = self.sigma_A, self.cap

        def penalty(positions):
            # (a softened norm: two atoms on one spot would give a NaN gradient)
            d2 = ((positions[idx[:, 0]] - positions[idx[:, 1]]) ** 2).sum(1)
            x = (torch.sqrt(d2 + 1e-12) - b0) / sigma
            return (cap**2 * torch.log1p((x / cap) ** 2)).sum()

        return penalty


def bond_restraint(positions_A, sigma_A: float, *, cap: float = CAP) -> BondRestraint:
    """The bond-length restraints of ``positions_A`` ``(n, 3)`` [A] at a prior spread
    ``sigma_A`` [A]: every pair within :data:`BOND_SHELL` first-shell bonds (or
    :data:`NEAR_SECOND_SHELL`, where a second shell stands inside that), each restrained
    to the median length of the bonds within :data:`LOCAL_RADIUS` bonds of it. Raises
    ``ValueError`` for fewer than two atoms."""
    from scipy.spatial import cKDTree

    from ..core.geometry import first_shell

    pos = np.asarray(positions_A, float).reshape(-1, 3)
    tree = cKDTree(pos)
    b0, _ = first_shell(pos, tree)
    pairs = tree.query_pairs(1.25 * b0, output_type="ndarray")
    length = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1) / b0
    first = np.count_nonzero((length >= 0.9) & (length < 1.1))
    second = np.count_nonzero(length >= 1.1)
    shell = NEAR_SECOND_SHELL if second >= SECOND_SHELL_FRACTION * first else BOND_SHELL
    pairs, length = pairs[length < shell], b0 * length[length < shell]
    if not len(pairs):
        return BondRestraint(np.empty((0, 2), int), np.empty(0), sigma_A, cap)
    mid = 0.5 * (pos[pairs[:, 0]] + pos[pairs[:, 1]])
    near = cKDTree(mid).query_ball_point(mid, LOCAL_RADIUS * b0)
    target = np.array([np.median(length[k]) for k in near])
    return BondRestraint(pairs, target, sigma_A, cap)
