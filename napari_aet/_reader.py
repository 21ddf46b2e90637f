"""napari reader contribution: tilt series (TIFF, MRC, HDF5, NPY, MATLAB, EMD,
DigitalMicrograph, a folder of one image per tilt) and atom models."""

from __future__ import annotations

from pathlib import Path

from ._layers import atoms_layer_data, tilt_series_layer_data
from .io import (
    ATOM_SUFFIXES,
    TILT_SERIES_SUFFIXES,
    file_notes,
    is_atom_model_file,
    is_image_folder,
    is_mat_volume,
    read_atoms,
    read_each_series,
    read_volume,
)
from .session import is_session_file, read_session


def napari_get_reader(path):
    """Return a reader for ``path`` if napari-aet can read it, else None (never raises)."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(str(path))
    suffix = p.suffix.lower()
    if p.is_dir():  # a folder of one image per tilt, named by tilt or order
        return _read_tilt_series_layer if is_image_folder(p) else None
    if is_session_file(p):
        return _read_session_layers
    if suffix in ATOM_SUFFIXES and is_atom_model_file(p):
        return _read_atoms_layer
    if suffix == ".mat" and is_mat_volume(p):  # a published GENFIRE/RESIRE reconstruction
        return _read_volume_layer
    if suffix in TILT_SERIES_SUFFIXES and suffix != ".csv":
        return _read_tilt_series_layer
    return None


def _one(path):
    return path[0] if isinstance(path, (list, tuple)) else path


def _read_tilt_series_layer(path):
    path = _one(path)
    series = read_each_series(path, keep_frames=True)
    if len(series) > 1:  # GENFIRE's file of several series: one layer each
        from napari.utils.notifications import show_info

        show_info(
            f"{Path(path).name}: {len(series)} tilt series turned about the beam between "
            "them, opened as one layer each (phi groups); napari-aet run and recon take two "
            "as a dual-axis series"
        )
    stem = Path(path).stem
    return [
        layer
        for phi, ts in series
        for layer in _series_layers(
            path, ts, name=stem if phi is None else f"{stem} phi {phi:+.0f}"
        )
    ]


def _series_layers(path, ts, *, name: str) -> list:
    """The layer of a tilt series read from ``path`` (frames registered and added), with the
    notes of its reading shown."""
    if ts.data.ndim == 4:  # several frames per tilt: registered and added as the CLI does
        from napari.utils.notifications import show_info

        from .workflows import frames_note, registered_frames

        ts = registered_frames(ts)
        fr = ts.metadata["frames"]
        show_info(
            f"{Path(path).name}: {frames_note(ts.metadata)}; scan distortion undone for rows "
            "scanned top to bottom (napari-aet run --scan-direction for others)"
            + (f". {len(fr['notes'])} note(s): {fr['notes'][0]}" if fr["notes"] else "")
        )
    for note in file_notes(ts.metadata):
        from napari.utils.notifications import show_info

        show_info(f"{Path(path).name}: {note}")
    missing = [
        what
        for what, value in (("tilt angles", ts.angles_deg), ("pixel size", ts.pixel_size_A))
        if value is None
    ]
    if missing:  # say it where the analyst looks; the geometry widget then asks for them
        from napari.utils.notifications import show_info

        show_info(
            f"{Path(path).name} has no {' and no '.join(missing)}: set them in Plugins > "
            "napari-aet > 1. Tilt-series geometry (or put a .tlt file with the same name "
            "next to it)"
        )
    return [tilt_series_layer_data(ts, name=name)]


def _read_volume_layer(path):
    """A reconstruction from a .mat file, as a tomogram layer in ``(z, y, x)``."""
    path = _one(path)
    vol, vx, meta = read_volume(path)
    if vx is None:
        from napari.utils.notifications import show_info

        show_info(
            f"{Path(path).name} has no voxel size: set the layer's scale in Angstrom "
            "(or trace it with napari-aet trace --voxel-size)"
        )
    scale = (vx or 1.0,) * 3
    kwargs = {
        "name": Path(path).stem,
        "scale": scale,
        "colormap": "inferno",
        "axis_labels": ("z", "y", "x"),
        "metadata": {"napari_aet_type": "tomogram", "voxel_size_A": vx, "file_metadata": meta},
    }
    if vx is not None:
        kwargs["units"] = ("angstrom",) * 3
    return [(vol, kwargs, "image")]


def _read_atoms_layer(path):
    path = _one(path)
    return [atoms_layer_data(read_atoms(path), name=Path(path).stem)]


def _read_session_layers(path):
    return read_session(_one(path))
