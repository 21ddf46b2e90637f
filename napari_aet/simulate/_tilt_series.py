"""Synthesis of ADF-STEM tilt series from an atom model (projected potentials, probe, noise)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.atoms import AtomModel
from ..core.memory import check_memory
from ..core.progress import ProgressCallback, check_cancel, report
from ..forward import project_positions, projected_potential_profile, render_projection

#: Study dose: 1.61e5 e/A^2 over 21 images (reference study, Methods).
STUDY_DOSE_PER_IMAGE_E_PER_A2 = 1.61e5 / 21


@dataclass
class TiltSeriesTruth:
    """What the simulator knows and an experiment would not.

    Attributes
    ----------
    angles_deg : ndarray of shape (n_tilts,)
        Angles the images were really taken at (nominal + error) [degrees].
    shifts_px : ndarray of shape (n_tilts, 2)
        ``(d_row, d_col)`` by which each image's content was displaced [pixels].
    tilt_axis_angle_deg : float
        In-plane angle of the tilt axis from the image's vertical (rows) axis [degrees],
        counter-clockwise positive as seen in the image.
    atoms : AtomModel
        The true atoms ``(z, y, x)`` [A] in the volume frame of the reconstruction.
    noiseless : ndarray of shape (n_tilts, rows, cols)
        Expected counts before noise.
    """

    angles_deg: np.ndarray
    shifts_px: np.ndarray
    tilt_axis_angle_deg: float
    atoms: AtomModel
    noiseless: np.ndarray


@dataclass
class SimulatedTiltSeries:
    """A simulated tilt series: what a microscope would give, plus the truth.

    Attributes
    ----------
    data : ndarray of float32, shape (n_tilts, rows, cols)
        Counts per pixel.
    angles_deg : ndarray of shape (n_tilts,)
        Nominal tilt angles [degrees] (what the stage reported).
    pixel_size_A : float
        Pixel size [A].
    truth : TiltSeriesTruth
    settings : dict
        Every parameter that made it, JSON-serialisable.
    """

    data: np.ndarray
    angles_deg: np.ndarray
    pixel_size_A: float
    truth: TiltSeriesTruth
    settings: dict = field(default_factory=dict)


def simulate_tilt_series(
    atoms: AtomModel | np.ndarray,
    angles_deg,
    *,
    pixel_size_A: float = 0.358,
    shape_px: tuple[int, int] = (256, 256),
    blur_sigma_A: float = 0.45,
    element: str = "Pt",
    dose_e_per_A2: float | None = STUDY_DOSE_PER_IMAGE_E_PER_A2,
    scattered_fraction_per_atom: float = 0.015,
    background_counts: float = 0.0,
    read_noise_counts: float = 0.0,
    angle_error_deg: float = 0.0,
    shift_error_px: float = 0.0,
    tilt_axis_angle_deg: float = 0.0,
    seed=None,
    progress: ProgressCallback | None = None,
    cancel=None,
) -> SimulatedTiltSeries:
    """Simulate a single-axis ADF-STEM tilt series with the truth that made it.

    The intensity of each image is the sum of the atoms' projected potentials (Kirkland
    parametrization) blurred by a Gaussian probe, converted to expected electron counts and
    drawn from a Poisson distribution.

    Parameters
    ----------
    atoms : AtomModel or ndarray of shape (N, 3)
        Atom positions ``(z, y, x)`` [A] in the volume frame (rotation centre at
        :func:`rotation_center_A`). An ``element`` feature, if present, selects each atom's
        potential; otherwise ``element`` applies to all.
    angles_deg : array-like of shape (n_tilts,)
        Nominal tilt angles [degrees] about the vertical image axis.
    pixel_size_A : float
        Pixel size [A].
    shape_px : (int, int)
        Image size ``(rows, cols)`` [pixels].
    blur_sigma_A : float
        Standard deviation of the Gaussian probe and thermal blur [A].
    element : str
        Chemical symbol used when the model has no ``element`` feature.
    dose_e_per_A2 : float or None
        Electron dose per image [e/A^2]; ``None`` returns expected counts without noise.
        The default is the study's total dose 1.61e5 e/A^2 shared by 21 images.
    scattered_fraction_per_atom : float
        Fraction of the incident electrons that reach the ADF detector at the peak of one
        isolated atom of ``element``; sets the counts per unit of projected potential.
    background_counts : float
        Uniform background added before noise [counts per pixel] (support film).
    read_noise_counts : float
        Standard deviation of additive Gaussian detector noise [counts].
    angle_error_deg : float
        Standard deviation of the per-image tilt-angle error [degrees]; the images are made at
        ``nominal + error`` and the file reports the nominal angle.
    shift_error_px : float
        Half-range of the uniform per-image shift [pixels], both axes.
    tilt_axis_angle_deg : float
        In-plane rotation of the tilt axis away from vertical [degrees].
    seed : int or numpy.random.Generator, optional
        Seed for every random draw.
    progress, cancel
        Progress callback ``(done, total, message)`` and cancel flag.

    Returns
    -------
    SimulatedTiltSeries

    Examples
    --------
    >>> from napari_aet.simulate import fcc_particle, simulate_tilt_series
    >>> pts = fcc_particle(radius_A=8, seed=0) + 0.358 * 32
    >>> ts = simulate_tilt_series(pts, [-60, 0, 60], shape_px=(64, 64), seed=0)
    >>> ts.data.shape
    (3, 64, 64)
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if not isinstance(atoms, AtomModel):
        atoms = AtomModel(np.asarray(atoms, dtype=np.float64))
    angles = np.atleast_1d(np.asarray(angles_deg, dtype=np.float64))
    if angles.ndim != 1 or angles.size == 0 or not np.all(np.isfinite(angles)):
        raise ValueError("angles_deg must be a non-empty 1D list of finite angles in degrees")
    if pixel_size_A <= 0:
        raise ValueError("pixel_size_A must be positive (Angstrom per pixel)")
    rows, cols = (int(v) for v in shape_px)
    n = len(angles)
    check_memory(
        n * rows * cols * 4 * 3 + 20 * 8192 * (2 * np.ceil(4.0 / pixel_size_A) + 1) ** 2,
        f"simulating {n} images of {rows} x {cols} pixels",
        hint="Use fewer or smaller images.",
    )
    if "element" in atoms.features.columns:
        elements = atoms.features["element"].astype(str).to_numpy()
    else:
        elements = np.full(atoms.n_atoms, element)
    true_angles = angles + rng.normal(scale=angle_error_deg, size=n) if angle_error_deg else angles
    shifts = (
        rng.uniform(-shift_error_px, shift_error_px, size=(n, 2))
        if shift_error_px
        else np.zeros((n, 2))
    )
    noiseless = np.empty((n, rows, cols), dtype=np.float32)
    # counts per unit potential: one isolated atom's peak gives scattered_fraction of the dose

    peak = float(projected_potential_profile(element, np.zeros(1), blur_sigma_A=blur_sigma_A)[0])
    dose = dose_e_per_A2 if dose_e_per_A2 is not None else STUDY_DOSE_PER_IMAGE_E_PER_A2
    counts_per_potential = dose * pixel_size_A**2 * scattered_fraction_per_atom / peak
    for i in range(n):
        check_cancel(cancel, "the tilt-series simulation")
        coords = project_positions(
            atoms.positions,
            true_angles[i],
            shape_px=(rows, cols),
            pixel_size_A=pixel_size_A,
            shift_px=shifts[i],
            tilt_axis_angle_deg=tilt_axis_angle_deg,
        )
        img = render_projection(
            coords,
            elements,
            shape_px=(rows, cols),
            pixel_size_A=pixel_size_A,
            blur_sigma_A=blur_sigma_A,
        )
        noiseless[i] = img * counts_per_potential + background_counts
        report(progress, i + 1, n, f"image {i + 1}/{n} at {angles[i]:+.1f} deg")
    if dose_e_per_A2 is None:
        data = noiseless.copy()
    else:
        data = rng.poisson(np.maximum(noiseless, 0)).astype(np.float32)
    if read_noise_counts:
        data += rng.normal(scale=read_noise_counts, size=data.shape).astype(np.float32)
    settings = {
        "stage": "simulate",
        "pixel_size_A": float(pixel_size_A),
        "shape_px": [rows, cols],
        "blur_sigma_A": float(blur_sigma_A),
        "element": element,
        "dose_e_per_A2": None if dose_e_per_A2 is None else float(dose_e_per_A2),
        "scattered_fraction_per_atom": float(scattered_fraction_per_atom),
        "background_counts": float(background_counts),
        "read_noise_counts": float(read_noise_counts),
        "angle_error_deg": float(angle_error_deg),
        "shift_error_px": float(shift_error_px),
        "tilt_axis_angle_deg": float(tilt_axis_angle_deg),
        "n_atoms": int(atoms.n_atoms),
    }
    truth = TiltSeriesTruth(true_angles, shifts, float(tilt_axis_angle_deg), atoms, noiseless)
    return SimulatedTiltSeries(data, angles, float(pixel_size_A), truth, settings)
