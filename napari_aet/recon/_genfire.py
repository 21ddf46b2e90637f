"""GENFIRE: generalized Fourier iterative reconstruction, in torch (CUDA or CPU)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft
import torch

from ..core.device import resolve_device
from ..core.memory import available_memory_bytes, check_memory, format_bytes
from ..core.progress import ProgressCallback, check_cancel, report
from ._geometry import projection_axes
from ._gridding import GriddedData, grid_dft, grid_fft
from ._support import projection_masks, visual_hull_support


@dataclass
class GenfireResult:
    """A GENFIRE reconstruction.

    Attributes
    ----------
    volume : ndarray of float32, shape (cols, rows, cols)
        Tomogram ``(z, y, x)``; voxel size = pixel size of the projections.
    errors : ndarray of shape (iterations,)
        Fourier error ``sum|F_meas - F_calc| / sum|F_meas|`` on the enforced grid points, per
        iteration (before the Fourier constraint is applied).
    rfree : ndarray of shape (iterations,)
        The same on the held-out R-free points (NaN when ``rfree_fraction`` is 0).
    support : ndarray of bool, shape like ``volume``
    settings : dict
    timings_s : dict
        ``gridding``, ``per_iteration`` (median after the first), ``mean_iteration`` and
        ``total`` [seconds].
    """

    volume: np.ndarray
    errors: np.ndarray
    rfree: np.ndarray
    support: np.ndarray
    settings: dict = field(default_factory=dict)
    timings_s: dict = field(default_factory=dict)


def check_tomogram(volume, source) -> None:
    """Raise a ``ValueError`` naming ``source`` when the tomogram has no voxel above zero:
    nothing downstream can use it (the images hold no positive signal)."""
    if not np.any(np.asarray(volume) > 0):
        raise ValueError(
            f"GENFIRE gave an empty tomogram from {source} (no voxel above 0): the images hold "
            "no positive signal; check the background subtraction and the alignment"
        )


def estimate_genfire_memory(
    n_images: int,
    rows: int,
    cols: int,
    *,
    oversampling: float,
    interpolation: str = "fft",
) -> int:
    """Peak bytes of :func:`genfire` (grid, transforms, measured values, volume)."""
    nz, ny, nx = (
        _padded(cols, oversampling),
        _padded(rows, oversampling),
        _padded(cols, oversampling),
    )
    half = nz * ny * (nx // 2 + 1) * 8  # complex64 half spectrum
    # forward pass: the kept padded lines (cols, rows, Nx) and the x pass (cols, rows, Nxh),
    # counted as (cols, Ny, Nxh) and (cols, rows, Nxh); the inverse's crops are smaller
    inter = cols * ny * (nx // 2 + 1) * 8 + cols * rows * (nx // 2 + 1) * 8
    vol = cols * rows * cols * 4 * 4  # volume, support, temporaries
    # gridding candidates: FFT: 8 neighbours of every padded sample; DFT: a slab per image
    if interpolation == "fft":
        samples = n_images * ny * nx * 8
    else:
        samples = n_images * ny * nx * 2
    measured = min(samples, nz * ny * (nx // 2 + 1)) * (8 + 8 + 4 + 8)
    gridding_tmp = ny * nx * 8 * (8 + 8 + 8 + 16)
    return int(2.2 * half + inter + vol + measured + gridding_tmp)


def _padded(n: int, oversampling: float) -> int:
    return int(math.ceil(n * oversampling / 2.0) * 2)


class _PrunedFFT:
    """rfftn of a small cube zero-padded to the big grid, and its inverse cropped to the cube.

    The object occupies indices ``[0, n)`` of each padded axis; the padding is implicit.

    On the GPU, torch (cuFFT): one multi-dimensional forward call with ``s=``, and an inverse
    that stops transforming along x for rows outside the cube. On CPU, ``scipy.fft``
    (pocketfft; torch's strided 1D passes are slower there) one axis at a time, so that both
    directions skip the padding's lines (forward: x only for the cube's lines, y only for the
    cube's z; inverse: crop after each pass), with the spectrum in one buffer that every
    :meth:`forward` writes and :meth:`inverse` transforms in place: a fresh half-spectrum per
    iteration (0.5 GB at 256^3 with oversampling 2) costs about as much in page faults as a
    transform pass; for the same reason the cube's lines are padded in a kept buffer and the
    y pass runs in place in the spectrum. The result is the same to float32 rounding.
    """

    def __init__(self, small: tuple[int, int, int], big: tuple[int, int, int]):
        self.small = small
        self.big = big
        self._spec: np.ndarray | None = None  # the CPU path's half-spectrum buffer
        self._lines: np.ndarray | None = None  # and its zero-padded copy of the cube
        self._workers = max(1, torch.get_num_threads())

    def forward(self, vol: torch.Tensor) -> torch.Tensor:
        """The padded cube's half spectrum (on CPU in the shared buffer, valid until the next
        call of either method)."""
        if vol.device.type != "cpu":
            # one multi-dimensional call with implicit padding measured fastest on the GPU
            # (cuFFT) against three 1D passes
            return torch.fft.rfftn(vol, s=self.big)
        nz, ny, nx = self.big
        sz, sy, sx = self.small
        w = self._workers
        if self._spec is None:
            self._spec = np.empty((nz, ny, nx // 2 + 1), np.complex64)
            self._lines = np.zeros((sz, sy, nx), np.float32)  # the cube's lines, padded in x
        spec = self._spec
        # padded buffers kept from call to call: scipy's own padding (``n=``) copied into a
        # fresh array on every call, whose page faults made a pass 0.5-3.9 s instead of 0.5
        # while other work loaded the machine (alone the two take the same time)
        self._lines[:, :, :sx] = vol.numpy()
        spec[:sz, :sy] = sfft.rfft(self._lines, axis=2, workers=w)  # the cube's lines only
        spec[:sz, sy:] = 0
        a = sfft.fft(spec[:sz], axis=1, workers=w, overwrite_x=True)  # the cube's z only
        if not np.shares_memory(a, spec):  # pocketfft worked in place, as it does today
            spec[:sz] = a
        spec[sz:] = 0
        return torch.from_numpy(sfft.fft(spec, axis=0, workers=w, overwrite_x=True))

    def inverse(self, spec: torch.Tensor) -> torch.Tensor:
        """The cube of the inverse transform of ``spec`` (which this may overwrite)."""
        sz, sy, sx = self.small
        nx = self.big[2]
        if spec.device.type != "cpu":
            a = torch.fft.ifftn(spec, dim=(0, 1))[:sz, :sy]
            return torch.fft.irfft(a, n=nx, dim=2)[:, :, :sx]
        w = self._workers
        a = sfft.ifft(spec.numpy(), axis=0, workers=w, overwrite_x=True)[:sz]
        a = sfft.ifft(a, axis=1, workers=w, overwrite_x=True)[:, :sy]
        out = sfft.irfft(a, n=nx, axis=2, workers=w)[:, :, :sx]
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


def genfire(
    projections: np.ndarray,
    angles_deg=None,
    *,
    euler_deg=None,
    iterations: int = 100,
    oversampling: float = 2.0,
    interpolation: str = "fft",
    interpolation_radius: float | None = None,
    support="auto",
    support_margin_px: float = 4.0,
    positivity: bool = True,
    rfree_fraction: float = 0.05,
    device: str | torch.device = "auto",
    seed: int | None = 0,
    progress: ProgressCallback | None = None,
    cancel=None,
) -> GenfireResult:
    """Reconstruct a tomogram from a tilt series with GENFIRE (Pryor et al. 2017).

    The projections are gridded onto an oversampled 3D Fourier grid, then iterations alternate
    the real-space constraints (zero outside the support and the unpadded cube, optional
    positivity) with the Fourier constraint (measured grid points set to their gridded values),
    monitored by the error on the enforced points and R-free on held-out points.

    Parameters
    ----------
    projections : ndarray of shape (n_images, rows, cols)
        Aligned tilt series, rotation centre at pixel ``(rows // 2, cols // 2)``.
    angles_deg : array-like of shape (n_images,), optional
        Single-axis tilt angles [degrees] (see docs/conventions.md for the sign).
    euler_deg : array-like of shape (n_images, 3), optional
        ``(phi, theta, psi)`` [degrees] per image for general geometry, instead of
        ``angles_deg``.
    iterations : int
        Number of iterations (the study: 1,000 final, 100 for training data).
    oversampling : float
        Ratio of the padded grid to the image size (the study: 5 final, 2 training).
    interpolation : {"fft", "dft"}
        Gridding method: from the FFT of the padded projections, or exact DFT values at the
        grid points' in-plane coordinates (type-2 NUFFT).
    interpolation_radius : float, optional
        Largest distance [grid units] from a measurement to a grid point that takes its value;
        default 0.3 for ``"fft"`` and 0.1 for ``"dft"`` (the study's settings).
    support : "auto", "box", or ndarray of bool with the volume's shape
        ``"auto"``: visual hull of the thresholded projections widened by
        ``support_margin_px`` (the whole cube, with ``settings["support_note"]`` saying so,
        when the images' foregrounds share almost no voxel: misaligned or very noisy images
        would otherwise reconstruct to nothing); ``"box"``: the whole unpadded cube; or a
        given mask.
    positivity : bool
        Clip negative densities to zero each iteration.
    rfree_fraction : float
        Fraction of measured grid points held out to compute R-free (0 to disable).
    device : {"auto", "cpu", "cuda"}
        Where to compute; ``"auto"`` uses CUDA when torch sees a GPU.
    seed : int, optional
        Seed for the R-free selection.
    progress, cancel
        Progress callback ``(done, total, message)`` and cancel flag (checked every
        iteration).

    Returns
    -------
    GenfireResult

    Raises
    ------
    MemoryError
        Before allocating, if the settings need more memory than the device has; the message
        names the largest oversampling that fits.

    References
    ----------
    A. Pryor et al., GENFIRE: A generalized Fourier iterative reconstruction algorithm for
    high-resolution 3D imaging, Sci. Rep. 7, 10409 (2017). :doi:`10.1038/s41598-017-09847-1`
    """
    t_start = time.perf_counter()
    proj = np.asarray(projections)
    if proj.ndim != 3:
        raise ValueError(
            f"projections must be a stack (n_images, rows, cols); got shape {proj.shape}"
        )
    n_img, rows, cols = proj.shape
    row_dirs, col_dirs, beam_dirs = projection_axes(angles_deg, euler_deg=euler_deg)
    if len(row_dirs) != n_img:
        raise ValueError(f"{len(row_dirs)} angles for {n_img} images; give exactly one per image")
    if interpolation not in ("fft", "dft"):
        raise ValueError("interpolation must be 'fft' or 'dft'")
    if oversampling < 1:
        raise ValueError("oversampling must be >= 1 (the padded grid is at least the image)")
    if iterations < 0:
        raise ValueError("iterations must be >= 0")
    radius = interpolation_radius
    if radius is None:
        radius = 0.3 if interpolation == "fft" else 0.1
    if not 0 < radius <= 1.0:
        raise ValueError("interpolation_radius must be in (0, 1] grid units")
    dev = resolve_device(device)

    need = estimate_genfire_memory(
        n_img, rows, cols, oversampling=oversampling, interpolation=interpolation
    )
    _check_device_memory(need, dev, n_img, rows, cols, oversampling, interpolation)
    if not np.all(np.isfinite(proj)):
        raise ValueError(
            "projections contain NaN or infinite values; read the series with "
            "nan_policy='fill' or clean it first"
        )

    small = (cols, rows, cols)
    big = (_padded(cols, oversampling), _padded(rows, oversampling), _padded(cols, oversampling))
    ptorch = torch.from_numpy(np.array(proj, dtype=np.float32)).to(dev)

    t0 = time.perf_counter()
    if interpolation == "fft":
        grid = grid_fft(
            ptorch, row_dirs, col_dirs, big, radius=radius, progress=progress, cancel=cancel
        )
    else:
        grid = grid_dft(
            ptorch,
            row_dirs,
            col_dirs,
            beam_dirs,
            big,
            radius=radius,
            progress=progress,
            cancel=cancel,
        )
    meas = _to_padded_convention(grid, small)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t_grid = time.perf_counter() - t0

    # support
    support_note = ""
    if isinstance(support, str):
        if support == "auto":
            masks = projection_masks(proj, margin_px=support_margin_px)
            sup = visual_hull_support(proj, row_dirs, col_dirs, small, masks=masks, device=dev)
            # a particle whose shadow covers A pixels fills far more than A / 10 voxels; a
            # hull smaller than that is the foregrounds disagreeing, not the particle
            smallest = int(masks.sum((1, 2)).min())
            n_sup = int(sup.sum())
            if n_sup < 0.1 * smallest:
                support_note = (
                    f"the images' foregrounds share {n_sup} voxels (the smallest covers "
                    f"{smallest} pixels): misaligned or very noisy images; the whole box was "
                    "the support"
                )
                sup = torch.ones(small, dtype=torch.bool, device=dev)
        elif support == "box":
            sup = torch.ones(small, dtype=torch.bool, device=dev)
        else:
            raise ValueError("support must be 'auto', 'box' or a boolean array")
    else:
        sup_np = np.asarray(support, dtype=bool)
        if sup_np.shape != small:
            raise ValueError(
                f"support mask has shape {sup_np.shape}; it must match the volume {small} "
                "(z, y, x) = (cols, rows, cols)"
            )
        sup = torch.as_tensor(sup_np, device=dev)

    # R-free split
    gen = torch.Generator(device="cpu")
    gen.manual_seed(0 if seed is None else int(seed))
    m_total = len(meas)
    n_free = int(round(rfree_fraction * m_total)) if rfree_fraction > 0 else 0
    perm = torch.randperm(m_total, generator=gen).to(dev)
    free_sel = perm[:n_free]
    work_sel = perm[n_free:]
    idx_w, val_w = _unravel(grid.index[work_sel], grid.half_shape), meas[work_sel]
    idx_f, val_f = _unravel(grid.index[free_sel], grid.half_shape), meas[free_sel]
    norm_w = val_w.abs().sum().clamp(min=1e-30)
    norm_f = val_f.abs().sum().clamp(min=1e-30) if n_free else None

    fft = _PrunedFFT(small, big)
    rho = torch.zeros(small, dtype=torch.float32, device=dev)
    errors = np.full(iterations, np.nan)
    rfree = np.full(iterations, np.nan)
    t_it = time.perf_counter()
    it_times = []
    for it in range(iterations):
        t_one = time.perf_counter()
        check_cancel(cancel, "the GENFIRE reconstruction")
        spec = fft.forward(rho)
        calc_w = spec[idx_w]
        err = ((calc_w - val_w).abs().sum() / norm_w).item() if it else 1.0
        errors[it] = err
        if n_free:
            rfree[it] = ((spec[idx_f] - val_f).abs().sum() / norm_f).item() if it else 1.0
        spec[idx_w] = val_w
        rho = fft.inverse(spec)
        del spec, calc_w
        rho.mul_(sup)
        if positivity:
            rho.clamp_(min=0)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        it_times.append(time.perf_counter() - t_one)
        report(
            progress,
            it + 1,
            iterations,
            f"iteration {it + 1}: error {err:.4f}"
            + (f", R-free {rfree[it]:.4f}" if n_free else ""),
        )
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t_iter = (time.perf_counter() - t_it) / max(iterations, 1)
    volume = rho.detach().cpu().numpy().astype(np.float32)
    settings = {
        "stage": "recon",
        "method": "GENFIRE",
        "iterations": int(iterations),
        "oversampling": float(oversampling),
        "interpolation": interpolation,
        "interpolation_radius": float(radius),
        "support": support if isinstance(support, str) else "given mask",
        "support_margin_px": float(support_margin_px),
        **({"support_note": support_note} if support_note else {}),
        "positivity": bool(positivity),
        "rfree_fraction": float(rfree_fraction),
        "device": str(dev),
        "grid_shape": list(big),
        "n_measured_grid_points": int(m_total),
        "geometry": "euler" if euler_deg is not None else "single-axis",
        "torch": torch.__version__,
    }
    timings = {
        "gridding": t_grid,
        "per_iteration": float(np.median(it_times[1:])) if len(it_times) > 1 else t_iter,
        "mean_iteration": t_iter,
        "total": time.perf_counter() - t_start,
    }
    return GenfireResult(volume, errors, rfree, sup.cpu().numpy(), settings, timings)


def _unravel(flat: torch.Tensor, shape) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _, ny, nxh = shape
    return (flat // (ny * nxh), (flat // nxh) % ny, flat % nxh)


def _to_padded_convention(grid: GriddedData, small: tuple[int, int, int]) -> torch.Tensor:
    """Centred values -> values for a cube stored at indices [0, n): multiply by
    exp(-2 pi i k . c / N) with c the cube centre (n // 2 per axis)."""
    k = grid.signed_frequencies().to(torch.float64)
    c = torch.tensor([s // 2 for s in small], dtype=torch.float64, device=k.device)
    n = torch.tensor(grid.grid_shape, dtype=torch.float64, device=k.device)
    ph = torch.exp(-2j * math.pi * (k * (c / n)).sum(dim=1))
    return (grid.values.to(torch.complex128) * ph).to(torch.complex64)


def _check_device_memory(need, dev, n_img, rows, cols, oversampling, interpolation) -> None:
    def fits(os_):
        return estimate_genfire_memory(
            n_img, rows, cols, oversampling=os_, interpolation=interpolation
        )

    def largest(avail):
        best = None
        for os_ in np.arange(1.0, oversampling + 1e-9, 0.25):
            if fits(os_) <= avail:
                best = float(os_)
        return best

    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        avail = 0.9 * free
        if need > avail:
            best = largest(avail)
            raise MemoryError(
                f"GENFIRE with oversampling {oversampling:g} on {rows}x{cols} images needs about "
                f"{format_bytes(need)} of GPU memory, {format_bytes(free)} is free. "
                + (
                    f"The largest oversampling that fits is {best:g}."
                    if best
                    else "Crop the images to the particle (align --crop auto, or a smaller "
                    "--crop PX) or bin them to make it fit."
                )
            )
    else:
        avail = 0.8 * available_memory_bytes()
        best = largest(avail) if need > avail else None
        check_memory(
            need,
            f"GENFIRE with oversampling {oversampling:g} on {n_img} images of {rows}x{cols}",
            hint=(
                f"The largest oversampling that fits is {best:g}."
                if best
                else "Crop the images to the particle (align --crop auto, or a smaller "
                "--crop PX), bin them, or use a GPU."
            ),
        )
