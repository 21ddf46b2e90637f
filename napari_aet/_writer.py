"""napari writer contributions: atom models (CSV, XYZ, HDF5) and tilt series (HDF5, MRC, TIFF)."""

from __future__ import annotations

from ._layers import atoms_from_layer, tilt_series_from_layer
from .io import write_atoms, write_tilt_series
from .session import write_session


def write_atoms_layer(path: str, data, attributes: dict) -> list[str]:
    """Write a Points layer as an atom model with all its features."""
    model = atoms_from_layer(data, attributes.get("features"), attributes.get("metadata"))
    return [str(write_atoms(path, model))]


def write_tilt_series_layer(path: str, data, attributes: dict) -> list[str]:
    """Write an Image layer as a tilt series, with its angles and pixel size."""
    ts = tilt_series_from_layer(data, attributes.get("metadata") or {}, attributes.get("scale"))
    return [str(p) for p in write_tilt_series(path, ts)]


def write_session_layers(path: str, layer_data: list) -> list[str]:
    """Write several layers as a napari-aet session (``.aet.h5``)."""

    return [str(write_session(path, layer_data))]
