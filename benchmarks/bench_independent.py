"""Accuracy on tilt series this project did not simulate (`napari-aet bench independent`).

Every other accuracy figure of the project is measured on series from its own renderer, the
same Kirkland potentials and Gaussian blur that its refinement, R-factor and U-Net training
use. Here the series come from an independent forward model
(:func:`napari_aet.simulate.independent_tilt_series`: abTEM's Lobato potentials, imaged with
abTEM's aberrated 300 keV probe, sampled at the scan positions, scaled to realistic ADF counts
at the brightest column and Poisson-sampled), of several particles in random orientations (no
crystal axis along a lab axis), at the study's counts (about 50 at the brightest column), a
third, a tenth and a twentieth of them, over the full tilt range (60 tilts over 180 deg), and with
acquisition faults (shifts, angle errors, a rotated tilt axis, a background), at the study's
counts and at a third and a tenth of them (`third-faults`, `tenth-faults`), and with the
shifts of a series whose drift was left in (up to 12 px: `drift`, `third-drift`), and the
study's dose over 41 tilts to +-60 deg (`dense`), and each fault alone at a third of the
counts (`third-background`, `third-axis`, `third-shifts`, `third-angles`); Pt, Au, Pd, Ni and
Ag crystals, bcc W and Fe crystals, a thick Pt crystal (`pt-large`), amorphous Pt and Ta
(random packings) and metallic glasses of Pt, Ta and Ni-Pd-Pt (`*-glass`), and
Fe-Pt and Pd-Pt alloys (each element as bright as in ADF images, or with `--contrast
potential` as in the projected potential). Each series goes through
`napari-aet run` with its defaults (only the element is given, and the amorphous U-Net for the
amorphous particle); the traced, refined and final atoms are scored against the truth after a
rigid registration with one-to-one matching within 1 A, an alloy's also per element. With
`--aligned-elsewhere` each series arrives as another group publishes it: resampled into its
aligned frame (cubic spline, to within +-0.25 px), as floats. With `--field 384` each image
sits in a 384-px field of vacuum at a drifting position, as a microscope records a small
particle (the run crops it back). With `--genfire-file` each series, aligned elsewhere, arrives
as a GENFIRE user ships it: `projections.mat` (MATLAB's (X, Y, n), the first index x) beside
`angles.mat` (3 x n Euler triplets (phi, theta, psi) in GENFIRE's convention, psi turning each
image by up to 1 deg as refined angles do), no pixel size in the file. Every case is reported.

Usage: python benchmarks/bench_independent.py [--size 128] [--cases all] [--out DIR]
       [--json FILE] [--weights auto|fcc|amorphous|alloy|FILE] [--contrast adf|potential]
       [--detector GAIN,OFFSET,READ[,SPREAD]] [--aligned-elsewhere] [--field PX]
       [--genfire-file [--genfire-psi DEG]]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import machine

#: particle, element, structure, shape, field fraction of the radius, U-Net weights ("auto":
#: the run's default, the shipped alloy weights for several elements)
PARTICLES = {
    "pt-dumbbell": ("Pt", "twinned dumbbell", "blob", 0.18, "fcc"),
    "pt-polyhedron": ("Pt", "fcc", "convex", 0.22, "fcc"),
    # a multiply twinned particle: five fcc segments about a five-fold axis, strained to close
    # (the shape most Pt, Pd and Au particles below 10 nm take; twin planes not parallel)
    # (a radius of 0.3 of the field: at 128 px about 550 atoms, segments large enough to see)
    "pt-decahedron": ("Pt", "decahedron", "blob", 0.3, "fcc"),
    # twenty tetrahedra about a centre (a Mackay icosahedron, radius to its vertices: at 128 px
    # 8 shells, 1,415 atoms)
    "pt-icosahedron": ("Pt", "icosahedron", "blob", 0.4, "fcc"),
    # multiply twinned particles of 2-3 nm, the size of many catalysts (at 128 px a 209-atom
    # decahedron of 10 A and a 561-atom icosahedron of 15 A: a few fcc atoms per segment)
    "pt-small-decahedron": ("Pt", "decahedron", "blob", 0.22, "fcc"),
    "pt-small-icosahedron": ("Pt", "icosahedron", "blob", 0.33, "fcc"),
    "au-particle": ("Au", "fcc", "blob", 0.22, "fcc"),
    "pt-amorphous": ("Pt", "amorphous", "blob", 0.22, "amorphous"),
    "pt-multislice": ("Pt", "fcc", "blob", 0.35, "fcc"),
    "pd-particle": ("Pd", "fcc", "convex", 0.22, "fcc"),
    "ni-particle": ("Ni", "fcc", "blob", 0.22, "fcc"),
    "ag-particle": ("Ag", "fcc", "convex", 0.22, "fcc"),
    # a large, thick crystal (at 256 px about 5,800 atoms, columns of up to 20)
    "pt-large": ("Pt", "fcc", "blob", 0.3, "fcc"),
    # an amorphous heavy metal run as a new user would (default weights, not the amorphous ones)
    "ta-amorphous": ("Ta", "amorphous", "blob", 0.22, "auto"),
    # bcc crystals (every neighbour 15 % nearer than fcc's second shell; the tungsten needles
    # of the first AET studies), a heavy and a light element
    "w-particle": ("W", "bcc", "blob", 0.22, "auto"),
    "fe-particle": ("Fe", "bcc", "blob", 0.22, "auto"),
    # hcp crystals (ABAB stacking, c/a below the ideal 1.633: the out-of-plane bonds 2 % shorter
    # than the in-plane ones for Ru), a middle and a light element
    "ru-particle": ("Ru", "hcp", "blob", 0.22, "auto"),
    "co-particle": ("Co", "hcp", "blob", 0.22, "auto"),
    # random substitutional alloys (each site's species drawn, equal fractions): a light and a
    # heavy element (Z 26 and 78), and two heavy ones closer in Z (46 and 78)
    "fept-particle": ("Fe,Pt", "fcc", "convex", 0.22, "auto"),
    "pdpt-particle": ("Pd,Pt", "fcc", "blob", 0.22, "auto"),
    # a chemically ordered alloy: L1_0 FePt (the published AET study of chemical order), its
    # (001) layers of Fe and Pt alternating along c (BUILD below)
    "fept-l10": ("Fe,Pt", "fcc", "convex", 0.22, "auto"),
    # an amorphous alloy of three elements (a metallic-glass particle's heavy, middle and light
    # groups)
    "nipdpt-amorphous": ("Ni,Pd,Pt", "amorphous", "blob", 0.22, "auto"),
    # metallic glasses as they are (the packing above quenched: the first shell at the bond,
    # about 12 neighbours, no pair nearer than 0.85 bonds; the random packing's half within
    # 0.77 bonds has no counterpart in a real glass), run as a new user would (default weights)
    "pt-glass": ("Pt", "glass", "blob", 0.22, "auto"),
    "ta-glass": ("Ta", "glass", "blob", 0.22, "auto"),
    "nipdpt-glass": ("Ni,Pd,Pt", "glass", "blob", 0.22, "auto"),
}
#: :func:`napari_aet.simulate.build_structure` options of a particle beyond PARTICLES'
BUILD = {"fept-l10": {"order": "L1_0"}}
#: particles imaged by abTEM's PRISM multislice (channelling in the data) on their own field
#: size [px] whatever --size says: about a minute per image on 2 cores at 64 px
MULTISLICE_PX = {"pt-multislice": 64}
#: multislice series made in this process, by acquisition: other counts reuse their signal
_SIMULATED: dict = {}
#: name, peak counts at the brightest column, faults (shift px, angle sd deg, axis deg, bg)
CONDITIONS = {
    "study": (50.0, (0.0, 0.0, 0.0, 1.0)),
    "third": (17.0, (0.0, 0.0, 0.0, 1.0)),
    "faults": (50.0, (3.0, 0.5, 3.0, 3.0)),
    "tenth": (5.0, (0.0, 0.0, 0.0, 1.0)),
    # below what atom tracing can use: what a run says when the counts cannot show the atoms
    "twentieth": (2.5, (0.0, 0.0, 0.0, 1.0)),
    # five times the study's counts: what single light atoms beside heavy ones need
    "fivefold": (250.0, (0.0, 0.0, 0.0, 1.0)),
    "fullrange": (50.0, (0.0, 0.0, 0.0, 1.0)),
    "third-faults": (17.0, (3.0, 0.5, 3.0, 3.0)),
    "tenth-faults": (5.0, (3.0, 0.5, 3.0, 3.0)),
    # the faults one by one over their background (the others left out): what each costs
    "third-background": (17.0, (0.0, 0.0, 0.0, 3.0)),
    "third-axis": (17.0, (0.0, 0.0, 3.0, 3.0)),  # and the tilt axis turned 3 deg
    "third-shifts": (17.0, (3.0, 0.0, 0.0, 3.0)),  # and shifts of up to 3 px
    "third-angles": (17.0, (0.0, 0.5, 0.0, 1.0)),  # angle errors alone (background 1)
    # drift left in by the microscope: shifts of up to 12 px (the faults otherwise the same)
    "drift": (50.0, (12.0, 0.5, 3.0, 3.0)),
    "third-drift": (17.0, (12.0, 0.5, 3.0, 3.0)),
    # the study's total dose spread over 41 tilts of 3 deg to +-60 deg (a narrower range, a
    # finer step, half the counts per image), as other groups acquire
    "dense": (50.0 * 21 / 41, (0.0, 0.0, 0.0, 1.0)),
}
#: each image's defocus drawn about 0 with this standard deviation [A] per condition: the
#: focus found anew at each tilt, off by a nm or two (the probe's depth of field is about
#: 3 nm; at 2 nm its peak is a third lower, at 4 nm a sixth of the focused one)
DEFOCUS_SPREAD_A = {"focus": 20.0, "third-focus": 20.0, "focus-4nm": 40.0}
CONDITIONS["focus"] = CONDITIONS["study"]
CONDITIONS["third-focus"] = CONDITIONS["third"]
CONDITIONS["focus-4nm"] = CONDITIONS["study"]
#: tilt angles [deg] per condition: the study's 21 tilts -70:70:7 unless named here
TILTS = {
    "fullrange": np.arange(-88.5, 88.6, 3.0),  # 60 tilts over 180 deg, no missing wedge
    "dense": np.arange(-60.0, 60.1, 3.0),  # 41 tilts, a wider missing wedge
}
DEFAULT_CASES = [
    "pt-dumbbell/study",
    "pt-dumbbell/third",
    "pt-dumbbell/faults",
    "pt-polyhedron/study",
    "pt-polyhedron/third",
    "au-particle/study",
    "au-particle/third",
    "pt-amorphous/study",
    # a multiply twinned particle (twin planes not parallel: the analysis finds its domains)
    "pt-decahedron/third",
    # alloys: a default chosen on one element can cost them (the forty-fourth session found
    # Fe-Pt at 9 % after a recon-series change made for a Pt dumbbell)
    "fept-particle/study",
    "fept-particle/third",
    "nipdpt-amorphous/study",
    # a chemically ordered alloy (the forty-fifth session found its refine stage undoing the
    # tracer at a third of the counts)
    "fept-l10/third",
]


def make_case(name: str, size: int, pixel_size_A: float, seed: int):
    """The truth (randomly oriented) and its independent tilt series for case ``name``."""
    truth, _, series, _ = _make_case(name, size, pixel_size_A, seed)
    return truth, series


def _oriented(name: str, size: int, pixel_size_A: float, seed: int, **build):
    """Case ``name``'s atoms (:func:`napari_aet.simulate.build_structure`, with ``build``'s
    overrides) turned into its random orientation about the rotation centre: their positions
    and each one's element."""
    from scipy.spatial.transform import Rotation

    from napari_aet.forward import rotation_center_A
    from napari_aet.simulate import build_structure

    particle = name.split("/")[0]
    element, structure, shape, frac, _ = PARTICLES[particle]
    size = MULTISLICE_PX.get(particle, size)
    field = size * pixel_size_A
    atoms = build_structure(
        structure,
        element=element,
        radius_A=frac * field,
        shape=shape,
        shape_px=(size, size),
        pixel_size_A=pixel_size_A,
        seed=seed,
        **{**BUILD.get(particle, {}), **build},
    )
    center = rotation_center_A((size, size), pixel_size_A)
    rot = Rotation.random(random_state=seed + 101).as_matrix()
    species = atoms.features["element"].astype(str).to_numpy()
    return (atoms.positions - center) @ rot.T + center, species


def radial_strain(positions: np.ndarray, strain_pct: float) -> np.ndarray:
    """The displacements [A] of a smooth radial strain field that grows from the particle's
    centre to its surface, ``u = s (x - c) |x - c| / R`` (``c`` the centroid, ``R`` the
    largest distance from it, ``s = strain_pct / 100``): no strain at the centre, a radial
    strain of ``2 s`` at the surface, displacements of ``s R`` there (a surface expansion
    that varies over many atoms, as a particle's relaxation does)."""
    d = positions - positions.mean(axis=0)
    r = np.linalg.norm(d, axis=1, keepdims=True)
    return strain_pct / 100.0 * d * r / max(float(r.max()), 1e-9)


def _make_case(name: str, size: int, pixel_size_A: float, seed: int, jitter_pm=None,
               radial_strain_pct=None, contrast="adf"):  # fmt: skip
    """:func:`make_case`, the truth's sites before the thermal jitter (same atoms, same
    order: the ideal lattice of a crystal) to measure how much of the atoms' displacements
    from them a run recovers, and each true atom's element. ``jitter_pm``: the
    displacements' standard deviation per axis (default
    :func:`napari_aet.simulate.build_structure`'s, 2.2 pm). ``radial_strain_pct``: the truth
    is also displaced by :func:`radial_strain`, and the reference sites are the truth without
    that field (its jitter kept), so that what a run recovers is measured on the smooth field
    alone. ``contrast``: how bright each element of an alloy is
    (:class:`napari_aet.simulate.IndependentImaging`)."""
    from napari_aet.simulate import IndependentImaging, at_counts, independent_tilt_series

    particle, condition = name.split("/")
    peak, (shift, angle_sd, axis, bg) = CONDITIONS[condition]
    jitter = {} if jitter_pm is None else {"jitter_A": jitter_pm / 100.0}
    truth, species = _oriented(name, size, pixel_size_A, seed, **jitter)
    if radial_strain_pct:
        ideal = truth
        truth = truth + radial_strain(truth, radial_strain_pct)
    else:
        ideal, _ = _oriented(name, size, pixel_size_A, seed, jitter_A=0.0)
        if ideal.shape != truth.shape or np.abs(ideal - truth).max() > 1.0:
            ideal = None  # the build drew other atoms without jitter: no ideal sites
    size = MULTISLICE_PX.get(particle, size)
    imaging = IndependentImaging(
        peak_counts=peak,
        background_counts=bg,
        shift_px=shift,
        angle_error_deg=angle_sd,
        tilt_axis_deg=axis,
        defocus_spread_A=DEFOCUS_SPREAD_A.get(condition, 0.0),
        method="prism" if particle in MULTISLICE_PX else "incoherent",
        contrast=contrast,
    )
    angles = TILTS.get(condition, np.arange(-70.0, 70.1, 7.0))
    key = (particle, (shift, angle_sd, axis), imaging.defocus_spread_A, len(angles), size,
           pixel_size_A, seed)  # fmt: skip
    if particle in MULTISLICE_PX and key in _SIMULATED:  # the same acquisition, other counts
        series = at_counts(_SIMULATED[key], peak_counts=peak, background_counts=bg, seed=seed)
        return truth, ideal, series, species
    series = independent_tilt_series(
        truth,
        species,
        angles,
        pixel_size_A=pixel_size_A,
        shape_px=(size, size),
        imaging=imaging,
        seed=seed,
        progress=lambda done, total, msg: print(f"  simulate {name}: {msg}", flush=True),
    )
    _SIMULATED[key] = series
    return truth, ideal, series, species


def detector_units(series, gain: float, offset: float, read_noise: float, spread: float = 0.0,
                   *, seed: int):  # fmt: skip
    """``series`` as an ADF detector read through an amplifier and a digitiser would give it:
    ``gain * counts + offset + N(0, read_noise**2)`` as float32 (not integers), the form a
    microscope's own software writes and that another group's data come in. ``spread``:
    each image's gain and offset are further multiplied by its own factor, uniform in
    ``1 +- spread`` (images normalised one by one, a drifting beam current and offset)."""
    from dataclasses import replace

    rng = np.random.default_rng(seed + 7)
    counts = np.asarray(series.data, np.float64)
    adc = gain * counts + offset + rng.normal(0.0, read_noise, counts.shape)
    if spread:
        adc *= rng.uniform(1.0 - spread, 1.0 + spread, len(adc))[:, None, None]
    return replace(series, data=adc.astype(np.float32))


def aligned_elsewhere(series, residual_px: float = 0.25, *, seed: int):
    """``series`` as a group that aligned it first publishes it: each image resampled (cubic
    spline, :func:`napari_aet.align.apply_alignment`) into the aligned frame with the series'
    true tilt axis and shifts undone, up to a residual shift of its own, uniform in
    ``+-residual_px`` per axis (an alignment is never exact, and a sub-pixel shift is what
    correlates the noise of neighbouring pixels even where the series had no faults), as
    float32; the angles stay the nominal ones. Outside the recorded field the images are 0."""
    from dataclasses import replace

    from napari_aet.align import apply_alignment

    rng = np.random.default_rng(seed + 11)
    shifts = np.asarray(series.shifts_px, np.float64)
    shifts = shifts + rng.uniform(-residual_px, residual_px, shifts.shape)
    axis = float(series.settings["imaging"]["tilt_axis_deg"])
    data = apply_alignment(
        np.asarray(series.data, np.float32), tilt_axis_angle_deg=axis, shifts_px=shifts
    )
    return replace(series, data=data)


def published(series, *, pixel_size_A: float, seed: int):
    """``series`` as a group publishes its final tilt series: the counts denoised with BM3D
    (Anscombe-transformed, the bm3d package), each image's background (the median of its
    outer 8 px frame) subtracted, aligned (:func:`aligned_elsewhere`), low-passed by a circular
    mask of 2.08 1/A diameter in the images' Fourier transform and each image scaled to the
    series' mean total intensity, as float32 (negative pixels kept). Only the denoiser is a
    library napari-aet also uses; the rest is written here."""
    from dataclasses import replace

    from napari_aet.core.denoise import denoise

    den, _ = denoise(np.asarray(series.data, np.float32), method="bm3d", noise="poisson")
    border = np.ones(den.shape[1:], bool)
    border[8:-8, 8:-8] = False
    den = den - np.median(den[:, border], axis=1)[:, None, None]
    out = np.asarray(aligned_elsewhere(replace(series, data=den), seed=seed).data, np.float64)
    fy = np.fft.fftfreq(out.shape[1], d=pixel_size_A)[:, None]
    fx = np.fft.fftfreq(out.shape[2], d=pixel_size_A)[None, :]
    mask = np.hypot(fy, fx) <= 2.08 / 2
    out = np.fft.ifft2(np.fft.fft2(out) * mask).real
    totals = out.sum(axis=(1, 2))
    out *= (totals.mean() / totals)[:, None, None]
    return replace(series, data=out.astype(np.float32))


def as_genfire_files(folder: Path, series, *, psi_deg: float = 1.0, seed: int) -> Path:
    """Write ``series`` (napari-aet's convention) as GENFIRE's examples ship a series:
    ``projections.mat`` in MATLAB's ``(X, Y, n)`` with GENFIRE's first index ``x`` (each image
    transposed) beside ``angles.mat``, 3 x n Euler triplets ``(phi, theta, psi)`` with GENFIRE's
    tilt ``theta = -angle`` and each image turned in its plane by its ``psi``, uniform in
    ``+-psi_deg`` (cubic spline; :mod:`napari_aet.io._genfire` turns them back). Returns the
    projections' path."""
    from scipy import io as sio
    from scipy import ndimage

    rng = np.random.default_rng(seed + 17)
    data = np.asarray(series.data, np.float32)
    n, rows, cols = data.shape
    psi = rng.uniform(-psi_deg, psi_deg, n)
    c = np.array([rows // 2, cols // 2], np.float64)
    turned = np.empty_like(data)
    for i in range(n):
        g = np.deg2rad(-psi[i])  # GENFIRE's psi turns napari-aet's image content by -psi
        m = np.array([[np.cos(g), -np.sin(g)], [np.sin(g), np.cos(g)]])
        turned[i] = ndimage.affine_transform(data[i], m, offset=c - m @ c, order=3, mode="nearest")
    euler = np.stack([np.zeros(n), -np.asarray(series.angles_deg, np.float64), psi])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "projections.mat"
    sio.savemat(path, {"projections": np.moveaxis(np.swapaxes(turned, 1, 2), 0, -1)})
    sio.savemat(folder / "angles.mat", {"angles": euler})
    return path


def as_genfire_tiff(folder: Path, series) -> Path:
    """Write ``series`` as a GENFIRE user exports it to other programs: a TIFF stack of the
    images as GENFIRE holds them (first index ``x``: each image transposed, so the tilt axis
    lies along the rows) beside a ``.tlt`` of GENFIRE's tilts ``theta = -angle``; no Euler
    triplets, no pixel size. Returns the stack's path."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "projections.tif"
    tifffile.imwrite(path, np.ascontiguousarray(np.swapaxes(series.data, 1, 2), np.float32))
    np.savetxt(path.with_suffix(".tlt"), -np.asarray(series.angles_deg, np.float64), fmt="%.4f")
    return path


def in_larger_field(series, field_px: int, *, drift_px: float, seed: int):
    """``series`` as a microscope records it: each image placed in a ``field_px``-square field
    of vacuum at a position that drifts from image to image (a random walk scaled to reach about
    ``drift_px`` from the field's centre), the vacuum Poisson counts at the level of the image's
    own outer rows and columns (its background). Whole-pixel placement: the counts stay
    counts. The truth's frame is unchanged (the scoring registers rigidly)."""
    from dataclasses import replace

    rng = np.random.default_rng(seed + 23)
    data = np.asarray(series.data)
    n, rows, cols = data.shape
    if field_px < max(rows, cols) + 2 * drift_px:
        raise ValueError(f"a {field_px}-px field cannot hold {rows} x {cols} images drifting "
                         f"{drift_px:g} px")  # fmt: skip
    walk = np.cumsum(rng.normal(size=(n, 2)), axis=0)
    walk -= walk.mean(axis=0)
    walk *= drift_px / max(np.abs(walk).max(), 1e-9)
    out = np.empty((n, field_px, field_px), data.dtype)
    for i, img in enumerate(data):
        border = np.concatenate([img[:4].ravel(), img[-4:].ravel(), img[:, :4].ravel(),
                                 img[:, -4:].ravel()])  # fmt: skip
        out[i] = rng.poisson(max(float(border.mean()), 0.0), (field_px, field_px))
        r0 = (field_px - rows) // 2 + int(round(walk[i, 0]))
        c0 = (field_px - cols) // 2 + int(round(walk[i, 1]))
        out[i, r0 : r0 + rows, c0 : c0 + cols] = img
    return replace(series, data=out)


def score(truth, atoms_csv, ideal=None, species=None, any_turn=False):
    """Identification and RMSD of the atoms in ``atoms_csv`` against ``truth`` (rigidly
    registered, matched one to one within 1 A). With ``ideal`` (the truth's sites before its
    random displacements, same order) also ``follows_displacement``: the least-squares slope of
    the matched atoms' displacements from their sites on the true ones, 1 when a run recovers
    them (whatever its noise), 0 when it puts every atom on its ideal site (a prior pulling to
    the lattice); its standard error is about RMSD / (true RMS displacement * sqrt(3 n)).
    With ``species`` (each true atom's element) of more than one element, also
    ``species_error_pct`` (the matched atoms given the wrong element) and, per element,
    ``species_found`` (of its true atoms: matched and given that element, matched and given
    another, missed). ``any_turn``: register from each quarter and half turn (a series read in
    another frame: GENFIRE's images as they lie give the particle turned half round)."""
    from napari_aet.analysis import compare_atom_models, compare_models, register_rigid
    from napari_aet.io import read_atoms

    model = read_atoms(atoms_csv)
    traced = model.positions
    if any_turn:
        r = compare_models(truth, traced)
        moved, angle = r["moved"], r["rotation_deg"]
    else:
        moved, angle = register_rigid(truth, traced)
    c = compare_atom_models(truth, moved, radius_A=1.0)
    out = {
        "n_true": c.n_reference,
        "n_traced": c.n_test,
        "missed": c.n_reference - c.n_common,
        "false": c.n_test - c.n_common,
        "identification_error_pct": 100 * c.identification_error,
        "rmsd_pm": 100 * c.rmsd_A,
        "rotation_deg": angle,
    }
    if ideal is not None and c.n_common:
        true_disp = truth[c.pairs[:, 0]] - ideal[c.pairs[:, 0]]
        found = moved[c.pairs[:, 1]] - ideal[c.pairs[:, 0]]
        out["follows_displacement"] = float(np.sum(found * true_disp) / np.sum(true_disp**2))
    if species is not None and len(set(species)) > 1:
        given = (
            model.features["element"].astype(str).to_numpy()
            if "element" in model.features
            else np.full(len(traced), "")
        )
        true_el, got_el = np.asarray(species)[c.pairs[:, 0]], given[c.pairs[:, 1]]
        out["species_error_pct"] = 100 * float(np.mean(true_el != got_el)) if c.n_common else 0.0
        out["species_found"] = {
            e: {
                "right": int(np.sum((true_el == e) & (got_el == e))),
                "wrong": int(np.sum((true_el == e) & (got_el != e))),
                "missed": int(np.sum(np.asarray(species) == e) - np.sum(true_el == e)),
            }
            for e in sorted(set(species))
        }
    return out


def run_and_score(
    folder: Path,
    truth,
    series,
    element: str,
    weights,
    *,
    resume: bool,
    ideal=None,
    counts=None,
    species=None,
    source_file: Path | None = None,
    any_turn: bool = False,
    recon=None,
    device: str = "auto",
) -> dict:
    """Write an independent series and its truth into ``folder``, run it through
    ``run_pipeline`` with the defaults of ``napari-aet run`` (the element and the U-Net weights
    given) and score the traced, refined and final atoms; the shared part of a benchmark row.
    ``counts``: the series' counts where ``series`` is in a detector's units (for the row's
    counts figures). ``species``: each true atom's element (an alloy's scored per atom).
    ``source_file``: run on this file of the series (its pixel size given) instead of an HDF5
    copy. ``recon``: the run's GENFIRE settings (a ``ReconSettings``; default the run's).
    ``device``: where the run computes (``"auto"``, ``"cpu"``, ``"cuda"``)."""
    from napari_aet.io import TiltSeries, read_tilt_series, write_tilt_series
    from napari_aet.workflows import (
        AugmentSettings,
        FiguresSettings,
        RunLayout,
        RunSettings,
        SeriesSource,
        run_pipeline,
    )

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tilt_series.h5"
    same = False  # an identical series is not rewritten: that would make the run redo it all
    if source_file is not None:
        path, same = Path(source_file), True
    if resume and path.exists() and not same:
        old = read_tilt_series(path)
        same = old.data.shape == series.data.shape and np.array_equal(old.data, series.data)
    if not same:
        write_tilt_series(
            path,
            TiltSeries(series.data, series.angles_deg, series.pixel_size_A, "independent", {}),
        )
    if species is not None and len(set(np.asarray(species).astype(str))) > 1:
        import pandas as pd  # an alloy's truth keeps each atom's element

        table = pd.DataFrame(truth, columns=["z", "y", "x"])
        table["element"] = np.asarray(species).astype(str)
        table.to_csv(folder / "truth.csv", index=False)
    else:
        np.savetxt(folder / "truth.csv", truth, delimiter=",", header="z,y,x", comments="")
    stages = {} if recon is None else {"recon": recon}
    settings = RunSettings.for_element(
        element,
        device=device,
        augment=None if weights == "none" else AugmentSettings(weights),
        figures=FiguresSettings(formats=("png",)),
        **stages,
    )
    counts_data = series.data if counts is None else counts
    t0 = time.perf_counter()
    src = SeriesSource(str(path), pixel_size_A=series.pixel_size_A) if source_file else None
    summary = run_pipeline(path, folder / "run", settings, source=src, resume=resume)
    t_run = time.perf_counter() - t0
    lay = RunLayout(folder / "run")
    stages = {"traced": lay.traced_atoms, "refined": lay.refined_atoms, "final": lay.atoms}
    return {
        "element": element,
        "n_atoms": len(truth),
        "brightest_counts": float(np.percentile(counts_data, 99.9)),
        "mean_counts_per_px": float(counts_data.mean()),
        "run_s": t_run,
        "stage_s": {  # this run's stages (a resumed run's record keeps others')
            k: round(v.get("seconds", 0.0), 1)
            for k, v in (summary.get("pipeline") or {}).get("stages", {}).items()
            if k in settings.stages()
        },
        "recon": {k: getattr(settings.recon, k) for k in RECON_KEYS},
        "device": _device_name(device),
        "r_factor_mean": summary.get("r_factor_mean"),
        "scores": {
            k: score(truth, p, ideal, species, any_turn) for k, p in stages.items() if p.exists()
        },
        "analysis": _analysis_record(folder / "run" / "analyze" / "analysis.json"),
    }


#: the reconstruction settings a row records (and ``--recon`` sets)
RECON_KEYS = ("iterations", "oversampling", "interpolation", "interpolation_radius")


def parse_recon(text: str):
    """``--recon ITERATIONS,OVERSAMPLING,INTERPOLATION[,RADIUS]`` as the run's
    ``ReconSettings`` (``1000,5,dft,0.1``: the study's final tomogram)."""
    from dataclasses import replace

    from napari_aet.workflows import ReconSettings

    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError(
            f"--recon {text!r}: give ITERATIONS,OVERSAMPLING,INTERPOLATION[,RADIUS], "
            "e.g. 1000,5,dft,0.1"
        )
    radius = float(parts[3]) if len(parts) == 4 else None
    return replace(
        ReconSettings(),
        iterations=int(parts[0]),
        oversampling=float(parts[1]),
        interpolation=parts[2],
        interpolation_radius=radius,
    )


def _device_name(device: str) -> str:
    """The card (or ``"cpu"``) a run on ``device`` computes on."""
    from napari_aet.core import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        import torch

        return torch.cuda.get_device_name(dev)
    return "cpu"


def cached_case(name: str, args):
    """:func:`_make_case` for ``args``, through ``args.case_cache``: a case made before with
    the same settings is read back (abTEM not needed: a series made on one machine runs on
    another), a new one is made and stored (gzipped, without the noise-free signal, counts as
    integers: about 1 MB for 21 images of 256 px)."""
    import gzip
    import pickle
    from dataclasses import replace

    make = dict(
        jitter_pm=args.jitter_pm, radial_strain_pct=args.radial_strain_pct, contrast=args.contrast
    )
    if args.case_cache is None:
        return _make_case(name, args.size, args.pixel_size, args.seed, **make)
    key = {"case": name, "size": args.size, "pixel_size": args.pixel_size, "seed": args.seed,
           **make}  # fmt: skip
    path = args.case_cache / f"{name.replace('/', '-')}-{args.size}px-seed{args.seed}.pkl.gz"
    if path.exists():
        with gzip.open(path, "rb") as f:
            stored = pickle.load(f)
        if stored["key"] == key:
            truth, ideal, series, species = stored["case"]
            data = stored["data"].astype(stored["dtype"])
            return truth, ideal, replace(series, data=data), species
    truth, ideal, series, species = _make_case(name, args.size, args.pixel_size, args.seed, **make)
    data = series.data
    small = data.astype(np.uint16) if np.array_equal(data, np.round(data)) else data
    if small.dtype == np.uint16 and not np.array_equal(small, data):
        small = data  # negative or over 65,535: stored as it is
    light = replace(series, data=np.zeros((0,)), signal=None, frames=None)
    args.case_cache.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        stored = {"key": key, "case": (truth, ideal, light, species), "data": small,
                  "dtype": data.dtype.str}  # fmt: skip
        pickle.dump(stored, f)
    return truth, ideal, series, species


def _analysis_record(path: Path) -> dict | None:
    """What the run's crystal analysis said: the lattice it found, its constant, layers, faults
    and the atoms' bond-order classes."""
    if not path.exists():
        return None
    a = json.loads(path.read_text())
    keys = ("lattice", "lattice_constant_A", "hcp_c_A", "n_layers", "local_structure_counts")
    return {**{k: a.get(k) for k in keys}, "n_faults": len(a.get("faults") or [])}


def run_case(name: str, args) -> dict:
    particle = name.split("/")[0]
    element, *_, weights = PARTICLES[particle]
    weights = args.weights or weights
    t0 = time.perf_counter()
    truth, ideal, series, species = cached_case(name, args)
    t_sim = time.perf_counter() - t0
    if args.simulate_only:
        return {"case": name, "simulate_s": t_sim, "n_atoms": len(truth)}
    folder = args.out / name.replace("/", "-")
    counts = None
    if args.field:
        series = in_larger_field(series, args.field, drift_px=args.field_drift, seed=args.seed)
    if args.published:
        counts = series.data
        series = published(series, pixel_size_A=args.pixel_size, seed=args.seed)
    elif args.aligned_elsewhere or args.genfire_file or args.genfire_tiff:
        counts = series.data
        series = aligned_elsewhere(series, seed=args.seed)
    if args.detector:
        counts = series.data if counts is None else counts
        series = detector_units(series, *args.detector, seed=args.seed)
    if args.order != "sorted":
        series, counts = in_acquisition_order(series, counts, args.order, seed=args.seed)
    source_file = None
    if args.genfire_file:
        source_file = as_genfire_files(folder, series, psi_deg=args.genfire_psi, seed=args.seed)
    elif args.genfire_tiff:
        source_file = as_genfire_tiff(folder, series)
    row = run_and_score(
        folder, truth, series, element, weights, resume=not args.no_resume, ideal=ideal,
        counts=counts, species=species, source_file=source_file, any_turn=args.genfire_tiff,
        recon=args.recon, device=args.device,
    )  # fmt: skip
    out = {"case": name, "simulate_s": t_sim, **row, "angles": angle_errors(folder, series)}
    if args.aligned_elsewhere or args.genfire_file or args.genfire_tiff or args.published:
        rec = json.loads((folder / "run" / "align" / "alignment.json").read_text())
        out["counts_model"] = rec.get("counts")
    if args.detector:
        names = ("gain", "offset", "read_noise", "spread")
        out["detector"] = dict(zip(names, args.detector, strict=False))
        rec = json.loads((folder / "run" / "align" / "alignment.json").read_text())
        out["counts_model"] = rec.get("counts")
    return out


def in_acquisition_order(series, counts, order: str, *, seed: int):
    """``series`` (and ``counts``) with the images in the order a microscope acquired them, as
    its file then holds them: ``"dose-symmetric"`` (Hagen et al. 2017: the tilt nearest 0
    first, then alternating sides outward), ``"bidirectional"`` (0 to one end, then from the
    first negative tilt to the other end) or ``"random"``; the angles, true angles and shifts
    go with their images."""
    from dataclasses import replace

    a = np.asarray(series.angles_deg, float)
    if order == "dose-symmetric":
        idx = np.lexsort((a < 0, np.abs(a)))  # |a| up, the positive tilt of a pair first
    elif order == "bidirectional":
        up = np.flatnonzero(a >= 0)
        down = np.flatnonzero(a < 0)
        idx = np.concatenate([up[np.argsort(a[up])], down[np.argsort(-a[down])]])
    elif order == "random":
        idx = np.random.default_rng(seed + 13).permutation(len(a))
    else:
        raise ValueError(f"unknown order {order!r}")
    fields = {"data": series.data[idx], "angles_deg": a[idx]}
    for name in ("true_angles_deg", "shifts_px", "signal", "frames", "frame_drift_px"):
        value = getattr(series, name, None)
        if value is not None:
            fields[name] = np.asarray(value)[idx]
    return replace(series, **fields), (None if counts is None else counts[idx])


def angle_errors(folder: Path, series) -> dict:
    """RMS tilt-angle error [deg] (common offset removed: a gauge) of the nominal angles and of
    the run's aligned ones, against the angles the series was made at."""
    rec = json.loads((folder / "run" / "align" / "alignment.json").read_text())

    def rms(angles):
        e = np.asarray(angles, float) - np.asarray(series.true_angles_deg, float)
        return float(np.sqrt(np.mean((e - e.mean()) ** 2)))

    return {
        "nominal_rms_deg": rms(rec["angles_in_deg"]),
        "aligned_rms_deg": rms(rec["angles_refined_deg"]),
        "corrections_kept": int(rec.get("significance", {}).get("angle_corrections_kept", -1)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=128, help="image side [px] (the study: 256)")
    ap.add_argument("--pixel-size", type=float, default=0.358)
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES), help="comma list or 'all'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("out/bench_independent"))
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument(
        "--case-cache",
        type=Path,
        default=None,
        help="folder of made cases: reused when their settings match (runs elsewhere need no "
        "abTEM)",
    )
    ap.add_argument(
        "--simulate-only", action="store_true", help="make (and cache) the cases, run nothing"
    )
    ap.add_argument(
        "--recon",
        type=parse_recon,
        default=None,
        help="the run's GENFIRE: ITERATIONS,OVERSAMPLING,INTERPOLATION[,RADIUS] (the study's "
        "final tomogram: 1000,5,dft,0.1; default the run's)",
    )
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument(
        "--jitter-pm",
        type=float,
        default=None,
        help="the atoms' random displacements from their sites, per axis [pm] (default 2.2)",
    )
    ap.add_argument(
        "--radial-strain-pct",
        type=float,
        default=None,
        help="displace the truth by a smooth radial strain, 0 at the centre and twice this "
        "[%%] at the surface; 'follows displacement' then scores that field alone",
    )
    ap.add_argument(
        "--detector",
        type=lambda v: tuple(float(x) for x in v.split(",")),
        default=None,
        metavar="GAIN,OFFSET,READ[,SPREAD]",
        help="write each series in a detector's units, gain * counts + offset + read noise "
        "(float32), instead of counts; SPREAD: each image scaled by its own factor in "
        "1 +- SPREAD",
    )
    ap.add_argument(
        "--aligned-elsewhere",
        action="store_true",
        help="write each series as another group publishes it: resampled (cubic spline) with "
        "its tilt axis and shifts undone up to +-0.25 px per image, float32 (the noise then "
        "correlated between neighbouring pixels)",
    )
    ap.add_argument(
        "--genfire-file",
        action="store_true",
        help="aligned elsewhere, then written as GENFIRE ships a series: projections.mat "
        "(first index x) beside angles.mat (Euler triplets, psi up to 1 deg), no pixel size",
    )
    ap.add_argument(
        "--published",
        action="store_true",
        help="as a group publishes its final series: BM3D-denoised, background subtracted, "
        "aligned (to +-0.25 px), low-passed (2.08 1/A), each image scaled to the mean total, "
        "float32",
    )
    ap.add_argument(
        "--genfire-tiff",
        action="store_true",
        help="aligned elsewhere, then exported from GENFIRE's world as a TIFF stack of its "
        "images as they lie (first index x: the tilt axis along the rows) beside a .tlt of "
        "GENFIRE's theta (the tilt's other sign), no pixel size",
    )
    ap.add_argument(
        "--genfire-psi",
        type=float,
        default=1.0,
        help="with --genfire-file: each image's in-plane turn psi, uniform in +-this [deg]",
    )
    ap.add_argument(
        "--field",
        type=int,
        default=None,
        metavar="PX",
        help="place each image in a PX-square field of vacuum (Poisson counts at the image's "
        "background) at a drifting position, as a microscope records a small particle",
    )
    ap.add_argument(
        "--field-drift",
        type=float,
        default=20.0,
        help="with --field: how far the particle drifts from the field's centre [px]",
    )
    ap.add_argument(
        "--order",
        choices=("sorted", "dose-symmetric", "bidirectional", "random"),
        default="sorted",
        help="the order of the images in the file: by angle (default) or as acquired",
    )
    ap.add_argument(
        "--contrast",
        choices=("adf", "potential"),
        default="adf",
        help="an alloy's species as bright as in ADF images (about Z**1.8, the default) or "
        "as in the projected potential (about Z**0.4: a harder test)",
    )
    ap.add_argument(
        "--weights",
        default=None,
        help="U-Net weights for every case (default: per particle; 'none': no U-Net)",
    )
    args = ap.parse_args()
    if args.cases == "all":
        cases = [f"{p}/{c}" for p in PARTICLES for c in CONDITIONS]
    else:
        cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    rows = []
    for name in cases:
        row = run_case(name, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:  # each row as soon as it is done (a run cut short keeps the rest)
            args.json.write_text(json.dumps(rows, indent=2))
    if args.simulate_only:
        return
    print()
    print(f"Machine: {machine()}; {args.size} px of {args.pixel_size} A, 21 tilts -70:70:7")
    print("(fullrange: 60 tilts -88.5:88.5:3; dense: 41 tilts -60:60:3 at 21/41 of the counts;")
    print(" tenth: 5 counts at the brightest column; twentieth: 2.5;")
    print(" faults: +-3 px shifts, 0.5 deg angle errors, axis 3 deg, background 3 counts)")
    for r in rows[:1]:
        rc = r["recon"]
        print(
            f"Computed on: {r['device']}; the run's GENFIRE: {rc['iterations']} iterations, "
            f"oversampling {rc['oversampling']}, {rc['interpolation']} interpolation"
        )
    for p, n in MULTISLICE_PX.items():
        print(f"({p}: {n} px, abTEM PRISM multislice, 2 A slices, 40-200 mrad detector)")
    print()
    print(
        "| case | atoms | brightest counts | stage | missed | false | identification error | "
        "RMSD (pm) | follows displacement | mean R-factor | run (s) |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        for stage, s in r["scores"].items():
            rf = r["r_factor_mean"]
            fd = s.get("follows_displacement")
            print(
                f"| {r['case']} | {r['n_atoms']} | {r['brightest_counts']:.0f} | {stage} | "
                f"{s['missed']} | {s['false']} | {s['identification_error_pct']:.2f} % | "
                f"{s['rmsd_pm']:.1f} | {'' if fd is None else f'{fd:.2f}'} | "
                f"{'' if rf is None else f'{rf:.3f}'} | {r['run_s']:.0f} |"
            )
    print()
    stages = list(dict.fromkeys(k for r in rows for k in r["stage_s"]))
    print("| case | " + " | ".join(f"{k} (s)" for k in stages) + " | run (s) |")
    print("|---|" + "---:|" * (len(stages) + 1))
    for r in rows:
        cells = " | ".join(f"{r['stage_s'].get(k, 0):.1f}" for k in stages)
        print(f"| {r['case']} | {cells} | {r['run_s']:.0f} |")
    alloys = [r for r in rows if "species_error_pct" in r["scores"].get("final", {})]
    if alloys:
        print()
        print("| case | stage | wrong element (of matched) | per element: right / wrong / missed |")
        print("|---|---|---:|---|")
        for r in alloys:
            for stage, s in r["scores"].items():
                per = ", ".join(
                    f"{e} {f['right']} / {f['wrong']} / {f['missed']}"
                    for e, f in s["species_found"].items()
                )
                print(f"| {r['case']} | {stage} | {s['species_error_pct']:.2f} % | {per} |")
    print()
    print("| case | tilt-angle error RMS: nominal (deg) | aligned (deg) | corrections kept |")
    print("|---|---:|---:|---:|")
    for r in rows:
        a = r["angles"]
        print(f"| {r['case']} | {a['nominal_rms_deg']:.3f} | {a['aligned_rms_deg']:.3f} | "
              f"{a['corrections_kept']} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
