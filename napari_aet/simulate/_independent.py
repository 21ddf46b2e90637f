"""Tilt series from an independent forward model, for benchmarks that do not flatter the
project: abTEM's projected potentials (Lobato-van Dyck parametrisation, not the Kirkland table
the project's renderer and image models use), imaged incoherently with abTEM's aberrated probe
(a real probe intensity with its tails, not a Gaussian), sampled at the scan positions, scaled
to realistic ADF counts and Poisson-sampled, with acquisition faults (image shifts, tilt-angle
errors, a rotated tilt axis, a background).

``IndependentImaging(method="prism")`` images each tilt by abTEM's PRISM multislice instead
(2 A slices, the probe's aberrations, an annular detector of 40-200 mrad, optional frozen
phonons): channelling along zone axes and the non-linear growth of a column's signal with its
thickness are then in the data, as in a real ADF-STEM series. It is about a thousand times
slower than the incoherent model: small particles only on a CPU.

Nothing here calls the project's own renderer (``forward.render_projection``) or potentials;
only the frame convention (``forward.rotation_center_A``) is shared, so that the truth and the
reconstruction live in the same coordinates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..core.memory import check_memory
from ..core.progress import check_cancel, report
from ..forward import rotation_center_A
from ._multislice import MultisliceSettings, adf_image, ase_atoms


@dataclass(frozen=True)
class IndependentImaging:
    """Beam, counts and acquisition faults of :func:`independent_tilt_series`.

    Attributes
    ----------
    energy_keV, semiangle_mrad, c3_A, c5_A, defocus_A
        The probe (the study's: 300 keV, 25.1 mrad, C3 -775 nm, C5 378 um).
    defocus_spread_A : float
        Standard deviation of each image's defocus about ``defocus_A`` [A]: the focus found
        anew at each tilt (autofocus, or by hand) is off by a few nm, more than the probe's
        depth of field (about 3 nm at 300 keV and 25 mrad), so each image has its own blur.
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
    method : {"incoherent", "prism"}
        ``"incoherent"``: the projected potential convolved with the probe's intensity (fast);
        ``"prism"``: abTEM's PRISM multislice with an annular detector (channelling).
    contrast : {"adf", "potential"}
        How bright each element is in the ``"incoherent"`` model (a series of one element is
        the same either way). ``"adf"``: each atom's projected potential scaled so that its
        integral is in proportion to the atom's cross-section for scattering into the detector
        (:func:`adf_cross_section`, from the Lobato scattering factors): the incoherent
        Z-contrast of an annular dark-field image, about Z**1.8 (Pt 7.5 times as bright as
        Fe, 2.6 times Pd). ``"potential"``: the projected potential as it is, whose integral
        grows only as about Z**0.4 (Pt 1.6 times Fe, 1.5 times Pd): what a simulator that
        convolves the potential with the probe gives, a far harder test of telling species
        apart than real ADF data.
    detector_mrad : (float, float)
        Inner and outer detector semi-angles of the ``"prism"`` method (the study's 40, 200).
    slice_thickness_A : float
        Multislice slice thickness (the study's precision analysis: 2 A).
    phonon_configs : int
        Frozen-phonon configurations averaged by ``"prism"`` (0: static atoms).
    phonon_sigma_A : float
        Root-mean-square thermal displacement of the frozen phonons [A].
    prism_interpolation : int
        PRISM interpolation factor (the probe is cut to 1/f of the field of view).
    frames : int
        Scans per tilt (the study's: 3), each with ``1 / frames`` of the dose, recorded while
        the specimen drifts (``"incoherent"`` only): the series then carries the raw frames.
    drift_px : float
        Largest drift of the specimen over one frame period [pixels]; each tilt drifts
        steadily at a speed drawn uniformly up to it, in a random direction.
    frame_interval : float
        A frame period over one frame's scan time (1: frames scanned back to back). Rows are
        scanned top to bottom, each row left to right, so that the drift both moves the
        specimen between frames and distorts each frame.
    """

    energy_keV: float = 300.0
    semiangle_mrad: float = 25.1
    c3_A: float = -775e1
    c5_A: float = 378e4
    defocus_A: float = 0.0
    defocus_spread_A: float = 0.0
    sampling_A: float = 0.05
    peak_counts: float = 50.0
    mean_counts: float | None = None
    background_counts: float = 1.0
    shift_px: float = 0.0
    angle_error_deg: float = 0.0
    tilt_axis_deg: float = 0.0
    method: str = "incoherent"
    contrast: str = "adf"
    detector_mrad: tuple[float, float] = (40.0, 200.0)
    slice_thickness_A: float = 2.0
    phonon_configs: int = 0
    phonon_sigma_A: float = 0.08
    prism_interpolation: int = 4
    frames: int = 1
    drift_px: float = 0.0
    frame_interval: float = 1.0

    def __post_init__(self):
        if self.method not in ("incoherent", "prism"):
            raise ValueError(f"method must be 'incoherent' or 'prism', not {self.method!r}")
        if self.contrast not in ("adf", "potential"):
            raise ValueError(f"contrast must be 'adf' or 'potential', not {self.contrast!r}")
        inner, outer = self.detector_mrad
        if not 0 <= inner < outer:
            raise ValueError(
                f"detector_mrad must be (inner, outer) with inner < outer, not {self.detector_mrad}"
            )
        if self.frames < 1 or self.frame_interval < 1:
            raise ValueError("frames must be at least 1 and frame_interval at least 1")
        if self.frames > 1 and self.method != "incoherent":
            raise ValueError("frames with drift are simulated by the 'incoherent' method only")


@dataclass
class IndependentSeries:
    """An independently simulated tilt series and what it was made from."""

    data: np.ndarray  # (n, rows, cols) counts
    angles_deg: np.ndarray  # nominal angles (what an experiment records)
    true_angles_deg: np.ndarray
    shifts_px: np.ndarray  # (n, 2) true image shifts (row, col)
    pixel_size_A: float
    settings: dict = field(default_factory=dict)
    #: the noise-free detected signal before the counts' scaling, background and noise (for
    #: :func:`at_counts`: the same acquisition at other counts without simulating it again)
    signal: np.ndarray | None = field(default=None, repr=False)
    #: with ``IndependentImaging.frames > 1``: the raw frames ``(n, frames, rows, cols)``
    #: (``data`` is then their plain, unregistered sum) and each tilt's drift over one frame
    #: period ``(n, 2)`` [px, (row, col)]
    frames: np.ndarray | None = field(default=None, repr=False)
    frame_drift_px: np.ndarray | None = None


def poisson_counts(
    signal: np.ndarray,
    rng,
    *,
    peak_counts: float | None = None,
    mean_counts: float | None = None,
    background_counts: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Poisson counts of a noise-free image stack scaled to realistic ADF counts.

    The stack ``(n, rows, cols)`` is scaled so that its brightest column (the largest 3x3
    local maximum of any image) has ``peak_counts`` mean counts over the background, or so that
    the whole series has ``mean_counts`` per pixel with the background included; a uniform
    ``background_counts`` is added and every pixel drawn from a Poisson distribution.

    Returns
    -------
    counts : float32 ndarray, shape of ``signal``
    scale : float
        The factor applied to ``signal``.
    """
    if (peak_counts is None) == (mean_counts is None):
        raise ValueError("give exactly one of peak_counts and mean_counts")
    signal = np.asarray(signal, np.float64)
    scale = _counts_scale(signal, peak_counts, mean_counts, background_counts)
    counts = np.random.default_rng(rng).poisson(
        np.clip(signal * scale, 0, None) + background_counts
    )
    return counts.astype(np.float32), scale


def _counts_scale(signal, peak_counts, mean_counts, background_counts: float) -> float:
    """The factor that gives the stack ``signal`` ``(n, rows, cols)`` ``peak_counts`` at its
    brightest column (the largest 3x3 local maximum of any image), or, with ``mean_counts``,
    that mean per pixel with ``background_counts`` included."""
    from scipy import ndimage

    if mean_counts is not None:  # the series' mean, background included
        target = max(float(mean_counts) - background_counts, 0.0)
        mean = float(signal.mean())
        return target / mean if mean > 0 else 1.0
    peak = float(np.max(ndimage.maximum_filter(signal, size=(1, 3, 3))))
    return float(peak_counts) / peak if peak > 0 else 1.0


def _counts(signal: np.ndarray, s: IndependentImaging, rng) -> tuple[np.ndarray, float]:
    """Poisson counts of ``signal`` at ``s``'s counts and background, and the scale."""
    peak = None if s.mean_counts is not None else s.peak_counts
    return poisson_counts(
        signal,
        rng,
        peak_counts=peak,
        mean_counts=s.mean_counts,
        background_counts=s.background_counts,
    )


def at_counts(
    series: IndependentSeries,
    *,
    peak_counts: float | None = None,
    mean_counts: float | None = None,
    background_counts: float | None = None,
    seed: int = 0,
) -> IndependentSeries:
    """The same acquisition (atoms, angles, shifts, tilt axis, probe) at other counts: the
    noise-free signal of ``series`` scaled to ``peak_counts`` at the brightest column (or to
    ``mean_counts`` per pixel) over ``background_counts``, with new Poisson noise. A dose
    series costs one simulation (a multislice one takes minutes per image)."""
    if series.signal is None:
        raise ValueError("this series carries no noise-free signal: simulate it again")
    if (peak_counts is None) == (mean_counts is None):
        raise ValueError("give one of peak_counts or mean_counts")
    old = IndependentImaging(**series.settings["imaging"])
    s = replace(
        old,
        peak_counts=old.peak_counts if peak_counts is None else float(peak_counts),
        mean_counts=None if mean_counts is None else float(mean_counts),
        background_counts=(
            old.background_counts if background_counts is None else float(background_counts)
        ),
    )
    data, scale = _counts(series.signal, s, np.random.default_rng(seed))
    settings = {**series.settings, "imaging": asdict(s), "counts_scale": scale, "seed": seed}
    return replace(series, data=data, settings=settings)


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


def adf_cross_section(
    element: str, *, energy_keV: float = 300.0, detector_mrad=(40.0, 200.0)
) -> float:
    """An atom's cross-section for elastic scattering into an annular detector [A^2]:
    ``integral of |f(k)|^2 2 pi k dk`` over the detector's angles (``k = theta / lambda``), with
    abTEM's Lobato electron scattering factor ``f`` (the incoherent model of Z-contrast; the
    thermal diffuse scattering that real ADF signals also hold is left out)."""
    from abtem.parametrizations import LobatoParametrization

    e0 = energy_keV * 1e3  # relativistic electron wavelength [A]
    wavelength = 12.2643 / np.sqrt(e0 * (1.0 + 0.97845e-6 * e0))
    k = np.linspace(detector_mrad[0], detector_mrad[1], 2001) * 1e-3 / wavelength
    f = LobatoParametrization().scattering_factor(element)(k**2)
    return float(np.trapezoid(f**2 * 2.0 * np.pi * k, k))


def _element_weights(s: IndependentImaging, elements) -> dict | None:
    """Per element, the factor its projected potential is scaled by in the ``"adf"`` contrast
    (cross-section / integral of the potential, i.e. the scattering factor at 0, relative to
    the heaviest element's); None for one element or the ``"potential"`` contrast."""
    from abtem.parametrizations import LobatoParametrization

    present = sorted(set(np.asarray(elements).tolist()))
    if s.contrast != "adf" or len(present) < 2:
        return None
    lob = LobatoParametrization()
    w = {
        e: adf_cross_section(e, energy_keV=s.energy_keV, detector_mrad=s.detector_mrad)
        / float(lob.scattering_factor(e)(np.zeros(1))[0])
        for e in present
    }
    top = max(w.values())
    return {e: v / top for e, v in w.items()}


def _projected_potential(
    elements, positions_A, extent_A: tuple[float, float], gpts: tuple[int, int], weights=None
) -> np.ndarray:
    """abTEM's projected potential (Lobato) of atoms at ``(row_A, col_A, depth_A)`` on a grid
    of ``gpts`` points over ``extent_A`` (given as points: from a sampling, abTEM rounds the
    extent's float quotient up, 385 points for 48 px of 0.4 A at 0.05 A). ``weights``: per
    element, a factor each of its atoms' potential is scaled by (:func:`_element_weights`)."""
    import abtem

    if weights:
        elements = np.asarray(elements)
        parts = ((w, elements == e) for e, w in weights.items() if np.any(elements == e))
        return sum(
            w * _projected_potential(elements[sel], positions_A[sel], extent_A, gpts)
            for w, sel in parts
        )

    atoms = ase_atoms(elements, positions_A, extent_A)
    pot = abtem.Potential(
        atoms,
        gpts=tuple(int(g) for g in gpts),
        projection="infinite",
        parametrization="lobato",
        slice_thickness=float(atoms.cell[2, 2]),
    )
    return np.asarray(pot.build().project().compute().array, dtype=np.float64)


def _multislice_settings(s: IndependentImaging):
    """The PRISM multislice settings of ``s`` (its probe, detector, slices and phonons)."""
    return MultisliceSettings(
        energy_keV=s.energy_keV,
        semiangle_mrad=s.semiangle_mrad,
        c3_A=s.c3_A,
        c5_A=s.c5_A,
        defocus_A=s.defocus_A,
        detector_inner_mrad=s.detector_mrad[0],
        detector_outer_mrad=s.detector_mrad[1],
        frozen_phonons=s.phonon_configs,
        thermal_sigma_A=s.phonon_sigma_A,
        slice_thickness_A=s.slice_thickness_A,
        dose_e_per_A2=None,
        prism_interpolation=max(1, int(s.prism_interpolation)),
    )


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
    prism = s.method == "prism"
    ms = _multislice_settings(s) if prism else None
    sampling = ms.sampling_A() if prism else s.sampling_A
    k = max(1, int(round(pixel_size_A / sampling)))
    fine = pixel_size_A / k
    gpts = (rows * k, cols * k)
    check_memory(gpts[0] * gpts[1] * 8 * 6, "the independent simulator's fine grid")
    if prism:  # the S-matrix: one complex64 plane of the grid per plane wave
        side = max(rows, cols) * pixel_size_A / ms.prism_interpolation
        alpha = ms.semiangle_mrad * 1e-3 / ms.wavelength_A()
        waves = int(np.pi * (alpha * side) ** 2) + 1
        check_memory(waves * gpts[0] * gpts[1] * 8 * 2, "the PRISM scattering matrix")
    weights = None if prism else _element_weights(s, elements)
    rng = np.random.default_rng(seed)
    nominal = np.asarray(angles_deg, np.float64)
    n = len(nominal)
    true_angles = nominal + (rng.normal(0.0, s.angle_error_deg, n) if s.angle_error_deg else 0)
    shifts = rng.uniform(-s.shift_px, s.shift_px, (n, 2)) if s.shift_px else np.zeros((n, 2))
    # drawn after the shifts, and only when asked, so that other series stay as they were
    defoci = s.defocus_A + (rng.normal(0.0, s.defocus_spread_A, n) if s.defocus_spread_A else 0)
    defoci = np.asarray(defoci, np.float64) * np.ones(n)
    m = int(s.frames)
    drift = np.zeros((n, 2))
    if m > 1:  # drawn last, and only when asked, as the defoci
        speed = rng.uniform(0.0, s.drift_px, n)
        heading = rng.uniform(0.0, 2 * np.pi, n)
        drift = speed[:, None] * np.stack([np.sin(heading), np.cos(heading)], 1)
        check_memory(n * m * rows * cols * 8 * 2, "the independent simulator's frames")
        frames_clean = np.empty((n, m, rows, cols), np.float64)
    # one probe for the series, or one per image (built in the loop) with a defocus spread
    focused = not prism and not s.defocus_spread_A
    probe_ft = np.fft.rfft2(_probe_intensity(s, gpts, fine)) if focused else None
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
        where = np.stack([r_A, c_A, depth], 1)
        if prism:
            atoms = ase_atoms(elements, where, (rows * pixel_size_A, cols * pixel_size_A))
            ms_i = replace(ms, defocus_A=float(defoci[i])) if s.defocus_spread_A else ms
            clean[i] = adf_image(atoms, ms_i, pixel_size_A, (rows, cols), seed=seed + i)
        else:
            v = _projected_potential(elements, where, extent, gpts, weights)
            if s.defocus_spread_A:
                s_i = replace(s, defocus_A=float(defoci[i]))
                probe_ft = np.fft.rfft2(_probe_intensity(s_i, gpts, fine))
            img = np.fft.irfft2(np.fft.rfft2(v) * probe_ft, s=gpts)
            clean[i] = img[::k, ::k]
            if m > 1:
                frames_clean[i] = _scanned_frames(img, k, (rows, cols), m, drift[i], s)
        report(progress, i + 1, n, f"image {i + 1}/{n} at {th_deg:+.1f} deg")
    frames = None
    if m > 1:  # the frames share the dose; the specimen at the middle of the scans is where
        # a registration of the frames puts it
        frames, scale = _frame_counts(frames_clean, s, rng)
        counts = frames.sum(1)
        shifts = shifts + drift * ((m - 1) / 2 + 0.5 / s.frame_interval)
    else:
        counts, scale = _counts(clean, s, rng)
    return IndependentSeries(
        counts,
        nominal,
        np.asarray(true_angles, np.float64) * np.ones(n),
        shifts,
        float(pixel_size_A),
        {
            "imaging": asdict(s),
            "seed": seed,
            "fine_sampling_A": ms.sampling_A() if prism else fine,
            "counts_scale": scale,
            "defocus_A_per_image": defoci.tolist(),
            "element_brightness": weights,
        },
        None if m > 1 else clean.astype(np.float32),
        frames,
        drift if m > 1 else None,
    )


def _scanned_frames(img, k: int, shape, m: int, drift, s: IndependentImaging) -> np.ndarray:
    """``m`` scans of the fine image ``img`` (``k`` fine points per pixel) while the specimen
    drifts by ``drift`` pixels per frame period: rows top to bottom, each left to right, pixel
    ``(r, c)`` of frame ``f`` at the time ``f * interval + (r + c / cols) / rows`` scans and
    showing the specimen's point moved back by the drift so far (bilinear on the fine grid)."""
    from scipy import ndimage

    rows, cols = shape
    r, c = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64),
                       indexing="ij")  # fmt: skip
    rate = np.asarray(drift, np.float64) / s.frame_interval  # pixels per scan time
    out = np.empty((m, rows, cols))
    for f in range(m):
        t = f * s.frame_interval + (r + c / cols) / rows
        where = [(r - rate[0] * t) * k, (c - rate[1] * t) * k]
        out[f] = ndimage.map_coordinates(img, where, order=1, mode="grid-wrap")
    return out


def _frame_counts(frames, s: IndependentImaging, rng) -> tuple[np.ndarray, float]:
    """Poisson counts of noise-free frames ``(n, m, rows, cols)`` that share the dose: their
    sum has ``s``'s counts at the brightest column (or per pixel) and background."""
    m = frames.shape[1]
    peak = None if s.mean_counts is not None else s.peak_counts
    scale = _counts_scale(frames.sum(1), peak, s.mean_counts, s.background_counts)
    lam = np.clip(frames * scale, 0, None) + s.background_counts / m
    return np.random.default_rng(rng).poisson(lam).astype(np.float32), scale
