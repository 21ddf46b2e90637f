"""What a denoiser takes from the atoms' smooth displacements, given back from the counts.

Positions fitted to BM3D images have the lower noise, and a bias: BM3D averages similar
patches, and a crystal's patches differ by exactly the displacements that strain analysis
measures. On an independent Pt polyhedron at a third of the study's counts (128 px) with a
smooth radial strain (0 at the centre, 4 % at the surface), the positions fitted to the BM3D
images recovered 71 % of the displacement field (10.3 pm from the truth); fitted to the counts,
91 % (12.4 pm). The difference between the two fits is the denoiser's bias plus the counts'
noise; the bias is smooth (patches of a few atoms) and the noise is not, so a local average
of the difference over each atom's neighbours keeps the one and averages the other away.
Added to the denoised positions (by the refine stage) it gave 101 % of the field at 8.2 pm;
on five unstrained independent particles at a third of the counts (Pt, Au, Pd, Ni) it took
1.1-2.0 pm off the RMSD of the denoised positions (docs/benchmarks.md). An atom's own
displacement (a vacancy's neighbours, an adatom) is not smooth: it stays as the denoiser left
it.
"""

from __future__ import annotations

import numpy as np

from ..core.geometry import median_nearest_distance

#: The local average's Gaussian width, in nearest-neighbour distances (the analysis's strain
#: is smoothed over about one: 2.7 A for Pt). Over 0.6-1.2 neighbour distances the result
#: barely changed on the independent series (RMSD within 0.5 pm, the strained polyhedron's
#: field recovered to 97-99 %); wider widths flatten the field's variation (85 % at 3).
SMOOTHING_NN = 1.0
#: Atoms whose two fits differ by more than this [A] are left out of their neighbours'
#: averages (an atom the counts placed elsewhere is not part of a smooth field).
MAX_DIFFERENCE_A = 0.5


def smooth_difference(positions_A, difference_A, *, sigma_A=None) -> tuple[np.ndarray, dict]:
    """Each atom's locally linear average of ``difference_A`` over its neighbours.

    For every atom, the differences of the atoms within ``3 sigma_A`` are fitted, weighted by
    a Gaussian of their distance, by a linear function of position (a local linear
    regression: a constant or linearly varying field, such as a uniform strain, is kept
    exactly, also at the surface, where the neighbours lie on one side); its value at the
    atom is the smooth difference. ``sigma_A`` defaults to :data:`SMOOTHING_NN` median
    nearest-neighbour distances.

    Returns ``(smooth (n, 3) [A], info)``; ``info["noise_gain"]`` is how much of the
    differences' independent per-atom noise stays in the smooth ones (RMS over the atoms of
    the norm of each atom's regression weights: the noise's RMS is multiplied by it), and
    ``info["noise_per_atom_pm"]`` that noise's 3D RMS, measured from the scatter of the
    differences about their smooth part.
    """
    from scipy.spatial import cKDTree

    pos = np.asarray(positions_A, np.float64).reshape(-1, 3)
    diff = np.asarray(difference_A, np.float64).reshape(-1, 3)
    if pos.shape != diff.shape:
        raise ValueError(f"{len(pos)} positions but {len(diff)} differences")
    n = len(pos)
    if n < 5:
        return np.zeros_like(diff), {"applied": False, "why": f"{n} atoms"}
    tree = cKDTree(pos)
    nn = median_nearest_distance(pos, tree)
    sigma = float(sigma_A) if sigma_A else SMOOTHING_NN * nn
    usable = np.linalg.norm(diff, axis=1) <= MAX_DIFFERENCE_A
    out = np.zeros_like(diff)
    gain2 = np.zeros(n)
    own = np.zeros(n)  # each atom's weight on its own difference
    for i, nb in enumerate(tree.query_ball_point(pos, 3.0 * sigma)):
        nb = np.asarray(nb, int)
        nb = nb[usable[nb]]
        if not len(nb):
            continue
        x = pos[nb] - pos[i]
        sw = np.exp(-np.sum(x**2, axis=1) / (4 * sigma**2))  # sqrt of the Gaussian weight
        if len(nb) < 5:  # too few to fit a plane: the plain weighted mean
            weights = sw**2 / np.sum(sw**2)
        else:  # the local linear fit's value at the atom: weights . diff
            design = np.column_stack([np.ones(len(nb)), x]) * sw[:, None]
            weights = np.linalg.pinv(design)[0] * sw
        out[i] = weights @ diff[nb]
        gain2[i] = float(np.sum(weights**2))
        own[i] = float(weights[nb == i].sum())
    # the noise of the differences, from what the local fits leave (robust: an atom the
    # counts misplace does not count), corrected for the fits' own share of it:
    # var(d - fit) = var(d) (1 - 2 w_own + sum w^2) for independent noise
    rest = (diff - out)[usable]
    spread = 1.4826 * np.median(np.abs(rest - np.median(rest, axis=0)), axis=0)
    shrink = max(0.1, 1.0 - 2.0 * float(np.mean(own[usable])) + float(np.mean(gain2[usable])))
    noise_atom = float(np.sqrt(np.sum(spread**2) / shrink))
    rms = float(np.sqrt(np.mean(np.sum(out**2, axis=1))))
    info = {
        "applied": True,
        "sigma_A": sigma,
        "nearest_neighbour_A": nn,
        "n_left_out": int((~usable).sum()),
        "difference_rms_pm": 100.0 * float(np.sqrt(np.mean(np.sum(diff**2, axis=1)))),
        "correction_rms_pm": 100.0 * rms,
        "noise_gain": float(np.sqrt(np.mean(gain2))),
        "noise_per_atom_pm": 100.0 * noise_atom,
    }
    return out, info


def counts_correction(positions_A, difference_A) -> tuple[np.ndarray | None, dict]:
    """The correction to add to positions fitted to a denoised series, given how far a fit to
    the counts moves them (``difference_A``): the smooth part of the difference
    (:func:`smooth_difference`) when it stands above the noise that the local fits keep of
    the counts' own (its per-atom scatter times the fits' noise gain), else None.

    Returns ``(correction (n, 3) [A] or None, info)``; ``info`` is
    :func:`smooth_difference`'s with ``noise_pm`` and ``signal_pm`` (the smooth part's RMS
    above that noise), and ``applied`` and ``why`` saying whether and why not.
    """
    smooth, info = smooth_difference(positions_A, difference_A)
    if not info["applied"]:
        return None, info
    # what the counts' noise leaves in the smooth differences against what stands above it:
    # added only when the bias it removes is larger than the noise it brings
    noise_pm = info["noise_per_atom_pm"] * info["noise_gain"]
    signal_pm = float(np.sqrt(max(0.0, info["correction_rms_pm"] ** 2 - noise_pm**2)))
    info.update(noise_pm=noise_pm, signal_pm=signal_pm)
    if signal_pm <= noise_pm:
        info.update(
            applied=False,
            why=f"the counts' noise ({noise_pm:.1f} pm after the local fits) is as large as the "
            f"smooth difference above it ({signal_pm:.1f} pm)",
        )
        return None, info
    return smooth, info
