"""Registration of each image to a tomogram's re-projection (projection matching's rounds
that do not fit an atom model): sub-pixel offsets with their standard errors and, with the
tomogram method, angle corrections from correlations at trial angles."""

from __future__ import annotations

import numpy as np

from ..core.progress import check_cancel
from ._reproject import reproject


def _register(reference: np.ndarray, moving: np.ndarray, upsample: int = 20):
    """``(d, cc)``: offset ``d`` (row, col) with ``moving(p + d) ~ reference(p)``, and the
    normalized correlation after that shift."""
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(
        reference, moving, upsample_factor=upsample, normalization=None
    )
    d = -np.asarray(shift, np.float64)
    moved = ndimage.shift(moving, -d, order=1, mode="constant")
    a = reference - reference.mean()
    b = moved - moved.mean()
    cc = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-30))
    return d, cc


def _fourier_shift(img: np.ndarray, shift) -> np.ndarray:
    """Image moved by ``shift`` (row, col) [pixels], exactly (periodic) via the Fourier domain."""
    from scipy import ndimage

    return np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(img), shift)).real


def shift_standard_error(reference: np.ndarray, image: np.ndarray, shift) -> np.ndarray:
    """Standard errors (row, col) [px] of the offset ``shift`` registering ``image`` to
    ``reference`` (``image ~ a * reference(p - shift) + b``).

    The sandwich estimate of a least-squares fit of the offset, scale and background:
    ``A^-1 B A^-1`` with ``A = J^T J`` and ``B = J^T C J``, ``J`` the derivatives of the placed
    reference and ``C`` the residual's covariance taken from its own periodogram, so that
    correlated noise (denoised or low-passed images) and the misfit of a noisy reference count
    as what they are instead of as white noise.
    """
    ref = _fourier_shift(np.asarray(reference, np.float64), shift)
    img = np.asarray(image, np.float64)
    rows, cols = img.shape
    design = np.column_stack([ref.ravel(), np.ones(ref.size)])
    (a, b), *_ = np.linalg.lstsq(design, img.ravel(), rcond=None)
    resid = img - (a * ref + b)
    gy, gx = np.gradient(a * ref)
    jac = np.stack([gy, gx, ref - ref.mean(), np.ones_like(ref)])  # (4, rows, cols)
    amat = np.einsum("ipq,jpq->ij", jac, jac)
    weight = np.full(cols // 2 + 1, 2.0)
    weight[0] = 1.0
    if cols % 2 == 0:
        weight[-1] = 1.0
    r_hat = np.abs(np.fft.rfft2(resid)) ** 2 * weight
    jf = np.fft.rfft2(jac)
    bmat = np.einsum("ipq,jpq,pq->ij", jf, jf.conj(), r_hat).real / float(rows * cols) ** 2
    ainv = np.linalg.pinv(amat)
    cov = ainv @ bmat @ ainv
    return np.sqrt(np.clip(np.diag(cov)[:2], 0.0, None))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-30))


def _match_to_tomogram(vol, aligned, ang, refine_angles, step_deg, max_change_deg, tick, cancel):
    """Per image: the offset registering it to the tomogram's re-projection and, optionally,
    the angle at the vertex of a parabola through the correlations at trial angles."""
    n = len(aligned)
    d = np.zeros((n, 2))
    sig = np.zeros((n, 2))
    dang = np.zeros(n)
    ccs = np.zeros(n)
    for i in range(n):
        check_cancel(cancel, "projection matching")
        ref = reproject(vol, [ang[i]])[0]
        d0, _ = _register(ref, aligned[i])
        if refine_angles:
            # correlations at a fixed shift over a symmetric set of trial angles; the vertex
            # of a least-squares parabola is the angle correction
            offs = step_deg * np.arange(-2, 3)
            proj = reproject(vol, ang[i] + offs)
            moved = _fourier_shift(aligned[i], -d0)
            c = np.array([_ncc(p, moved) for p in proj])
            a2, a1, _ = np.polyfit(offs, c, 2)
            delta = -a1 / (2 * a2) if a2 < 0 else offs[int(np.argmax(c))]
            dang[i] = float(np.clip(delta, -max_change_deg, max_change_deg))
            ref = reproject(vol, [ang[i] + dang[i]])[0]
            d[i], ccs[i] = _register(ref, aligned[i])
        else:
            d[i] = d0
            ccs[i] = _ncc(ref, _fourier_shift(aligned[i], -d0))
        sig[i] = shift_standard_error(ref, aligned[i], d[i])
        tick(i)
    return d, dang, ccs, sig
