"""Atom-model files: CSV (z, y, x + features), extended XYZ, and HDF5 with provenance."""

from __future__ import annotations

import io
import json
import re
import shlex
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..core.atoms import COORDINATE_COLUMNS, KNOWN_FEATURES, AtomModel, _coerce_features
from ..core.files import replace_when_done
from ._matlab import mat_shapes, read_mat_atoms, save_mat

ATOM_SUFFIXES = (".csv", ".xyz", ".h5", ".hdf5", ".mat")
_CSV_META_PREFIX = "# napari-aet-metadata: "


def _stamp(model: AtomModel) -> dict:
    meta = dict(model.metadata)
    meta.setdefault("napari_aet_version", __version__)
    meta["written_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    meta["n_atoms"] = model.n_atoms
    if "manual" in model.features.columns:
        meta.setdefault("n_manual", int(np.asarray(model.features["manual"]).astype(bool).sum()))
    return meta


def write_atoms(path: str | Path, model: AtomModel) -> Path:
    """Write an atom model by suffix: ``.csv``, ``.xyz`` or ``.h5``/``.hdf5``.

    CSV: a ``# napari-aet-metadata: {json}`` first line (provenance and counts of manual
    edits), then a header ``z,y,x,<features>`` with positions in Angstrom. XYZ: extended XYZ
    with ``pos`` in the file format's ``x y z`` order [A] and one property per feature. HDF5:
    group ``atoms`` with ``positions_zyx_A`` and one dataset per feature, metadata as JSON.
    The file is written under a temporary name and moved into place when complete.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    meta = _stamp(model)
    if suffix == ".csv":
        writer = _csv_writer(model, meta)
    elif suffix == ".xyz":
        writer = _xyz_writer(model, meta)
    elif suffix in (".h5", ".hdf5"):
        writer = _h5_writer(model, meta)
    elif suffix == ".mat":
        writer = _mat_writer(model)
    else:
        raise ValueError(
            f"cannot write atoms as {suffix!r}; use one of .csv, .xyz, .h5, .hdf5, .mat"
        )
    replace_when_done(path, writer)
    return path


def _mat_writer(model):
    """GENFIRE's and RESIRE's model: ``model`` 3 x N of ``x, y, z`` [A] (napari-aet's
    ``(z, y, x)`` read backwards, as :func:`napari_aet.io._matlab.read_mat_atoms` reads it), and
    each numeric feature as a 1 x N row."""

    def write(tmp: Path):
        arrays = {"model": np.ascontiguousarray(model.positions[:, ::-1].T, np.float64)}
        for name in model.features:
            values = model.features[name].to_numpy()
            key = re.sub(r"\W", "_", str(name))[:31]
            if values.dtype.kind in "fiub" and key not in arrays:
                arrays[key] = values.astype(np.float64)[None, :]
        save_mat(tmp, arrays)

    return write


def _csv_writer(model, meta):
    def write(tmp: Path):
        with open(tmp, "w", newline="") as fh:
            fh.write(_CSV_META_PREFIX + json.dumps(meta, default=str) + "\n")
            model.to_frame().to_csv(fh, index=False, float_format="%.6f")

    return write


def _xyz_props(features: pd.DataFrame) -> list[tuple[str, str]]:
    props = []
    for c in features.columns:
        col = features[c]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_integer_dtype(col):
            props.append((c, "I"))
        elif pd.api.types.is_float_dtype(col):
            props.append((c, "R"))
        else:
            props.append((c, "S"))
    return props


def _xyz_writer(model, meta):
    feats = model.features
    species = (
        feats["element"].astype(str).to_numpy()
        if "element" in feats.columns
        else np.full(model.n_atoms, "X")
    )
    rest = feats.drop(columns=["element"]) if "element" in feats.columns else feats
    props = _xyz_props(rest)
    prop_str = "species:S:1:pos:R:3" + "".join(f":{n}:{t}:1" for n, t in props)
    info = {k: v for k, v in meta.items() if isinstance(v, (int, float, str)) and k != "Properties"}

    def write(tmp: Path):
        with open(tmp, "w") as fh:
            fh.write(f"{model.n_atoms}\n")
            extra = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in info.items())
            fh.write(f'Properties={prop_str} napari_aet_axes="x y z" {extra}\n')
            zyx = model.positions
            for i in range(model.n_atoms):
                vals = [species[i], f"{zyx[i, 2]:.6f}", f"{zyx[i, 1]:.6f}", f"{zyx[i, 0]:.6f}"]
                for n, t in props:
                    v = rest[n].iat[i]
                    vals.append(
                        f"{v:.6g}" if t == "R" else str(int(v)) if t == "I" else str(v) or "_"
                    )
                fh.write(" ".join(vals) + "\n")

    return write


def _h5_writer(model, meta):
    def write(tmp: Path):
        import h5py

        with h5py.File(tmp, "w") as h5:
            h5.attrs["napari_aet_type"] = "atom_model"
            h5.attrs["napari_aet_version"] = __version__
            g = h5.create_group("atoms")
            g.create_dataset("positions_zyx_A", data=model.positions)
            f = g.create_group("features")
            order = []
            for c in model.features.columns:
                col = model.features[c]
                if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                    f.create_dataset(c, data=col.to_numpy())
                else:
                    f.create_dataset(c, data=col.astype(str).to_numpy().astype("S"))
                order.append(c)
            g.attrs["feature_order"] = json.dumps(order)
            g.attrs["metadata"] = json.dumps(meta, default=str)

    return write


def _model(pos, features: pd.DataFrame, meta: dict, drop_invalid: bool) -> AtomModel:
    """The AtomModel of a file's table; rows with non-finite positions are dropped (and
    counted in ``metadata["dropped_invalid_rows"]``) when reading with ``drop_invalid``."""
    pos = np.asarray(pos, np.float64)
    if drop_invalid and pos.ndim == 2 and pos.shape[1:] == (3,):
        ok = np.isfinite(pos).all(axis=1)
        if not ok.all():
            meta = {**meta, "dropped_invalid_rows": [int(i) for i in np.nonzero(~ok)[0]]}
            pos, features = pos[ok], features[ok].reset_index(drop=True)
    return AtomModel(pos, _coerce_features(features), meta)


def read_atoms(path: str | Path, *, drop_invalid: bool = False) -> AtomModel:
    """Read an atom model written by :func:`write_atoms` (or any CSV with ``z,y,x`` columns in
    Angstrom, or any extended XYZ file).

    ``drop_invalid`` skips rows whose position is not finite instead of refusing the file (for
    recovering an autosave); their row numbers go to ``metadata["dropped_invalid_rows"]``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"atom file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_csv(path, drop_invalid)
        if suffix == ".xyz":
            return _read_xyz(path, drop_invalid)
        if suffix in (".h5", ".hdf5"):
            return _read_h5(path, drop_invalid)
        if suffix == ".mat":
            pos = read_mat_atoms(path)
            meta = {"source": f"{path.name} (MATLAB x, y, z in A, read as z, y, x)"}
            return _model(pos, pd.DataFrame(index=range(len(pos))), meta, drop_invalid)
    except (ValueError, KeyError) as err:
        raise ValueError(f"could not read atoms from {path}: {err}") from err
    except OSError as err:
        raise ValueError(f"could not read atoms from {path}: {err}") from err
    raise ValueError(f"cannot read atoms from {suffix!r}; use one of {', '.join(ATOM_SUFFIXES)}")


def _read_csv(path: Path, drop_invalid: bool = False) -> AtomModel:
    text = path.read_text()
    meta = {}
    body_lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith(_CSV_META_PREFIX):
            meta = json.loads(line[len(_CSV_META_PREFIX) :])
        elif line.startswith("#"):
            continue
        else:
            body_lines.append(line)
    header = [c.strip() for c in body_lines[0].strip().split(",")] if body_lines else []
    text_cols = {c: str for c in header if KNOWN_FEATURES.get(c) == "str"}
    frame = pd.read_csv(
        io.StringIO("".join(body_lines)), dtype=text_cols, keep_default_na=False, na_values=[""]
    )
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("z", "y", "x") if c not in frame.columns]
    if missing:
        return AtomModel.from_frame(frame, meta)  # its error names the missing columns
    pos = frame[["z", "y", "x"]].to_numpy(dtype=np.float64)
    return _model(
        pos, frame.drop(columns=["z", "y", "x"]).reset_index(drop=True), meta, drop_invalid
    )


def _read_xyz(path: Path, drop_invalid: bool = False) -> AtomModel:
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise ValueError("an XYZ file needs a count line and a comment line")
    n = int(lines[0].split()[0])
    comment = lines[1]
    tokens = shlex.split(comment)
    info = {}
    for tok in tokens:
        if "=" in tok:
            k, v = tok.split("=", 1)
            info[k] = v
    props = info.get("Properties", "species:S:1:pos:R:3").split(":")
    fields = [(props[i], props[i + 1], int(props[i + 2])) for i in range(0, len(props), 3)]
    rows = [ln.split() for ln in lines[2 : 2 + n]]
    if len(rows) != n or any(len(r) < sum(f[2] for f in fields) for r in rows):
        raise ValueError(f"expected {n} atom lines with {sum(f[2] for f in fields)} columns each")
    cols: dict[str, list] = {}
    pos = None
    k = 0
    for name, typ, count in fields:
        block = [r[k : k + count] for r in rows]
        k += count
        if name == "pos":
            xyz = np.array(block, dtype=np.float64)
            pos = xyz[:, ::-1]  # file x y z -> model z y x
        elif name == "species":
            cols["element"] = [b[0] for b in block]
        else:
            conv = float if typ == "R" else int if typ == "I" else str
            cols[name] = [conv(b[0]) if not (typ == "S" and b[0] == "_") else "" for b in block]
    if pos is None:
        raise ValueError("the XYZ Properties have no 'pos' field")
    meta = {k2: v for k2, v in info.items() if k2 not in ("Properties", "napari_aet_axes", "pbc")}
    for k2, v in list(meta.items()):
        for conv in (int, float):
            try:
                meta[k2] = conv(v)
                break
            except ValueError:
                continue
    return _model(pos, pd.DataFrame(cols), meta, drop_invalid)


def _read_h5(path: Path, drop_invalid: bool = False) -> AtomModel:
    import h5py

    with h5py.File(path, "r") as h5:
        if "atoms" not in h5 or "positions_zyx_A" not in h5["atoms"]:
            raise KeyError(
                "no atom model in this HDF5 file (expected group 'atoms' with "
                "'positions_zyx_A'); is it a tilt series?"
            )
        g = h5["atoms"]
        pos = g["positions_zyx_A"][()]
        order = json.loads(g.attrs.get("feature_order", "[]")) or list(g["features"].keys())
        cols = {}
        for c in order:
            v = g["features"][c][()]
            if v.dtype.kind == "S":
                v = v.astype(str)
            cols[c] = v
        meta = json.loads(g.attrs.get("metadata", "{}"))
    return _model(pos, pd.DataFrame(cols), meta, drop_invalid)


def is_atom_model_file(path: str | Path) -> bool:
    """True if ``path`` looks like an atom model (CSV with z,y,x header, XYZ, HDF5 'atoms')."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".xyz":
            return True
        if suffix == ".csv":
            with open(path) as fh:
                for line in fh:
                    if line.startswith("#"):
                        continue
                    head = [c.strip().lower() for c in line.strip().split(",")]
                    return all(c in head for c in COORDINATE_COLUMNS)
            return False
        if suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as h5:
                return "atoms" in h5 and "positions_zyx_A" in h5["atoms"]
        if suffix == ".mat":  # a model (2D, 3 x N) and no 3D stack
            shapes = list(mat_shapes(path).values())
            return not any(len(s) == 3 for s in shapes) and any(
                len(s) == 2 and 3 in s and max(s) > 3 for s in shapes
            )
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return False
