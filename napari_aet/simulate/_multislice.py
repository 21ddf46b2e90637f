"""Multislice ADF-STEM tilt series through abTEM (``pip install napari-aet[multislice]``):
dynamical scattering and channelling, with the study's beam settings as defaults. Costly
(every probe position propagates through every slice): practical on a GPU or small fields.
PRISM (``MultisliceSettings(prism_interpolation=f)``) propagates plane waves once per image
instead of a probe per position: about a minute per image of 64 x 64 positions (23 A) on 2
CPU cores."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.progress import check_cancel, report
from ..forward import rotation_center_A


@dataclass
class MultisliceSettings:
    """Beam, detector and sampling of the multislice ADF-STEM simulation (the study's defaults).

    Attributes
    ----------
    energy_keV : float
    semiangle_mrad : float
        Probe convergence semi-angle.
    c3_A, c5_A : float
        Spherical aberrations C3 (Cs) and C5 [A] (the study: -775 nm, 378 um).
    defocus_A : float
    detector_inner_mrad, detector_outer_mrad : float
    frozen_phonons : int
        Number of configurations (the study: 8).
    thermal_sigma_A : float
        RMS displacement per axis of the frozen phonons [A] (0.07 A: Pt at room temperature,
        B ~ 0.35 A^2).
    slice_thickness_A : float
    potential_sampling_A : float or None
        Real-space sampling of the potential; default the coarsest that still simulates the
        detector's outer angle.
    dose_e_per_A2 : float or None
        Dose per image for Poisson noise; None for noise-free images.
    device : {"cpu", "gpu"}
    prism_interpolation : int
        0: conventional multislice (a probe propagated per scan position); ``f >= 1``: PRISM
        with interpolation factor ``f`` (the probe is cut to ``1/f`` of the field, which must
        stay well wider than the probe: ``f = 4`` for fields of 20-30 A).
    """

    energy_keV: float = 300.0
    semiangle_mrad: float = 25.1
    c3_A: float = -775e1
    c5_A: float = 378e4
    defocus_A: float = 0.0
    detector_inner_mrad: float = 40.0
    detector_outer_mrad: float = 200.0
    frozen_phonons: int = 8
    thermal_sigma_A: float = 0.07
    slice_thickness_A: float = 2.0
    potential_sampling_A: float | None = None
    dose_e_per_A2: float | None = 1.61e5 / 21
    device: str = "cpu"
    prism_interpolation: int = 0
    extra: dict = field(default_factory=dict)

    def wavelength_A(self) -> float:
        """Relativistic electron wavelength [A]."""
        e = self.energy_keV * 1e3
        return 12.2643 / np.sqrt(e * (1 + 0.97845e-6 * e))

    def sampling_A(self) -> float:
        if self.potential_sampling_A:
            return float(self.potential_sampling_A)
        # abTEM keeps 2/3 of the Nyquist band: k_max = 1 / (3 s); the outer angle needs
        # lambda * k_max > outer (with 2 % margin)
        return self.wavelength_A() / (3 * 1.02 * self.detector_outer_mrad * 1e-3)


def ase_atoms(elements, positions_A, extent_A: tuple[float, float]):
    """ASE atoms at ``(row_A, col_A, depth_A)`` in a periodic cell of the field's extent, the
    beam along the cell's third axis with 2 A of vacuum before and after the particle."""
    import ase

    depth = positions_A[:, 2]
    return ase.Atoms(
        symbols=list(elements),
        positions=np.stack(
            [positions_A[:, 0], positions_A[:, 1], depth - depth.min() + 2.0], axis=1
        ),
        cell=(extent_A[0], extent_A[1], float(depth.max() - depth.min() + 4.0)),
        pbc=True,
    )


def adf_image(atoms, s: MultisliceSettings, pixel_size_A: float, shape_px, *, seed: int = 0):
    """The ADF-STEM image of ASE ``atoms`` (beam along the cell's third axis) scanned from the
    cell's origin at every ``pixel_size_A`` over ``shape_px`` positions, as the detected
    fraction of the beam ``(rows, cols)``; multislice or PRISM as ``s`` says."""
    import abtem

    rows, cols = (int(v) for v in shape_px)
    cell = np.asarray(atoms.cell.lengths()[:2], float)
    f = int(s.prism_interpolation)
    # the potential's grid: the detector's outer angle needs this sampling; PRISM needs the
    # interpolation factor to divide the number of points
    gpts = np.ceil(cell / s.sampling_A()).astype(int)
    if f > 1:
        gpts = -(-gpts // f) * f
    if s.frozen_phonons > 1:
        atoms = abtem.FrozenPhonons(
            atoms, num_configs=s.frozen_phonons, sigmas=s.thermal_sigma_A, seed=seed
        )
    pot = abtem.Potential(
        atoms,
        gpts=tuple(int(g) for g in gpts),
        slice_thickness=s.slice_thickness_A,
        projection="infinite",
        parametrization="lobato",
    )
    scan = abtem.GridScan(
        start=(0, 0), end=(rows * pixel_size_A, cols * pixel_size_A), gpts=(rows, cols),
        endpoint=False,
    )  # fmt: skip
    det = abtem.AnnularDetector(inner=s.detector_inner_mrad, outer=s.detector_outer_mrad)
    aberrations = {"Cs": s.c3_A, "C50": s.c5_A, "defocus": s.defocus_A}
    if f >= 1:
        smat = abtem.SMatrix(
            semiangle_cutoff=s.semiangle_mrad, energy=s.energy_keV * 1e3, potential=pot,
            interpolation=f,
        )  # fmt: skip
        ctf = abtem.CTF(semiangle_cutoff=s.semiangle_mrad, energy=s.energy_keV * 1e3,
                        **aberrations)  # fmt: skip
        measured = smat.scan(scan=scan, detectors=det, ctf=ctf, lazy=False)
    else:
        probe = abtem.Probe(energy=s.energy_keV * 1e3, semiangle_cutoff=s.semiangle_mrad,
                            **aberrations)  # fmt: skip
        measured = probe.scan(pot, scan=scan, detectors=det).compute()
    img = np.asarray(measured.array, np.float64)
    if img.ndim == 3:  # frozen-phonon configurations not yet averaged
        img = img.mean(axis=0)
    return img.reshape(rows, cols)


def multislice_tilt_series(
    positions_A,
    angles_deg,
    *,
    pixel_size_A: float,
    shape_px: tuple[int, int],
    element="Pt",
    settings: MultisliceSettings | None = None,
    seed: int = 0,
    progress=None,
    cancel=None,
) -> np.ndarray:
    """ADF-STEM images of an atom model at each tilt by multislice (abTEM), ``(n, rows, cols)``.

    Same geometry as :func:`napari_aet.simulate.simulate_tilt_series`: positions ``(z, y, x)``
    [A] in the volume frame, rotation about ``y``, image rows along ``y``. Values are the
    detected fraction of the beam, or counts when ``settings.dose_e_per_A2`` is set.
    """
    try:
        import abtem
    except ImportError as err:
        raise ImportError(
            "multislice needs abTEM: pip install 'napari-aet[multislice]' (or use "
            "simulator='kirkland')"
        ) from err

    s = settings or MultisliceSettings()
    abtem.config.set({"device": s.device, "diagnostics.progress_bar": False})
    rows, cols = (int(v) for v in shape_px)
    center = rotation_center_A((rows, cols), pixel_size_A)
    d = np.asarray(positions_A, float) - center
    angles = np.atleast_1d(np.asarray(angles_deg, float))
    rng = np.random.default_rng(seed)
    # one element for all, or one per atom (an alloy)
    symbols = [element] * len(d) if isinstance(element, str) else [str(e) for e in element]
    if len(symbols) != len(d):
        raise ValueError(f"{len(symbols)} elements for {len(d)} atoms: give one per atom")
    out = np.empty((len(angles), rows, cols), np.float32)
    extent = (rows * pixel_size_A, cols * pixel_size_A)
    for i, a in enumerate(angles):
        check_cancel(cancel, "the multislice simulation")
        th = np.deg2rad(a)
        row_A = d[:, 1] + rows // 2 * pixel_size_A
        col_A = d[:, 2] * np.cos(th) + d[:, 0] * np.sin(th) + cols // 2 * pixel_size_A
        depth = -d[:, 2] * np.sin(th) + d[:, 0] * np.cos(th)
        atoms = ase_atoms(symbols, np.stack([row_A, col_A, depth], 1), extent)
        phonon_seed = int(rng.integers(2**31)) if s.frozen_phonons > 1 else 0
        img = adf_image(atoms, s, pixel_size_A, (rows, cols), seed=phonon_seed)
        if s.dose_e_per_A2:
            img = rng.poisson(img * s.dose_e_per_A2 * pixel_size_A**2)
        out[i] = img
        report(progress, i + 1, len(angles), f"multislice image {i + 1}/{len(angles)}")
    return out
