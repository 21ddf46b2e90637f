"""Every file name a stage writes and every path of a run folder, once.

A stage run on its own (``napari-aet trace --out DIR``) writes the same file names into its
folder as the stage of a run does into ``RUN/trace``; :class:`RunLayout` composes the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The files each stage writes into its own folder (figures go to its ``figures/``).
STAGE_FILES: dict[str, dict[str, str]] = {
    "simulate": {
        "atoms": "truth_atoms.csv",
        "truth": "truth.json",
        "angles": "angles.txt",
        "figure": "figures/tilt_series.png",
    },
    "align": {
        "series": "aligned_tilt_series.h5",
        "series_undenoised": "aligned_tilt_series_undenoised.h5",
        "angles": "aligned_angles.txt",
        "table": "alignment.csv",
        "record": "alignment.json",
    },
    "recon": {
        "tomogram": "tomogram.h5",
        "errors": "recon_errors.csv",
        "record": "recon.json",
        "figure": "figures/recon_errors.png",
    },
    "augment": {
        "tomogram": "tomogram_augmented.h5",
        "record": "augment.json",
        "figure": "figures/augment_slices.png",
    },
    "trace": {
        "atoms": "atoms.csv",
        "atoms_h5": "atoms.h5",
        "candidates": "candidates.csv",
        "record": "trace.json",
        "figure": "figures/trace_histogram.png",
    },
    "refine": {
        "atoms": "atoms.csv",
        "atoms_h5": "atoms.h5",
        "record": "refine.json",
        "figure": "figures/refine_shifts.png",
        "angles": "angles.txt",
    },
    "analyze": {
        "atoms": "atoms.csv",
        "atoms_h5": "atoms.h5",
        "record": "analysis.json",
    },
    "validate": {
        "record": "rfactor.json",
        "projections": "projections.h5",
        "figure": "figures/r_factor.png",
    },
    "precision": {"record": "precision.json", "figure": "figures/deviation_histogram.png"},
}


def stage_file(out, stage: str, key: str) -> Path:
    """The path of a stage's file ``key`` in the folder ``out`` (see :data:`STAGE_FILES`)."""
    return Path(out) / STAGE_FILES[stage][key]


@dataclass(frozen=True)
class RunLayout:
    """The paths of a ``napari-aet run`` output folder.

    ``RUN/<stage>/`` holds each stage's files; ``atoms.csv``, ``analysis.json``,
    ``figures/`` and ``report.html`` at the top gather the results; ``pipeline.json`` and
    ``run.log`` record what ran.
    """

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def file(self, stage: str, key: str) -> Path:
        return stage_file(self.stage_dir(stage), stage, key)

    # the run's own files
    @property
    def pipeline_record(self) -> Path:
        return self.root / "pipeline.json"

    @property
    def log(self) -> Path:
        return self.root / "run.log"

    @property
    def atoms(self) -> Path:
        return self.root / "atoms.csv"

    @property
    def analysis(self) -> Path:
        return self.root / "analysis.json"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    # stage outputs other stages read
    @property
    def aligned_series(self) -> Path:
        return self.file("align", "series")

    @property
    def undenoised_series(self) -> Path | None:
        """The aligned series without the denoiser when one ran
        (``align/aligned_tilt_series_undenoised.h5``; the refine stage's counts), else None."""
        return self.undenoised_beside(self.aligned_series)

    @staticmethod
    def undenoised_beside(aligned) -> Path | None:
        """The counts before the denoiser that the align stage wrote beside ``aligned`` (the
        first series or a dual-axis run's second) when it denoised, else None."""
        plain = Path(aligned).with_name(STAGE_FILES["align"]["series_undenoised"])
        return plain if plain.exists() else None

    @property
    def second_aligned_series(self) -> Path:
        """A dual-axis run's second series, aligned (``align/second/``)."""
        return self.stage_dir("align") / "second" / STAGE_FILES["align"]["series"]

    @property
    def tomogram(self) -> Path:
        return self.file("recon", "tomogram")

    @property
    def augmented_tomogram(self) -> Path:
        return self.file("augment", "tomogram")

    @property
    def traced_atoms(self) -> Path:
        return self.file("trace", "atoms")

    @property
    def refined_atoms(self) -> Path:
        return self.file("refine", "atoms")

    @property
    def analysed_atoms(self) -> Path:
        return self.file("analyze", "atoms")

    @property
    def stage_analysis(self) -> Path:
        return self.file("analyze", "record")

    @property
    def rfactor(self) -> Path:
        return self.file("validate", "record")

    @property
    def projections(self) -> Path:
        return self.file("validate", "projections")

    def outputs(self, stage: str) -> tuple[Path, ...]:
        """What a stage must have left for a resume to skip it."""
        if stage == "figures":
            return (self.figures, self.report)
        keys = {
            "align": ("series",),
            "recon": ("tomogram",),
            "augment": ("tomogram",),
            "trace": ("atoms",),
            "refine": ("atoms",),
            "analyze": ("atoms", "record"),
            "validate": ("record",),
        }[stage]
        return tuple(self.file(stage, k) for k in keys)

    def find_atoms(self) -> Path | None:
        """The run's final atoms (the gathered ``atoms.csv``, else the analysed ones)."""
        return next((p for p in (self.atoms, self.analysed_atoms) if p.exists()), None)

    def find_analysis(self) -> Path | None:
        return next((p for p in (self.analysis, self.stage_analysis) if p.exists()), None)
