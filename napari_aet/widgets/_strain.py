"""Dock widget "Strain and ORR": strain, local strain and ORR activity on the traced atoms."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    ComboBox,
    FileEdit,
    FloatSpinBox,
    PushButton,
    create_widget,
)

from .._layers import atoms_from_layer
from ..analysis import analyze_structure, gaussian_map
from ..core.elements import fcc_reference_A
from ..figures import diverging_limit, transparent_centre_rgba, values_to_rgba
from ..workflows import AnalyzeSettings
from ._runner import (
    DockContainer,
    StageRunner,
    StageWidgetMixin,
    add_plot_canvas,
    draw_subset,
    element_edit,
    element_value,
    follow_new_layers,
    select_latest,
    status_label,
)
from ._shared import apply_analysis

D = AnalyzeSettings()


if TYPE_CHECKING:
    import napari

COMPONENTS = (
    "local_strain",
    "facet_local_strain",
    "local_strain_smoothed",
    "orr_activity",
    "exx",
    "eyy",
    "ezz",
    "exy",
    "exz",
    "eyz",
)
FILTERS = {
    "all atoms": None,
    "all surface": "surface",
    "{111}": ("111",),
    "{100}": ("100",),
    "{111} and {100}": ("111", "100"),
}


def diverging_colormap(name: str = "RdBu_r"):
    """A napari colormap from a matplotlib diverging map whose centre is transparent (3D maps)."""
    from napari.utils.colormaps import Colormap

    t, rgba = transparent_centre_rgba(name)
    return Colormap(colors=rgba, controls=t, name=f"{name} (transparent centre)")


class StrainWidget(StageWidgetMixin, DockContainer):
    """Compute strain, facets, local strain and (with a relation table) ORR activity, then
    colour the atoms by any of them with a diverging map centred at zero, filter by facet, and
    add the 2.7 A-smoothed 3D map as an image layer.

    The ORR relation is a CSV table (facet, strain, activity, with its source): napari-aet
    ships none, see docs/methods.md.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self.layer = create_widget(annotation="napari.layers.Points", label="atoms")
        self.element = element_edit(D.element, uses="sets the reference lattice constant")
        self.a_ref = FloatSpinBox(
            label="reference a (A)",
            value=fcc_reference_A(D.element),
            min=2.0,
            max=7.0,
            step=0.001,
        )
        self.a_ref.tooltip = "bulk lattice constant the local strain is measured against"
        self.element.changed.connect(self._element_changed)
        self.frame = ComboBox(label="strain axes", choices=["lab", "crystal"], value=D.strain_frame)
        self.orr_table = FileEdit(label="ORR relation (CSV)", mode="r", filter="*.csv", value="")
        self.run_button = PushButton(text="Compute strain (and ORR)")
        self.color_by = ComboBox(label="colour by", choices=list(COMPONENTS), value="local_strain")
        self.facets = ComboBox(label="show", choices=list(FILTERS), value="all atoms")
        self.sigma = FloatSpinBox(label="map sigma (A)", value=2.7, min=0.5, max=10.0)
        self.map_button = PushButton(text="Add smoothed 3D map")
        self.status = status_label()
        self.extend(
            [
                self.layer,
                self.element,
                self.a_ref,
                self.frame,
                self.orr_table,
                self.run_button,
                self.color_by,
                self.facets,
                self.sigma,
                self.map_button,
                self.status,
            ]
        )
        self.result = None
        self.limits = None
        self.runner = StageRunner("strain", self._set_status, self._done, self._busy)
        self.run_button.changed.connect(self.run)
        self.color_by.changed.connect(lambda v: self.recolor())
        self.facets.changed.connect(lambda v: self.recolor())
        self.map_button.changed.connect(self.add_map)
        follow_new_layers(viewer, self.layer, ("atom_model",))
        select_latest(viewer, self.layer, ("atom_model",))
        self._figure, self._canvas = add_plot_canvas(self, figsize=(3.6, 1.9), min_height=160)

    def _element_changed(self, value=None) -> None:
        """An fcc element (or alloy) sets its reference lattice constant."""
        try:
            a = fcc_reference_A(element_value(self.element))
        except ValueError:
            return
        if a is not None:
            self.a_ref.value = a

    def run(self, event=None):
        layer = self.layer.value
        if layer is None or len(layer.data) < 20:
            self.status.value = "Not started: choose an atom layer with at least 20 atoms"
            return None
        table = str(self.orr_table.value or "")
        orr = Path(table) if table not in ("", ".") else None
        if orr is not None and not orr.is_file():
            self.status.value = f"Not started: no ORR table at {orr}"
            return None
        model = atoms_from_layer(layer.data, layer.features, layer.metadata)
        a_ref = float(self.a_ref.value)
        try:
            element = element_value(self.element)
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        frame = self.frame.value
        self._target = layer
        self.status.value = "Computing..."
        return self.runner.start(
            lambda progress, cancel: analyze_structure(
                model,
                strain=True,
                orr_relation=orr,
                strain_frame=frame,
                element=element,
                reference_lattice_constant_A=a_ref,
                progress=progress,
            )
        )

    def _done(self, res) -> None:
        self.result = res
        layer = self._target
        if not apply_analysis(self, layer, res.model.features, source="strain"):
            return
        layer.metadata["structure_analysis"] = res.summary
        self.recolor()
        s = res.summary.get("facets", {})
        parts = [
            f"{{{k}}}: {v['n_atoms']} atoms, surface local strain "
            f"{100 * v['facet_local_strain_mean']:+.2f} %"
            for k, v in s.items()
            if k != "both" and v.get("facet_local_strain_mean") is not None
        ]
        notes = res.summary.get("notes", [])
        self.status.value = "Done. " + "; ".join(parts) + "".join(f". Note: {n}" for n in notes)

    def _mask(self, f) -> np.ndarray:
        which = FILTERS[self.facets.value]
        if which is None:
            return np.ones(len(f), bool)
        if which == "surface":
            return f["surface"].to_numpy().astype(bool) if "surface" in f else np.ones(len(f), bool)
        if "facet" not in f:
            return np.zeros(len(f), bool)
        return f["facet"].astype(str).isin(which).to_numpy()

    def recolor(self) -> None:
        """Colour the atoms by the chosen quantity (diverging, centred at zero) and filter."""
        layer = self.layer.value
        if layer is None:
            return
        f = layer.features
        name = self.color_by.value
        if name not in f.columns:
            self.status.value = f"No {name} yet: press Compute (ORR needs a relation table)"
            return
        v = f[name].to_numpy(float)
        shown = self._mask(f)
        vals = v[shown & np.isfinite(v)]
        lim = diverging_limit(vals)
        self.limits = (-lim, lim)
        layer.face_color = values_to_rgba(v, (-lim, lim), "RdBu_r")
        which = FILTERS[self.facets.value]
        draw_subset(self._viewer, layer, shown, None if which is None else self.facets.value)
        self._plot(name, vals, lim)

    def _plot(self, name, vals, lim) -> None:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        scale = 100.0 if name != "orr_activity" else 1.0
        unit = "%" if scale == 100.0 else "log10 j/j_Pt(111)"
        self._figure.clear()
        ax = self._figure.add_subplot()
        if vals.size:
            ax.hist(vals * scale, bins=40, color="0.5")
        ax.set_xlim(-lim * scale, lim * scale)
        ax.set_xlabel(f"{name} ({unit})", fontsize=8)
        ax.tick_params(labelsize=7)
        sm = ScalarMappable(norm=Normalize(-lim * scale, lim * scale), cmap="RdBu_r")
        self._figure.colorbar(sm, ax=ax, orientation="horizontal", location="top", aspect=30)
        self._canvas.draw_idle()

    def add_map(self, event=None):
        """The chosen quantity over the shown atoms, smoothed onto a grid, as an image layer."""
        layer = self.layer.value
        name = self.color_by.value
        if layer is None or name not in layer.features.columns:
            self.status.value = f"Not added: no {name} on the layer yet (press Compute)"
            return None
        f = layer.features
        sel = self._mask(f)
        try:
            grid, origin = gaussian_map(
                np.asarray(layer.data)[sel],
                f[name].to_numpy(float)[sel],
                sigma_A=float(self.sigma.value),
                spacing_A=1.0,
            )
        except ValueError as err:
            self.status.value = f"Not added: {err}"
            return None
        lim = self.limits[1] if self.limits else float(np.nanmax(np.abs(grid))) or 1.0
        img = self._viewer.add_image(
            np.nan_to_num(grid, nan=0.0),
            name=f"{layer.name} {name} map ({self.facets.value})",
            scale=(1.0, 1.0, 1.0),  # the grid's spacing, 1 A
            units=("angstrom",) * 3,
            axis_labels=("z", "y", "x"),
            translate=tuple(origin),
            colormap=diverging_colormap(),
            contrast_limits=(-lim, lim),
            blending="translucent",
            rendering="translucent",
            metadata={
                "napari_aet_type": "strain_map",
                "quantity": name,
                "sigma_A": self.sigma.value,
            },
        )
        self.status.value = f"Added {img.name}"
        return img
