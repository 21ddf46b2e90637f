"""Conversions between the stage types and napari layer-data tuples (no napari import needed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .core.atoms import AtomModel
from .io import TiltSeries

#: Default displayed atom diameter [A] (about half the Pt nearest-neighbour distance).
ATOM_POINT_SIZE_A = 1.2

_STACKING_COLORS = {"fcc": "#3a86ff", "hcp": "#ff006e", "bcc": "#fb8500", "other": "#8d99ae"}


def tilt_series_layer_data(ts: TiltSeries, name: str | None = None) -> tuple:
    """``(data, kwargs, "image")`` for a tilt series: angles and pixel size in ``metadata``.

    With a pixel size the scale is ``(px, px, px)`` in Angstrom on every axis, the image axis
    included: napari accepts only one kind of unit per axis across a viewer's layers, and the
    tomogram reconstructed from the series (voxel = pixel) shares the viewer. One slider step
    is then one image of the series and one slice of the tomogram; the image index is the
    series' own (the status bar's ``[i ...]``) and its angle is ``metadata["angles_deg"][i]``.
    """
    px = ts.pixel_size_A
    meta: dict[str, Any] = {
        "napari_aet_type": "tilt_series",
        "angles_deg": None if ts.angles_deg is None else [float(a) for a in ts.angles_deg],
        "pixel_size_A": px,
        "source": ts.source,
        "file_metadata": ts.metadata,
    }
    kwargs = {
        "name": name or "tilt series",
        "scale": tilt_series_scale(px),
        "metadata": meta,
        "colormap": "gray",
        "axis_labels": ("tilt", "y", "x"),
        "units": ("angstrom",) * 3 if px else None,
    }
    if kwargs["units"] is None:
        kwargs.pop("units")
    return (ts.data, kwargs, "image")


def tilt_series_scale(pixel_size_A: float | None) -> tuple[float, float, float]:
    """A tilt-series layer's scale: the pixel size on every axis (1 without one)."""
    px = float(pixel_size_A) if pixel_size_A else 1.0
    return (px, px, px)


def tilt_series_from_layer(data, metadata: dict, scale=None) -> TiltSeries:
    """Rebuild a :class:`TiltSeries` from an Image layer's data and metadata."""
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(
            f"the layer has {arr.ndim} dimensions; a tilt series layer is (n_tilts, rows, cols)"
        )
    px = metadata.get("pixel_size_A")
    if px is None and scale is not None and float(scale[-1]) != 1.0:
        px = float(scale[-1])
    ang = metadata.get("angles_deg")
    return TiltSeries(
        arr.astype(np.float32, copy=False),
        None if ang is None else np.asarray(ang, np.float64),
        None if px is None else float(px),
        str(metadata.get("source", "")),
        dict(metadata.get("file_metadata", {})),
    )


def _color_column(features: pd.DataFrame) -> str | None:
    for c in ("stacking", "layer", "intensity"):
        if c in features.columns:
            return c
    return None


def atoms_layer_data(model: AtomModel, name: str | None = None) -> tuple:
    """``(data, kwargs, "points")``: coordinates in Angstrom (world units), features table."""
    feats = model.features.reset_index(drop=True)
    kwargs: dict[str, Any] = {
        "name": name or "atoms",
        "features": feats,
        "size": ATOM_POINT_SIZE_A,
        "metadata": {"napari_aet_type": "atom_model", "atom_model_metadata": model.metadata},
        "border_width": 0,
        "out_of_slice_display": False,
        "axis_labels": ("z", "y", "x"),
        "units": ("angstrom", "angstrom", "angstrom"),
    }
    col = _color_column(feats)
    if col == "stacking":
        kwargs["face_color"] = [_STACKING_COLORS.get(str(v), "#8d99ae") for v in feats[col]]
    elif col is not None and pd.api.types.is_numeric_dtype(feats[col]):
        kwargs["face_color"] = {"feature": col, "colormap": "viridis"}
    return (model.positions.copy(), kwargs, "points")


def atoms_from_layer(data, features=None, metadata: dict | None = None) -> AtomModel:
    """Rebuild an :class:`AtomModel` from a Points layer's data (Angstrom) and features."""
    pos = np.asarray(data, dtype=np.float64)
    feats = pd.DataFrame(features) if features is not None else pd.DataFrame()
    meta = dict((metadata or {}).get("atom_model_metadata", {}))
    return AtomModel(pos, feats, meta)


def layer_voxel_size_A(layer) -> float | None:
    """The voxel size [A] of a tomogram layer: its metadata, else its (isotropic) scale; None
    for a tilt series (images, not a volume) and for a layer without a physical scale."""
    if layer.metadata.get("napari_aet_type") == "tilt_series":
        return None
    vs = layer.metadata.get("voxel_size_A")
    if vs:
        return float(vs)
    scale = tuple(float(s) for s in layer.scale)
    if len(set(scale)) == 1 and scale[0] != 1.0:
        return scale[0]
    return None


def tomogram_voxel_size_A(layer) -> float:
    """The voxel size [A] of a layer chosen as a tomogram; ValueError naming the fix for a
    missing layer, a tilt series, a layer that is not 3D or one without a voxel size."""
    if layer is None:
        raise ValueError("choose a tomogram layer")
    if layer.metadata.get("napari_aet_type") == "tilt_series":
        raise ValueError(
            f"{layer.name!r} is a tilt series (images), not a tomogram: reconstruct it first "
            "(3. Reconstruct) and choose the tomogram"
        )
    if layer.ndim != 3:
        raise ValueError(f"{layer.name!r} is {layer.ndim}D; choose a 3D tomogram layer")
    vs = layer_voxel_size_A(layer)
    if vs is None:
        raise ValueError(
            f"{layer.name!r} has no voxel size: set its scale in Angstrom (layer.scale) or "
            "open it from a file that records one"
        )
    return vs
