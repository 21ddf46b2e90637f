"""Which of two atom models predicts images that neither was fitted to: the cross-validation
that decides whether a refinement's verdicts can be used where its fit to the images alone
cannot say (very low counts)."""

from __future__ import annotations

import numpy as np

from ..core.geometry import images_and_angles
from ._splat import _Renderer


def held_out_comparison(
    images,
    angles_deg,
    reference_A,
    candidate_A,
    *,
    pixel_size_A: float,
    sigma_A: float,
    amplitudes=None,
) -> dict:
    """How much better ``candidate_A`` than ``reference_A`` predicts ``images``.

    Each model images its atoms as equal Gaussians of width ``sigma_A`` (one element: no
    per-atom amplitude, so a model gains nothing from atoms the images do not show); each
    image's scale and background are fitted to it by least squares for each model (two
    numbers per image for both). The statistic is each image's drop in the sum of squared
    residuals from the reference to the candidate, ``gain``; its mean over the images in units
    of its standard error (``t``, a paired test across the images, free of any noise model
    and of the images' units) says whether the drop is more than the images' noise.

    Parameters
    ----------
    images : ndarray of shape (n_images, rows, cols)
        Aligned, background-free images that neither model was fitted to (held out).
    angles_deg : array-like of shape (n_images,)
    reference_A, candidate_A : ndarray of shape (n_atoms, 3)
        The two models' ``(z, y, x)`` positions [A] in the volume frame.
    pixel_size_A, sigma_A : float
        Pixel size and the atoms' image width [A] (e.g. a refinement's fitted width).
    amplitudes : array-like of shape (n_atoms,), optional
        Each atom's relative amplitude, the same in both models (an alloy's elements, from a
        fit to images other than ``images``): two models that differ in where they put some
        atoms. Default: equal atoms.

    Returns
    -------
    dict
        ``gain`` (per image), ``sse_reference``, ``sse_candidate`` (totals), ``t`` (None for
        fewer than 2 images or no spread) and ``n_images``.
    """
    imgs, angles = images_and_angles(images, angles_deg, dtype=np.float64)
    model_images = _equal_atoms_renderer(imgs.shape[1:], angles, pixel_size_A, sigma_A)
    sse = np.zeros((2, len(imgs)))
    if amplitudes is not None:
        amplitudes = np.asarray(amplitudes, np.float64).ravel()
        for pos in (reference_A, candidate_A):
            if (n := len(np.reshape(pos, (-1, 3)))) != len(amplitudes):
                raise ValueError(
                    f"{len(amplitudes)} amplitudes for a model of {n} atoms: give one per atom, "
                    "the same atoms in both models"
                )
    for k, pos in enumerate((reference_A, candidate_A)):
        for i, (d, g) in enumerate(zip(imgs, model_images(pos, amplitudes), strict=True)):
            design = np.stack([g.ravel(), np.ones(g.size)], axis=1)
            coef, *_ = np.linalg.lstsq(design, d.ravel(), rcond=None)
            sse[k, i] = float(np.sum((d.ravel() - design @ coef) ** 2))
    gain = sse[0] - sse[1]
    t = None
    if len(gain) >= 2 and np.std(gain, ddof=1) > 0:
        t = float(np.mean(gain) / (np.std(gain, ddof=1) / np.sqrt(len(gain))))
    return {
        "gain": gain.tolist(),
        "sse_reference": float(sse[0].sum()),
        "sse_candidate": float(sse[1].sum()),
        "t": t,
        "n_images": int(len(gain)),
    }


def _equal_atoms_renderer(shape, angles_deg, pixel_size_A: float, sigma_A: float):
    """``positions -> images``: equal atoms imaged as unit-peak Gaussians of width
    ``sigma_A`` at ``angles_deg`` in the aligned frame, by the atom-model fit's own splatting
    (:class:`~napari_aet.forward._splat._Renderer`, windows of 4 widths), float64."""
    import torch

    px = float(pixel_size_A)
    ren = _Renderer(tuple(shape), px, int(np.ceil(4.0 * sigma_A / px)), torch, "cpu")
    theta = torch.as_tensor(np.deg2rad(angles_deg), dtype=torch.float32)
    offsets = torch.zeros((len(theta), 2), dtype=torch.float32)
    width = torch.tensor(float(sigma_A) / px, dtype=torch.float32)

    def run(positions_A, amplitudes=None) -> np.ndarray:
        pos = np.asarray(positions_A, np.float64).reshape(-1, 3)
        if not len(pos):
            return np.zeros((len(theta), *shape))
        with torch.no_grad():
            row, col = ren.coords(torch.as_tensor(pos, dtype=torch.float32), theta, offsets)
            amp = (
                torch.ones(len(pos), dtype=torch.float32)
                if amplitudes is None
                else torch.as_tensor(np.asarray(amplitudes, np.float32))
            )
            return ren.render(row, col, amp, width).numpy().astype(np.float64)

    return run
