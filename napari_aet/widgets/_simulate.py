"""Dock widget "Simulate tilt series": build a particle and its tilt series in a worker."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from qtpy.QtCore import QTimer

from .._layers import atoms_layer_data, tilt_series_layer_data
from ..core.elements import parse_elements
from ..io import TiltSeries, parse_angles
from ..simulate import STRUCTURES, build_structure, simulate_tilt_series
from ..workflows import SimulateSettings
from ._runner import DockContainer, element_edit, element_value, status_label

D = SimulateSettings()


if TYPE_CHECKING:
    import napari


class SimulateWidget(DockContainer):
    """Simulate a particle (twinned dumbbell, fcc, bcc, hcp, amorphous or a glass) and its
    ADF-STEM tilt series."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self.structure = ComboBox(label="structure", choices=list(STRUCTURES), value="fcc")
        self.element = element_edit(D.element, uses="several make a random alloy")
        self.radius = FloatSpinBox(label="radius (A)", value=12.0, min=3.0, max=60.0)
        self.angles = LineEdit(label="angles (deg)", value=D.angles)
        self.pixel_size = FloatSpinBox(
            label="pixel size (A)", value=D.pixel_size_A, min=0.05, max=5.0
        )
        self.size_px = SpinBox(label="image size (px)", value=128, min=16, max=1024)
        self.dose = FloatSpinBox(
            label="dose (e/A^2/image)", value=round(D.dose_e_per_A2), min=0.0, max=1e7
        )
        self.angle_error = FloatSpinBox(label="angle error sd (deg)", value=0.0, min=0.0, max=5.0)
        self.shift_error = FloatSpinBox(label="shift error (px)", value=0.0, min=0.0, max=50.0)
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.add_truth = CheckBox(label="add true atoms", value=False)
        self.run_button = PushButton(text="Simulate")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = status_label()
        self.extend(
            [
                self.structure,
                self.element,
                self.radius,
                self.angles,
                self.pixel_size,
                self.size_px,
                self.dose,
                self.angle_error,
                self.shift_error,
                self.seed,
                self.add_truth,
                self.run_button,
                self.cancel_button,
                self.status,
            ]
        )
        self._cancel = threading.Event()
        self.worker = None
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self._cancel.set)

    def _compute(self, params: dict):
        atoms = build_structure(
            params["structure"],
            element=params["element"],
            radius_A=params["radius"],
            shape_px=(params["size"], params["size"]),
            pixel_size_A=params["pixel_size"],
            seed=params["seed"],
        )
        progress_events = []
        sim = simulate_tilt_series(
            atoms,
            params["angles"],
            pixel_size_A=params["pixel_size"],
            shape_px=(params["size"], params["size"]),
            element=parse_elements(params["element"])[0],
            dose_e_per_A2=params["dose"] or None,
            angle_error_deg=params["angle_error"],
            shift_error_px=params["shift_error"],
            seed=params["seed"],
            progress=lambda d, t, m: progress_events.append(d),
            cancel=self._cancel,
        )
        return sim

    def run(self, event=None):
        """Start the simulation in a worker thread; layers are added when it finishes."""
        from napari.qt.threading import create_worker

        try:
            angles = parse_angles(self.angles.value)
            element_value(self.element)
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        params = {
            "structure": self.structure.value,
            "element": element_value(self.element),
            "radius": float(self.radius.value),
            "angles": angles,
            "pixel_size": float(self.pixel_size.value),
            "size": int(self.size_px.value),
            "dose": float(self.dose.value),
            "angle_error": float(self.angle_error.value),
            "shift_error": float(self.shift_error.value),
            "seed": int(self.seed.value),
        }
        self._cancel.clear()
        worker = create_worker(self._compute, params, _progress={"desc": "Simulating tilt series"})
        worker.returned.connect(self._done)
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = "Simulating..."
        self.worker = worker
        QTimer.singleShot(0, worker.start)  # after the caller connected (see widgets._runner)
        return worker

    def _done(self, sim) -> None:
        if self._cancel.is_set():
            return  # results of a cancelled task are dropped
        ts = TiltSeries(sim.data, sim.angles_deg, sim.pixel_size_A, "simulated", {})
        data, kwargs, _ = tilt_series_layer_data(ts, name=f"simulated {self.structure.value}")
        kwargs["metadata"]["simulation"] = sim.settings
        kwargs["metadata"]["truth_angles_deg"] = [float(a) for a in sim.truth.angles_deg]
        kwargs["metadata"]["truth_shifts_px"] = np.asarray(sim.truth.shifts_px).tolist()
        self._viewer.add_image(data, **kwargs)
        if self.add_truth.value:
            pdata, pkw, _ = atoms_layer_data(sim.truth.atoms, name="true atoms")
            self._viewer.add_points(pdata, **pkw)
        self.status.value = (
            f"{sim.truth.atoms.n_atoms} atoms, {len(sim.angles_deg)} images of "
            f"{sim.data.shape[1]} x {sim.data.shape[2]} px"
        )

    def _failed(self, err) -> None:
        self.status.value = f"Failed: {err}"

    def _finished(self) -> None:
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        if self._cancel.is_set():
            self.status.value = "Cancelled; nothing was added."
