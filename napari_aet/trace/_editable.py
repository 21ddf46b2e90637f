"""The editable atom model: add, remove, move, undo/redo, an edit log, autosave."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atoms import AtomModel
from ..core.cache import cache_dir
from ..io import read_atoms, write_atoms


@dataclass
class _State:
    positions: np.ndarray
    features: pd.DataFrame
    n_added: int
    n_removed: int
    log_len: int


@dataclass
class EditableAtomModel:
    """An atom model that remembers every manual edit.

    Every change goes through :meth:`add`, :meth:`remove` or :meth:`move`, which record an
    entry in :attr:`edit_log` (action, atom position [A], time) and push the previous state on
    the undo stack. Manual additions get ``manual = 1``. Counts of manual additions and
    removals are kept in the model's metadata, so every file written from it carries them.

    Parameters
    ----------
    model : AtomModel
    autosave_path : str or Path, optional
        When given, the model is written there (HDF5, atomically) after every edit.
    """

    model: AtomModel
    autosave_path: Path | None = None
    edit_log: list = field(default_factory=list)
    _undo: list = field(default_factory=list, repr=False)
    _redo: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        meta = self.model.metadata
        meta.setdefault("n_manual_added", 0)
        meta.setdefault("n_manual_removed", 0)
        self.edit_log = list(meta.get("edit_log", self.edit_log))
        if "manual" not in self.model.features.columns:
            self.model.features["manual"] = np.zeros(self.model.n_atoms, np.int8)
        if self.autosave_path is not None:
            self.autosave_path = Path(self.autosave_path)

    # ------------------------------------------------------------------ state
    @property
    def positions(self) -> np.ndarray:
        return self.model.positions

    @property
    def n_atoms(self) -> int:
        return self.model.n_atoms

    @property
    def n_manual_added(self) -> int:
        return int(self.model.metadata["n_manual_added"])

    @property
    def n_manual_removed(self) -> int:
        return int(self.model.metadata["n_manual_removed"])

    def _snapshot(self) -> _State:
        return _State(
            self.model.positions.copy(),
            self.model.features.copy(),
            self.n_manual_added,
            self.n_manual_removed,
            len(self.edit_log),
        )

    def _restore(self, st: _State) -> None:
        self.model.positions = st.positions
        self.model.features = st.features
        self.model.metadata["n_manual_added"] = st.n_added
        self.model.metadata["n_manual_removed"] = st.n_removed

    def _log(self, action: str, position, index: int | None = None, **extra) -> None:
        entry = {
            "action": action,
            "z": float(position[0]),
            "y": float(position[1]),
            "x": float(position[2]),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if index is not None:
            entry["index"] = int(index)
        entry.update(extra)
        self.edit_log.append(entry)

    def _commit(self, before: _State) -> None:
        self._undo.append(before)
        self._redo.clear()
        self.model.metadata["edit_log"] = list(self.edit_log)
        self._mark_stale()
        self.autosave()

    def _mark_stale(self) -> None:
        """An edit after an analysis leaves its columns in place, marked out of date."""
        if self.model.metadata.get("analysis_columns"):
            self.model.metadata["analysis_stale"] = True

    @property
    def analysis_stale(self) -> bool:
        """True when atoms changed since the last :meth:`set_analysis`."""
        return bool(self.model.metadata.get("analysis_stale", False))

    def set_analysis(self, features: pd.DataFrame, *, source: str) -> None:
        """Take the per-atom columns of an analysis of the current atoms (same rows): they
        join the features (kept through later edits, which mark them stale) without an undo
        entry. ``source`` names the analysis (e.g. ``"structure"``)."""
        if len(features) != self.n_atoms:
            raise ValueError(
                f"the analysis has {len(features)} rows for {self.n_atoms} atoms: it is of "
                "other atoms (edited since?); run it again"
            )
        f = self.model.features.copy()
        new = [c for c in features.columns if c not in ("manual",)]
        for c in new:
            f[c] = np.asarray(features[c])
        self.model.features = f
        cols = set(self.model.metadata.get("analysis_columns", [])) | set(new)
        self.model.metadata["analysis_columns"] = sorted(cols)
        self.model.metadata["analysis_stale"] = False
        self.model.metadata.setdefault("analyses", []).append(source)

    def adopt_positions(self, positions_A, *, tolerance_A: float = 1e-3) -> tuple[int, int]:
        """Take edits made outside this model (napari's own Points tools) into it: atoms of
        ``positions_A`` that the model lacks are added (manual), the model's atoms missing
        there removed, each one logged and undoable. Returns ``(n_added, n_removed)``."""
        from scipy.spatial import cKDTree

        data = np.asarray(positions_A, np.float64).reshape(-1, 3)
        pos = self.model.positions
        if data.shape == pos.shape and np.allclose(data, pos, atol=tolerance_A):
            return 0, 0
        d_new = cKDTree(pos).query(data)[0] if len(pos) else np.full(len(data), np.inf)
        d_old = cKDTree(data).query(pos)[0] if len(data) else np.full(len(pos), np.inf)
        gone = np.nonzero(d_old > tolerance_A)[0]
        for i in gone[::-1]:
            self.remove(int(i))
        added = data[d_new > tolerance_A]
        for p in added:
            self.add(p)
        return len(added), len(gone)

    # ------------------------------------------------------------------ edits
    def add(self, position_A, features: dict | None = None) -> int:
        """Add a manual atom at ``position_A`` ``(z, y, x)`` [A]; returns its index."""
        p = np.asarray(position_A, np.float64).reshape(3)
        if not np.all(np.isfinite(p)):
            raise ValueError("an atom position must be three finite numbers (z, y, x) in A")
        before = self._snapshot()
        row = {c: _blank(self.model.features[c]) for c in self.model.features.columns}
        row.update(features or {})
        row["manual"] = 1
        self.model.positions = np.vstack([self.model.positions, p])
        new = pd.DataFrame([row]).astype(self.model.features.dtypes.to_dict(), errors="ignore")
        self.model.features = pd.concat([self.model.features, new], ignore_index=True)
        self.model.metadata["n_manual_added"] = self.n_manual_added + 1
        self._log("add", p, self.n_atoms - 1)
        self._commit(before)
        return self.n_atoms - 1

    def remove(self, index: int) -> np.ndarray:
        """Remove atom ``index``; returns its position."""
        if not 0 <= index < self.n_atoms:
            raise IndexError(f"no atom {index}; the model has {self.n_atoms}")
        before = self._snapshot()
        p = self.model.positions[index].copy()
        self.model.positions = np.delete(self.model.positions, index, axis=0)
        self.model.features = self.model.features.drop(index=index).reset_index(drop=True)
        self.model.metadata["n_manual_removed"] = self.n_manual_removed + 1
        self._log("remove", p, index)
        self._commit(before)
        return p

    def move(self, index: int, position_A) -> None:
        """Move atom ``index`` to ``position_A`` [A]."""
        if not 0 <= index < self.n_atoms:
            raise IndexError(f"no atom {index}; the model has {self.n_atoms}")
        p = np.asarray(position_A, np.float64).reshape(3)
        if not np.all(np.isfinite(p)):
            raise ValueError("an atom position must be three finite numbers (z, y, x) in A")
        before = self._snapshot()
        old = self.model.positions[index].copy()
        self.model.positions = self.model.positions.copy()
        self.model.positions[index] = p
        self._log("move", p, index, from_z=old[0], from_y=old[1], from_x=old[2])
        self._commit(before)

    def replace_positions(self, positions_A, *, action: str, features=None, note=None) -> None:
        """Move every atom at once (e.g. a refinement against the images), as one undoable
        edit: ``positions_A`` has one row per current atom; ``features`` (a DataFrame, same
        rows) adds or replaces columns; ``note`` (JSON-serialisable) goes into the log entry.
        """
        p = np.asarray(positions_A, np.float64)
        if p.shape != self.model.positions.shape or not np.all(np.isfinite(p)):
            raise ValueError(
                f"need {self.n_atoms} finite positions (z, y, x) [A], one per atom; got {p.shape}"
            )
        before = self._snapshot()
        moved = np.linalg.norm(p - self.model.positions, axis=1)
        self.model.positions = p.copy()
        if features is not None:
            f = self.model.features.copy()
            for c in features.columns:
                f[c] = np.asarray(features[c])
            self.model.features = f
        extra = {"n_atoms": self.n_atoms, "median_move_A": float(np.median(moved))}
        if note is not None:
            extra["note"] = note
        self._log(action, p.mean(axis=0), **extra)
        self._commit(before)

    def log_review(self, action: str, position_A) -> None:
        """Record a review decision that does not change the atoms (e.g. ``accept``); the
        count ``n_reviewed`` is kept in the metadata."""
        self._log(action, np.asarray(position_A, np.float64).reshape(3))
        self.model.metadata["n_reviewed"] = int(self.model.metadata.get("n_reviewed", 0)) + 1
        self.model.metadata["edit_log"] = list(self.edit_log)
        self.autosave()

    def nearest(self, position_A, *, max_distance_A: float = np.inf) -> int | None:
        """Index of the atom nearest ``position_A`` within ``max_distance_A``, else None."""
        if not self.n_atoms:
            return None
        d = np.linalg.norm(self.model.positions - np.asarray(position_A), axis=1)
        i = int(np.argmin(d))
        return i if d[i] <= max_distance_A else None

    # ------------------------------------------------------------------ history
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        """Undo the last edit (the log records the undo); False when there is nothing to undo."""
        if not self._undo:
            return False
        st = self._undo.pop()
        self._redo.append(self._snapshot())
        last = self.edit_log[st.log_len] if st.log_len < len(self.edit_log) else None
        self._restore(st)
        if last is not None:
            self._log("undo " + last["action"], (last["z"], last["y"], last["x"]))
        self.model.metadata["edit_log"] = list(self.edit_log)
        self._mark_stale()
        self.autosave()
        return True

    def redo(self) -> bool:
        """Redo the last undone edit; False when there is nothing to redo."""
        if not self._redo:
            return False
        st = self._redo.pop()
        self._undo.append(self._snapshot())
        self._restore(st)
        self._log("redo", st.positions[-1] if len(st.positions) else (np.nan,) * 3)
        self.model.metadata["edit_log"] = list(self.edit_log)
        self._mark_stale()
        self.autosave()
        return True

    # ------------------------------------------------------------------ files
    def to_atom_model(self) -> AtomModel:
        """A copy with the counts and the edit log in its metadata."""
        m = copy.deepcopy(self.model)
        m.metadata["edit_log"] = list(self.edit_log)
        return m

    def autosave(self) -> None:
        """Write the model to :attr:`autosave_path` (atomically) if one is set."""
        if self.autosave_path is None:
            return

        write_atoms(self.autosave_path, self.to_atom_model())

    @classmethod
    def restore(cls, path, *, autosave: bool = True) -> EditableAtomModel:
        """Reopen an autosaved (or any written) model, with its counts and edit log.

        A row whose position is not finite (a file damaged or written by another tool) is
        skipped, not fatal: the rest of the session comes back, and the skipped rows are listed
        in ``model.metadata["dropped_invalid_rows"]``.
        """

        model = read_atoms(path, drop_invalid=True)
        if model.metadata.get("dropped_invalid_rows"):
            warnings.warn(
                f"{path}: skipped {len(model.metadata['dropped_invalid_rows'])} atom(s) without "
                "a finite position; the other atoms and the edit log are restored",
                stacklevel=2,
            )
        return cls(model, Path(path) if autosave else None)


def _blank(col: pd.Series):
    if pd.api.types.is_bool_dtype(col):
        return False
    if pd.api.types.is_integer_dtype(col):
        return 0
    if pd.api.types.is_numeric_dtype(col):
        return np.nan
    return ""


def default_autosave_path(source: str | Path | None, name: str, data=None) -> Path:
    """``<data stem>.atoms.autosave.h5`` next to the data; in the cache folder without one,
    named by ``name`` and, given the ``data`` (an array), a fingerprint of them
    (:func:`data_fingerprint`): a layer name alone ("tomogram") is shared by other data, whose
    autosave would otherwise come back for these."""

    if source:
        p = Path(source)
        if p.exists() and p.is_file():
            return p.with_name(p.name.split(".")[0] + ".atoms.autosave.h5")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "atoms"
    if data is not None:
        safe = f"{safe}-{data_fingerprint(data)}"
    return cache_dir() / "autosave" / f"{safe}.atoms.autosave.h5"


def data_fingerprint(data, samples: int = 32) -> str:
    """A short hash of an array's shape, type and values on a grid of about ``samples`` per
    axis (the same data give the same one; any other tomogram almost surely another)."""
    import hashlib

    shape = tuple(int(n) for n in np.shape(data))
    grid = tuple(slice(None, None, max(1, n // samples)) for n in shape)
    values = np.ascontiguousarray(np.asarray(data[grid]), dtype=np.float32)
    h = hashlib.sha1(repr((shape, str(getattr(data, "dtype", "")))).encode())
    h.update(values.tobytes())
    return h.hexdigest()[:12]
