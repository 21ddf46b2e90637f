"""Dock widget "Tilt-series geometry": type or load tilt angles and set the pixel size."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    ComboBox,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    create_widget,
)

from .._layers import tilt_series_from_layer, tilt_series_scale
from ..io import (
    file_notes,
    from_genfire_geometry,
    parse_angles,
    read_angle_file,
    read_tilt_series,
    validate_angles,
)
from ..workflows import frames_note, registered_frames
from ._runner import (
    DockContainer,
    StageRunner,
    follow_new_layers,
    select_latest,
    status_label,
)

if TYPE_CHECKING:
    import napari


class TiltSeriesWidget(DockContainer):
    """Attach tilt angles [degrees] and a pixel size [A] to a tilt-series Image layer.

    Angles are typed (``-70:70:7`` or a list) or read from a ``.tlt``/``.rawtlt``/``.txt`` file,
    SerialEM's ``.mdoc`` or a ``.mat``/``.npy`` file; they must match the number of images.
    GENFIRE's Euler triplets ``(phi, theta, psi)`` bring their convention with them: the
    layer's images are transposed and turned back by ``psi``, the tilt is ``-theta``
    (:func:`napari_aet.io.from_genfire_geometry`). The layer's ``scale`` follows the pixel
    size.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self.layer = create_widget(annotation="napari.layers.Image", label="tilt series")
        self.angles = LineEdit(label="angles (deg)", value="")
        self.angles.tooltip = "e.g. -70:70:7 or -70, -63, ... (one per image)"
        self.angles_file = FileEdit(
            label="or angles file", mode="r", filter="*.tlt *.rawtlt *.txt *.mdoc *.mat *.npy"
        )
        self.pixel_size = FloatSpinBox(
            label="pixel size (A)", value=0.358, min=0.001, max=1000.0, step=0.001
        )
        self.apply_button = PushButton(text="Apply")
        # a file of several frames per tilt, registered when it was opened (rows top to
        # bottom, frames back to back): registered again from the file as it was recorded
        self.scan_direction = ComboBox(
            label="frames: rows scanned",
            choices=[("top to bottom", "down"), ("bottom to top", "up"),
                     ("shifts only (no distortion)", "none")],
            value="down",
            tooltip="the order each frame's rows were scanned in, to undo the drift's scan "
            "distortion (DM, Velox and TIFF images: top to bottom)",
        )  # fmt: skip
        self.frame_interval = FloatSpinBox(
            label="frame interval", value=1.0, min=1.0, max=1000.0, step=0.1,
            tooltip="a frame period over one frame's scan time: 1 for frames scanned back to "
            "back, more with a pause between frames or for frames cut from a taller scan",
        )  # fmt: skip
        self.register_button = PushButton(text="Register frames again")
        self.status = status_label()
        self.extend(
            [
                self.layer,
                self.angles,
                self.angles_file,
                self.pixel_size,
                self.apply_button,
                self.scan_direction,
                self.frame_interval,
                self.register_button,
                self.status,
            ]
        )
        self.runner = StageRunner(
            "Registering frames", self._set_status, self._registered, self._busy
        )
        self.layer.changed.connect(self._show_layer)
        self.apply_button.changed.connect(self.apply)
        self.register_button.changed.connect(self.register_again)
        follow_new_layers(viewer, self.layer, ("tilt_series",))
        select_latest(viewer, self.layer, ("tilt_series",), prefer=_lacks_geometry)
        self._show_layer()

    def _set_status(self, text: str) -> None:
        self.status.value = text

    def _busy(self, busy: bool) -> None:
        self.register_button.enabled = not busy
        self.apply_button.enabled = not busy

    def _frames(self, layer) -> dict | None:
        """The layer's frames record (a file of frames, registered when opened), or None."""
        fr = (layer.metadata.get("file_metadata") or {}).get("frames") if layer else None
        return fr if fr and "drift_px_per_frame_max" in fr else None

    def register_again(self, event=None):
        """Register the layer's frames again from its file with the scan direction and frame
        interval chosen here; the layer's images are replaced (its angles and pixel size
        kept). Returns the worker, or None when the layer holds no frames."""
        layer = self.layer.value
        fr = self._frames(layer)
        if fr is None:
            self.status.value = "Not registered: the layer was not read from a file of frames."
            return None
        meta = layer.metadata.get("file_metadata") or {}
        path, dataset = layer.metadata.get("source"), meta.get("dataset") or meta.get("variable")
        direction, interval = self.scan_direction.value, float(self.frame_interval.value)
        self._target = layer
        self.status.value = "Registering the frames..."
        return self.runner.start(
            lambda progress, cancel: registered_frames(
                read_tilt_series(path, dataset=dataset, keep_frames=True), direction, interval,
                progress, cancel,
            )
        )  # fmt: skip

    def _registered(self, ts) -> None:
        layer = self._target
        if ts.data.shape != layer.data.shape:
            self.status.value = (
                f"Not replaced: the file now gives {ts.data.shape}, the layer holds "
                f"{layer.data.shape}"
            )
            return
        layer.data = ts.data
        layer.metadata = {**layer.metadata, "file_metadata": ts.metadata}
        notes = ts.metadata["frames"].get("notes") or []
        self.status.value = f"Registered again: {frames_note(ts.metadata)}" + (
            f" ({'; '.join(notes)})" if notes else ""
        )

    def _show_layer(self, event=None) -> None:
        layer = self.layer.value
        fr = self._frames(layer)
        for w in (self.scan_direction, self.frame_interval, self.register_button):
            w.visible = fr is not None
        if fr is not None:
            self.scan_direction.value = fr.get("scan_direction", "down")
            self.frame_interval.value = float(fr.get("frame_interval", 1.0))
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
        file_meta = layer.metadata.get("file_metadata") or {}
        note = "; ".join(file_notes(file_meta))
        self.status.value = (
            f"{n} images; angles {_set_from(ang, file_meta.get('angles_source'))}; "
            f"pixel size {f'{px:.4g} A' if px else 'missing'}"
            + (f"; {frames_note(file_meta)}" if fr else "")
            + (f"; note: {note}" if note else "")
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
            euler, record = None, None
            if text:
                ang = parse_angles(text)
            elif fpath and str(fpath) not in ("", ".") and fpath.is_file():
                ang, euler = read_angle_file(fpath)
            else:
                raise ValueError("type the tilt angles or choose an angles file")
            ang = validate_angles(ang, layer.data.shape[0], where="the angles")
            if euler is not None:  # GENFIRE's (phi, theta, psi): its images' convention too
                data, ang, record = from_genfire_geometry(layer.data, euler)
        except (ValueError, OSError) as err:
            self.status.value = f"Not applied: {err}"
            return False
        px = float(self.pixel_size.value)
        extra = {}
        if record is not None:
            layer.data = data
            extra["file_metadata"] = {**(layer.metadata.get("file_metadata") or {}),
                                      "genfire": record}  # fmt: skip
        layer.metadata = {
            **layer.metadata,
            **extra,
            "napari_aet_type": "tilt_series",
            "angles_deg": [float(a) for a in ang],
            "pixel_size_A": px,
        }
        dims = self._viewer.dims
        step = dims.current_step[0] if dims.ndim == 3 else None
        layer.scale = tilt_series_scale(px)
        layer.units = ("angstrom",) * 3
        if layer in self._viewer.layers:  # the new scale (and shape): the same image, whole
            if step is not None:  # a new scale moves the slider's world point: keep the image
                dims.set_current_step(0, step)
            self._viewer.reset_view()
        if record is not None:
            layer.reset_contrast_limits(mode="data")
        _mark(self.angles, False)
        _mark(self.pixel_size, False)
        self.status.value = (
            f"Applied: {len(ang)} angles {ang.min():g}..{ang.max():g} deg, {px:g} A"
            + (f"; {record['note']}" if record else "")
        )
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


def _set_from(angles, source) -> str:
    """'set (from where)' for the status line: a file name or a microscope's header, not the
    words for angles typed or passed in."""
    if angles is None:
        return "missing"
    if source and source not in ("typed", "given"):
        return f"set (from {Path(str(source)).name if '/' in str(source) else source})"
    return "set"


def _mark(widget, missing: bool) -> None:
    """Outline a field in red while its value is missing."""
    widget.native.setStyleSheet("border: 2px solid #e63946;" if missing else "")


def stage_series(viewer, layer, *, what: str = "a tilt-series layer"):
    """The :class:`~napari_aet.io.TiltSeries` of ``layer`` for a stage to run on. Raises
    ValueError with what is wrong (no layer: "choose ``what``"; angles that do not count the
    images); where the angles or the pixel size are missing, the *Tilt-series geometry* dock
    opens on the layer (:func:`ask_for_geometry`) and its message is raised."""
    if layer is None:
        raise ValueError(f"choose {what}")
    ts = tilt_series_from_layer(layer.data, layer.metadata, layer.scale)
    if ts.angles_deg is None or ts.pixel_size_A is None:
        raise ValueError(ask_for_geometry(viewer, layer))
    if len(ts.angles_deg) != ts.n_tilts:
        raise ValueError(f"{len(ts.angles_deg)} angles for {ts.n_tilts} images; fix the geometry")
    return ts


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
