"""Tilt series from an independent forward model, for benchmarks that do not flatter the
project: abTEM's projected potentials (Lobato-van Dyck parametrisation, not the Kirkland table
the project's renderer and image models use), imaged incoherently with abTEM's aberrated probe
(a real probe intensity with its tails, not a Gaussian), sampled at the scan positions, scaled
to realistic ADF counts and Poisson-sampled, with acquisition faults (image shifts, tilt-angle
errors, a rotated tilt axis, a background).

Nothing here calls the project's own renderer (``forward.render_projection``) or potentials;
only the frame convention (``forward.rotation_center_A``) is shared, so that the truth and the
reconstruction live in the same coordinates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..core.memory import check_memory
from ..core.progress import check_cancel, report
from ..forward import rotation_center_A


@dataclass(frozen=True)
class IndependentImaging:
    """Beam, counts and acquisition faults of :func:`independent_tilt_series`.

    Attributes
    ----------
    energy_keV, semiangle_mrad, c3_A, c5_A, defocus_A
        The probe (the study's: 300 keV, 25.1 mrad, C3 -775 nm, C5 378 um).
    sampling_A : float
        Fine grid of the potential and the probe [A] (the images are sampled from it at the
        scan positions).
    peak_counts : float
        Mean counts at the brightest atomic column (ADF images of the study's dose have 30-60).
    mean_counts : float, optional
        Instead of ``peak_counts``: the mean counts per pixel of the whole series, background
        included (how low-dose data sets are often described, e.g. 1-5 counts per pixel).
    background_counts : float
        Mean counts of a uniform background (detector offset, amorphous support).
    shift_px : float
        Largest random image shift [pixels] (uniform in +-shift_px on each axis).
    angle_error_deg : float
        Standard deviation of the tilt-angle errors [degrees].
    tilt_axis_deg : float
        In-plane rotation of the tilt axis [degrees] (0: vertical).
    """

    energy_keV: float = 300.0
    semiangle_mrad: float = 25.1
    c3_A: float = -775e1
    c5_A: float = 378e4
    defocus_A: float = 0.0
    sampling_A: float = 0.05
    peak_counts: float = 50.0
    mean_counts: float | None = None
    background_counts: float = 1.0
    shift_px: float = 0.0
    angle_error_deg: float = 0.0
    tilt_axis_deg: float = 0.0


@dataclass
class IndependentSeries:
    """An independently simulated tilt series and what it was made from."""

    data: np.ndarray  # (n, rows, cols) counts
    angles_deg: np.ndarray  # nominal angles (what an experiment records)
    true_angles_deg: np.ndarray
    shifts_px: np.ndarray  # (n, 2) true image shifts (row, col)
    pixel_size_A: float
    settings: dict = field(default_factory=dict)


def _probe_intensity(s: IndependentImaging, gpts: tuple[int, int], sampling: float) -> np.ndarray:
    """The probe's intensity on the fine grid, centred at pixel (0, 0) (for FFT convolution),
    normalised to unit sum."""
    import abtem

    probe = abtem.Probe(
        energy=s.energy_keV * 1e3,
        semiangle_cutoff=s.semiangle_mrad,
        Cs=s.c3_A,
        C50=s.c5_A,
        defocus=s.defocus_A,
        gpts=gpts,
        sampling=sampling,
    )
    wave = probe.build(scan=[(0.0, 0.0)], lazy=False)
    inten = np.abs(np.asarray(wave.array)) ** 2
    inten = inten.reshape(gpts)
    return inten / inten.sum()


def _projected_potential(
    elements, positions_A, extent_A: tuple[float, float], gpts: tuple[int, int]
) -> np.ndarray:
    """abTEM's projected potential (Lobato) of atoms at ``(row_A, col_A, depth_A)`` on a grid
    of ``gpts`` points over ``extent_A`` (given as points: from a sampling, abTEM rounds the
    extent's float quotient up, 385 points for 48 px of 0.4 A at 0.05 A)."""
    import abtem
    import ase

    depth = positions_A[:, 2]
    atoms = ase.Atoms(
        symbols=list(elements),
        positions=np.stack(
            [positions_A[:, 0], positions_A[:, 1], depth - depth.min() + 2.0], axis=1
        ),
        cell=(extent_A[0], extent_A[1], float(depth.max() - depth.min() + 4.0)),
        pbc=True,
    )
    pot = abtem.Potential(
        atoms,
        gpts=tuple(int(g) for g in gpts),
        projection="infinite",
        parametrization="lobato",
        slice_thickness=float(atoms.cell[2, 2]),
    )
    return np.asarray(pot.build().project().compute().array, dtype=np.float64)


def independent_tilt_series(
    positions_A,
    elements,
    angles_deg,
    *,
    pixel_size_A: float = 0.358,
    shape_px: tuple[int, int] = (256, 256),
    imaging: IndependentImaging | None = None,
    seed: int = 0,
    progress=None,
    cancel=None,
) -> IndependentSeries:
    """Simulate a tilt series with abTEM potentials and probe (see the module docstring).

    Parameters
    ----------
    positions_A : ndarray (n, 3)
        Atoms ``(z, y, x)`` [A] in the volume frame (rotation about ``y``, image rows along
        ``y``, as everywhere in the project).
    elements : str or sequence of str
        One symbol for all atoms, or one per atom.
    angles_deg : array-like
        Nominal tilt angles [degrees]; the images are made at these plus the angle errors.
    pixel_size_A, shape_px
        Scan sampling and size.
    imaging : IndependentImaging
        Probe, counts and faults.
    """
    try:
        import abtem
    except ImportError as err:
        raise ImportError("the independent simulator needs abTEM: pip install abtem") from err

    s = imaging or IndependentImaging()
    abtem.config.set({"device": "cpu", "diagnostics.progress_bar": False})
    pos = np.asarray(positions_A, np.float64).reshape(-1, 3)
    if isinstance(elements, str):
        elements = [elements] * len(pos)
    elements = np.asarray(elements)
    if len(elements) != len(pos):
        raise ValueError(f"{len(elements)} elements for {len(pos)} atoms")
    rows, cols = (int(v) for v in shape_px)
    k = max(1, int(round(pixel_size_A / s.sampling_A)))
    fine = pixel_size_A / k
    gpts = (rows * k, cols * k)
    check_memory(gpts[0] * gpts[1] * 8 * 6, "the independent simulator's fine grid")
    rng = np.random.default_rng(seed)
    nominal = np.asarray(angles_deg, np.float64)
    n = len(nominal)
    true_angles = nominal + (rng.normal(0.0, s.angle_error_deg, n) if s.angle_error_deg else 0)
    shifts = rng.uniform(-s.shift_px, s.shift_px, (n, 2)) if s.shift_px else np.zeros((n, 2))
    probe_ft = np.fft.rfft2(_probe_intensity(s, gpts, fine))
    center = rotation_center_A((rows, cols), pixel_size_A)
    d = pos - center
    a = np.deg2rad(s.tilt_axis_deg)
    extent = (gpts[0] * fine, gpts[1] * fine)
    clean = np.empty((n, rows, cols), np.float64)
    for i, th_deg in enumerate(true_angles):
        check_cancel(cancel, "the independent simulation")
        th = np.deg2rad(th_deg)
        row = d[:, 1]
        col = d[:, 2] * np.cos(th) + d[:, 0] * np.sin(th)
        depth = -d[:, 2] * np.sin(th) + d[:, 0] * np.cos(th)
        if s.tilt_axis_deg:
            row, col = np.cos(a) * row - np.sin(a) * col, np.sin(a) * row + np.cos(a) * col
        # image pixel (r, c) is at r * pixel_size on the fine grid (scan positions at the
        # fine grid's every k-th point)
        r_A = (row + rows // 2 * pixel_size_A) + shifts[i, 0] * pixel_size_A
        c_A = (col + cols // 2 * pixel_size_A) + shifts[i, 1] * pixel_size_A
        v = _projected_potential(elements, np.stack([r_A, c_A, depth], 1), extent, gpts)
        img = np.fft.irfft2(np.fft.rfft2(v) * probe_ft, s=gpts)
        clean[i] = img[::k, ::k]
        report(progress, i + 1, n, f"image {i + 1}/{n} at {th_deg:+.1f} deg")
    # counts: the brightest column of the series at peak_counts
    from scipy import ndimage

    if s.mean_counts is not None:  # the series' mean, background included
        signal = max(float(s.mean_counts) - s.background_counts, 0.0)
        mean = float(clean.mean())
        scale = signal / mean if mean > 0 else 1.0
    else:
        peak = float(np.max(ndimage.maximum_filter(clean, size=(1, 3, 3))))
        scale = s.peak_counts / peak if peak > 0 else 1.0
    counts = rng.poisson(np.clip(clean * scale, 0, None) + s.background_counts)
    return IndependentSeries(
        counts.astype(np.float32),
        nominal,
        np.asarray(true_angles, np.float64) * np.ones(n),
        shifts,
        float(pixel_size_A),
        {"imaging": asdict(s), "seed": seed, "fine_sampling_A": fine, "counts_scale": scale},
    )
