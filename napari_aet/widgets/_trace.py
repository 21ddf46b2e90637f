"""Dock widget "Trace atoms": trace, show the class histogram, and edit atoms by clicking."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    ComboBox,
    FloatSpinBox,
    PushButton,
    SpinBox,
    create_widget,
)

from .._layers import (
    ATOM_POINT_SIZE_A,
    layer_voxel_size_A,
    tilt_series_from_layer,
    tomogram_voxel_size_A,
)
from ..core.elements import known_symbols, parse_elements, tracer_min_distance_A
from ..figures import plot_trace_histogram
from ..forward import WEIGHTINGS
from ..trace import (
    REFINE_FEATURES,
    EditableAtomModel,
    default_autosave_path,
    front_most_on_ray,
    pick_along_ray,
    pick_near_point,
    refine_atom_positions,
    trace_atoms,
)
from ..workflows import PositionRefineSettings, TraceSettings
from ._runner import (
    DockContainer,
    OnHide,
    StageRunner,
    StageWidgetMixin,
    add_plot_canvas,
    element_edit,
    element_value,
    follow_new_layers,
    layer_frame,
    select_latest,
    status_label,
)
from ._shared import has_shared_model, publish, share, shared_model
from ._tilt_series import is_aligned_counts

D = TraceSettings()


if TYPE_CHECKING:
    import napari

#: Largest distance [A] between a click in a slice view and an atom it removes.
REMOVE_TOLERANCE_A = 1.5
#: The edit modes' keys (bound on the viewer and on the atoms and tomogram layers, whose own
#: bindings would otherwise win while they are selected).
MODE_KEYS = {"add": "Shift-A", "remove": "Shift-D", "off": "Shift-Q"}
#: What the status bar says in each edit mode, and the cursor.
MODE_HELP = {
    "add": ("Trace edit: ADD - click an empty site (the brightest unoccupied point along the "
            "view ray); Shift-Q ends", "crosshair"),
    "remove": ("Trace edit: REMOVE - click an atom (the front-most one under the cursor); "
               "Shift-Q ends", "cross"),
    "off": ("", "standard"),
}  # fmt: skip


#: An alloy's atoms by element, heaviest first: the colour's name (for the status line) and
#: RGBA; atoms added by hand stay orange.
ELEMENT_COLOURS = (
    ("blue", (0.23, 0.53, 1.0, 1.0)),
    ("green", (0.02, 0.84, 0.63, 1.0)),
    ("pink", (0.94, 0.28, 0.44, 1.0)),
    ("yellow", (1.0, 0.84, 0.04, 1.0)),
    ("violet", (0.62, 0.31, 0.87, 1.0)),
)


class TraceWidget(StageWidgetMixin, DockContainer):
    """Trace atoms in a tomogram layer and correct them by hand.

    *Add* mode: a click puts an atom at the tomogram's intensity maximum along the view ray
    (3D view) or near the click (slice view), refined to sub-voxel. *Remove* mode: a click
    removes the atom nearest the ray (or the click). Shift+A / Shift+D / Shift+Q switch the
    modes, Ctrl+Z undoes and Ctrl+Shift+Z redoes. Every edit is logged and autosaved next to
    the data (or in the cache folder), and *Restore autosave* reopens it.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self.layer = create_widget(annotation="napari.layers.Image", label="tomogram")
        self.smooth = FloatSpinBox(
            label="smoothing sigma (A)", value=D.smooth_sigma_A, min=0.0, max=3.0, step=0.05
        )
        self.element = element_edit(
            D.element, uses="sets the minimum distance; an alloy's atoms are classed by intensity"
        )
        self.min_distance = FloatSpinBox(
            label="min distance (A)", value=D.min_distance_value(), min=0.5, max=10.0, step=0.1
        )
        self.element.changed.connect(self._element_changed)
        self.radius = FloatSpinBox(
            label="integration radius (A)", value=D.integration_radius_A, min=0.2, max=3.0, step=0.1
        )
        self.threshold_mode = ComboBox(
            label="threshold", choices=["auto", "otsu", "value"], value=D.threshold
        )
        self.threshold_value = FloatSpinBox(label="threshold value", value=0.0, min=-1e12, max=1e12)
        self.rounds = SpinBox(label="fit-accept-subtract rounds", value=D.max_rounds, min=1, max=10)
        self.point_size = FloatSpinBox(
            label="point size (A)", value=ATOM_POINT_SIZE_A, min=0.1, max=5.0, step=0.1
        )
        self.species_from = create_widget(
            annotation="napari.layers.Image",
            label="elements from",
            options={"nullable": True, "tooltip": "for an alloy: a tomogram of the same grid "
                     "whose intensities tell the elements apart (the GENFIRE tomogram when "
                     "tracing the U-Net's, which makes every atom alike)"},
        )  # fmt: skip
        self.run_button = PushButton(text="Trace")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.mode = ComboBox(label="edit mode", choices=["off", "add", "remove"], value="off")
        self.undo_button = PushButton(text="Undo (Ctrl+Z)")
        self.redo_button = PushButton(text="Redo (Ctrl+Shift+Z)")
        self.restore_button = PushButton(text="Restore autosave")
        self.series = create_widget(
            annotation="napari.layers.Image",
            label="aligned series",
            options={"nullable": True, "tooltip": "the aligned tilt series the tomogram was "
                     "reconstructed from: Refine fits every atom's position to its images"},
        )  # fmt: skip
        self.weighting = ComboBox(
            label="pixel weighting",
            choices=list(WEIGHTINGS),
            value=PositionRefineSettings().weighting,
            tooltip="how Refine weighs the pixels: 'uniform' (plain least squares, the "
            "default of napari-aet run) or 'variance' (by the inverse of a counting-noise "
            "variance fitted to the series; see docs/methods.md)",
        )
        self.refine_button = PushButton(text="Refine positions against the series")
        self.status = status_label()
        self.extend(
            [
                self.layer,
                self.smooth,
                self.element,
                self.species_from,
                self.min_distance,
                self.radius,
                self.threshold_mode,
                self.threshold_value,
                self.rounds,
                self.point_size,
                self.run_button,
                self.cancel_button,
                self.mode,
                self.undo_button,
                self.redo_button,
                self.restore_button,
                self.series,
                self.weighting,
                self.refine_button,
                self.status,
            ]
        )
        self._figure, self._canvas = add_plot_canvas(self)
        self._model: EditableAtomModel | None = None
        self.points = None
        self.result = None
        self.runner = StageRunner("Tracing", self._set_status, self._done, self._busy)
        self.refiner = StageRunner("Refining", self._set_status, self._refined, self._busy)
        self.refine_button.changed.connect(self.refine)
        self.cancel_button.changed.connect(self.refiner.cancel)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.runner.cancel)
        self.undo_button.changed.connect(self.undo)
        self.redo_button.changed.connect(self.redo)
        self.restore_button.changed.connect(self.restore_autosave)
        self.point_size.changed.connect(self._resize_points)
        self.layer.changed.connect(self._maybe_restore)
        self.layer.changed.connect(self._species_source)
        follow_new_layers(viewer, self.layer, ("tomogram",))
        select_latest(viewer, self.layer, ("tomogram",))
        # the refinement fits the denoised series (the Align widget's counts layer is what the
        # Reconstruct dock takes)
        follow_new_layers(viewer, self.series, ("tilt_series",), skip=is_aligned_counts)
        series = [
            lay
            for lay in viewer.layers
            if lay.metadata.get("napari_aet_type") == "tilt_series" and not is_aligned_counts(lay)
        ]
        if series:  # the newest tilt series (the aligned one, in the workflow)
            self.series.value = series[-1]
        viewer.mouse_drag_callbacks.append(self._on_click)
        viewer.bind_key("Control-Z", lambda v: self.undo(), overwrite=True)
        viewer.bind_key("Control-Shift-Z", lambda v: self.redo(), overwrite=True)
        self._bind_mode_keys(viewer)
        self.mode.changed.connect(self._mode_changed)
        self.layer.changed.connect(lambda e=None: self._bind_mode_keys(self.layer.value))
        # a closed or hidden dock ends its edit mode (its click callback then does nothing)
        self._hide_filter = OnHide(lambda: setattr(self.mode, "value", "off"))
        self.native.installEventFilter(self._hide_filter)
        self._maybe_restore()

    @property
    def model(self) -> EditableAtomModel | None:
        """The atoms layer's shared model (every widget edits this one; edits made with
        napari's own Points tools are taken in), else this widget's own."""
        if self.points is not None and has_shared_model(self.points):
            return shared_model(self.points, adopt=False)
        return self._model

    def _take_outside_edits(self) -> None:
        """Before an edit: atoms added or deleted on the layer with napari's own tools join
        the shared model (logged, undoable) instead of being lost at the next sync."""
        if self.points is not None and self.points in self._viewer.layers:
            if has_shared_model(self.points):
                n_add, n_rm = shared_model(self.points).adopt_positions(self.points.data)
                if n_add or n_rm:
                    self._sync()

    @model.setter
    def model(self, value: EditableAtomModel | None) -> None:
        self._model = value

    def _bind_mode_keys(self, target) -> None:
        """The mode keys on ``target`` (the viewer or a layer: a layer's bindings win over the
        viewer's while it is selected, e.g. a Points layer's own Shift-A)."""
        if target is None:
            return
        for mode, key in MODE_KEYS.items():
            target.bind_key(key, lambda _, m=mode: setattr(self.mode, "value", m), overwrite=True)

    def _mode_changed(self, value=None) -> None:
        text, cursor = MODE_HELP[str(self.mode.value)]
        self._viewer.help = text
        self._viewer.cursor.style = cursor
        if text:
            self.status.value = text

    # ------------------------------------------------------------------ tracing
    def run(self, event=None):
        """Trace the selected tomogram in a worker; returns the worker (None if unusable)."""
        layer = self.layer.value
        try:
            voxel = tomogram_voxel_size_A(layer)
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        thr = self.threshold_mode.value
        if thr == "value":
            thr = float(self.threshold_value.value)
        try:
            element = element_value(self.element)
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        vol = np.asarray(layer.data)
        other = self.species_from.value
        species = None
        if other is not None and other is not layer and len(parse_elements(element)) > 1:
            species = np.asarray(other.data)
            if species.shape != vol.shape:
                self.status.value = (
                    f"Not started: '{other.name}' has shape {species.shape}, '{layer.name}' "
                    f"{vol.shape}; pick a tomogram of the same grid for the elements"
                )
                return None
        opts = dict(
            voxel_size_A=voxel,
            element=element,
            species_volume=species,
            smooth_sigma_A=float(self.smooth.value),
            min_distance_A=float(self.min_distance.value),
            integration_radius_A=float(self.radius.value),
            threshold=thr,
            max_rounds=int(self.rounds.value),
        )
        self.status.value = "Tracing..."
        return self.runner.start(
            lambda progress, cancel: trace_atoms(vol, progress=progress, cancel=cancel, **opts)
        )

    def _species_source(self, value=None) -> None:
        """A U-Net tomogram picked for tracing brings its GENFIRE tomogram (the layer it was
        made from) under "elements from": the U-Net makes an alloy's atoms alike."""
        layer = self.layer.value
        src = layer.metadata.get("source_layer") if layer is not None else None
        if layer is not None and layer.metadata.get("augmented") and src in self._viewer.layers:
            self.species_from.value = self._viewer.layers[src]

    def _element_changed(self, value=None) -> None:
        """A new element sets its minimum distance (a bad symbol leaves it)."""
        try:
            self.min_distance.value = tracer_min_distance_A(element_value(self.element))
        except ValueError:
            pass

    def _autosave_path(self) -> Path:
        layer = self.layer.value
        src = getattr(layer, "source", None)
        path = getattr(src, "path", None) or (layer.metadata.get("source") if layer else None)
        data = None if layer is None else layer.data[-1] if layer.multiscale else layer.data
        return default_autosave_path(path, f"{layer.name if layer else 'atoms'}", data=data)

    def _done(self, res) -> None:
        self.result = res
        self._plot(res)
        self._attach(EditableAtomModel(res.atoms, self._autosave_path()))
        self.model.autosave()
        # the elements traced, heaviest first: the colours of _sync (ELEMENT_COLOURS)
        counts = {e: n for e, n in (res.settings.get("species_counts") or {}).items() if n}
        names = [name for name, _ in ELEMENT_COLOURS] if len(counts) > 1 else []
        by_element = ", ".join(
            f"{e} {n} ({c})" for (e, n), c in zip(counts.items(), names, strict=False)
        )
        flat = res.settings.get("species_flat") or {}
        left = (
            f"; {flat['n_left_out']} peaks off the lattice left out (the elements look alike "
            "here; the refine stage tries them in the images)"
            if flat.get("applied") and flat.get("n_left_out")
            else ""
        )
        self.status.value = (
            f"{res.atoms.n_atoms} atoms from {len(res.candidates)} candidates "
            f"(threshold {res.threshold:.4g})"
            + (f": {by_element}" if by_element else "")
            + left
            + f"; autosaved to {self.model.autosave_path.name}"
        )

    def _busy(self, busy: bool) -> None:
        super()._busy(busy)
        self.refine_button.enabled = not busy

    def refine(self, event=None):
        """Refine the current atoms' positions against the chosen aligned tilt series in a
        worker (one undoable edit); returns the worker (None when the input is not usable)."""

        layer = self.series.value
        self._take_outside_edits()
        try:
            if self.model is None or self.model.n_atoms == 0:
                raise ValueError("trace (or restore) atoms first")
            if layer is None:
                raise ValueError("choose the aligned tilt series the tomogram was made from")
            ts = tilt_series_from_layer(layer.data, layer.metadata, layer.scale)
            if ts.angles_deg is None or ts.pixel_size_A is None:
                raise ValueError(f"{layer.name!r} needs tilt angles and a pixel size")
            element = element_value(self.element)
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        atoms = self.model.to_atom_model()
        weighting = self.weighting.value
        return self.refiner.start(
            lambda progress, cancel: refine_atom_positions(
                atoms,
                ts.data,
                ts.angles_deg,
                pixel_size_A=ts.pixel_size_A,
                element=element,
                weighting=weighting,
                progress=progress,
                cancel=cancel,
            )
        )

    def _refined(self, result) -> None:
        refined, info = result
        held = info.get("held_out") or {}
        held = f" (held-out images: t = {held['t']:.1f})" if held.get("t") is not None else ""
        if "not_refined" in info:
            self.status.value = f"Positions kept: {info['not_refined']}{held}"
            return
        self.model.replace_positions(
            refined.positions,
            action="refine",
            features=refined.features[list(REFINE_FEATURES)],
            note={k: v for k, v in info.items() if not isinstance(v, list)},
        )
        self.model.model.metadata["refinement"] = refined.metadata.get("refinement", info)
        self._sync()
        self.status.value = (
            f"Refined {refined.n_atoms} atoms (median move {100 * info['shift_A_median']:.1f} "
            f"pm; {info['n_moved_over_0.5_A']} > 0.5 A, {info['n_amplitude_below_0.3']} faded)"
            f"{held}; Ctrl+Z undoes"
        )

    def _plot(self, res) -> None:

        self._figure.clear()
        plot_trace_histogram(
            res.candidates["intensity"], res.threshold, ax=self._figure.add_subplot(),
            other_tomogram=res.candidates.get("species_volume_atom"),
            left_out=res.candidates.get("doubtful_left_out"),
        )  # fmt: skip
        self._canvas.draw_idle()

    # ------------------------------------------------------------------ the atom layer
    def _attach(self, model: EditableAtomModel) -> None:
        self._model = model
        name = f"{self.layer.value.name} atoms" if self.layer.value else "atoms"
        if self.points is None and name in self._viewer.layers:
            # a reopened dock takes over its atoms layer instead of adding "... atoms [1]"
            existing = self._viewer.layers[name]
            if existing.metadata.get("napari_aet_type") == "atom_model":
                self.points = existing
                self._bind_mode_keys(existing)
        if self.points is None or self.points not in self._viewer.layers:
            self.points = self._viewer.add_points(
                np.zeros((0, 3)),
                name=name,
                size=float(self.point_size.value),
                face_color="#3a86ff",
                border_width=0,
                out_of_slice_display=False,
                metadata={"napari_aet_type": "atom_model"},
                units=("angstrom", "angstrom", "angstrom"),
                # the atoms are in the tomogram's frame (voxel index x voxel size): they sit
                # where the tomogram does, whatever its origin
                translate=tuple(np.asarray(self.layer.value.translate, float)[-3:])
                if self.layer.value is not None
                else (0.0, 0.0, 0.0),
            )
            self._bind_mode_keys(self.points)
        share(self.points, model)
        self._sync()

    def _sync(self) -> None:
        model = self.model
        publish(self.points, model)  # data, features, edit log (sessions, File > Save)
        m = model.model
        if not self.points.metadata.get("colour_by"):  # an analysis's colours stay
            manual = m.features["manual"].to_numpy().astype(bool)
            colors = np.tile([[0.23, 0.53, 1.0, 1.0]], (len(manual), 1))
            if "element" in m.features:  # an alloy: a colour per element, heaviest first
                el = m.features["element"].astype(str).to_numpy()
                symbols = sorted(set(el) & set(known_symbols()))  # not "" or "nan" (by hand)
                present = parse_elements(symbols) if len(symbols) > 1 else ()
                if len(present) > 1:
                    for e, (_, rgba) in zip(present, ELEMENT_COLOURS, strict=False):
                        colors[el == e] = rgba
            colors[manual] = [1.0, 0.6, 0.0, 1.0]
            if len(colors):
                self.points.face_color = colors
        self.points.size = float(self.point_size.value)

    def _resize_points(self, value) -> None:
        if self.points is not None:
            self.points.size = float(value)

    def _maybe_restore(self, event=None) -> None:
        """The tomogram's atoms layer already open (a reopened session, another dock) is the
        one edited; else reopening data with an autosaved model brings it (and its edits)
        back."""
        if self.model is not None or self.layer.value is None:
            return
        name = f"{self.layer.value.name} atoms"
        if name in self._viewer.layers:
            layer = self._viewer.layers[name]
            if layer.metadata.get("napari_aet_type") == "atom_model" or "atom_model_metadata" in (
                layer.metadata
            ):
                self.points = layer
                self._bind_mode_keys(layer)
                m = shared_model(layer)
                self.status.value = (
                    f"Editing {name!r}: {m.n_atoms} atoms ({m.n_manual_added} added, "
                    f"{m.n_manual_removed} removed by hand so far)"
                )
                return
        if self._autosave_path().exists():
            self.restore_autosave()

    def restore_autosave(self, event=None) -> bool:
        """Reopen the autosaved model of the selected tomogram, if there is one."""
        path = self._autosave_path()
        if not path.exists():
            self.status.value = f"No autosave at {path}"
            return False
        self._attach(EditableAtomModel.restore(path))
        m = self.model
        self.status.value = (
            f"Restored {m.n_atoms} atoms ({m.n_manual_added} added, {m.n_manual_removed} "
            "removed by hand)"
        )
        return True

    # ------------------------------------------------------------------ editing
    def undo(self, event=None) -> None:
        self._take_outside_edits()
        if self.model is not None and self.model.undo():
            self._sync()
            self.status.value = "Undone."

    def redo(self, event=None) -> None:
        self._take_outside_edits()
        if self.model is not None and self.model.redo():
            self._sync()
            self.status.value = "Redone."

    def _on_click(self, viewer, event):
        if self.mode.value == "off" or self.model is None or self.layer.value is None:
            return
        self._take_outside_edits()
        tomo = self.layer.value
        dims = list(event.dims_displayed)
        vol = np.asarray(tomo.data)
        px = layer_voxel_size_A(tomo)
        if px is None:
            return
        # three frames: world (the canvas), the tomogram's voxels and the atoms' own
        # coordinates (the points layer's data; a layer translate such as a file's origin
        # separates them)
        to_vox, from_vox = layer_frame(tomo)
        to_model, from_model = layer_frame(self.points)
        if len(dims) == 3:
            start, end = tomo.get_ray_intersections(
                event.position, event.view_direction, dims, world=True
            )
            if start is None or end is None:
                self.status.value = "Nothing done: the click is outside the tomogram"
                return
            if self.mode.value == "add":
                occupied = to_vox(from_model(self.model.positions))
                p = pick_along_ray(
                    vol,
                    start,
                    end,
                    occupied_vox=occupied.reshape(-1, 3),
                    exclude_radius_vox=self._min_distance_A() / px,
                )
                if p is None:
                    self.status.value = "Not added: every point along the ray is occupied"
                else:
                    self.add_atom(to_model(from_vox(p)))
            else:
                a, b = to_model(from_vox(np.asarray(start))), to_model(from_vox(np.asarray(end)))
                radius = 0.5 * float(self.point_size.value) + 0.1  # the drawn atom, a margin
                i = front_most_on_ray(self.model.positions, a, b, radius=radius)
                if i is None:
                    self.status.value = "Nothing removed: no atom under the cursor"
                else:
                    self.remove_atom(i)
        else:
            click = np.asarray(event.position, float)[-3:]
            if self.mode.value == "add":
                p = pick_near_point(vol, to_vox(click), radius_vox=1.0 / px)
                self.add_atom(to_model(from_vox(p)))
            else:
                i = self.model.nearest(to_model(click), max_distance_A=REMOVE_TOLERANCE_A)
                if i is not None:
                    self.remove_atom(i)

    def _min_distance_A(self) -> float:
        """Closest distance [A] of a new atom to an existing one: the tracer's minimum."""
        return float(self.min_distance.value)

    def add_atom(self, position_A) -> int | None:
        """Add an atom, unless it would sit within the minimum distance of another (None, and
        the status says why)."""
        pos = np.asarray(position_A, float)
        if self.model.n_atoms:
            d = np.linalg.norm(self.model.positions - pos, axis=1)
            j = int(np.argmin(d))
            if d[j] < self._min_distance_A():
                self.status.value = (
                    f"Not added: {d[j]:.2f} A from atom {j} (the minimum distance is "
                    f"{self._min_distance_A():.2f} A); click an empty site"
                )
                return None
        i = self.model.add(position_A)
        self._sync()
        self.status.value = f"Added atom {i} at {np.round(position_A, 2).tolist()} A"
        return i

    def remove_atom(self, index: int) -> None:
        p = self.model.remove(index)
        self._sync()
        self.status.value = f"Removed the atom at {np.round(p, 2).tolist()} A"
