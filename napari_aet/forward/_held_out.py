"""Which of two atom models predicts images that neither was fitted to: the cross-validation
that decides whether a refinement's verdicts can be used where its fit to the images alone
cannot say (very low counts)."""

from __future__ import annotations

import numpy as np

from ._projection import project_positions


def gaussian_projection(
    positions_A, angle_deg: float, *, shape_px, pixel_size_A: float, sigma_A: float
) -> np.ndarray:
    """The projection at ``angle_deg`` of equal atoms imaged as 2-D Gaussians of width
    ``sigma_A`` with unit peak, in the aligned frame (tilt axis vertical through the centre
    column; :func:`project_positions`)."""
    rows, cols = (int(v) for v in shape_px)
    pos = np.asarray(positions_A, np.float64).reshape(-1, 3)
    image = np.zeros(rows * cols)
    if not len(pos):
        return image.reshape(rows, cols)
    c = project_positions(pos, angle_deg, shape_px=(rows, cols), pixel_size_A=pixel_size_A)
    s = float(sigma_A) / float(pixel_size_A)
    w = int(np.ceil(4.0 * s))
    off = np.arange(-w, w + 1)
    base = np.floor(c).astype(np.int64)
    pr = base[:, :1] + off[None, :]
    pc = base[:, 1:] + off[None, :]
    gr = np.exp(-((pr - c[:, :1]) ** 2) / (2 * s * s))
    gc = np.exp(-((pc - c[:, 1:]) ** 2) / (2 * s * s))
    vals = gr[:, :, None] * gc[:, None, :]
    r = np.broadcast_to(pr[:, :, None], vals.shape)
    q = np.broadcast_to(pc[:, None, :], vals.shape)
    ok = (r >= 0) & (r < rows) & (q >= 0) & (q < cols)
    image += np.bincount((r * cols + q)[ok], weights=vals[ok], minlength=rows * cols)
    return image.reshape(rows, cols)


def held_out_comparison(
    images, angles_deg, reference_A, candidate_A, *, pixel_size_A: float, sigma_A: float
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

    Returns
    -------
    dict
        ``gain`` (per image), ``sse_reference``, ``sse_candidate`` (totals), ``t`` (None for
        fewer than 2 images or no spread) and ``n_images``.
    """
    imgs = np.asarray(images, np.float64)
    if imgs.ndim != 3:
        raise ValueError(f"images must be (n_images, rows, cols), got shape {imgs.shape}")
    angles = np.asarray(angles_deg, np.float64).ravel()
    if len(angles) != len(imgs):
        raise ValueError(f"{len(angles)} angles for {len(imgs)} images")
    sse = np.zeros((2, len(imgs)))
    for i, (img, ang) in enumerate(zip(imgs, angles, strict=True)):
        d = img.ravel()
        for k, pos in enumerate((reference_A, candidate_A)):
            g = gaussian_projection(
                pos, ang, shape_px=img.shape, pixel_size_A=pixel_size_A, sigma_A=sigma_A
            ).ravel()
            design = np.stack([g, np.ones_like(g)], axis=1)
            coef, *_ = np.linalg.lstsq(design, d, rcond=None)
            sse[k, i] = float(np.sum((d - design @ coef) ** 2))
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
