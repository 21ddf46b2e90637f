"""Fourier gridding of projections onto the oversampled 3D grid (FFT and DFT interpolation).

The 3D grid is the half-spectrum of a real volume, ``(Nz, Ny, Nx // 2 + 1)``, as produced by
``torch.fft.rfftn``. Gridded values are returned as a compact list of flat indices into that
grid with their complex values, in the *centred* convention (the transform of the object with
its rotation centre at the origin).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.progress import check_cancel, report


@dataclass
class GriddedData:
    """Measured Fourier values on the 3D grid.

    Attributes
    ----------
    index : torch.Tensor of int64, shape (M,)
        Flat indices into the ``(Nz, Ny, Nx // 2 + 1)`` half-grid.
    values : torch.Tensor of complex64, shape (M,)
        Distance-weighted mean of the measured values at each grid point (centred convention).
    distance : torch.Tensor of float32, shape (M,)
        Distance [grid units] from each grid point to its nearest contributing measurement.
    grid_shape : (int, int, int)
        ``(Nz, Ny, Nx)`` of the full real-space grid.
    """

    index: torch.Tensor
    values: torch.Tensor
    distance: torch.Tensor
    grid_shape: tuple[int, int, int]

    @property
    def half_shape(self) -> tuple[int, int, int]:
        nz, ny, nx = self.grid_shape
        return (nz, ny, nx // 2 + 1)

    def signed_frequencies(self) -> torch.Tensor:
        """``(M, 3)`` signed integer frequency of each gridded point (z, y, x)."""
        nz, ny, nx = self.grid_shape
        nxh = nx // 2 + 1
        iz = self.index // (ny * nxh)
        iy = (self.index // nxh) % ny
        ix = self.index % nxh
        kz = torch.where(iz >= (nz + 1) // 2, iz - nz, iz)
        ky = torch.where(iy >= (ny + 1) // 2, iy - ny, iy)
        return torch.stack([kz, ky, ix], dim=1)


def _flat_index(kz, ky, kx, grid_shape):
    nz, ny, nx = grid_shape
    nxh = nx // 2 + 1
    return (kz % nz) * (ny * nxh) + (ky % ny) * nxh + kx


def _to_half_space(kz, ky, kx, vals):
    """Map points with kx < 0 to their Friedel mates (-k, conj)."""
    neg = kx < 0
    kz = torch.where(neg, -kz, kz)
    ky = torch.where(neg, -ky, ky)
    kx = torch.where(neg, -kx, kx)
    vals = torch.where(neg, vals.conj(), vals)
    return kz, ky, kx, vals


def _in_grid(kz, ky, kx, grid_shape):
    nz, ny, nx = grid_shape
    return (
        (kz >= -(nz // 2))
        & (kz <= (nz - 1) // 2)
        & (ky >= -(ny // 2))
        & (ky <= (ny - 1) // 2)
        & (kx >= -(nx // 2))
        & (kx <= nx // 2)
    )


def _combine(parts, grid_shape, device, resolution_circle: bool = True) -> GriddedData:
    """Distance-weighted mean per grid point: ``sum(w v) / sum(w)`` with ``w = 1 / (d^2 + 1e-5)``
    (inverse squared distance, as in the original GENFIRE code); grid points beyond the
    Nyquist sphere (0.5 cycles per pixel) are dropped when ``resolution_circle``."""
    if not parts:
        raise ValueError("no measured Fourier values fell on the grid; check the angles")
    idx = torch.cat([p[0] for p in parts])
    val = torch.cat([p[1] for p in parts])
    dist = torch.cat([p[2] for p in parts])
    if resolution_circle:
        nz, ny, nx = grid_shape
        g = GriddedData(idx, val, dist, grid_shape).signed_frequencies().to(torch.float64)
        n = torch.tensor([nz, ny, nx], dtype=torch.float64, device=device)
        keep = ((g / n) ** 2).sum(dim=1) <= 0.25
        idx, val, dist = idx[keep], val[keep], dist[keep]
    uniq, inv = torch.unique(idx, return_inverse=True)
    w = 1.0 / (dist.to(torch.float64) ** 2 + 1e-5)
    # real and imaginary parts accumulated separately in float64 (portable across devices)
    re = torch.zeros(len(uniq), dtype=torch.float64, device=device)
    im = torch.zeros(len(uniq), dtype=torch.float64, device=device)
    den = torch.zeros(len(uniq), dtype=torch.float64, device=device)
    re.index_add_(0, inv, val.real.to(torch.float64) * w)
    im.index_add_(0, inv, val.imag.to(torch.float64) * w)
    den.index_add_(0, inv, w)
    num = torch.complex(re, im)
    dmin = torch.full((len(uniq),), float("inf"), device=device)
    dmin = dmin.scatter_reduce(0, inv, dist.to(torch.float32), reduce="amin")
    return GriddedData(uniq, (num / den).to(torch.complex64), dmin, grid_shape)


def grid_fft(
    projections: torch.Tensor,
    row_dirs: np.ndarray,
    col_dirs: np.ndarray,
    grid_shape: tuple[int, int, int],
    *,
    radius: float = 0.3,
    progress=None,
    cancel=None,
) -> GriddedData:
    """FFT interpolation: each padded projection's 2D FFT samples are placed on the 3D central
    slice of their orientation, and every grid point within ``radius`` [grid units] of a sample
    takes the inverse-distance-weighted mean of those samples (Pryor et al. 2017).
    """

    device = projections.device
    n_proj, rows, cols = projections.shape
    nz, ny, nx = grid_shape
    # Padded 2D transform with the image centre (rows//2, cols//2) at the origin.
    m = torch.fft.fftfreq(ny, d=1.0 / ny, device=device)
    col_f = torch.fft.fftfreq(nx, d=1.0 / nx, device=device)
    phase = torch.exp(
        2j * np.pi * (m[:, None] * (rows // 2) / ny + col_f[None, :] * (cols // 2) / nx)
    ).to(torch.complex64)
    n_scale = torch.tensor([nz, ny, nx], dtype=torch.float64, device=device)
    offsets = torch.tensor(
        [[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], device=device
    )
    parts = []
    for i in range(n_proj):
        check_cancel(cancel, "gridding")
        f2 = torch.fft.fft2(projections[i].to(torch.float32), s=(ny, nx)) * phase
        rd = torch.as_tensor(row_dirs[i], dtype=torch.float64, device=device)
        cd = torch.as_tensor(col_dirs[i], dtype=torch.float64, device=device)
        f_row = (m / ny)[:, None, None]
        f_col = (col_f / nx)[None, :, None]
        g = (f_row * rd + f_col * cd) * n_scale  # (ny, nx, 3) fractional grid coordinates
        g = g.reshape(-1, 3)
        v = f2.reshape(-1)
        base = torch.floor(g).long()
        for off in offsets:
            k = base + off
            d = torch.linalg.norm(k.to(torch.float64) - g, dim=1)
            keep = (d <= radius) & _in_grid(k[:, 0], k[:, 1], k[:, 2], grid_shape)
            if not keep.any():
                continue
            kz, ky, kx, vals = _to_half_space(k[keep, 0], k[keep, 1], k[keep, 2], v[keep])
            parts.append((_flat_index(kz, ky, kx, grid_shape), vals, d[keep].to(torch.float32)))
        report(progress, i + 1, n_proj, f"gridding projection {i + 1}/{n_proj}")
    return _combine(parts, grid_shape, device)


def projection_dft(projection: np.ndarray, f_row: np.ndarray, f_col: np.ndarray) -> np.ndarray:
    """Exact 2D DFT of one image at frequencies ``(f_row, f_col)`` [cycles per pixel].

    ``sum_{r,c} p[r, c] exp(-2 pi i (f_row (r - rows//2) + f_col (c - cols//2)))``, by a type-2
    non-uniform FFT (FINUFFT, tolerance 1e-6). See :func:`dense_projection_dft` for the
    reference.
    """
    import finufft

    p = np.ascontiguousarray(projection, dtype=np.complex128)
    x = (2 * np.pi * np.asarray(f_row, np.float64)).ravel()
    y = (2 * np.pi * np.asarray(f_col, np.float64)).ravel()
    if x.size == 0:
        return np.zeros(0, np.complex64)
    out = finufft.nufft2d2(x, y, p, isign=-1, eps=1e-6)
    return out.astype(np.complex64)


def dense_projection_dft(projection: np.ndarray, f_row, f_col) -> np.ndarray:
    """Reference for :func:`projection_dft` by direct summation (slow; tests only)."""
    p = np.asarray(projection, np.float64)
    rows, cols = p.shape
    r = np.arange(rows) - rows // 2
    c = np.arange(cols) - cols // 2
    er = np.exp(-2j * np.pi * np.outer(np.ravel(f_row), r))
    ec = np.exp(-2j * np.pi * np.outer(np.ravel(f_col), c))
    return np.einsum("jr,rc,jc->j", er, p, ec)


def grid_dft(
    projections: torch.Tensor,
    row_dirs: np.ndarray,
    col_dirs: np.ndarray,
    beam_dirs: np.ndarray,
    grid_shape: tuple[int, int, int],
    *,
    radius: float = 0.1,
    progress=None,
    cancel=None,
) -> GriddedData:
    """DFT interpolation: every grid point within ``radius`` [grid units] of a projection's
    central plane takes the exact DFT of that projection at its in-plane coordinates; several
    contributions are averaged with inverse-distance weights (Pryor et al. 2017).
    """

    device = projections.device
    n_proj, rows, cols = projections.shape
    nz, ny, nx = grid_shape
    n_scale = np.array([nz, ny, nx], dtype=np.float64)
    lo = -(n_scale // 2)
    hi = (n_scale - 1) // 2
    hi[2] = nx // 2  # the half-space keeps the x Nyquist plane
    proj_np = projections.detach().cpu().numpy()
    parts = []
    for i in range(n_proj):
        check_cancel(cancel, "gridding")
        normal = beam_dirs[i] / n_scale  # plane normal in grid-index space
        normal = normal / np.linalg.norm(normal)
        a = int(np.argmax(np.abs(normal)))
        others = [ax for ax in range(3) if ax != a]
        u = np.arange(lo[others[0]], hi[others[0]] + 1)
        w = np.arange(lo[others[1]], hi[others[1]] + 1)
        uu, ww = np.meshgrid(u, w, indexing="ij")
        uu = uu.ravel()
        ww = ww.ravel()
        ga = -(uu * normal[others[0]] + ww * normal[others[1]]) / normal[a]
        found = []
        for off in (-1, 0, 1):
            t = np.round(ga) + off
            d = np.abs((t - ga) * normal[a])
            keep = (d <= radius) & (t >= lo[a]) & (t <= hi[a])
            if not keep.any():
                continue
            g = np.empty((int(keep.sum()), 3))
            g[:, a] = t[keep]
            g[:, others[0]] = uu[keep]
            g[:, others[1]] = ww[keep]
            found.append((g, d[keep]))
        if not found:
            continue
        g = np.concatenate([f[0] for f in found])
        d = np.concatenate([f[1] for f in found])
        half = g[:, 2] >= 0  # Friedel mates of the rest are near the plane too
        g, d = g[half], d[half]
        f3 = g / n_scale
        f_row = f3 @ row_dirs[i]
        f_col = f3 @ col_dirs[i]
        inside = (np.abs(f_row) <= 0.5) & (np.abs(f_col) <= 0.5)
        g, d, f_row, f_col = g[inside], d[inside], f_row[inside], f_col[inside]
        vals = projection_dft(proj_np[i], f_row, f_col)
        k = torch.as_tensor(g, dtype=torch.int64, device=device)
        parts.append(
            (
                _flat_index(k[:, 0], k[:, 1], k[:, 2], grid_shape),
                torch.as_tensor(vals, device=device),
                torch.as_tensor(d, dtype=torch.float32, device=device),
            )
        )
        report(progress, i + 1, n_proj, f"gridding projection {i + 1}/{n_proj}")
    return _combine(parts, grid_shape, device)
