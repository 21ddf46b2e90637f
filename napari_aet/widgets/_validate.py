"""Dock widget "Validate": the R-factor of the atom model on screen against the aligned series,
and the precision analysis (the model's series simulated, reconstructed and traced again)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
    create_widget,
)

from .._layers import atoms_from_layer, tilt_series_layer_data
from ..analysis import STUDY_BLUR_SIGMA_A
from ..augment import AUTO_WEIGHTS, choose_weights
from ..core.progress import prefixed
from ..figures import plot_deviation_histogram, plot_r_factors
from ..io import TiltSeries
from ..workflows import (
    PrecisionSettings,
    ValidateSettings,
    multislice_on_cpu,
    precision_of_atoms,
    validate_atoms,
)
from ._runner import (
    DockContainer,
    StageRunner,
    StageWidgetMixin,
    add_plot_canvas,
    element_edit,
    element_value,
    follow_new_layers,
    select_latest,
    shipped_weight_choices,
    status_label,
)
from ._tilt_series import is_aligned, stage_series

D = ValidateSettings()
P = PrecisionSettings()
NO_WEIGHTS = "none (GENFIRE only)"


def _simulators() -> list[str]:
    """The precision analysis' simulators here: the project's own always, abTEM's multislice
    (the study's) where the extra is installed."""
    from importlib.util import find_spec

    return ["kirkland", *(["multislice"] if find_spec("abtem") else [])]


if TYPE_CHECKING:
    import napari


class ValidateWidget(StageWidgetMixin, DockContainer):
    """Forward-project the atom layer at the series' angles and compare with the images: the
    R-factor per image (plotted), the projections' blur fitted to the images (or the study's
    0.45 A), where the images cut the particle, and the calculated and residual stacks as
    layers beside the series to scroll through. The model is taken as it is on screen, manual
    edits included: check a correction before exporting it.

    The precision analysis (the study's Methods: its 0.2 % and 9.9 pm) simulates the model's
    own series at the series' angles, pixel size and image size, reconstructs it with GENFIRE
    (and the U-Net), traces it again and compares: how well this pipeline recovers a structure
    like this one. The project's simulator (at the study's dose) takes a few minutes at 256
    px on a CPU; abTEM's multislice with the study's beam settings wants a GPU. The deviation
    histogram of the common atoms replaces the plot."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self.layer = create_widget(annotation="napari.layers.Points", label="atoms")
        self.series = create_widget(annotation="napari.layers.Image", label="aligned series")
        self.element = element_edit(D.element, uses="sets each atom's projected potential")
        self.fit_blur = CheckBox(label="fit the blur to the images", value=D.blur_sigma_A is None)
        self.blur = FloatSpinBox(
            label="blur (A)", value=STUDY_BLUR_SIGMA_A, min=0.05, max=3.0, step=0.01
        )
        self.blur.enabled = not self.fit_blur.value
        self.fit_blur.changed.connect(lambda v: setattr(self.blur, "enabled", not v))
        self.run_button = PushButton(text="Compute R-factors")
        self.precision_label = Label(value="<b>Precision analysis</b> (simulate, trace again)")
        self.precision_label._full_width = True  # a heading: the whole row
        self.simulator = ComboBox(label="simulator", choices=_simulators(), value="kirkland")
        self.simulator.tooltip = (
            "kirkland: the project's incoherent simulator at the study's dose (minutes on a "
            "CPU); multislice: abTEM with the study's beam settings (hours on a CPU: use a GPU)"
        )
        shipped = shipped_weight_choices()
        self.weights = ComboBox(
            label="U-Net weights",
            choices=[NO_WEIGHTS, *shipped],
            value=AUTO_WEIGHTS if AUTO_WEIGHTS in shipped else NO_WEIGHTS,
        )
        self.weights.tooltip = (
            "the simulated tomogram is traced as it is and, with weights, after the U-Net too "
            "(auto: the alloy network for several elements, else fcc, as 'napari-aet run')"
        )
        self.iterations = SpinBox(
            label="GENFIRE iterations", value=P.iterations, min=5, max=10000, step=10
        )
        self.precision_button = PushButton(text="Run precision analysis")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = status_label()
        self.extend(
            [
                self.layer,
                self.series,
                self.element,
                self.fit_blur,
                self.blur,
                self.run_button,
                self.precision_label,
                self.simulator,
                self.weights,
                self.iterations,
                self.precision_button,
                self.cancel_button,
                self.status,
            ]
        )
        self.result = None
        self.precision = None
        self._source = None
        self._job = None
        self.runner = StageRunner("validate", self._set_status, self._done, self._busy)
        self.precision_runner = StageRunner(
            "precision", self._set_status, self._precision_done, self._busy
        )
        self.run_button.changed.connect(self.run)
        self.precision_button.changed.connect(self.run_precision)
        self.cancel_button.changed.connect(self.precision_runner.cancel)
        follow_new_layers(viewer, self.layer, ("atom_model",))
        select_latest(viewer, self.layer, ("atom_model",))
        follow_new_layers(viewer, self.series, ("tilt_series",))
        select_latest(viewer, self.series, ("tilt_series",), prefer=is_aligned)
        self._figure, self._canvas = add_plot_canvas(self, figsize=(3.6, 2.0), min_height=170)

    def _busy(self, busy: bool) -> None:
        # one job at a time: both read the same layers, and the status line is shared
        self.run_button.enabled = self.precision_button.enabled = not busy
        self.cancel_button.enabled = busy and self._job == "precision"

    def _inputs(self):
        """The model on screen, the aligned series and the element, or ValueError."""
        atoms, layer = self.layer.value, self.series.value
        if atoms is None or len(atoms.data) == 0:
            raise ValueError("choose an atom layer with atoms")
        ts = stage_series(
            self._viewer, layer, what="the aligned tilt-series layer the atoms came from"
        )
        element = element_value(self.element)
        return atoms_from_layer(atoms.data, atoms.features, atoms.metadata), layer, ts, element

    def run(self, event=None):
        """Start the comparison; returns the worker (None if the inputs are not usable)."""
        try:
            model, layer, ts, element = self._inputs()
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        self._job = "validate"
        blur = None if self.fit_blur.value else float(self.blur.value)
        settings = ValidateSettings(element=element, blur_sigma_A=blur)
        self._source = (layer.name, ts)
        self.status.value = "Fitting the blur..." if blur is None else "Projecting..."
        return self.runner.start(
            lambda progress, cancel: validate_atoms(model, ts, settings, progress=progress)
        )

    def run_precision(self, event=None):
        """Start the precision analysis of the model on screen at the series' geometry;
        returns the worker (None if the inputs are not usable)."""
        try:
            model, layer, ts, element = self._inputs()
            weights = None
            if self.weights.value == AUTO_WEIGHTS:
                weights = choose_weights(AUTO_WEIGHTS, element)
            elif self.weights.value != NO_WEIGHTS:
                weights = self.weights.value
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        settings = PrecisionSettings(
            simulator=self.simulator.value,
            element=element,
            weights=weights,
            iterations=int(self.iterations.value),
        )
        self.status.value = f"Simulating the model's {len(ts.angles_deg)} images..."
        # multislice on a CPU takes hours at 256 px: every message of the run says so
        slow = multislice_on_cpu(settings)
        prefix = "(multislice on the CPU: slow; kirkland takes minutes) " if slow else ""
        self._job = "precision"
        return self.precision_runner.start(
            lambda progress, cancel: precision_of_atoms(
                model, ts, settings, prefixed(progress, prefix), cancel
            )
        )

    def _precision_done(self, out) -> None:
        res, notes = out
        self.precision = res
        self._figure.clear()
        plot_deviation_histogram(res.comparisons, ax=self._figure.add_subplot())
        self._canvas.draw_idle()
        summary = res.summary()
        n = next(iter(summary.values()))["n_model"] if summary else 0
        parts = [
            f"{name} {100 * v['identification_error']:.2f} %, {v['rmsd_pm']:.1f} pm"
            for name, v in summary.items()
        ]
        text = (
            f"Precision ({res.settings['simulator']}, {n} atoms; identification error, RMSD): "
            + "; ".join(parts)
        )
        self.status.value = text + "".join(f". Note: {note}" for note in notes)

    def _done(self, v) -> None:
        name, ts = self._source
        ts = TiltSeries(ts.data, v.angles_deg, ts.pixel_size_A, ts.source)  # the angles used
        self.result = v
        res = v.result
        for what, stack in (("calculated", res.calculated), ("residual", res.residuals)):
            title = f"{name} {what}"
            data, kw, _ = tilt_series_layer_data(
                TiltSeries(stack, ts.angles_deg, ts.pixel_size_A, f"validate: {what}"), title
            )
            kw["metadata"]["napari_aet_type"] = "validation"  # not a series to align again
            limits = (float(data.min()), float(data.max()))
            if what == "residual":  # what the model misses red, what it invents blue
                m = float(np.percentile(np.abs(data), 99.5)) or 1.0
                kw["colormap"], limits = "bwr", (-m, m)
            if title in self._viewer.layers:  # a second run replaces the first's stacks
                self._viewer.layers[title].data = data
                self._viewer.layers[title].contrast_limits = limits
            else:
                self._viewer.add_image(data, **kw, contrast_limits=limits, visible=False)
        self._figure.clear()
        plot_r_factors(ts.angles_deg, res.r_per_image, ax=self._figure.add_subplot())
        self._canvas.draw_idle()
        worst = int(np.argmax(res.r_per_image))
        text = (
            f"Done: mean R-factor {res.r_mean:.4f} over {len(res.r_per_image)} images "
            f"(worst {res.r_per_image[worst]:.4f} at {ts.angles_deg[worst]:+.1f} deg), blur "
            f"{v.blur_sigma_A:.3f} A" + (" (fitted)" if self.fit_blur.value else "")
        )
        if v.r_mean_study_blur is not None:
            text += f"; {v.r_mean_study_blur:.4f} with the study's {STUDY_BLUR_SIGMA_A} A"
        if v.angles_checked:
            text += "; at the angles the refine stage's angle check corrected"
        note = v.coverage.note(ts.angles_deg)
        self.status.value = text + (f". Note: {note}" if note else "")
