"""Dock widget "Tilt-series geometry": type or load tilt angles and set the pixel size."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    create_widget,
)

from .._layers import tilt_series_scale
from ..io import parse_angles, read_angles, validate_angles
from ._runner import DockContainer, follow_new_layers, select_latest, status_label

if TYPE_CHECKING:
    import napari


class TiltSeriesWidget(DockContainer):
    """Attach tilt angles [degrees] and a pixel size [A] to a tilt-series Image layer.

    Angles are typed (``-70:70:7`` or a list) or read from a ``.tlt``/``.rawtlt``/``.txt`` file;
    they must match the number of images. The layer's ``scale`` follows the pixel size.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self.layer = create_widget(annotation="napari.layers.Image", label="tilt series")
        self.angles = LineEdit(label="angles (deg)", value="")
        self.angles.tooltip = "e.g. -70:70:7 or -70, -63, ... (one per image)"
        self.angles_file = FileEdit(label="or angles file", mode="r", filter="*.tlt *.rawtlt *.txt")
        self.pixel_size = FloatSpinBox(
            label="pixel size (A)", value=0.358, min=0.001, max=1000.0, step=0.001
        )
        self.apply_button = PushButton(text="Apply")
        self.status = status_label()
        self.extend(
            [
                self.layer,
                self.angles,
                self.angles_file,
                self.pixel_size,
                self.apply_button,
                self.status,
            ]
        )
        self.layer.changed.connect(self._show_layer)
        self.apply_button.changed.connect(self.apply)
        follow_new_layers(viewer, self.layer, ("tilt_series",))
        select_latest(viewer, self.layer, ("tilt_series",), prefer=_lacks_geometry)
        self._show_layer()

    def _show_layer(self, event=None) -> None:
        layer = self.layer.value
        if layer is None:
            self.status.value = "Open a tilt series (File > Open) or load the sample."
            return
        ang = layer.metadata.get("angles_deg")
        px = layer.metadata.get("pixel_size_A")
        if ang is not None:
            a = np.asarray(ang)
            self.angles.value = ", ".join(f"{v:g}" for v in a)
        if px:
            self.pixel_size.value = float(px)
        n = layer.data.shape[0] if layer.data.ndim == 3 else 0
        _mark(self.angles, ang is None)
        _mark(self.pixel_size, not px)
        missing = [what for what, ok in (("tilt angles", ang is not None), ("pixel size", px))
                   if not ok]  # fmt: skip
        self.status.value = (
            f"{n} images; angles {'set' if ang is not None else 'missing'}; "
            f"pixel size {f'{px:.4g} A' if px else 'missing'}"
            + (
                f". {layer.name!r} needs its {' and '.join(missing)}: type the values of this "
                "data (the fields in red) and press Apply"
                if missing
                else ""
            )
        )

    def apply(self, event=None) -> bool:
        """Validate and store the angles and pixel size on the layer. Returns True on success."""
        layer = self.layer.value
        if layer is None:
            self.status.value = "No tilt-series layer selected."
            return False
        try:
            if layer.data.ndim != 3:
                raise ValueError(
                    f"layer {layer.name!r} is {layer.data.ndim}D; a tilt series is "
                    "(n_tilts, rows, cols)"
                )
            text = self.angles.value.strip()
            fpath = self.angles_file.value
            if text:
                ang = parse_angles(text)
            elif fpath and str(fpath) not in ("", ".") and fpath.is_file():
                ang = read_angles(fpath)
            else:
                raise ValueError("type the tilt angles or choose an angles file")
            ang = validate_angles(ang, layer.data.shape[0], where="the angles")
        except (ValueError, OSError) as err:
            self.status.value = f"Not applied: {err}"
            return False
        px = float(self.pixel_size.value)
        layer.metadata = {
            **layer.metadata,
            "napari_aet_type": "tilt_series",
            "angles_deg": [float(a) for a in ang],
            "pixel_size_A": px,
        }
        layer.scale = tilt_series_scale(px)
        layer.units = ("angstrom",) * 3
        _mark(self.angles, False)
        _mark(self.pixel_size, False)
        self.status.value = f"Applied: {len(ang)} angles {ang.min():g}..{ang.max():g} deg, {px:g} A"
        return True


#: ``metadata`` key of the Align widget's second layer when it denoised the series: the same
#: alignment without the denoiser, what the Reconstruct dock reconstructs by default (as
#: ``napari-aet run``: :data:`napari_aet.workflows.RECON_SERIES`); the Trace dock's
#: refinement keeps the denoised layer.
ALIGNED_COUNTS = "napari_aet_aligned_counts"


def is_aligned_counts(layer) -> bool:
    """The Align widget's aligned series without the denoiser (:data:`ALIGNED_COUNTS`)."""
    return bool(layer.metadata.get(ALIGNED_COUNTS))


def is_aligned(layer) -> bool:
    """A tilt series aligned by napari-aet (the Align widget's output or ``napari-aet align``'s
    file read back)."""
    meta = layer.metadata
    prov = (meta.get("file_metadata") or {}).get("provenance") or {}
    return "alignment" in meta or prov.get("command") == "align"


def _missing(layer) -> list[str]:
    """What a tilt-series layer lacks: ``"tilt angles"``, ``"pixel size"``."""
    meta = layer.metadata
    px = meta.get("pixel_size_A") or (layer.scale[-1] if layer.scale[-1] != 1.0 else None)
    return [what for what, ok in (("tilt angles", meta.get("angles_deg") is not None),
                                  ("pixel size", px)) if not ok]  # fmt: skip


def _lacks_geometry(layer) -> bool:
    return bool(_missing(layer))


def _mark(widget, missing: bool) -> None:
    """Outline a field in red while its value is missing."""
    widget.native.setStyleSheet("border: 2px solid #e63946;" if missing else "")


def ask_for_geometry(viewer, layer) -> str:
    """Open (or raise) the *Tilt-series geometry* dock on ``layer`` so that the analyst types
    its missing angles or pixel size; returns the message for the calling widget's status."""
    widget = None
    window = getattr(viewer, "window", None)
    if window is not None:
        try:
            dock, widget = window.add_plugin_dock_widget("napari-aet", "1. Tilt-series geometry")
        except (KeyError, ValueError, TypeError):  # the plugin is not registered with napari
            widget = TiltSeriesWidget(viewer)
            dock = window.add_dock_widget(widget, name="1. Tilt-series geometry")
        dock.show()  # a closed dock is kept hidden by napari
        dock.raise_()
    if widget is not None:
        widget.layer.value = layer
        widget._show_layer()
    missing = " and ".join(_missing(layer)) or "tilt angles and pixel size"
    return (
        f"{layer.name!r} needs its {missing}: type them in '1. Tilt-series geometry' (opened) "
        "and press Apply"
    )
