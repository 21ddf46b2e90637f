"""What every stage shares: its result record, provenance, JSON writing and the loading of
its inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import __version__
from ..align import register_frames
from ..core.atoms import AtomModel
from ..core.elements import parse_elements
from ..core.files import replace_when_done
from ..core.threads import current_threads
from ..io import (
    TiltSeries,
    read_atoms,
    read_tilt_series,
    read_volume,
)
from .settings import (
    SeriesSource,
    TraceSettings,
    VolumeSource,
    settings_dict,
)


@dataclass
class StageResult:
    """What a stage did: its record (also written as JSON), the files it wrote (relative to its
    folder), a one-line summary and any notes for the user."""

    stage: str
    record: dict
    written: list[str] = field(default_factory=list)
    message: str = ""
    notes: list[str] = field(default_factory=list)


def _provenance(stage: str, settings, **inputs) -> dict:
    return {
        "napari_aet_version": __version__,
        "command": stage,
        "cpu_threads": current_threads(),
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in inputs.items()},
        "settings": settings_dict(settings),
    }


def write_json(path, data: dict) -> None:
    """Write JSON (numpy values as numbers, anything else as text) so that a kill never leaves
    a half-written file over the previous one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_when_done(
        path, lambda t: t.write_text(json.dumps(data, indent=2, default=_json_default))
    )


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    return str(x)


def _save_figure(fig, out: Path, rel: str) -> str:
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # noqa: BLE001 - a Figure made without pyplot needs no closing
        pass
    return rel


def _atoms_in(atoms) -> tuple[AtomModel, str | None]:
    """An atom model given as a model or a file, and the file's name for the record."""
    if isinstance(atoms, AtomModel):
        return atoms, None
    return read_atoms(atoms), str(atoms)


def _folder(out) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def registered_frames(
    ts: TiltSeries, scan_direction="down", frame_interval=1.0, progress=None, cancel=None
):
    """A series read with several frames per tilt (``ts.data`` 4D) as one image per tilt:
    the frames registered, the drift's scan distortion undone and added
    (:func:`napari_aet.align.register_frames`); ``metadata["frames"]`` gets the record."""
    if ts.data.ndim != 4:
        raise ValueError(f"{ts.source} holds one image per tilt: no frames to register")
    reg = register_frames(
        ts.data,
        frame_interval=frame_interval,
        scan_direction=scan_direction,
        progress=progress,
        cancel=cancel,
    )
    meta = dict(ts.metadata)
    meta["frames"] = {**(meta.get("frames") or {}), **reg.record()}
    return replace(ts, data=reg.data, metadata=meta)


def frames_note(metadata) -> str:
    """What the status line says about a series' registered frames, or ``""``."""
    fr = (metadata or {}).get("frames")
    if not fr or "drift_px_per_frame_max" not in fr:
        return ""
    how = "shifts and scan distortion" if fr["scan_distortion_corrected"] else "shifts only"
    return (
        f"{fr['frames_per_image']} frames per image registered ({how}): drift up to "
        f"{fr['drift_px_per_frame_max']:.2f} px per frame (median "
        f"{fr['drift_px_per_frame_median']:.2f})"
    )


def load_series(
    source: SeriesSource | str | Path, *, need_pixel_size: bool = True, progress=None
) -> TiltSeries:
    """Read a tilt series and make sure it has angles (and a pixel size); several frames per
    tilt are registered and added (:func:`registered_frames`)."""
    if not isinstance(source, SeriesSource):
        source = SeriesSource(str(source))
    ts = read_tilt_series(
        source.path,
        dataset=source.dataset,
        angles=source.angles,
        pixel_size_A=source.pixel_size_A,
        nan_policy="fill" if source.fill_nans else "raise",
        keep_frames=True,
        phi_group=source.phi_group,
    )
    if ts.data.ndim == 4:
        ts = registered_frames(ts, source.scan_direction, source.frame_interval, progress)
    if ts.angles_deg is None:
        raise ValueError(
            f"{source.path} carries no tilt angles and has no sidecar .tlt file; pass --angles "
            "FILE or --angles -70:70:7"
        )
    if need_pixel_size and ts.pixel_size_A is None:
        raise ValueError(f"{source.path} carries no pixel size; pass --pixel-size (Angstrom)")
    return without_dead_lines(ts, source.exclude)


def parse_image_indices(text: str) -> tuple[int, ...]:
    """Image indices as an analyst types them, ``"12, 15"`` or ``"12 15"`` -> ``(12, 15)``;
    ``""`` -> ``()``. Raises ValueError naming the text for anything else."""
    parts = [v for v in str(text).replace(",", " ").split() if v]
    try:
        return tuple(int(v) for v in parts)
    except ValueError:
        raise ValueError(
            f"{text!r}: give image indices separated by commas, e.g. 12,15 (0 = the first image)"
        ) from None


def left_out_indices(exclude) -> list[int]:
    """The images to leave out as :func:`without_images` records them and the align stage's
    key holds them: each index once, as ``int``, in order."""
    return sorted({int(i) for i in exclude})


#: Fewest images a series may keep after some are left out (:func:`without_images`).
MIN_IMAGES_KEPT = 3


def without_dead_lines(ts: TiltSeries, exclude=()) -> TiltSeries:
    """``ts`` without the images an analyst left out (``exclude``) and those with scan lines
    that recorded nothing (:func:`napari_aet.align.dead_scan_lines`: a band of lines of one
    value inside the image; taken as data it says the specimen is empty there), the reasons
    in ``metadata["excluded_images"]["reasons"]``."""
    from ..align import dead_lines_reason, dead_scan_lines

    dead = dead_scan_lines(ts.data) if ts.data.ndim == 3 else {}
    if not dead and not exclude:
        return ts
    reasons = {int(i): dead_lines_reason(b) for i, b in dead.items()}
    for i in exclude:
        reasons.setdefault(int(i), "left out by the analyst")
    return without_images(ts, sorted(reasons), reasons=reasons)


def without_images(ts: TiltSeries, exclude, *, reasons: dict | None = None) -> TiltSeries:
    """``ts`` without the images at the indices ``exclude`` (0 = the first image of the file),
    which ``metadata["excluded_images"]`` records with their angles (and ``reasons``, image
    index -> why, when given).

    Raises
    ------
    ValueError
        For an index outside the series, or when fewer than :data:`MIN_IMAGES_KEPT` images
        would be left.
    """
    n = ts.n_tilts
    drop = left_out_indices(exclude)
    bad = [i for i in drop if not 0 <= i < n]
    if bad:
        raise ValueError(
            f"cannot leave out image(s) {bad}: the series has {n} images, indexed 0 to {n - 1} "
            "(0 = the first in the file)"
        )
    keep = np.setdiff1d(np.arange(n), drop)
    if len(keep) < MIN_IMAGES_KEPT:
        raise ValueError(
            f"leaving out {len(drop)} of {n} images keeps {len(keep)}: a tilt series needs at "
            f"least {MIN_IMAGES_KEPT}"
        )
    angles = None if ts.angles_deg is None else np.asarray(ts.angles_deg)
    meta = dict(ts.metadata)
    meta["excluded_images"] = {
        "indices": drop,
        "angles_deg": None if angles is None else [float(angles[i]) for i in drop],
        "n_images_in_file": n,
    }
    if reasons:
        meta["excluded_images"]["reasons"] = {str(i): reasons[i] for i in drop if i in reasons}
    return replace(
        ts,
        data=ts.data[keep],
        angles_deg=None if angles is None else angles[keep],
        metadata=meta,
    )


def file_image_indices(ts: TiltSeries) -> np.ndarray:
    """Each image's index in the file ``ts`` was read from: ``0 .. n-1``, or, after
    :func:`without_images`, the indices it kept (how notes name images, so that an index an
    analyst reads is the one ``--exclude-images`` takes)."""
    left = ts.metadata.get("excluded_images")
    if not left:
        return np.arange(ts.n_tilts)
    return np.setdiff1d(np.arange(int(left["n_images_in_file"])), left["indices"])


def load_tomogram(source: VolumeSource | str | Path):
    """``(volume, voxel size [A], provenance)`` of a tomogram file."""
    if not isinstance(source, VolumeSource):
        source = VolumeSource(str(source))
    vol, vx, prov_in = read_volume(source.path, dataset=source.dataset)
    vx = source.voxel_size_A or vx
    if vx is None:
        raise ValueError(f"{source.path} carries no voxel size; pass --voxel-size (Angstrom)")
    return vol, vx, prov_in


def _trace_kwargs(settings: TraceSettings) -> dict:
    """The tracer's keyword arguments from its settings."""
    return {
        "smooth_sigma_A": settings.smooth_sigma_A,
        "min_distance_A": settings.min_distance_value(),
        "integration_radius_A": settings.integration_radius_A,
        "threshold": settings.threshold_value(),
        "max_rounds": settings.max_rounds,
        "element": settings.element,
    }


def _species(model: AtomModel, element: str):
    """An alloy's per-atom elements (its ``element`` feature, when every atom has one of the
    given elements), else the element(s) as given."""
    els = parse_elements(element)
    if len(els) > 1 and "element" in model.features:
        col = model.features["element"].astype(str).to_numpy()
        if np.isin(col, els).all():
            return col
    return element
