"""Dock widget "Reconstruct (GENFIRE)": tilt-series layer in, tomogram layer out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FloatSpinBox,
    PushButton,
    SpinBox,
    create_widget,
)

from ..figures import plot_recon_errors
from ..recon import check_tomogram, genfire
from ..workflows import ReconSettings, dual_axis_geometry
from ._runner import (
    DockContainer,
    StageRunner,
    StageWidgetMixin,
    add_plot_canvas,
    follow_new_layers,
    select_latest,
    show_result,
    status_label,
)
from ._tilt_series import is_aligned, stage_series

D = ReconSettings()


if TYPE_CHECKING:
    import napari


class ReconWidget(StageWidgetMixin, DockContainer):
    """GENFIRE reconstruction of the selected tilt series, in a worker thread.

    The tilt-series layer must carry its angles and pixel size (see the *Tilt-series geometry*
    widget). The tomogram is added as a 3D Image layer with ``scale = pixel size``; the error and
    R-free curves are plotted below the form. A failed or cancelled run adds nothing.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self.layer = create_widget(annotation="napari.layers.Image", label="tilt series")
        self.second = create_widget(
            value=None,
            annotation="napari.layers.Image",
            label="second axis",
            options={"nullable": True},
        )
        self.second.tooltip = (
            "dual-axis: the second tilt series (same size and pixel size, the specimen turned "
            "about the beam); its turn is measured and both are reconstructed together"
        )
        self.iterations = SpinBox(label="iterations", value=D.iterations, min=1, max=100000)
        self.oversampling = FloatSpinBox(
            label="oversampling", value=D.oversampling, min=1.0, max=8.0
        )
        self.interpolation = ComboBox(
            label="gridding", choices=["fft", "dft"], value=D.interpolation
        )
        self.radius = FloatSpinBox(
            label="interp. radius (voxels)", value=0.3, min=0.01, max=1.0, step=0.05
        )
        self.support = ComboBox(label="support", choices=["auto", "box"], value=D.support)
        self.positivity = CheckBox(label="positivity", value=D.positivity)
        self.rfree = FloatSpinBox(
            label="R-free fraction", value=D.rfree_fraction, min=0.0, max=0.5, step=0.01
        )
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda"], value=D.device)
        self.run_button = PushButton(text="Reconstruct")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = status_label()
        self.extend(
            [
                self.layer,
                self.second,
                self.iterations,
                self.oversampling,
                self.interpolation,
                self.radius,
                self.support,
                self.positivity,
                self.rfree,
                self.device,
                self.run_button,
                self.cancel_button,
                self.status,
            ]
        )
        self.result = None
        self._source = None
        self.runner = StageRunner("GENFIRE", self._set_status, self._done, self._busy)
        self._canvas = None
        self.interpolation.changed.connect(self._default_radius)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.runner.cancel)
        follow_new_layers(viewer, self.layer, ("tilt_series",))
        select_latest(viewer, self.layer, ("tilt_series",), prefer=is_aligned)
        self._figure, self._canvas = add_plot_canvas(self)

    def _default_radius(self, value) -> None:
        self.radius.value = 0.3 if value == "fft" else 0.1

    def run(self, event=None):
        """Start the reconstruction; returns the worker (None if the input is not usable)."""
        layer = self.layer.value
        try:
            ts = stage_series(self._viewer, layer)
            second = self.second.value
            if second is layer:
                raise ValueError("the second axis is the first series: choose another or none")
            tsb = None if second is None else stage_series(self._viewer, second)
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        params = dict(
            iterations=int(self.iterations.value),
            oversampling=float(self.oversampling.value),
            interpolation=self.interpolation.value,
            interpolation_radius=float(self.radius.value),
            support=self.support.value,
            positivity=bool(self.positivity.value),
            rfree_fraction=float(self.rfree.value),
            device=self.device.value,
        )
        self._source = (layer.name, ts)
        self.status.value = "Gridding..." if tsb is None else "Turning the second series..."

        def work(progress, cancel):
            if tsb is None:
                return genfire(ts.data, ts.angles_deg, progress=progress, cancel=cancel, **params)
            geometry = ReconSettings(device=params["device"])
            data, euler, dual, notes = dual_axis_geometry(ts, tsb, geometry, cancel)
            res = genfire(data, euler_deg=euler, progress=progress, cancel=cancel, **params)
            res.settings["dual_axis"] = {**dual, "notes": notes}
            return res

        return self.runner.start(work)

    def _done(self, res) -> None:
        source_name, ts = self._source
        try:
            check_tomogram(res.volume, source_name)
        except ValueError as err:  # nothing to trace: say so, add nothing
            self.status.value = f"Failed: {err}"
            return
        self.result = res
        px = ts.pixel_size_A
        new = self._viewer.add_image(
            res.volume,
            name=f"{source_name} GENFIRE",
            scale=(px, px, px),
            colormap="inferno",
            units=("angstrom", "angstrom", "angstrom"),
            axis_labels=("z", "y", "x"),
            metadata={
                "napari_aet_type": "tomogram",
                "voxel_size_A": ts.pixel_size_A,
                "recon_settings": res.settings,
                "errors": res.errors.tolist(),
                "rfree": res.rfree.tolist(),
            },
        )
        show_result(self._viewer, new, hide_kinds=("tilt_series", "tomogram"))
        self._plot(res.errors, res.rfree)
        t = res.timings_s
        self.status.value = (
            f"Done on {res.settings['device']}: error {res.errors[-1]:.4f}, "
            f"R-free {res.rfree[-1]:.4f}; {t['per_iteration']:.2f} s/iteration"
        )
        if res.settings.get("support_note"):
            self.status.value += f". Support: {res.settings['support_note']}"
        if dual := res.settings.get("dual_axis"):
            self.status.value += (
                f". Dual-axis: {dual['n_images'][0]} + {dual['n_images'][1]} images, the second "
                f"turned by {dual['rotation_deg']:+.2f} deg"
                + "".join(f". Note: {n}" for n in dual["notes"])
            )

    def _plot(self, errors, rfree) -> None:

        self._figure.clear()
        plot_recon_errors(errors, rfree, ax=self._figure.add_subplot(), title=None)
        self._canvas.draw_idle()
