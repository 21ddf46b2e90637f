"""The built-in sample: a simulated twinned Pt nanodumbbell, cached after the first build."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..core.atoms import AtomModel
from ..core.cache import cache_dir
from ..forward import rotation_center_A
from ._structures import PT_LATTICE_CONSTANT_A, thermal_jitter, twinned_dumbbell
from ._tilt_series import SimulatedTiltSeries, TiltSeriesTruth, simulate_tilt_series

SAMPLE_NAME = "Twinned Pt nanodumbbell (simulated)"

#: Settings of the sample, following the reference study's acquisition (Methods).
SAMPLE_SETTINGS = {
    "lattice_constant_A": PT_LATTICE_CONSTANT_A,
    "fault": "extrinsic",
    "twist_deg": 1.6,
    "jitter_A": 0.05,
    "n_tilts": 21,
    "angle_min_deg": -70.0,
    "angle_max_deg": 70.0,
    "shape_px": [256, 256],
    "pixel_size_A": 0.358,
    "blur_sigma_A": 0.45,
    "angle_error_deg": 0.3,
    "shift_error_px": 3.0,
}


def _build(seed: int, settings: dict) -> SimulatedTiltSeries:
    rng = np.random.default_rng(seed)
    s = twinned_dumbbell(
        lattice_constant_A=settings["lattice_constant_A"],
        fault=settings["fault"],
        twist_deg=settings["twist_deg"],
        seed=rng,
    )
    center = rotation_center_A(tuple(settings["shape_px"]), settings["pixel_size_A"])
    positions = thermal_jitter(s.positions, sigma_A=settings["jitter_A"], seed=rng) + center
    features = pd.DataFrame(
        {
            "element": np.full(len(positions), "Pt"),
            "layer": s.layer,
            "abc": s.abc,
            "stacking": s.stacking,
            "cluster": s.cluster,
        }
    )
    meta = {
        "source": "napari-aet simulate: twinned_dumbbell",
        "stacking_normal_zyx": s.normal.tolist(),
        "sequence": s.sequence,
        "interface_index": s.interface_index,
        "seed": seed,
        "settings": settings,
    }
    atoms = AtomModel(positions, features, meta)
    angles = np.linspace(settings["angle_min_deg"], settings["angle_max_deg"], settings["n_tilts"])
    ts = simulate_tilt_series(
        atoms,
        angles,
        pixel_size_A=settings["pixel_size_A"],
        shape_px=tuple(settings["shape_px"]),
        blur_sigma_A=settings["blur_sigma_A"],
        angle_error_deg=settings["angle_error_deg"],
        shift_error_px=settings["shift_error_px"],
        seed=rng,
    )
    ts.settings.update({"sample": SAMPLE_NAME, "seed": seed, **settings})
    return ts


def _save(ts: SimulatedTiltSeries, path: Path) -> None:
    feats = ts.truth.atoms.features
    arrays = {
        "data": ts.data,
        "angles_deg": ts.angles_deg,
        "true_angles_deg": ts.truth.angles_deg,
        "shifts_px": ts.truth.shifts_px,
        "noiseless": ts.truth.noiseless,
        "positions": ts.truth.atoms.positions,
    }
    for c in feats.columns:
        col = feats[c]
        is_text = col.dtype == object or pd.api.types.is_string_dtype(col)
        arrays[f"feat__{c}"] = col.to_numpy(dtype=str) if is_text else col.to_numpy()
    meta = {
        "pixel_size_A": ts.pixel_size_A,
        "tilt_axis_angle_deg": ts.truth.tilt_axis_angle_deg,
        "settings": ts.settings,
        "atoms_metadata": ts.truth.atoms.metadata,
    }
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # concurrent writers never share one
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, path)  # never leave a half-written cache behind


def _load(path: Path) -> SimulatedTiltSeries:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        feats = pd.DataFrame({k[6:]: z[k] for k in z.files if k.startswith("feat__")})
        atoms = AtomModel(z["positions"], feats, meta["atoms_metadata"])
        truth = TiltSeriesTruth(
            z["true_angles_deg"], z["shifts_px"], meta["tilt_axis_angle_deg"], atoms, z["noiseless"]
        )
        return SimulatedTiltSeries(
            z["data"], z["angles_deg"], meta["pixel_size_A"], truth, meta["settings"]
        )


def twinned_pt_nanodumbbell(*, seed: int = 0, use_cache: bool = True) -> SimulatedTiltSeries:
    """The built-in sample: a twinned Pt nanodumbbell and its simulated 21-image tilt series.

    About 3,000-3,300 Pt atoms in two clusters that share (111) faces with an extrinsic
    stacking fault (one inserted layer, two hcp twin-boundary layers) at the interface, the top
    cluster twisted by 1.6 degrees about [111]; 21 tilts from -70 to +70 degrees, 256 x 256
    pixels of 0.358 A, the study's dose, angle errors (sd 0.3 degrees) and shifts (up to
    3 pixels). The truth (atoms with layer, stacking, cluster; true angles and shifts) is in
    ``.truth``. The result is cached in :func:`cache_dir` keyed by settings, seed and version.
    """
    key = json.dumps({"v": __version__, "seed": seed, **SAMPLE_SETTINGS}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = cache_dir() / f"sample-nanodumbbell-{digest}.npz"
    if use_cache and path.exists():
        try:
            return _load(path)
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a corrupt cache is rebuilt, never trusted
    ts = _build(seed, dict(SAMPLE_SETTINGS))
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _save(ts, path)
        except OSError:
            pass  # a read-only cache folder only costs the rebuild next time
    return ts
