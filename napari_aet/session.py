"""Sessions: every layer of a napari-aet analysis in one HDF5 file, saved and reopened.

A session file (``*.aet.h5``) keeps, per layer, the data, its scale and translation, the
display settings that matter (colormap, contrast, size, colours, visibility), the layer's
metadata (stage settings, angles, pixel size, analysis summaries, the atom model's metadata
with its manual-edit log) and, for points, every feature column. No Qt: the reader and writer
work on napari's layer-data tuples, so the file opens with *File > Open* and saves with
*File > Save Layers*.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .core.files import replace_when_done
from .figures import transparent_centre_rgba

SESSION_SUFFIX = ".aet.h5"
SESSION_FORMAT = "napari-aet-session/1"

_IMAGE_KEYS = ("colormap", "contrast_limits", "gamma", "blending", "rendering", "opacity")
_POINTS_KEYS = ("size", "opacity", "border_width", "out_of_slice_display", "blending")


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "name") and not isinstance(obj, str):  # a napari Colormap
        return obj.name
    return str(obj)


_TRANSPARENT_CENTRE = " (transparent centre)"


def _known_colormap(name: str):
    """A colormap saved by name: napari's own names as they are; the Strain widget's
    ``"<matplotlib map> (transparent centre)"`` (saved by name by earlier versions) rebuilt as
    colours, which a fresh napari does not know by name."""
    if not name.endswith(_TRANSPARENT_CENTRE):
        return name
    from matplotlib import colormaps

    base = name[: -len(_TRANSPARENT_CENTRE)]
    if base not in colormaps:
        return "gray"
    t, rgba = transparent_centre_rgba(base)
    return {"name": name, "colors": rgba.tolist(), "controls": t.tolist()}


def is_session_file(path) -> bool:
    return str(path).lower().endswith(SESSION_SUFFIX)


def write_session(path, layer_data: list[tuple]) -> Path:
    """Write napari layer-data tuples ``(data, attributes, layer_type)`` as a session file.

    Image and Points layers are kept; other layer types raise (name them in the message).
    Layers marked ``metadata["napari_aet_transient"]`` (a widget's helpers, such as Review's
    current-item marker) are left out. The file replaces ``path`` only once complete.
    """
    import h5py

    layer_data = [
        t for t in layer_data if not (t[1].get("metadata") or {}).get("napari_aet_transient")
    ]
    path = Path(path)
    if not is_session_file(path):
        path = path.with_name(path.name.split(".")[0] + SESSION_SUFFIX)
    skipped = [a.get("name", "?") for _, a, t in layer_data if t not in ("image", "points")]
    if skipped:
        raise ValueError(
            f"sessions keep image and points layers; remove or convert {', '.join(skipped)}"
        )

    def write(tmp):
        with h5py.File(tmp, "w") as h5:
            h5.attrs["format"] = SESSION_FORMAT
            h5.attrs["napari_aet_version"] = __version__
            for i, (data, attrs, kind) in enumerate(layer_data):
                g = h5.create_group(f"layers/{i:03d}")
                g.attrs["type"] = kind
                g.attrs["name"] = str(attrs.get("name", f"layer {i}"))
                arr = np.asarray(data)
                g.create_dataset("data", data=arr, compression="gzip", compression_opts=1)
                keys = _IMAGE_KEYS if kind == "image" else _POINTS_KEYS
                display = {k: attrs[k] for k in keys if k in attrs and attrs[k] is not None}
                for k in ("scale", "translate", "visible", "units", "axis_labels"):
                    if attrs.get(k) is not None:
                        display[k] = attrs[k]
                g.attrs["display"] = json.dumps(display, default=_jsonable)
                g.attrs["metadata"] = json.dumps(attrs.get("metadata") or {}, default=_jsonable)
                if kind == "points":
                    fc = attrs.get("face_color")
                    if fc is not None and np.asarray(fc).ndim == 2:
                        g.create_dataset("face_color", data=np.asarray(fc, np.float32))
                    feats = attrs.get("features")
                    if feats is not None and len(feats.columns):
                        fg = g.create_group("features")
                        fg.attrs["columns"] = json.dumps([str(c) for c in feats.columns])
                        for j, c in enumerate(feats.columns):
                            col = feats[c]
                            if col.dtype == object or pd.api.types.is_string_dtype(col):
                                fg.create_dataset(
                                    f"{j:03d}", data=col.astype(str).to_numpy().astype("S")
                                )
                                fg[f"{j:03d}"].attrs["text"] = True
                            else:
                                fg.create_dataset(f"{j:03d}", data=col.to_numpy())

    return replace_when_done(path, write)


def read_session(path) -> list[tuple]:
    """Layer-data tuples of a session file, in the saved order."""
    import h5py

    path = Path(path)
    out = []
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path} is not a readable session file ({err})") from err
    with h5:
        if h5.attrs.get("format") != SESSION_FORMAT:
            raise ValueError(f"{path} is not a napari-aet session (no {SESSION_FORMAT!r} tag)")
        for key in sorted(h5.get("layers", {})):
            g = h5["layers"][key]
            kind = str(g.attrs["type"])
            attrs = json.loads(g.attrs["display"])
            if isinstance(attrs.get("colormap"), str):
                attrs["colormap"] = _known_colormap(attrs["colormap"])
            attrs["name"] = str(g.attrs["name"])
            attrs["metadata"] = json.loads(g.attrs["metadata"])
            if "units" in attrs:
                attrs["units"] = tuple(attrs["units"])
            data = g["data"][()]
            if kind == "points":
                if "features" in g:
                    fg = g["features"]
                    cols = json.loads(fg.attrs["columns"])
                    feats = {}
                    for j, c in enumerate(cols):
                        ds = fg[f"{j:03d}"]
                        v = ds[()]
                        feats[c] = v.astype(str) if ds.attrs.get("text") else v
                    attrs["features"] = pd.DataFrame(feats)
                if "face_color" in g:
                    attrs["face_color"] = g["face_color"][()]
            out.append((data, attrs, kind))
    return out


def layer_tuples(layers) -> list[tuple]:
    """napari layers -> the ``(data, attributes, type)`` tuples :func:`write_session` takes."""
    out = []
    for layer in layers:
        kind = type(layer).__name__.lower()
        attrs = layer._get_state()
        attrs["name"] = layer.name
        attrs["metadata"] = dict(layer.metadata)
        if kind == "points":
            attrs["features"] = layer.features
            attrs["face_color"] = np.asarray(layer.face_color)
        if kind == "image" and hasattr(layer.colormap, "name"):
            # the colours themselves, so that a colormap made by a widget (not registered in a
            # fresh napari) reopens too
            cm = layer.colormap
            attrs["colormap"] = {
                "name": cm.name,
                "colors": np.asarray(cm.colors, float).tolist(),
                "controls": np.asarray(cm.controls, float).tolist(),
            }
        out.append((layer.data, attrs, kind))
    return out
