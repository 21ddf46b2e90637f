"""The atom model: positions in Angstrom plus a table of per-atom features.

Every stage that produces or consumes atoms (simulator, tracer, analysis, file I/O, the napari
Points layer) exchanges this one type. Positions are ``(z, y, x)`` in Angstrom in the volume
frame: voxel index ``i`` of a tomogram with voxel size ``p`` sits at ``i * p``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: Feature names fixed by DESIGN.md, with the dtype each column is stored with.
KNOWN_FEATURES: dict[str, str] = {
    "intensity": "float64",
    "peak_height": "float64",
    "fit_residual": "float64",
    "manual": "int8",
    "layer": "int64",
    "stacking": "str",
    "abc": "str",
    "cluster": "int64",
    "grain": "int64",
    "chemical_order": "str",
    "order_variant": "int64",
    "element": "str",
    "q4": "float64",
    "q6": "float64",
    "surface": "int8",
    "facet": "str",
    "local_structure": "str",
    "exx": "float64",
    "eyy": "float64",
    "ezz": "float64",
    "exy": "float64",
    "exz": "float64",
    "eyz": "float64",
    "a_local": "float64",
    "local_strain": "float64",
    "orr_activity": "float64",
    "refine_shift_A": "float64",
    "refine_amplitude": "float64",
    "coordination": "int64",
    "voronoi_index": "str",
}

COORDINATE_COLUMNS = ("z", "y", "x")


@dataclass
class AtomModel:
    """Atom positions with per-atom features and provenance.

    Parameters
    ----------
    positions : ndarray of shape (N, 3)
        Atom centres ``(z, y, x)`` in Angstrom.
    features : pandas.DataFrame, optional
        One row per atom; column names follow :data:`KNOWN_FEATURES` where they apply.
    metadata : dict, optional
        Provenance (settings of the stage that made the model, versions) and counters such as
        ``n_manual_added`` / ``n_manual_removed``. Must be JSON-serialisable.
    """

    positions: np.ndarray
    features: pd.DataFrame = field(default_factory=pd.DataFrame)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64)
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise ValueError(
                f"atom positions must be an array of shape (N, 3) holding (z, y, x) in Angstrom; "
                f"got shape {pos.shape}"
            )
        if not np.all(np.isfinite(pos)):
            bad = int(np.count_nonzero(~np.isfinite(pos).all(axis=1)))
            raise ValueError(f"{bad} atom position(s) are NaN or infinite; drop those atoms first")
        self.positions = pos
        if self.features is None or len(self.features.columns) == 0:
            self.features = pd.DataFrame(index=pd.RangeIndex(len(pos)))
        else:
            self.features = pd.DataFrame(self.features).reset_index(drop=True)
        if len(self.features) != len(pos):
            raise ValueError(
                f"the features table has {len(self.features)} rows but there are {len(pos)} "
                "atoms; give one row per atom"
            )
        for c in COORDINATE_COLUMNS:
            if c in self.features.columns:
                raise ValueError(f"feature column {c!r} clashes with the coordinate columns")
        self.metadata = dict(self.metadata or {})

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return len(self.positions)

    def to_frame(self) -> pd.DataFrame:
        """Return one table: ``z, y, x`` in Angstrom first, then every feature column."""
        coords = pd.DataFrame(self.positions, columns=list(COORDINATE_COLUMNS))
        return pd.concat([coords, self.features.reset_index(drop=True)], axis=1)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, metadata: dict | None = None) -> AtomModel:
        """Build a model from a table with ``z, y, x`` columns (Angstrom) and feature columns."""
        missing = [c for c in COORDINATE_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(
                f"an atom table needs the columns z, y, x (Angstrom); missing {missing}. "
                f"Columns found: {list(frame.columns)}"
            )
        pos = frame[list(COORDINATE_COLUMNS)].to_numpy(dtype=np.float64)
        feats = frame.drop(columns=list(COORDINATE_COLUMNS)).reset_index(drop=True)
        return cls(pos, _coerce_features(feats), dict(metadata or {}))

    def subset(self, mask: np.ndarray) -> AtomModel:
        """Return a new model with only the atoms where ``mask`` is true (or at given indices)."""
        idx = np.arange(self.n_atoms)[mask]
        return AtomModel(
            self.positions[idx].copy(),
            self.features.iloc[idx].reset_index(drop=True),
            dict(self.metadata),
        )


def _coerce_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Give known feature columns their documented dtype (files may store ints as floats)."""
    out = frame.copy()
    for name, dtype in KNOWN_FEATURES.items():
        if name not in out.columns:
            continue
        if dtype == "str":
            out[name] = out[name].fillna("").astype(str)
        elif dtype.startswith("int"):
            col = pd.to_numeric(out[name], errors="coerce")
            if col.notna().all():
                out[name] = col.astype(dtype)
        else:
            out[name] = pd.to_numeric(out[name], errors="coerce").astype(dtype)
    return out
