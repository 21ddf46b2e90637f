"""Dock widget "Preprocess and align": switchable steps, aligned layer out, corrections table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
    create_widget,
)
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from .._layers import tilt_series_layer_data
from ..align import align_tilt_series
from ..io import TiltSeries
from ..workflows import (
    AlignSettings,
    TraceSettings,
    align_notes,
    atom_model_builder,
    atom_model_trials,
    excluded_note,
    file_image_indices,
    frames_note,
    parse_image_indices,
    recon_series_for,
    without_dead_lines,
)
from ._runner import (
    DockContainer,
    StageRunner,
    StageWidgetMixin,
    add_table,
    element_edit,
    element_value,
    follow_new_layers,
    select_latest,
    show_result,
    status_label,
)
from ._tilt_series import ALIGNED_COUNTS, is_aligned, stage_series

if TYPE_CHECKING:
    import napari


class AlignWidget(StageWidgetMixin, DockContainer):
    """Preprocess and align the selected tilt series in a worker thread.

    The raw layer is never modified: the result is a new layer ``<name> aligned`` with the
    refined angles in its metadata; *Undo to raw* removes the layers this widget made.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        d = AlignSettings()
        self.layer = create_widget(annotation="napari.layers.Image", label="tilt series")
        self.background = ComboBox(
            label="background", choices=["plane", "offset", "none"], value=d.background
        )
        self.denoise = ComboBox(
            label="denoise", choices=["dose", "none", "auto", "bm3d", "nlmeans"], value=d.denoise
        )
        self.lowpass = FloatSpinBox(
            label="low-pass diameter (1/A)",
            value=d.lowpass_diameter_inv_A,
            min=0.0,
            max=20.0,
            step=0.01,
        )
        self.lowpass_edge = FloatSpinBox(
            label="low-pass edge (1/A)", value=d.lowpass_edge_inv_A, min=0.0, max=1.0, step=0.01
        )
        self.arrives_aligned = CheckBox(
            label="series arrives aligned (preprocess only)",
            value=False,
            tooltip="background and low-pass only: no shifts, no tilt-axis turn, no angle "
            "changes (for series aligned elsewhere)",
        )
        self.crop = ComboBox(
            label="crop to the particle",
            choices=["auto", "none"],
            value=d.crop if d.crop in ("auto", "none") else "auto",
            tooltip="auto: cut every image to a square box around the particle when it needs "
            "at most 3/4 of the field (GENFIRE's memory and time grow as the box's side cubed)",
        )
        self.center_of_mass = CheckBox(label="centre of mass", value=d.center_of_mass)
        self.common_line = CheckBox(label="common line", value=d.common_line)
        self.tilt_axis = ComboBox(
            label="tilt axis", choices=["estimate", "vertical"], value="estimate"
        )
        self.refine = CheckBox(label="projection matching", value=d.projection_matching)
        self.refine_angles = CheckBox(label="refine angles", value=d.refine_angles)
        self.angle_method = ComboBox(
            label="angles from",
            choices=[("atom model (joint fit)", "model"), ("tomogram re-projections", "tomogram")],
            value=d.angle_method,
            tooltip="atom model: trace atoms each round and refine them with every image's "
            "angle and shift (atomic resolution; shifts only, with a note, otherwise)",
        )
        self.rounds = SpinBox(label="rounds", value=d.rounds, min=1, max=20)
        self.exclude = LineEdit(
            label="leave out images",
            value="",
            tooltip="indices of images to leave out, e.g. 12,15 (0 = the first): an image the "
            "alignment names as out of focus, or one hit by drift",
        )
        self.element = element_edit(d.element, uses="the model method's tracer")
        self.run_button = PushButton(text="Align")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.undo_button = PushButton(text="Undo to raw", enabled=False)
        self.status = status_label()
        self.extend(
            [
                self.layer,
                self.background,
                self.denoise,
                self.lowpass,
                self.lowpass_edge,
                self.arrives_aligned,
                self.crop,
                self.center_of_mass,
                self.common_line,
                self.tilt_axis,
                self.refine,
                self.refine_angles,
                self.angle_method,
                self.rounds,
                self.exclude,
                self.element,
                self.run_button,
                self.cancel_button,
                self.undo_button,
                self.status,
            ]
        )
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(
            ["angle (deg)", "correction (deg)", "shift row (px)", "shift col (px)"]
        )
        self.table.setMinimumHeight(180)
        add_table(self, self.table)
        self._made: list[str] = []
        self._source = None
        self.result = None
        self.runner = StageRunner("Aligning", self._set_status, self._done, self._busy)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.runner.cancel)
        self.undo_button.changed.connect(self.undo)
        follow_new_layers(viewer, self.layer, ())  # keeps the choices current, selects nothing
        # the newest series as it came from the microscope (not an aligned output)
        select_latest(viewer, self.layer, ("tilt_series",), prefer=lambda la: not is_aligned(la))

    def run(self, event=None):
        """Start the alignment; returns the worker (None when the input is not usable)."""
        layer = self.layer.value
        try:
            ts = stage_series(self._viewer, layer)
            ts = without_dead_lines(ts, parse_image_indices(self.exclude.value))
            element = element_value(self.element)
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        d = AlignSettings()
        opts = dict(
            pixel_size_A=ts.pixel_size_A,
            background=None if self.background.value == "none" else self.background.value,
            denoise_method=None if self.denoise.value == "none" else self.denoise.value,
            lowpass_diameter_inv_A=float(self.lowpass.value) or None,
            lowpass_edge_inv_A=float(self.lowpass_edge.value),
            center_of_mass=bool(self.center_of_mass.value),
            common_line=bool(self.common_line.value),
            tilt_axis="estimate" if self.tilt_axis.value == "estimate" else None,
            projection_matching=bool(self.refine.value),
            refine_angles=bool(self.refine_angles.value),
            angle_method=str(self.angle_method.value),
            refine_rounds=int(self.rounds.value),
            model_builder=atom_model_builder(
                d.model_weights, trace=TraceSettings(element=element), device=d.device
            )
            if self.angle_method.value == "model"
            else None,
            model_trials=atom_model_trials if self.angle_method.value == "model" else None,
            recon_iterations=d.recon_iterations,
            image_indices=file_image_indices(ts),
            crop=None if self.crop.value == "none" else self.crop.value,
            # a file of frames of counts, registered when it was opened: counts, resampled
            resampled_counts=bool((ts.metadata.get("frames") or {}).get("counts")),
        )
        if self.arrives_aligned.value:  # as AlignSettings.preprocess_only()
            opts.update(
                center_of_mass=False, common_line=False, tilt_axis=None, projection_matching=False
            )
        self._source = (layer.name, ts, element)
        self.status.value = "Aligning..."
        return self.runner.start(
            lambda progress, cancel: align_tilt_series(
                ts.data, ts.angles_deg, progress=progress, cancel=cancel, **opts
            )
        )

    def _done(self, res) -> None:
        name, ts, element = self._source
        self.result = res
        out = TiltSeries(
            res.data, res.angles_deg, ts.pixel_size_A, f"{name} aligned", {"alignment": res.steps}
        )
        data, kw, _ = tilt_series_layer_data(out, name=f"{name} aligned")
        kw["metadata"]["alignment"] = {
            "tilt_axis_angle_deg": res.tilt_axis_angle_deg,
            "shifts_px": np.asarray(res.shifts_px).tolist(),
            "angle_corrections_deg": np.asarray(res.angle_corrections_deg).tolist(),
            "steps": res.steps,
        }
        left = ts.metadata.get("excluded_images")
        if left:
            kw["metadata"]["alignment"]["excluded_images"] = left
        if ts.metadata.get("frames"):
            kw["metadata"]["alignment"]["frames"] = ts.metadata["frames"]
        # the Reconstruct dock takes the newest aligned layer: the counts for one element, the
        # denoised series for an alloy or a faint series (as ``napari-aet run``:
        # ReconSettings.series "auto")
        peak = (res.steps.get("denoise") or {}).get("brightest_counts")
        recon_denoised = recon_series_for("auto", element, peak) == "denoised"
        counts_layer = None
        if res.undenoised is not None:
            plain = TiltSeries(res.undenoised, res.angles_deg, ts.pixel_size_A, name, {})
            cdata, ckw, _ = tilt_series_layer_data(plain, name=f"{name} aligned counts")
            ckw["metadata"] = {**kw["metadata"], ALIGNED_COUNTS: True, "file_metadata": {}}
        if res.undenoised is not None and recon_denoised:
            counts_layer = self._viewer.add_image(cdata, visible=False, **ckw)
        new = self._viewer.add_image(data, **kw)
        show_result(self._viewer, new, hide_kinds=("tilt_series",))
        self._made.append(new.name)
        if res.undenoised is not None and not recon_denoised:
            counts_layer = self._viewer.add_image(cdata, visible=False, **ckw)
        if counts_layer is not None:
            self._made.append(counts_layer.name)
            self._viewer.layers.selection.active = new  # the shown layer's controls
        self._fill_table(res)
        self.undo_button.enabled = True
        s = np.asarray(res.shifts_px)
        notes = align_notes(res.steps)
        if left:
            notes.insert(0, excluded_note(ts.metadata))
        if fr := frames_note(ts.metadata):  # a file of frames, registered when it was opened
            notes.insert(0, fr)
        self.status.value = (
            f"Aligned: tilt axis {res.tilt_axis_angle_deg:+.3f} deg, shifts up to "
            f"{np.abs(s).max():.2f} px, angle corrections up to "
            f"{np.abs(res.angle_corrections_deg).max():.3f} deg"
            + (f" ({'; '.join(notes)})" if notes else "")
        )

    def _fill_table(self, res) -> None:
        n = len(res.angles_deg)
        self.table.setRowCount(n)
        for i in range(n):
            vals = [
                res.angles_deg[i],
                res.angle_corrections_deg[i],
                res.shifts_px[i, 0],
                res.shifts_px[i, 1],
            ]
            for j, v in enumerate(vals):
                self.table.setItem(i, j, QTableWidgetItem(f"{v:.3f}"))

    def undo(self, event=None) -> None:
        """Remove the layers this widget made and select the raw series again."""
        for name in self._made:
            if name in self._viewer.layers:
                self._viewer.layers.remove(name)
        self._made.clear()
        self.table.setRowCount(0)
        self.undo_button.enabled = False
        if self._source and self._source[0] in self._viewer.layers:
            self.layer.value = self._viewer.layers[self._source[0]]
        self.status.value = "Back to the raw series."
