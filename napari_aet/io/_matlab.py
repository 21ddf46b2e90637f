"""MATLAB .mat files, as the GENFIRE and RESIRE communities ship tilt series, angles and models.

Version 5-7 files are read with :func:`scipy.io.loadmat`, version 7.3 files (HDF5 underneath)
with h5py. MATLAB stores arrays column-major: scipy returns them in MATLAB's index order, h5py
with the axes reversed; both are brought to MATLAB's order first, then to napari-aet's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._genfire import euler_triplets

#: Variable names tried, in order, for each kind of content (case-insensitive).
MAT_SERIES_NAMES = ("projections", "tilt_series", "tiltseries", "data", "images", "proj", "stack")
MAT_ANGLE_NAMES = ("angles", "tilt_angles", "angles_deg", "theta", "tiltangles", "euler_angles")
MAT_MODEL_NAMES = ("model", "atoms", "atom_model", "positions", "coordinates", "xyz", "pos")
#: Scalars taken as the pixel size [A] (napari-aet's own .mat files carry ``pixel_size_A``).
MAT_PIXEL_SIZE_NAMES = ("pixel_size_a", "pixel_size_angstrom")
#: Parts of a variable's name that say what it holds, where no name above is used
#: (``final_projections``, ``Angles_refined``, ``atomic_model``, ...).
MAT_NAME_PARTS = {
    "tomogram": ("tomo", "rec", "vol"),
    "tilt series": ("proj",),
    "angles": ("angle",),
    "atom model": ("model", "atom", "coord", "pos"),
}
#: Among several such variables, the one whose name says it is the last word.
MAT_PREFERRED_PARTS = ("final", "refine", "align")


def load_mat(path) -> dict[str, np.ndarray]:
    """Every numeric array of a .mat file, by variable name, in MATLAB's index order."""
    from scipy import io as sio

    path = Path(path)
    try:
        raw = sio.loadmat(path, squeeze_me=False)
        return {
            k: np.asarray(v)
            for k, v in raw.items()
            if not k.startswith("__") and np.asarray(v).dtype.kind in "fiub"
        }
    except (NotImplementedError, ValueError) as err:  # v7.3: HDF5 with reversed axes
        import h5py

        if not h5py.is_hdf5(path):
            raise ValueError(f"{path} is not a MATLAB file scipy or h5py can read ({err})") from err

        out: dict[str, np.ndarray] = {}
        with h5py.File(path, "r") as h5:

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiub":
                    out[name.split("/")[-1]] = np.asarray(obj[()]).transpose()

            h5.visititems(visit)
        return out


#: MATLAB classes of numeric arrays (what :func:`load_mat` keeps).
_NUMERIC_CLASSES = ("double", "single", "logical", *(f"{s}int{b}" for s in ("", "u")
                                                      for b in (8, 16, 32, 64)))  # fmt: skip


def mat_shapes(path) -> dict[str, tuple]:
    """The shape of every numeric array of a .mat file, in MATLAB's index order, without
    reading the data (deciding what a file holds need not load a volume twice)."""
    from scipy import io as sio

    path = Path(path)
    try:
        return {n: tuple(shape) for n, shape, cls in sio.whosmat(path) if cls in _NUMERIC_CLASSES}
    except (NotImplementedError, ValueError) as err:  # v7.3: HDF5 with reversed axes
        import h5py

        if not h5py.is_hdf5(path):
            raise ValueError(f"{path} is not a MATLAB file scipy or h5py can read ({err})") from err
        out: dict[str, tuple] = {}
        with h5py.File(path, "r") as h5:

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiub":
                    out[name.split("/")[-1]] = tuple(obj.shape[::-1])

            h5.visititems(visit)
        return out


def save_mat(path, arrays: dict) -> None:
    """Write ``arrays`` as a compressed MATLAB v5 file (napari-aet's writers: series, volumes,
    atom models, each in GENFIRE's layout)."""
    from scipy import io as sio

    with open(path, "wb") as fh:
        sio.savemat(fh, arrays, do_compression=True)


def _pick(arrays: dict, names: tuple, ndim: set, what: str, path, variable: str | None):
    if variable is not None:
        if variable not in arrays:
            raise KeyError(
                f"variable {variable!r} is not in {path}; it holds "
                f"{', '.join(f'{k} {v.shape}' for k, v in arrays.items()) or 'no arrays'}"
            )
        return variable, arrays[variable]
    lower = {k.lower(): k for k in arrays}
    for n in names:
        if n in lower and arrays[lower[n]].ndim in ndim:
            return lower[n], arrays[lower[n]]
    named = [
        k
        for k, v in arrays.items()
        if v.ndim in ndim and any(part in k.lower() for part in MAT_NAME_PARTS.get(what, ()))
    ]
    for pref in MAT_PREFERRED_PARTS:  # e.g. angles_init beside angles_refined
        chosen = [k for k in named if pref in k.lower()]
        if len(named) > 1 and len(chosen) == 1:
            return chosen[0], arrays[chosen[0]]
    if len(named) == 1:
        return named[0], arrays[named[0]]
    fits = [k for k, v in arrays.items() if np.squeeze(v).ndim in ndim]
    if len(fits) == 1:
        return fits[0], arrays[fits[0]]
    listing = ", ".join(f"{k} {v.shape}" for k, v in arrays.items()) or "no numeric arrays"
    raise ValueError(
        f"{path}: cannot tell which variable holds the {what} ({listing}); name it (the "
        "dataset option / --dataset)"
    )


def mat_tilt_series(path, variable: str | None = None):
    """The tilt series, its angles (or None), GENFIRE Euler triplets (or None) and provenance.

    MATLAB keeps a stack as ``(rows, cols, n)`` (GENFIRE's ``projections``); it is taken as
    ``(n, rows, cols)`` only when the file's angles match the first axis and not the last.
    Angles come from a variable such as ``angles``: one column of tilt angles, or GENFIRE's
    Euler triplets ``(phi, theta, psi)`` per image. The triplets, or ``(0, theta, 0)`` for one
    column beside a stack in MATLAB's layout (GENFIRE reads one column so), are returned for
    :func:`napari_aet.io._genfire.from_genfire_geometry`; the images are returned as the file
    holds them, ``(n, X, Y)``.
    """
    arrays = load_mat(path)
    name, arr = _pick(arrays, MAT_SERIES_NAMES, {3}, "tilt series", path, variable)
    arr = np.asarray(arr)
    if arr.ndim != 3:
        arr = np.squeeze(arr)
    if arr.ndim != 3:
        raise ValueError(f"{path}: variable {name!r} has shape {arr.shape}, not a 3D stack")
    angles, euler, angle_var = None, None, None
    rest = {k: v for k, v in arrays.items() if k != name}
    try:
        angle_var, a = _pick(rest, MAT_ANGLE_NAMES, {1, 2}, "angles", path, None)
        angles, euler = mat_angles_array(a)
    except (ValueError, KeyError):
        angles = None
    # MATLAB's stack is (rows, cols, n); (n, rows, cols) only where the angles say so
    if angles is not None and len(angles) == arr.shape[0] and len(angles) != arr.shape[2]:
        data, layout = arr, "(n, rows, cols)"
    else:
        data, layout = np.moveaxis(arr, -1, 0), "(rows, cols, n), MATLAB's"
        if angles is not None and euler is None:
            euler = np.stack([np.zeros_like(angles), angles, np.zeros_like(angles)], axis=1)
    meta = {"format": "MATLAB .mat", "variable": name, "layout": layout}
    if angle_var:
        meta["angles_variable"] = angle_var
    key, size = _size_scalar(arrays, MAT_PIXEL_SIZE_NAMES)  # as napari-aet writes it
    if size is not None:
        meta["pixel_size_A"], meta["pixel_size_source"] = size, f"file ({key})"
    return np.ascontiguousarray(data), angles, meta, euler


def _size_scalar(arrays: dict, keys) -> tuple[str | None, float | None]:
    """The first of ``keys`` (lower case) that is a plausible size [A] in ``arrays``."""
    lower = {k.lower(): v for k, v in arrays.items()}
    for key in keys:
        v = lower.get(key)
        if v is not None and v.size == 1 and 0 < float(v.ravel()[0]) < 1e3:
            return key, float(v.ravel()[0])
    return None, None


#: Names tried first for a reconstruction (GENFIRE's and RESIRE's results, napari-aet's own).
MAT_VOLUME_NAMES = ("tomogram", "rec", "reconstruction", "genfire_rec", "resire_rec", "vol",
                    "volume", "obj", "object")  # fmt: skip


def mat_volume(path, variable: str | None = None) -> tuple[np.ndarray, float | None, dict]:
    """A reconstruction ``(z, y, x)``, its voxel size [A] (a ``voxel_size_A`` or
    ``pixel_size_A`` scalar, else None) and provenance from a .mat file.

    GENFIRE and RESIRE keep a volume as ``(x, y, z)``: it is read backwards, so that
    napari-aet's ``(z, y, x)`` is their frame as for their atom models
    (:mod:`napari_aet.io._genfire`).
    """
    arrays = load_mat(path)
    name, vol = _pick(arrays, MAT_VOLUME_NAMES, {3}, "tomogram", path, variable)
    vol = np.asarray(vol)
    if vol.ndim != 3:
        raise ValueError(f"{path}: variable {name!r} has shape {vol.shape}, not a 3D volume")
    _, vx = _size_scalar(arrays, ("voxel_size_a", *MAT_PIXEL_SIZE_NAMES))
    meta = {"format": "MATLAB .mat", "variable": name, "layout": "(x, y, z), GENFIRE's"}
    return np.ascontiguousarray(vol.transpose(2, 1, 0)), vx, meta


def is_mat_volume(path) -> bool:
    """True for a .mat file that holds a reconstruction rather than a tilt series: a 3D array
    named as one (``GENFIRE_rec``, ``tomogram``, ``vol``, ...), none named as projections, and
    no angles."""
    try:
        shapes = mat_shapes(path)
    except (OSError, ValueError):
        return False
    names = [k.lower() for k, shape in shapes.items() if len(shape) == 3]
    if not names or any("proj" in k for k in names):
        return False
    if any("angle" in k.lower() or k.lower() in MAT_ANGLE_NAMES for k in shapes):
        return False
    return any(
        k in MAT_VOLUME_NAMES or any(part in k for part in MAT_NAME_PARTS["tomogram"])
        for k in names
    )


def mat_angles_array(a, n_images: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Tilt angles [deg] from a MATLAB array (one value per image, or Euler triplets, whose
    ``theta`` is the tilt), and the ``(n, 3)`` triplets or None."""
    a = np.asarray(a, np.float64)
    if a.ndim == 2 and 1 in a.shape:
        a = a.ravel()
    if a.ndim == 1:
        return a, None
    trip = euler_triplets(a, n_images)
    if trip is not None:
        return trip[:, 1].copy(), trip
    raise ValueError(f"angles of shape {a.shape}: give one column, or (n, 3) Euler triplets")


def read_mat_angles(path, *, triplets: bool = False):
    """Tilt angles [deg] from a .mat file (the first angle-like variable); with ``triplets``,
    also GENFIRE's ``(n, 3)`` Euler triplets where the file holds them (else None)."""
    arrays = load_mat(path)
    _, a = _pick(arrays, MAT_ANGLE_NAMES, {1, 2}, "angles", path, None)
    ang, trip = mat_angles_array(a)
    return (ang, trip) if triplets else ang


def read_mat_atoms(path) -> np.ndarray:
    """Atom positions ``(N, 3)`` in napari-aet's ``(z, y, x)`` [A] from a .mat model.

    GENFIRE and RESIRE models are ``3 x N`` (or ``N x 3``) arrays of ``x, y, z`` in Angstrom;
    the order is reversed to ``z, y, x``.
    """
    arrays = load_mat(path)
    name, a = _pick(arrays, MAT_MODEL_NAMES, {2}, "atom model", path, None)
    a = np.asarray(a, np.float64)
    if a.ndim != 2 or 3 not in a.shape:
        raise ValueError(f"{path}: {name!r} has shape {a.shape}; an atom model is 3 x N or N x 3")
    xyz = a.T if a.shape[0] == 3 and a.shape[1] != 3 else a
    return np.ascontiguousarray(xyz[:, ::-1])
