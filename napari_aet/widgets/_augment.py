"""Dock widget "Augment (U-Net)": tomogram layer in, augmented tomogram layer beside it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import (
    ComboBox,
    FileEdit,
    PushButton,
    SpinBox,
    create_widget,
)

from .._layers import tomogram_voxel_size_A
from ..augment import (
    AUTO_WEIGHTS,
    augment_volume,
    choose_weights,
)
from ..workflows import AugmentSettings
from ._runner import (
    DockContainer,
    StageRunner,
    StageWidgetMixin,
    element_edit,
    element_value,
    follow_new_layers,
    select_latest,
    shipped_weight_choices,
    show_result,
    status_label,
)

D = AugmentSettings()


if TYPE_CHECKING:
    import napari

USER_FILE = "weights file..."


class AugmentWidget(StageWidgetMixin, DockContainer):
    """Clean a tomogram with the 3D U-Net (shipped fcc / amorphous / alloy weights or a file;
    "auto", the default as in ``napari-aet run``: the alloy weights for several elements, else
    fcc).

    Runs in a worker thread with progress per tile; the augmented tomogram is added beside the
    raw one with the same scale (and becomes the Trace widget's default input). A failed or
    cancelled run adds nothing.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self.layer = create_widget(annotation="napari.layers.Image", label="tomogram")
        shipped = shipped_weight_choices()
        self.weights = ComboBox(
            label="weights", choices=[*shipped, USER_FILE], value=(shipped or [USER_FILE])[0]
        )
        self.weights.tooltip = (
            "auto: the alloy network for several elements, the fcc one otherwise (as "
            "'napari-aet run'); amorphous for an amorphous particle"
        )
        self.element = element_edit(
            "Pt",
            uses="the tomogram is resampled so that its bond length appears as the training "
            "particles' did; with 'auto' weights several elements pick the alloy network",
        )
        self.weights_file = FileEdit(label="weights file", filter="*.pt", mode="r")
        self.tile = SpinBox(label="tile (voxels)", value=D.tile_px, min=16, max=512, step=8)
        self.overlap = SpinBox(label="overlap (voxels)", value=D.overlap_px, min=0, max=128, step=4)
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda"], value=D.device)
        self.run_button = PushButton(text="Augment")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = status_label()
        self.extend(
            [
                self.layer,
                self.weights,
                self.element,
                self.weights_file,
                self.tile,
                self.overlap,
                self.device,
                self.run_button,
                self.cancel_button,
                self.status,
            ]
        )
        self.result = None
        self._source = None
        self.runner = StageRunner("U-Net", self._set_status, self._done, self._busy)
        self.weights.changed.connect(self._show_file)
        self._show_file(self.weights.value)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.runner.cancel)
        follow_new_layers(viewer, self.layer, ("tomogram",))
        select_latest(
            viewer, self.layer, ("tomogram",), prefer=lambda la: not la.metadata.get("augmented")
        )

    def _show_file(self, value) -> None:
        self.weights_file.visible = value == USER_FILE

    def run(self, event=None):
        """Start the augmentation; returns the worker (None if the input is not usable)."""
        layer = self.layer.value
        try:
            vs = tomogram_voxel_size_A(layer)
            element = element_value(self.element)
            if self.weights.value == USER_FILE:
                weights = Path(self.weights_file.value)
                if not weights.is_file():
                    raise ValueError("choose a weights file (.pt from 'napari-aet train')")
            elif self.weights.value == AUTO_WEIGHTS:
                weights = choose_weights(AUTO_WEIGHTS, element)
            else:
                weights = self.weights.value
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        data = layer.data
        params = dict(
            voxel_size_A=vs,
            weights=weights,
            element=element,
            tile_px=int(self.tile.value),
            overlap_px=int(self.overlap.value),
            device=self.device.value,
        )
        self._source = (layer, vs)
        self._weights_name = weights if isinstance(weights, str) else Path(weights).name
        self.status.value = f"Loading the {self._weights_name} network..."
        return self.runner.start(
            lambda progress, cancel: augment_volume(
                data, progress=progress, cancel=cancel, **params
            )
        )

    def _done(self, res) -> None:
        layer, vs = self._source
        self.result = res
        new = self._viewer.add_image(
            res.volume,
            name=f"{layer.name} U-Net",
            scale=tuple(layer.scale),
            translate=tuple(layer.translate),
            colormap="inferno",
            units=getattr(layer, "units", None),
            axis_labels=("z", "y", "x"),
            metadata={
                "napari_aet_type": "tomogram",
                "voxel_size_A": vs,
                "augmented": True,
                "augment_settings": res.settings,
                "source_layer": layer.name,
            },
        )
        show_result(self._viewer, new, hide_kinds=("tilt_series", "tomogram"))
        self.status.value = (
            f"Done with the {self._weights_name} weights on {res.settings['device']} in "
            f"{res.seconds:.1f} s"
        )
