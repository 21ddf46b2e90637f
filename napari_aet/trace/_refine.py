"""Refinement of a traced atom model's positions against the measured tilt series."""

from __future__ import annotations

import numpy as np

from ..core.atoms import AtomModel
from ..forward import refine_atomic_model, why_untrusted

#: Atoms that the refinement moved further than this [A] are worth a look in the review.
LARGE_SHIFT_A = 0.5
#: The per-atom features :func:`refine_atom_positions` adds.
REFINE_FEATURES = ("refine_shift_A", "refine_amplitude")


def refine_atom_positions(
    atoms: AtomModel,
    images,
    angles_deg,
    *,
    pixel_size_A: float,
    iterations: int = 60,
    refine_geometry: bool = False,
    device: str = "auto",
    progress=None,
    cancel=None,
) -> tuple[AtomModel, dict]:
    """Move each traced atom to where the measured images put it.

    A tomogram blurs atoms along the missing wedge and the tracer reads positions off it; the
    images themselves are sharper evidence. Every atom's position (and amplitude) is refined by
    least squares against every pixel of every aligned image
    (:func:`napari_aet.align.refine_atomic_model`), the angles and image offsets held (or also
    refined, ``refine_geometry``). On the sample this halves the positions' RMSD against the
    truth (18 to 9 pm, see docs/benchmarks.md).

    When the refined model cannot be trusted (it fits the images poorly, or its atoms are not
    resolved: :func:`napari_aet.align.why_untrusted`) the positions are kept as traced and the
    reason is returned in ``info["not_refined"]``.

    Parameters
    ----------
    atoms : AtomModel
        Traced atoms in the volume frame of a reconstruction of ``images``.
    images : ndarray of shape (n_images, rows, cols)
        The aligned tilt series the atoms were reconstructed from.
    angles_deg : array-like of shape (n_images,)
        Its tilt angles [degrees].
    pixel_size_A : float
    iterations : int
        L-BFGS iterations of the joint stage.
    refine_geometry : bool
        Also refine the angles and offsets (the model is then rotated/translated to the gauge).

    Returns
    -------
    (AtomModel, dict)
        The refined model, with the features ``refine_shift_A`` (how far each atom moved) and
        ``refine_amplitude`` (its fitted amplitude over the median: near 0 suggests a false
        atom), and a JSON-serialisable summary.
    """

    res = refine_atomic_model(
        images,
        angles_deg,
        atoms.positions,
        pixel_size_A=pixel_size_A,
        refine_angles=refine_geometry,
        refine_offsets=refine_geometry,
        iterations=iterations,
        device=device,
        progress=progress,
        cancel=cancel,
    )
    why = why_untrusted(res)
    info = {
        "iterations": iterations,
        "refine_geometry": refine_geometry,
        "sigma_A": res.sigma_A,
        "residual_start": res.residual[0],
        "residual_end": res.residual[-1],
        "image_correlation_median": float(np.median(res.image_correlation)),
        "angle_corrections_deg": res.angle_corrections_deg.tolist(),
        "offsets_px": res.offsets_px.tolist(),
    }
    if why:
        info["not_refined"] = why
        return atoms, info
    shift = np.linalg.norm(res.positions_A - atoms.positions, axis=1)
    amp = res.amplitudes / max(float(np.median(res.amplitudes)), 1e-30)
    features = atoms.features.copy()
    features[REFINE_FEATURES[0]] = shift
    features[REFINE_FEATURES[1]] = amp
    info.update(
        {
            "shift_A_median": float(np.median(shift)),
            "shift_A_p95": float(np.percentile(shift, 95)),
            f"n_moved_over_{LARGE_SHIFT_A}_A": int((shift > LARGE_SHIFT_A).sum()),
            "n_amplitude_below_0.3": int((amp < 0.3).sum()),
        }
    )
    meta = dict(atoms.metadata)
    meta["refinement"] = info
    return AtomModel(res.positions_A, features, meta), info
