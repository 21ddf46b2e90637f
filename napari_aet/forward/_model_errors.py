"""Standard errors of an atom-model fit (:func:`napari_aet.forward.refine_atomic_model`): the
per-image angles and offsets, the atoms' amplitudes and the in-plane axis turn, by sandwich
estimates at the fitted state, and their calibration by a bootstrap replicate. ``model`` is
the fit's image model (a callable that takes small extra steps of the geometry) and ``torch``
the module, passed in so that importing this one does not import torch."""

from __future__ import annotations

import numpy as np


def _axis_sigma(model, data, torch, h_deg: float = 0.05) -> float:
    """Standard error [deg] of the in-plane axis turn at the fitted state, every other unknown
    held: ``sqrt(B) / A`` with ``A = sum J^2`` (``J`` the model's derivative, central
    differences) and ``B`` the larger of the stationary estimate (the residual's periodogram,
    ``sum_f |J_f|^2 |r_f|^2 / N^2``) and the local one (``J r`` correlated with itself over
    :data:`LOCAL_WEIGHTS`), as for the angles (:func:`_geometry_sigmas`)."""
    resid = model() - data
    jac = (model(extra_axis_deg=h_deg) - model(extra_axis_deg=-h_deg)) / (2 * h_deg)
    a = float((jac**2).sum())
    npx = float(data.shape[1] * data.shape[2])
    stationary = float(
        (torch.fft.fft2(jac).abs() ** 2 * torch.fft.fft2(resid).abs() ** 2).sum() / npx**2
    )
    local = float(_local_b(jac[:, None], resid, torch).sum())
    return float(np.sqrt(max(stationary, local))) / max(a, 1e-30)


#: The weights of neighbouring pixels, by their distance along each axis [px], in the local
#: (heteroscedastic and autocorrelation consistent) sandwich estimate: a flat top (the full
#: product of neighbours one pixel apart counts, as linear interpolation correlates them)
#: tapered to zero. A series resampled by linear or cubic interpolation (shifted, rotated or
#: binned before it reached napari-aet) or smeared along the scan has counting noise that is
#: both uneven (largest on the atoms) and correlated over 1-2 pixels: the pixel-wise
#: estimate misses the correlation, the periodogram's the unevenness. (A Bartlett window,
#: positive definite by construction, weighs the first neighbours by 2/3 and gave 0.77 of
#: the variance after linear interpolation.)
LOCAL_WEIGHTS = (1.0, 1.0, 0.5)


def _local_kernel(rows: int, cols: int, torch, device, weights=LOCAL_WEIGHTS):
    """The real ``rfft2`` of the circular 2D window ``weights[|dr|] * weights[|dc|]`` (not
    positive everywhere: a flat top; callers keep the larger of this estimate and the
    periodogram's), as the local sandwich estimate's weight per spatial frequency."""
    k = torch.zeros((rows, cols), dtype=torch.float64, device=device)
    lag = len(weights) - 1
    for dr in range(-lag, lag + 1):
        for dc in range(-lag, lag + 1):
            k[dr % rows, dc % cols] = weights[abs(dr)] * weights[abs(dc)]
    return torch.fft.rfft2(k).real


def _hermitian_weights(cols: int, torch, device):
    """How often each column of an ``rfft2`` counts in a sum over the full spectrum."""
    w = torch.full((cols // 2 + 1,), 2.0, device=device, dtype=torch.float64)
    w[0] = 1.0
    if cols % 2 == 0:
        w[-1] = 1.0
    return w


def _local_b(jac, resid, torch, weights=LOCAL_WEIGHTS):
    """The local sandwich meat ``B_ab = sum_p sum_l k(l) g_a(p) g_b(p + l)`` with
    ``g = J r`` (``jac`` of shape (n, k, rows, cols), ``resid`` (n, rows, cols)) and ``k`` the
    window :data:`LOCAL_WEIGHTS` (:func:`_local_kernel`): the variance of ``J . noise`` for
    noise that is uneven and correlated over neighbouring pixels. Shape (n, k, k)."""
    rows, cols = resid.shape[1:]
    g = torch.fft.rfft2(jac.double() * resid.double()[:, None])
    weight = _local_kernel(rows, cols, torch, resid.device, weights) * _hermitian_weights(
        cols, torch, resid.device
    )
    return torch.einsum("nipq,njpq,pq->nij", g, g.conj(), weight.to(g.dtype)).real / (rows * cols)


def _amplitude_sigmas(resid, one, at, row, col, scale, torch):
    """Sandwich standard errors of the atoms' amplitudes (see
    :attr:`ModelRefinementResult.amplitude_sigma`). ``one``: an atom's image at pixel ``at``;
    ``row, col`` (n_images, n_atoms): the atoms' projected pixel coordinates; ``scale``: the
    images' fitted scales. The atom's image is shift-invariant, so ``sum J^2 r^2`` is the
    correlation of ``r^2`` with ``one^2``, read at each atom's position (bilinear)."""
    n, rows, cols = resid.shape
    h2 = torch.roll(one**2, shifts=(-at[0], -at[1]), dims=(0, 1))  # centred at pixel (0, 0)
    energy = float(h2.sum())
    corr = torch.fft.irfft2(
        torch.fft.rfft2(resid**2) * torch.conj(torch.fft.rfft2(h2))[None], s=(rows, cols)
    )
    # bilinear read of corr at (row, col), positions outside the field read 0
    r0 = torch.floor(row)
    c0 = torch.floor(col)
    fr, fc = row - r0, col - c0
    idx = torch.arange(n, device=resid.device)[:, None] * (rows * cols)
    flat = corr.reshape(-1)
    val = torch.zeros_like(row)
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc),
                      (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):  # fmt: skip
        rr, cc = r0 + dr, c0 + dc
        inside = (rr >= 0) & (rr < rows) & (cc >= 0) & (cc < cols)
        k = idx + rr.clamp(0, rows - 1).long() * cols + cc.clamp(0, cols - 1).long()
        val = val + w * inside * flat[k]
    s2 = (scale**2)[:, None]
    num = (s2 * val).sum(dim=0)
    inside_any = ((row >= 0) & (row < rows) & (col >= 0) & (col < cols)).to(row.dtype)
    den = (s2 * energy * inside_any).sum(dim=0)
    return torch.sqrt(num.clamp_min(0)) / den.clamp_min(1e-30)


#: The factor by which the angles' standard errors are widened beyond the bootstrap
#: replicate's calibration. Neither the linearisation nor a replicate of the fitted image
#: model sees how the model differs from the microscope's images: on 50
#: aligned series made by an independent simulator (abTEM potentials; Pt dumbbells and
#: polyhedra, Au, Pd, Ni and amorphous Pt; the study's counts to a tenth, full range; 128 and
#: 256 px) the final fits' angle changes were 1.25x their standard errors (median; quartiles
#: 1.02-1.35, up to 2.0), and the significance test, set for false corrections in 5 % of
#: series, kept some in 13 of the 50 and applied the group's shrunk changes in 20. With the
#: errors widened by 1.3: 4 and 3 of 50 (false corrections 0.043 -> 0.008 deg RMS on average),
#: and on 21 series with angle errors of sd 0.5 deg the aligned angles came out 0.149 deg RMS
#: off on average instead of 0.154.
MODEL_MISMATCH_FACTOR = 1.3


def _calibrated(angle_sigma, offset_sigma, d_ang, d_off, refine_angles, refine_offsets):
    """Scale the linearised standard errors by how far one bootstrap replicate moved the
    geometry, pooled over the images (never below 1: they are lower bounds); the angles'
    then by :data:`MODEL_MISMATCH_FACTOR`."""
    a, o = angle_sigma.copy(), offset_sigma.copy()
    if refine_angles and len(d_ang) > 2:
        d = d_ang - d_ang.mean()  # the gauge: a common angle change is a turn of the model
        c = float(np.sqrt(np.mean((d / np.maximum(a, 1e-12)) ** 2)))
        a *= max(c, 1.0) * MODEL_MISMATCH_FACTOR
    if refine_offsets and len(d_off) > 2:
        for k in range(2):
            d = d_off[:, k] - d_off[:, k].mean()
            c = float(np.sqrt(np.mean((d / np.maximum(o[:, k], 1e-12)) ** 2)))
            o[:, k] *= max(c, 1.0)
    return a, o


def _geometry_sigmas(model, data, n: int, torch, h_deg: float = 0.05, h_px: float = 0.25):
    """Standard errors of each image's angle [deg] and offsets [px] at the fitted state.

    Per image, the unknowns that only it has (angle, row and column offset, scale, background)
    are linearised about the fit: ``J`` their derivatives (central differences of the model),
    ``r`` the residual. Their covariance is the sandwich ``A^-1 B A^-1`` with ``A = J^T J`` and
    ``B = J^T C J``, the residual's covariance ``C`` taken from its own periodogram (so that
    correlated noise and the spatially smooth misfit of an imperfect image model count as what
    they are): ``B_ab = Re sum_f J_a,f conj(J_b,f) |r_f|^2 / N^2``. That spectrum is the field's
    average, but counting noise is not stationary: its variance follows the counts, largest on
    the atoms, where ``J`` is too. So ``B`` is also taken locally: ``g = J r`` pixel by pixel,
    correlated with itself over its neighbours, weighed by :data:`LOCAL_WEIGHTS` (the pixel
    alone would give the pixel-wise ``sum_p J_a J_b r_p^2``, heteroscedastic and uncorrelated:
    a third of the variance after linear interpolation), and each standard error is the larger
    of the two (Poisson series of a Pt particle at 8 counts per pixel: the spread of the angles
    over noise draws is 0.036 deg, the stationary estimate 0.014, the pixel-wise one 0.032).
    The atoms, shared by all images, are held: the spread over noise realisations is somewhat
    larger.
    """
    rows, cols = data.shape[1:]
    base = model()
    resid = base - data
    r_hat = torch.fft.rfft2(resid).abs() ** 2
    w = _hermitian_weights(cols, torch, data.device)
    npx = float(rows * cols)
    step = torch.full((n,), h_deg, device=data.device)
    jac = [(model(extra_deg=step) - model(extra_deg=-step)) / (2 * h_deg)]
    for k in range(2):
        e = torch.zeros((n, 2), device=data.device)
        e[:, k] = h_px
        jac.append((model(extra_off=e) - model(extra_off=-e)) / (2 * h_px))
    bias = base.mean(dim=(1, 2), keepdim=True)  # scale and background: nuisances of the image
    jac += [base - bias, torch.ones_like(base)]
    jm = torch.stack(jac, dim=1).double()  # (n, 5, rows, cols)
    a = torch.einsum("nipq,njpq->nij", jm, jm)
    jf = torch.fft.rfft2(jm)
    weight = (r_hat.double() * w.double()).to(jf.dtype)
    b = torch.einsum("nipq,njpq,npq->nij", jf, jf.conj(), weight).real
    b = b / npx**2
    b_loc = _local_b(jm, resid, torch)
    ainv = torch.linalg.pinv(a)
    var = torch.maximum(
        torch.diagonal(ainv @ b @ ainv, dim1=1, dim2=2),
        torch.diagonal(ainv @ b_loc @ ainv, dim1=1, dim2=2),
    )
    sd = torch.sqrt(var.clamp_min(0)).cpu().numpy()
    return sd[:, 0].astype(np.float64), sd[:, 1:3].astype(np.float64)
