"""Tomograms (3D volumes): HDF5 with provenance, MRC, TIFF."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.files import replace_when_done
from ._matlab import mat_volume, save_mat

VOLUME_SUFFIXES = (".h5", ".hdf5", ".mrc", ".rec", ".tif", ".tiff", ".mat")


def write_volume(
    path: str | Path,
    volume: np.ndarray,
    *,
    voxel_size_A: float | None,
    provenance: dict | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a ``(z, y, x)`` volume; the file replaces ``path`` only once complete.

    HDF5 keeps dataset ``tomogram``, attribute ``voxel_size_A``, ``provenance`` (JSON) and any
    ``extra`` arrays (e.g. error curves). MRC and TIFF keep the voxel size in their headers.
    MATLAB ``.mat`` holds ``tomogram`` in GENFIRE's ``(x, y, z)`` and ``voxel_size_A``.
    """
    path = Path(path)
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"a volume must be 3D (z, y, x); got shape {vol.shape}")
    suffix = path.suffix.lower()
    if suffix not in VOLUME_SUFFIXES:
        raise ValueError(
            f"cannot write a volume as {suffix!r}; use one of {', '.join(VOLUME_SUFFIXES)}"
        )

    def write(tmp: Path) -> None:
        if suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(tmp, "w") as h5:
                h5.create_dataset(
                    "tomogram", data=vol, chunks=True, compression="gzip", compression_opts=1
                )
                h5["tomogram"].attrs["axes"] = "z,y,x"
                if voxel_size_A is not None:
                    h5.attrs["voxel_size_A"] = float(voxel_size_A)
                h5.attrs["provenance"] = json.dumps(provenance or {}, default=str)
                h5.attrs["napari_aet_type"] = "tomogram"
                for k, v in (extra or {}).items():
                    h5.create_dataset(k, data=np.asarray(v))
        elif suffix in (".mrc", ".rec"):
            import mrcfile

            with mrcfile.new(tmp, overwrite=True) as m:
                m.set_data(vol)
                m.set_volume()
                if voxel_size_A is not None:
                    m.voxel_size = float(voxel_size_A)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            kw = {"metadata": {"axes": "ZYX"}}
            if voxel_size_A:
                kw = {
                    "resolution": (1 / voxel_size_A, 1 / voxel_size_A),
                    "metadata": {"axes": "ZYX", "spacing": voxel_size_A, "unit": "A"},
                }
            tifffile.imwrite(tmp, vol, imagej=True, **kw)
        elif suffix == ".mat":
            arrays = {"tomogram": np.ascontiguousarray(vol.transpose(2, 1, 0))}
            if voxel_size_A is not None:
                arrays["voxel_size_A"] = np.float64(voxel_size_A)
            save_mat(tmp, arrays)

    return replace_when_done(path, write)


def read_volume(
    path: str | Path, *, dataset: str | None = None
) -> tuple[np.ndarray, float | None, dict]:
    """Read a volume written by :func:`write_volume` (or any 3D MRC/TIFF/HDF5 dataset, or a
    GENFIRE/RESIRE reconstruction in a ``.mat`` file, read from its ``(x, y, z)`` into
    ``(z, y, x)``: :func:`napari_aet.io._matlab.mat_volume`).

    Returns ``(volume, voxel_size_A or None, provenance)``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"volume file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as h5:
            name = dataset or ("tomogram" if "tomogram" in h5 else None)
            if name is None or name not in h5:
                raise KeyError(
                    f"no dataset {dataset or 'tomogram'!r} in {path}; datasets: {list(h5.keys())}"
                )
            vol = h5[name][()]
            vx = h5.attrs.get("voxel_size_A")
            prov = json.loads(h5.attrs.get("provenance", "{}"))
        return vol, (float(vx) if vx is not None else None), prov
    if suffix in (".mrc", ".rec"):
        import mrcfile

        with mrcfile.open(path, permissive=True) as m:
            vol = np.asarray(m.data)
            vx = float(m.voxel_size.x)
        return vol, (round(vx, 6) if vx > 0 else None), {}
    if suffix in (".tif", ".tiff"):
        import tifffile

        vol = tifffile.imread(path)
        return vol, None, {}
    if suffix == ".mat":
        vol, vx, meta = mat_volume(path, dataset)
        return vol, vx, {"file": meta}
    raise ValueError(
        f"cannot read a volume from {suffix!r}; use one of {', '.join(VOLUME_SUFFIXES)}"
    )
