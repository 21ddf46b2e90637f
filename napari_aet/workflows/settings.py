"""One frozen settings dataclass per stage: the only home of the defaults.

The command line builds these from its options (its option defaults are read from here), the
widgets read their starting values from here, and the pipeline keys its resume on them. A
misspelt field is a ``TypeError``, not an ignored key. Change a setting with
:func:`dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..align import STUDY_LOWPASS_INV_A
from ..core.elements import parse_elements, tracer_min_distance_A
from ..forward import WEIGHTINGS

#: What the refine stage may do with the aligned series without the denoiser
#: (:attr:`PositionRefineSettings.counts`).
REFINE_COUNTS = ("auto", "judge", "fit", "ignore")

#: The study's dose: 1.61e5 e/A^2 over 21 images.
STUDY_DOSE_PER_IMAGE = 1.61e5 / 21


def settings_dict(settings) -> dict:
    """A settings dataclass as a JSON-ready dict (for records and resume keys)."""
    return asdict(settings)


@dataclass(frozen=True)
class SeriesSource:
    """How to read a tilt series: the file and what it may lack (angles, pixel size)."""

    path: str
    angles: str | None = None  # a file (.tlt/.rawtlt/.txt) or a list/range in degrees
    pixel_size_A: float | None = None
    dataset: str | None = None  # HDF5 / .mat variable
    fill_nans: bool = False
    # images left out, by their index in the file (0 = the first): an image out of focus, hit
    # by the beam's drift or blocked by the grid at high tilt
    exclude: tuple[int, ...] = ()
    # several frames per tilt (:func:`napari_aet.align.register_frames`): the order the rows
    # were scanned in ("down": row 0 first; "none": shifts only, no scan distortion
    # correction) and the frame period over one frame's scan time
    scan_direction: str = "down"
    frame_interval: float = 1.0
    # of a GENFIRE-convention file merging tilt series turned about the beam: the one to read
    # (``read_tilt_series(phi_group=...)``); None: a file of one series
    phi_group: int | None = None


@dataclass(frozen=True)
class VolumeSource:
    """How to read a tomogram: the file, its dataset and (when it lacks one) the voxel size."""

    path: str
    dataset: str | None = None
    voxel_size_A: float | None = None


@dataclass(frozen=True)
class SimulateSettings:
    """A simulated particle and its ADF-STEM tilt series (``napari-aet simulate``)."""

    sample: bool = False  # the built-in twinned Pt nanodumbbell (the rest is ignored)
    structure: str = "twinned dumbbell"
    element: str = "Pt"  # or several ("Pt,Ni") for a random alloy
    composition: str | None = None  # the alloy's atom fractions, e.g. "0.5,0.5"
    lattice_constant_A: float | None = None
    radius_A: float = 15.0
    shape: str = "blob"
    vacancy_fraction: float = 0.0
    jitter_A: float = 0.022
    angles: str = "-70:70:7"
    pixel_size_A: float = 0.358
    size_px: int = 256
    blur_sigma_A: float = 0.45
    dose_e_per_A2: float = STUDY_DOSE_PER_IMAGE  # per image; 0 = no noise
    angle_error_deg: float = 0.0
    shift_error_px: float = 0.0
    tilt_axis_angle_deg: float = 0.0
    seed: int = 0
    format: str = "h5"
    figure: bool = True


@dataclass(frozen=True)
class AlignSettings:
    """Preprocessing and alignment (``napari-aet align``, the Align widget, the run's align)."""

    background: str = "plane"  # "plane", "offset" or "none"
    denoise: str = "dose"  # "dose" (only low-count raw series), "none", "auto", "bm3d", "nlmeans"
    # "poisson": counts; a series in a detector's units (not integers) is converted to counts
    # by its measured gain first (napari_aet.core.counts); "gaussian" leaves the units
    noise: str = "poisson"
    lowpass_diameter_inv_A: float = STUDY_LOWPASS_INV_A  # 0 = off
    lowpass_edge_inv_A: float = 0.05
    center_of_mass: bool = True
    common_line: bool = True
    tilt_axis: str = "estimate"  # "estimate", "none" (vertical) or an angle in degrees
    projection_matching: bool = True  # refine shifts (and angles) against reconstructions
    refine_angles: bool = True
    angle_method: str = "model"  # "model" or "tomogram"
    model_weights: str | None = None  # U-Net weights for the model method's tracing
    element: str = "Pt"  # the model method's tracer (its minimum distance follows the element)
    rounds: int = 3
    recon_iterations: int = 20
    # "auto": cut the images to a box around the particle when it is at most 3/4 of their
    # side (napari_aet.align.particle_crop); "none"; or the box's side in pixels
    crop: str = "auto"
    device: str = "auto"

    @classmethod
    def preprocess_only(cls, **kw) -> AlignSettings:
        """For a series that arrives aligned: background and low-pass only, no shifts, no
        tilt-axis turn, no angle changes."""
        return cls(
            center_of_mass=False,
            common_line=False,
            tilt_axis="none",
            projection_matching=False,
            **kw,
        )

    def crop_value(self):
        """``"auto"``, ``None`` (no crop) or the box's side [px] as an int."""
        if self.crop in ("auto", "none"):
            return None if self.crop == "none" else "auto"
        try:
            side = int(self.crop)
        except ValueError:
            side = 0
        if side < 16:
            raise ValueError(
                f"crop {self.crop!r}: give 'auto', 'none' or the box's side in pixels (16 or more)"
            )
        return side

    def tilt_axis_value(self):
        """``"estimate"``, ``None`` (vertical) or the given angle [deg] as a float."""
        if self.tilt_axis in ("estimate", "none"):
            return None if self.tilt_axis == "none" else "estimate"
        try:
            return float(self.tilt_axis)
        except ValueError as err:
            raise ValueError(
                f"tilt axis {self.tilt_axis!r}: give 'estimate', 'none' or an angle in degrees"
            ) from err


#: What the pipeline's recon stage reconstructs when the align stage denoised the series
#: (:class:`ReconSettings` ``series``): the aligned counts before the denoiser, or the
#: denoised series. The denoiser (BM3D, patch-based) paints a plausible lattice where the
#: counts are few, and where a crystal is not the same everywhere it can paint the wrong one:
#: a twinned Pt dumbbell at a third of the study's counts (256 px, 2,368 atoms; abTEM series)
#: came out of GENFIRE on the denoised series with a patch of one (111) layer at the neck on
#: the wrong stacking sites (33 of its 154 atoms missed and 41 false, 1.6 A off: the
#: stacking shift), which the counts reconstruct right (1 missed, 11 false there); the U-Net
#: then cleans the counts' noisier tomogram (docs/benchmarks.md, thirty-fourth session).
#: ``"auto"`` (the default) takes the counts for a run of one element and the denoised series
#: for an alloy (:func:`recon_series_for`): the faint atoms of a light element beside heavy
#: ones stand out of the denoised series' tomogram, and the counts' noisier one hides them
#: from the U-Net (independent Fe-Pt series at the study's counts, a third of them and with
#: acquisition faults: 9.0, 12.2 and 10.8 % wrong atoms from the counts, 3.5, 9.2 and 6.4 %
#: from the denoised series; docs/benchmarks.md, forty-fourth session), and also for one
#: element when the series has fewer than :data:`FAINT_COUNTS` at its brightest columns.
RECON_SERIES = ("auto", "counts", "denoised")
#: Counts at the brightest columns (background included) below which ``"auto"`` reconstructs
#: the denoised series for one element too: there the counts' Poisson noise is more than a
#: third of the brightest column's signal, and their tomogram more noise than atoms (raw
#: GENFIRE of an independent Co series at 6 counts traced 78 % of its atoms wrong). On
#: independent 128-px series at a tenth of the study's counts (6-8 at the brightest columns;
#: docs/benchmarks.md, forty-eighth session) the denoised series' tomogram took the final
#: error of a Ru particle from 39.9 to 13.4 %, a Co one from 48.8 to 24.4 %, a twinned Pt
#: dumbbell from 1.75 to 0.35 % and a bcc Fe one from 1.64 to 0.99 % (ten particles: the
#: RMSD lower in all ten, a few false atoms more on W and Au), where the counts' was as good
#: or better at a third of the counts (10-18: the dumbbell's stacking above).
FAINT_COUNTS = 10.0


@dataclass(frozen=True)
class ReconSettings:
    """GENFIRE reconstruction (``napari-aet recon``, the Reconstruct widget)."""

    iterations: int = 100
    oversampling: float = 2.0
    interpolation: str = "fft"
    interpolation_radius: float | None = None  # default 0.3 (fft) / 0.1 (dft)
    support: str = "auto"  # "auto", "box" or a mask file
    positivity: bool = True
    rfree_fraction: float = 0.05
    device: str = "auto"
    format: str = "h5"
    # dual-axis: the second series' in-plane turn [deg]; None = measured from the images
    second_axis_rotation_deg: float | None = None
    # which aligned series the pipeline reconstructs when the align stage denoised it:
    # "auto" (the counts for one element, the denoised series for several), "counts" (the
    # aligned counts before the denoiser) or "denoised" (``RECON_SERIES``)
    series: str = "auto"

    def __post_init__(self):
        if self.series not in RECON_SERIES:
            raise ValueError(
                f"recon series {self.series!r}: choose " + " or ".join(map(repr, RECON_SERIES))
            )


def recon_series_for(series: str, element: str, brightest_counts: float | None = None) -> str:
    """``"counts"`` or ``"denoised"``: what a run of ``element`` (one or several, ``"Fe,Pt"``)
    reconstructs when its align stage denoised the series, ``series`` being the recon
    settings' choice; ``"auto"`` (the default) resolved by the elements and the series'
    ``brightest_counts`` (the align stage's record; :data:`RECON_SERIES`,
    :data:`FAINT_COUNTS`)."""
    if series != "auto":
        return series
    if len(parse_elements(element)) > 1:
        return "denoised"
    faint = brightest_counts is not None and brightest_counts < FAINT_COUNTS
    return "denoised" if faint else "counts"


def recon_series_note(series: str, element: str, brightest_counts: float | None = None) -> str:
    """One line on which aligned series a denoised run reconstructed, and why
    (:func:`recon_series_for`)."""
    got = recon_series_for(series, element, brightest_counts)
    what = {
        "counts": "the aligned counts before the denoiser",
        "denoised": "the denoised aligned series",
    }[got]
    if series != "auto":
        why = f"--recon-series {series}"
    elif got == "denoised" and len(parse_elements(element)) > 1:
        why = ("several elements: the faintest element's atoms stand out of it and can sink "
               "into the counts' noise; --recon-series counts takes the other")  # fmt: skip
    elif got == "denoised":
        why = (f"{brightest_counts:.0f} counts at the brightest columns (< {FAINT_COUNTS:.0f}): "
               "the counts' tomogram would be more noise than atoms; --recon-series counts "
               "takes the other")  # fmt: skip
    else:
        why = ("one element: a denoiser can paint the wrong lattice where a crystal changes; "
               "--recon-series denoised takes the other")  # fmt: skip
    return f"GENFIRE reconstructed {what} ({why})"


@dataclass(frozen=True)
class AugmentSettings:
    """The 3D U-Net (``napari-aet augment``)."""

    # "auto" ("alloy" for several elements, else "fcc"), "fcc", "amorphous", "alloy", a file
    weights: str = "auto"
    element: str | None = None
    tile_px: int = 96
    overlap_px: int = 16
    device: str = "auto"


@dataclass(frozen=True)
class TraceSettings:
    """Atom tracing (``napari-aet trace``, the Trace widget)."""

    smooth_sigma_A: float = 0.3
    min_distance_A: float | None = None  # default: from the element's bond (2.0 A for Pt)
    integration_radius_A: float = 0.8
    threshold: str = "auto"  # "auto", "otsu" or a number
    max_rounds: int = 3
    element: str = "Pt"  # or several for an alloy ("Pt,Ni"): atoms classed by intensity

    def min_distance_value(self) -> float:
        """The minimum distance [A]: as given, else from the element(s)."""
        if self.min_distance_A is not None:
            return float(self.min_distance_A)
        return tracer_min_distance_A(self.element)

    def threshold_value(self):
        """``"auto"``, ``"otsu"`` or the threshold as a float."""
        if self.threshold in ("auto", "otsu"):
            return self.threshold
        try:
            return float(self.threshold)
        except ValueError as err:
            raise ValueError("the threshold must be 'auto', 'otsu' or a number") from err


@dataclass(frozen=True)
class PositionRefineSettings:
    """Position refinement of traced atoms against the aligned images (``napari-aet refine``;
    not to be confused with the alignment's projection matching)."""

    iterations: int = 60
    refine_geometry: bool = False
    # let the images add rejected tracer candidates and remove traced atoms (by their refined
    # amplitude; needs the tracer's candidates.csv)
    add_remove: bool = True
    # with add_remove: a second pass tries atoms where a tomogram of the residual images
    # (measured minus the refined model) shows density no candidate covered
    residual_pass: bool = True
    # with residual_pass: then up to two passes try the empty sites of the atoms' own lattice
    # (bonds continued one step: napari_aet.trace._trials.site_trials), which join at the bar
    # a traced atom stays at, and of two atoms too close to both be there the one off the
    # lattice goes (three faulted 256-px dumbbells at a third: 7.98 / 1.50 / 0.78 % ->
    # 6.00 / 1.04 / 0.17 %)
    site_pass: bool = True
    # what the aligned series without the denoiser (the align stage writes it when a denoiser
    # ran) is for: "judge" fits the positions to the denoised series and judges which atoms
    # stay, join or go on the counts; "fit" fits everything to the counts; "ignore" uses the
    # denoised series alone; "auto" judges on the counts and fits the positions to whichever
    # series placed a replicate's atoms better (a parametric bootstrap through the align
    # stage's denoiser). Measured at a third of the study's counts (docs/benchmarks.md): a
    # sharp PRISM multislice particle "ignore" 16.7 %, "fit" 0.00 %, "judge" 0.00 %; an
    # incoherent 2,376-atom dumbbell "fit" cost the RMSD (25.1 against 12.6 pm), an amorphous
    # Pt particle "judge" did (24.1 against 16.9 pm); "auto" chose right on both. BM3D's
    # positions recover only 28-55 % of the atoms' own random displacements from their sites
    # (the counts' all); when the denoised series wins, the smooth part of what the counts
    # move the atoms by is added back (a smooth strain field: 71 -> 101 %): "fit" when
    # per-atom displacements matter (docs/methods.md)
    counts: str = "auto"
    # how the fits weigh the pixels: "uniform" (plain least squares) or "variance" (by the
    # inverse of a noise variance fitted to grow with the signal, as counting noise does;
    # 0.1-0.5 pm better on most independent series, see napari_aet.trace._refine.WEIGHTING)
    weighting: str = "uniform"
    # when the fit is refused for its poor correlation with the counts alone, or a glass's
    # passes with one below napari_aet.trace._held_out.HELD_OUT_CORRELATION: refine on
    # every other image and keep the refinement only if it predicts the held-out images
    # better than the traced atoms (HELD_OUT_T; a glass's unless it predicts them clearly
    # worse); else the counts judge the traced atoms. At a
    # tenth of the study's counts: an amorphous Pt particle 48 -> 11 %, a Pt glass 7.8 -> 5.9 %
    held_out: bool = True
    # one element: fit the final positions once more with their bonds restrained, at the
    # prior bond-length spread (20, 10 or 5 pm) that the images held out of each half's fit
    # choose, or not at all (napari_aet.trace._restrained: a twinned Pt dumbbell at a third
    # of the counts 23.4 -> 7.5 pm)
    restraints: bool = True
    # measure the tilt angles once more with the refined atoms and, where established
    # corrections move the atoms at the particle's radius by more than 5 pm, refine again at
    # the corrected angles (napari_aet.trace._angle_check: a 10,862-atom particle whose
    # alignment could not establish its angles, 0.42 -> 0.07 deg RMS)
    check_angles: bool = True
    element: str = "Pt"  # several (an alloy): each atom's species from its refined amplitude
    device: str = "auto"

    def __post_init__(self):
        if self.counts not in REFINE_COUNTS:
            raise ValueError(
                f"counts={self.counts!r}: choose one of {', '.join(REFINE_COUNTS)} (what the "
                "refine stage does with the aligned series without the denoiser)"
            )
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"weighting={self.weighting!r}: choose one of {', '.join(WEIGHTINGS)} (how the "
                "refine stage's fits weigh the pixels)"
            )


@dataclass(frozen=True)
class AnalyzeSettings:
    """Structure analysis (``napari-aet analyze``, the Structure and Strain widgets)."""

    element: str = "Pt"
    lattice_constant_A: float | None = None  # default: the element's
    cutoff_A: float | None = None  # Q4/Q6 cutoff; default 3.416 A scaled to the lattice
    strain: bool = True
    strain_frame: str = "lab"
    orr_table: str | None = None
    structure: str = "auto"  # "auto" (by the layering), "crystalline" or "amorphous"


@dataclass(frozen=True)
class ValidateSettings:
    """R-factors of an atom model against the aligned series (``napari-aet validate``)."""

    element: str = "Pt"
    # the forward projections' Gaussian broadening [A]; None: fitted to the images (the width
    # that minimises the mean R-factor, the field's B factor; the R-factor at the study's
    # 0.45 A is recorded beside it)
    blur_sigma_A: float | None = None
    shared_scale: bool = False


@dataclass(frozen=True)
class PrecisionSettings:
    """Precision analysis (``napari-aet precision``): the study's beam settings as defaults."""

    simulator: str = "multislice"  # or "kirkland"
    element: str = "Pt"
    weights: str | None = None
    refine_positions: bool = True
    iterations: int = 100
    energy_keV: float = 300.0
    semiangle_mrad: float = 25.1
    c3_A: float = -775e1
    c5_A: float = 378e4
    detector_inner_mrad: float = 40.0
    detector_outer_mrad: float = 200.0
    frozen_phonons: int = 8
    slice_thickness_A: float = 2.0
    potential_sampling_A: float | None = None
    device: str = "auto"


@dataclass(frozen=True)
class FiguresSettings:
    """Figures and the HTML report of a finished run (``napari-aet figures``)."""

    figures: tuple[str, ...] | None = None  # None: every figure the data allows
    formats: tuple[str, ...] = ("png", "svg", "pdf")
    dpi: int = 300
    strain_component: str = "exx"
    center_layer: int | None = None
    report: bool = True


@dataclass(frozen=True)
class RunSettings:
    """The whole pipeline (``napari-aet run``). ``augment=None`` traces the raw GENFIRE
    tomogram; ``refine=None`` analyses the traced positions as they are."""

    align: AlignSettings = field(default_factory=AlignSettings)
    recon: ReconSettings = field(default_factory=ReconSettings)
    augment: AugmentSettings | None = field(default_factory=AugmentSettings)
    trace: TraceSettings = field(default_factory=TraceSettings)
    refine: PositionRefineSettings | None = field(default_factory=PositionRefineSettings)
    analyze: AnalyzeSettings = field(default_factory=AnalyzeSettings)
    validate: ValidateSettings = field(default_factory=ValidateSettings)
    figures: FiguresSettings = field(default_factory=FiguresSettings)

    @classmethod
    def for_element(cls, element: str = "Pt", *, device: str = "auto", **stages) -> RunSettings:
        """Settings with the element (and device) set in every stage that uses them; other
        stage settings by keyword (``align=AlignSettings(...)``, ``augment=None``, ...)."""
        from dataclasses import replace

        base = cls(**stages)
        kw = {}
        for f in fields(cls):
            s = getattr(base, f.name)
            if s is None:
                kw[f.name] = None
                continue
            names = {g.name for g in fields(s)}
            upd = {}
            if "element" in names:
                upd["element"] = element
            if "device" in names:
                upd["device"] = device
            kw[f.name] = replace(s, **upd)
        return cls(**kw)

    def stages(self) -> tuple[str, ...]:
        """The stages this run goes through, in order."""
        skip = {"augment"} if self.augment is None else set()
        if self.refine is None:
            skip.add("refine")
        return tuple(s for s in STAGES if s not in skip)


#: Every stage of a run, in order.
STAGES = ("align", "recon", "augment", "trace", "refine", "analyze", "validate", "figures")
