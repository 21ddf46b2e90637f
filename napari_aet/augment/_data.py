"""Training data for the U-Net: GENFIRE tomograms of simulated particles and their clean targets.

Follows the study (Lee, Jeong & Yang 2021; the reference study's Methods): 21 simulated ADF
projections (-65 to +65 degrees, Poisson noise at the study's dose, angle errors up to +-0.4
degrees) of a random-shaped fcc (point defects 0-0.5 %, ~22 pm jitter) or amorphous particle
(minimum distance 2 A, 95 % of the fcc density), the potentials blurred by a Gaussian whose
sigma is drawn from N(0.45, 0.11) A; input = GENFIRE (FFT gridding, 100 iterations,
oversampling 2, radius 0.3), target = a 0.45 A Gaussian of peak 1 at every atom.

Beyond the study, so that the network does not only know the project's own renderer at a
friendly dose: each sample may be imaged by another forward model (``forward_models``:
``"project"``, the Kirkland potentials with a Gaussian blur, or ``"independent"``, abTEM's
Lobato potentials with the aberrated probe), at realistic ADF counts drawn per sample
(``peak_counts``: 30-60 at the brightest column is the study's dose) over a background that is
then subtracted as the align stage does, with the align stage's low-pass filter
(``lowpass_diameter_inv_A``), and in a random orientation (``random_orientation``: no crystal
axis along the tilt axis or the beam).

Samples are written to HDF5 shards (``shard-00000.h5`` ...) next to a ``manifest.json`` with
every setting; a shard appears only once complete, so an interrupted run resumes where it
stopped. Generation runs on Dask: a LocalCluster by default, or a running scheduler.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atoms import AtomModel
from ..core.denoise import denoise, dose_denoise_choice
from ..core.elements import parse_elements
from ..core.files import replace_when_done
from ..core.filters import lowpass_filter
from ..core.progress import check_cancel, is_cancelled, report
from ..core.threads import available_cpus
from ..forward import rotation_center_A
from ..recon import genfire
from ..simulate import (
    IndependentImaging,
    apply_point_defects,
    build_structure,
    faulted_particle,
    independent_tilt_series,
    poisson_counts,
    simulate_tilt_series,
    thermal_jitter,
)
from ..simulate._glass import relax_packing
from ..simulate._structures import amorphous_particle
from ._normalise import gaussian_target, normalise_tomogram

#: Structures the generator knows. Every one is built at the nearest-neighbour distance of the
#: fcc lattice constant it is given (``a / sqrt(2)``): hcp with that ``a``, bcc with the cube
#: whose body diagonal holds two such bonds, the multiply twinned particles (five-fold
#: decahedra, Mackay icosahedra) from fcc segments of ``a``, so that the network learns one
#: spacing whatever the packing (the run resamples the data to it, ``bond_length_zoom``).
TRAINING_STRUCTURES = (
    "fcc",
    "faulted",
    "hcp",
    "bcc",
    "decahedron",
    "icosahedron",
    "amorphous",
    "glass",
)

#: Forward models the generator can image a sample with.
FORWARD_MODELS = ("project", "independent")

#: What the generator may do to the images before GENFIRE: "none", or "dose" (the align
#: stage's dose rule).
TRAINING_DENOISE = ("none", "dose")


@dataclass
class TrainingDataSettings:
    """Every parameter of the training-set generator (defaults: the study's, at a smaller box).

    Attributes
    ----------
    structure : str
        One of :data:`TRAINING_STRUCTURES`, or several as a comma list (``"fcc,hcp,bcc"``), one
        drawn per sample (a name given twice is drawn twice as often). ``"faulted"``: fcc
        particles whose (111) layers carry twins and stacking faults at random
        (:func:`napari_aet.simulate.faulted_particle`, a reversal of the stacking at each
        layer with a probability drawn per sample from [0, ``reversal_rate_max``]).
        ``"glass"``: the amorphous packing quenched so that its first shell lies at the fcc
        bond (:func:`napari_aet.simulate._glass.relax_packing`), as in a metallic glass.
    element : str
    lattice_constant_A : float
        fcc lattice constant [A] (Pt: 3.912); its bond ``a / sqrt(2)`` is every structure's
        nearest-neighbour distance (:data:`TRAINING_STRUCTURES`).
    bond_scale_max : float
        Each sample's lattice scaled by a factor drawn uniformly from ``1 +- bond_scale_max``
        (0: every sample at the bond above), so that the network also knows atoms a few
        percent nearer or further apart than its bond (strain, an alloy off Vegard's rule, an
        element table's bond against a particle's own).
    box_px : int
        Image and volume side [voxels]; the study used 256, the default 96 keeps one sample
        at about 10 s on a 2-core CPU.
    pixel_size_A : float
        Pixel (voxel) size [A]; the network only knows atoms at this sampling.
    radius_min_A, radius_max_A : float
        Range of particle radii [A], drawn uniformly.
    shapes : tuple of str
        Particle shapes drawn from (``"blob"``, ``"convex"``, ``"sphere"``).
    vacancy_max : float
        Point-defect fraction drawn uniformly from [0, vacancy_max].
    reversal_rate_max : float
        ``"faulted"``: the largest chance per layer that the stacking reverses.
    jitter_A : float
        Thermal displacement per axis [A].
    min_distance_A, density_fraction : float
        Amorphous particles: smallest distance [A] and number density relative to fcc.
    blur_mean_A, blur_sd_A, blur_min_A : float
        Gaussian blur of the potentials, sigma ~ N(mean, sd) clipped below at ``blur_min_A``.
    n_tilts, angle_min_deg, angle_max_deg : int, float, float
        Nominal tilt angles [degrees].
    angle_error_max_deg : float
        Per-image angle error drawn uniformly from +-this [degrees].
    dose_e_per_A2 : float
        Electron dose per image [e/A^2].
    iterations, oversampling, interpolation_radius : int, float, float
        GENFIRE settings of the input tomogram.
    target_sigma_A : float
        Gaussian width of the target atoms [A].
    device : str
        Where GENFIRE runs (``"auto"``, ``"cpu"``, ``"cuda"``).
    forward_models : tuple of str
        Forward models drawn per sample (:data:`FORWARD_MODELS`): ``"project"`` (the project's
        renderer: Kirkland potentials, Gaussian blur drawn as above) and ``"independent"``
        (abTEM: Lobato potentials, the study's aberrated 300 keV probe with a defocus drawn
        from +-``defocus_max_A``; ``simulate.independent_tilt_series``).
    peak_counts : (float, float) or None
        Mean counts at the brightest column, drawn log-uniformly from this range per sample;
        None: ``dose_e_per_A2`` with the project's renderer (the study's generator). Needed for
        ``"independent"``.
    background_max_counts : float
        With ``peak_counts``: a uniform background drawn from [0, this] counts per pixel,
        added before the Poisson draw and subtracted (its true level) after it.
    lowpass_diameter_inv_A : float or None
        The align stage's low-pass filter applied to the images (the study's 2.08 1/A); None
        leaves them as drawn.
    random_orientation : bool
        Turn each particle by a random rotation about its centre.
    defocus_max_A : float
        ``"independent"``: largest defocus [A] drawn per sample (uniform in +-this).
    denoise : {"none", "dose"}
        With ``peak_counts``: ``"dose"`` applies the align stage's dose rule to each sample's
        counts (``core.denoise.dose_denoise_choice``: BM3D on the Anscombe-transformed images when
        the brightest columns have fewer than ``LOW_COUNTS`` counts), so that the network
        sees at low counts the tomograms of denoised images that ``napari-aet run`` feeds it.
    """

    structure: str = "fcc"
    element: str = "Pt"
    lattice_constant_A: float = 3.912
    box_px: int = 96
    pixel_size_A: float = 0.358
    radius_min_A: float = 6.0
    radius_max_A: float = 11.0
    shapes: tuple = ("blob", "convex")
    vacancy_max: float = 0.005
    reversal_rate_max: float = 0.2
    bond_scale_max: float = 0.0
    jitter_A: float = 0.022
    min_distance_A: float = 2.0
    density_fraction: float = 0.95
    blur_mean_A: float = 0.45
    blur_sd_A: float = 0.11
    blur_min_A: float = 0.2
    n_tilts: int = 21
    angle_min_deg: float = -65.0
    angle_max_deg: float = 65.0
    angle_error_max_deg: float = 0.4
    dose_e_per_A2: float = 1.61e5 / 21
    iterations: int = 100
    oversampling: float = 2.0
    interpolation_radius: float = 0.3
    target_sigma_A: float = 0.45
    device: str = "cpu"
    extra: dict = field(default_factory=dict)
    forward_models: tuple = ("project",)
    peak_counts: tuple | None = None
    background_max_counts: float = 0.0
    lowpass_diameter_inv_A: float | None = None
    random_orientation: bool = False
    defocus_max_A: float = 20.0
    denoise: str = "none"

    def validate(self) -> None:
        names = structure_names(self.structure)
        bad = [n for n in names if n not in TRAINING_STRUCTURES]
        if not names or bad:
            raise ValueError(
                f"unknown training structure {', '.join(bad) or repr(self.structure)}; choose "
                + ", ".join(TRAINING_STRUCTURES)
                + " (or several as a comma list, one drawn per sample)"
            )
        if not 0.0 <= self.bond_scale_max < 0.5:
            raise ValueError(
                f"bond_scale_max is a fraction of the bond in [0, 0.5); got {self.bond_scale_max}"
            )
        if not 0.0 <= self.reversal_rate_max <= 1.0:
            raise ValueError(
                f"reversal_rate_max is a chance per layer, in [0, 1]; got {self.reversal_rate_max}"
            )
        if self.box_px < 32 or self.box_px % 8:
            raise ValueError(f"box_px must be a multiple of 8 and at least 32; got {self.box_px}")
        if not 0 < self.radius_min_A <= self.radius_max_A:
            raise ValueError("need 0 < radius_min_A <= radius_max_A (Angstrom)")
        half_box_A = self.box_px * self.pixel_size_A / 2
        if self.radius_max_A * 1.3 + 2.0 > half_box_A:
            raise ValueError(
                f"particles up to {self.radius_max_A} A do not fit a {self.box_px}-voxel box of "
                f"{self.pixel_size_A} A (half-width {half_box_A:.1f} A): lower radius_max_A "
                f"below {(half_box_A - 2) / 1.3:.1f} A or raise box_px"
            )

        bad = [m for m in self.forward_models if m not in FORWARD_MODELS]
        if not self.forward_models or bad:
            raise ValueError(
                f"unknown forward model(s) {bad or self.forward_models}; choose from "
                + ", ".join(FORWARD_MODELS)
            )
        if self.peak_counts is not None:
            lo, hi = (float(v) for v in self.peak_counts)
            if not 0 < lo <= hi:
                raise ValueError(
                    f"peak_counts must be (low, high) with 0 < low <= high; got {self.peak_counts}"
                )
        elif "independent" in self.forward_models:
            raise ValueError(
                "the independent forward model needs peak_counts (counts at the brightest "
                "column, e.g. (20, 80)); the study's dose in e/A^2 is the project renderer's"
            )
        if self.background_max_counts < 0:
            raise ValueError("background_max_counts must be >= 0")
        if self.denoise not in TRAINING_DENOISE:
            raise ValueError(
                f"unknown denoise {self.denoise!r}; choose " + " or ".join(TRAINING_DENOISE)
            )
        if self.denoise != "none" and self.peak_counts is None:
            raise ValueError(
                "denoise='dose' needs peak_counts: the dose rule judges counts, and without "
                "peak_counts the images are the study's dose in e/A^2"
            )

    def to_json(self) -> dict:
        d = asdict(self)
        d["shapes"] = list(self.shapes)
        d["forward_models"] = list(self.forward_models)
        if self.peak_counts is not None:
            d["peak_counts"] = [float(v) for v in self.peak_counts]
        # settings added after the first shipped weights: left out at their defaults, so that
        # older training sets (and their manifests) keep matching
        defaults = {f.name: f.default for f in fields(self)}
        for k in _ADDED_SETTINGS:
            default = defaults[k]
            if d[k] == (list(default) if isinstance(default, tuple) else default):
                del d[k]
        return d


#: Settings added after the first shipped weights (see ``to_json``).
_ADDED_SETTINGS = (
    "forward_models",
    "peak_counts",
    "background_max_counts",
    "lowpass_diameter_inv_A",
    "random_orientation",
    "defocus_max_A",
    "denoise",
    "reversal_rate_max",
    "bond_scale_max",
)


def structure_names(structure: str) -> list[str]:
    """The structures of a comma list (``"fcc,hcp"``), in order, repeats kept."""
    return [n.strip() for n in str(structure).split(",") if n.strip()]


def draw_structure(names, seed: int) -> str:
    """Sample ``seed``'s structure of ``names`` (each entry as likely, so a name given twice
    is drawn twice as often), from a stream of its own: one name is always itself."""
    if len(names) == 1:
        return names[0]
    return str(np.random.default_rng([int(seed), 2]).choice(list(names)))


def make_training_pair(settings: TrainingDataSettings, seed: int, *, return_atoms=False):
    """One ``(input, target, info)`` sample: normalised GENFIRE tomogram, Gaussian-atom target.

    Both are float32 ``(box, box, box)`` volumes in the simulator's frame (rotation centre at
    voxel ``box // 2``), at ``settings.pixel_size_A``. ``info`` holds the sample's draws. With
    ``return_atoms`` the true positions ``(N, 3)`` [A] come fourth (for test particles).
    """

    settings.validate()
    rng = np.random.default_rng(seed)
    n = settings.box_px
    radius = float(rng.uniform(settings.radius_min_A, settings.radius_max_A))
    shape = str(rng.choice(list(settings.shapes)))
    species = None  # an alloy's element per atom
    extra_info: dict = {}
    # a mixed set's structure and a sample's bond scale come from their own streams, so that
    # the samples of one structure at the set's bond stay what they were
    names = structure_names(settings.structure)
    kind = draw_structure(names, seed)
    a = settings.lattice_constant_A
    if settings.bond_scale_max:
        x = settings.bond_scale_max
        scale = float(np.random.default_rng([int(seed), 3]).uniform(1.0 - x, 1.0 + x))
        a *= scale
        extra_info["bond_scale"] = scale
    if len(names) > 1:
        extra_info["structure"] = kind
    if kind == "faulted":
        vac = float(rng.uniform(0, settings.vacancy_max))
        rate = float(rng.uniform(0.0, settings.reversal_rate_max))
        built = faulted_particle(
            lattice_constant_A=a,
            radius_A=radius,
            shape=shape,
            reversal_rate=rate,
            seed=rng,
        )
        keep = apply_point_defects(len(built.positions), vacancy_fraction=vac, seed=rng)
        pos = built.positions[keep]
        pos = thermal_jitter(pos, sigma_A=settings.jitter_A, seed=rng)
        atoms = pos + rotation_center_A((n, n), settings.pixel_size_A)
        extra_info.update(stacking=built.sequence, reversal_rate=rate)
    elif kind in ("fcc", "hcp", "bcc", "decahedron", "icosahedron"):
        vac = float(rng.uniform(0, settings.vacancy_max))
        bond = a / np.sqrt(2.0)
        if kind == "hcp" and shape not in ("blob", "sphere"):
            shape = "blob"  # an hcp particle has no facet model: the sample's record says so
        built = build_structure(
            kind,
            element=settings.element,
            radius_A=radius,
            # each at the fcc lattice's bond (TRAINING_STRUCTURES)
            lattice_constant_A={"hcp": bond, "bcc": bond * 2.0 / np.sqrt(3.0)}.get(kind, a),
            shape=shape,
            vacancy_fraction=vac,
            jitter_A=settings.jitter_A,
            shape_px=(n, n),
            pixel_size_A=settings.pixel_size_A,
            seed=rng,
        )
        atoms = built.positions
        species = built.features["element"].astype(str).to_numpy()
    else:
        vac = 0.0
        density = settings.density_fraction * 4 / a**3
        pos = amorphous_particle(
            radius_A=radius,
            min_distance_A=settings.min_distance_A * a / settings.lattice_constant_A,
            number_density_per_A3=density,
            shape=shape,
            seed=rng,
        )
        if kind == "glass":
            pos = relax_packing(pos, bond_A=a / np.sqrt(2.0))
        atoms = pos + rotation_center_A((n, n), settings.pixel_size_A)
    blur = max(settings.blur_min_A, float(rng.normal(settings.blur_mean_A, settings.blur_sd_A)))
    angles = np.linspace(settings.angle_min_deg, settings.angle_max_deg, settings.n_tilts)
    errors = rng.uniform(-settings.angle_error_max_deg, settings.angle_error_max_deg, angles.size)
    # the draws added after the study's generator come from their own stream, so that samples
    # made with the study's settings stay what they were
    more = np.random.default_rng([int(seed), 1])
    elements = parse_elements(settings.element)
    if len(elements) == 1:
        species = elements[0]
    elif species is None:  # an amorphous alloy: each atom's element drawn, equal fractions
        species = more.choice(np.asarray(elements), size=len(atoms))
    center = rotation_center_A((n, n), settings.pixel_size_A)
    if settings.random_orientation:
        from scipy.spatial.transform import Rotation

        turn = Rotation.random(random_state=int(more.integers(2**31)))
        atoms = turn.apply(np.asarray(atoms, np.float64) - center) + center
        extra_info["orientation_quat"] = turn.as_quat().tolist()
    model = str(more.choice(list(settings.forward_models)))
    peak = bg = None
    if settings.peak_counts is not None:
        lo, hi = (float(v) for v in settings.peak_counts)
        peak = float(np.exp(more.uniform(np.log(lo), np.log(hi))))
        bg = float(more.uniform(0.0, settings.background_max_counts))
    if model == "independent":
        defocus = float(more.uniform(-settings.defocus_max_A, settings.defocus_max_A))
        ind = independent_tilt_series(
            atoms,
            species,
            angles + errors,
            pixel_size_A=settings.pixel_size_A,
            shape_px=(n, n),
            imaging=IndependentImaging(defocus_A=defocus, peak_counts=peak, background_counts=0),
            seed=int(more.integers(2**31)),
        )
        signal = ind.signal
        extra_info["defocus_A"] = defocus
    else:
        ts = simulate_tilt_series(
            atoms if isinstance(species, str) else _with_species(atoms, species),
            angles + errors,
            pixel_size_A=settings.pixel_size_A,
            shape_px=(n, n),
            blur_sigma_A=blur,
            element=elements[0],  # the counts' scale: an isolated atom of the heaviest
            dose_e_per_A2=None if peak is not None else settings.dose_e_per_A2,
            seed=rng,
        )
        signal = ts.data
    if peak is not None:
        counts, _ = poisson_counts(signal, more, peak_counts=peak, background_counts=bg)
        data = counts - bg  # the align stage subtracts the background it fits; here it is known
        extra_info.update(peak_counts=peak, background_counts=bg)
        if settings.denoise == "dose":  # as the align stage: judged on the counts, applied
            method, _ = dose_denoise_choice(counts)  # to the background-subtracted images
            if method:
                data, method = denoise(data, method=method, noise="poisson")
            extra_info["denoised"] = method or "none"
    else:
        data = signal
    if settings.lowpass_diameter_inv_A:
        data = lowpass_filter(
            data,
            pixel_size_A=settings.pixel_size_A,
            cutoff_diameter_inv_A=settings.lowpass_diameter_inv_A,
        )
    # the reconstruction uses the nominal angles: the errors stay in the input, as in an experiment
    rec = genfire(
        data,
        angles,
        iterations=settings.iterations,
        oversampling=settings.oversampling,
        interpolation="fft",
        interpolation_radius=settings.interpolation_radius,
        rfree_fraction=0.0,
        device=settings.device,
    )
    x = normalise_tomogram(rec.volume, voxel_size_A=settings.pixel_size_A)
    y = gaussian_target(
        atoms, (n, n, n), voxel_size_A=settings.pixel_size_A, sigma_A=settings.target_sigma_A
    )
    info = {
        "seed": int(seed),
        "radius_A": radius,
        "shape": shape,
        "vacancy_fraction": vac,
        "blur_sigma_A": blur,
        "n_atoms": int(len(atoms)),
        "angle_errors_deg": errors.tolist(),
        "forward_model": model,
        **extra_info,
    }
    if return_atoms:
        return x, y, info, np.asarray(atoms, np.float64)
    return x, y, info


def _with_species(positions, species) -> AtomModel:
    """Atoms with an ``element`` feature (what the project's renderer takes an alloy as)."""
    return AtomModel(np.asarray(positions), pd.DataFrame({"element": np.asarray(species)}))


def _shard_path(out: Path, k: int) -> Path:
    return out / f"shard-{k:05d}.h5"


def write_shard(path: Path, settings: TrainingDataSettings, seeds) -> str:
    """Make the samples of ``seeds`` and write them to one HDF5 shard (atomically)."""
    import h5py
    import torch

    torch.set_num_threads(1)  # one sample per worker process; workers share the cores
    xs, ys, infos = [], [], []
    for s in seeds:
        x, y, info = make_training_pair(settings, int(s))
        xs.append(x.astype(np.float16))
        ys.append(y.astype(np.float16))
        infos.append(info)

    def write(tmp):
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("input", data=np.stack(xs), chunks=(1, *xs[0].shape))
            h5.create_dataset("target", data=np.stack(ys), chunks=(1, *ys[0].shape))
            h5.attrs["voxel_size_A"] = settings.pixel_size_A
            h5.attrs["settings"] = json.dumps(settings.to_json())
            h5.attrs["samples"] = json.dumps(infos)

    replace_when_done(path, write)
    return str(path)


def generate_training_set(
    out_dir,
    *,
    n_samples: int,
    settings: TrainingDataSettings | None = None,
    samples_per_shard: int = 4,
    seed: int = 0,
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress=None,
    cancel=None,
) -> list[Path]:
    """Generate (or complete) a training set of ``n_samples`` pairs in HDF5 shards.

    Parameters
    ----------
    out_dir : path
        Folder of the shards and ``manifest.json``. An existing set with other settings is
        refused (use another folder); finished shards are kept, so a rerun resumes.
    n_samples : int
        Number of input/target pairs.
    settings : TrainingDataSettings
    samples_per_shard : int
        Samples per HDF5 file.
    seed : int
        Sample ``i`` uses seed ``seed * 1_000_003 + i``: sets with different seeds do not
        share samples.
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler; default a LocalCluster.
    n_workers : int, optional
        LocalCluster worker processes (default: the CPU count, one thread each); ``0`` runs
        in this process without Dask.
    progress, cancel
        Progress callback per finished shard and cancel flag (checked between shards).

    Returns
    -------
    list of Path
        Every shard of the set.
    """
    settings = settings or TrainingDataSettings()
    settings.validate()
    if n_samples < 1 or samples_per_shard < 1:
        raise ValueError("n_samples and samples_per_shard must be at least 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "settings": settings.to_json(),
        "samples_per_shard": samples_per_shard,
        "seed": seed,
    }
    mpath = out / "manifest.json"
    if mpath.exists():
        old = json.loads(mpath.read_text())
        if {k: old.get(k) for k in manifest} != manifest:
            raise ValueError(
                f"{out} holds a training set made with other settings; choose a new folder "
                "or delete it"
            )
    mpath.write_text(json.dumps({**manifest, "n_samples": n_samples}, indent=2))
    n_shards = -(-n_samples // samples_per_shard)
    jobs = {}
    for k in range(n_shards):
        lo, hi = k * samples_per_shard, min(n_samples, (k + 1) * samples_per_shard)
        jobs[k] = [seed * 1_000_003 + i for i in range(lo, hi)]
    todo = [k for k in jobs if not _shard_path(out, k).exists()]
    done = n_shards - len(todo)
    report(progress, done, n_shards, f"{done} of {n_shards} shards already there")
    if todo and n_workers == 0 and scheduler is None:
        for k in todo:
            check_cancel(cancel, "training-data generation")
            write_shard(_shard_path(out, k), settings, jobs[k])
            done += 1
            report(progress, done, n_shards, f"shard {k}")
    elif todo:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=n_workers or available_cpus(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
            )
        client = Client(cluster if cluster is not None else scheduler)
        try:
            futures = [
                client.submit(write_shard, _shard_path(out, k), settings, jobs[k], pure=False)
                for k in todo
            ]
            for fut in as_completed(futures):
                fut.result()  # a failed sample raises here, finished shards stay
                done += 1
                report(progress, done, n_shards, Path(fut.result()).name)
                if is_cancelled(cancel):
                    client.cancel(futures)
                    check_cancel(cancel, "training-data generation")
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return [_shard_path(out, k) for k in range(n_shards)]
