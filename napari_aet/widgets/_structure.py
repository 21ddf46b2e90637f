"""Dock widget "Structure": stacking analysis of an atom layer, colouring, layer table, Q4-Q6."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Label,
    LineEdit,
    PushButton,
    create_widget,
)
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from .._layers import _STACKING_COLORS, atoms_from_layer
from ..analysis import MULTIPLY_TWINNED, analyze_structure, in_plane_zone_axes
from ..core.geometry import in_plane_basis
from ..figures import (
    STUDY_LAYER_COLORS,
    layer_groups,
    plot_composition_by_depth,
    plot_layer_rmsd,
    plot_q4_q6,
    summary_layer_groups,
)
from ..workflows import AnalyzeSettings
from ._runner import (
    DockContainer,
    StageRunner,
    StageWidgetMixin,
    add_plot_canvas,
    add_table,
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

_FACET_COLORS = {"111": "#e9c46a", "100": "#2a9d8f"}

SIDE_110 = "in-layer <110> (layers edge-on)"
SIDE_112 = "in-layer <112> (layers edge-on)"
DOWN_111 = "[111] (down the stacking)"
#: The camera directions the Structure widget offers: choice -> zone-axis family.
VIEW_CHOICES = {SIDE_110: "<110>", SIDE_112: "<112>", DOWN_111: "[111]"}


def _fmt(v) -> str:
    return "" if v is None else f"{v:.3f}"


def parse_layer_selection(text: str) -> set[int] | None:
    """``"-1:1"`` or ``"-1, 0, 1"`` -> {-1, 0, 1}; empty -> None (all layers)."""
    text = text.strip()
    if not text:
        return None
    out: set[int] = set()
    for tok in text.replace(";", ",").split(","):
        tok = tok.strip()
        if not tok:
            continue
        if ":" in tok[1:]:
            i = tok.index(":", 1)
            a, b = int(tok[:i]), int(tok[i + 1 :])
            out.update(range(min(a, b), max(a, b) + 1))
        else:
            out.add(int(tok))
    return out


#: Local chemical order (L1_0, L1_2 ordered; A1 disordered).
_ORDER_COLORS = {"L1_0": "#e76f51", "L1_2": "#2a9d8f", "A1": "#e9c46a"}


class StructureWidget(StageWidgetMixin, DockContainer):
    """Analyse the (111) stacking of an atom layer and colour it.

    Colour presets: the study's (interface red, upper twin boundary yellow, lower green, the two
    clusters in blues), or any feature (layer, stacking, cluster, local structure, Q4, Q6). The
    layer table lists each (111) layer; *show layers* keeps only chosen layers visible (e.g.
    ``-1:1`` for the interface and both twin boundaries).
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self.layer = create_widget(annotation="napari.layers.Points", label="atoms")
        self.run_button = PushButton(text="Analyze")
        self.color_by = ComboBox(
            label="colour by",
            choices=[
                "study preset",
                "layer",
                "stacking",
                "cluster",
                "grain",
                "chemical_order",
                "order_variant",
                "depth_shell",
                "local_structure",
                "q4",
                "q6",
                "facet",
                "local_strain",
                "facet_local_strain",
                "a_local",
                "exx",
                "eyy",
                "ezz",
                "exy",
                "exz",
                "eyz",
            ],
            value="study preset",
        )
        self.element = element_edit(D.element)
        self.element.tooltip = "sets the reference lattice constant and the Q4/Q6 cutoff"
        self.structure = ComboBox(
            label="structure", choices=["auto", "crystalline", "amorphous"], value=D.structure
        )
        self.structure.tooltip = (
            "auto: crystal labels when the atoms form close-packed layers, else g(r), "
            "coordination and Voronoi motifs; the others force one"
        )
        self.strain = CheckBox(label="strain, facets, local strain", value=False)
        self.show_layers = LineEdit(label="show layers", value="")
        self.show_layers.tooltip = "e.g. -1:1 or -1, 0, 1; empty shows all"
        self.show_grains = LineEdit(label="show grains", value="")
        self.show_grains.tooltip = (
            "twin domains of a multiply twinned particle, e.g. 0, 2 or 0:1; empty shows all"
        )
        self.show_shells = LineEdit(label="show shells", value="")
        self.show_shells.tooltip = (
            "an alloy's shells from the surface inward (0 = surface), e.g. 1:9 to look beneath "
            "the surface; empty shows all"
        )
        self.legend = Label(value="")
        self.legend.native.setTextFormat(Qt.RichText)
        self.legend.native.setWordWrap(True)
        self.view_direction = ComboBox(
            label="view along",
            choices=list(VIEW_CHOICES),
            value=SIDE_110,
            tooltip="in-layer <110>: the layers, the interface and the twin boundaries edge-on "
            "with the atom columns end-on (chosen after each analysis); press View again for "
            "the next of the three equivalent directions",
        )
        self.view_button = PushButton(text="View")
        self.select_button = PushButton(text="Analyze with selected atoms as cluster 1")
        self.status = status_label()
        self.extend(
            [
                self.layer,
                self.element,
                self.structure,
                self.strain,
                self.run_button,
                self.color_by,
                self.legend,
                self.show_layers,
                self.show_grains,
                self.show_shells,
                self.view_direction,
                self.view_button,
                self.status,
            ]
        )
        self.table = QTableWidget(0, 7)
        self.table.setHorizontalHeaderLabels(
            [
                "layer",
                "A/B/C",
                "stacking",
                "atoms",
                "orientation (deg)",
                "2D RMSD surface (A)",
                "2D RMSD core (A)",
            ]
        )
        self.table.setMinimumHeight(160)
        add_table(self, self.table)
        self._figure, self._canvas = add_plot_canvas(self, figsize=(3.6, 5.0), min_height=380)
        self.result = None
        self._target = None
        self.runner = StageRunner("Structure", self._set_status, self._done, self._busy)
        self.run_button.changed.connect(self.run)
        self.color_by.changed.connect(lambda v: self.recolor())
        self.show_layers.changed.connect(lambda v: self.apply_layer_selection())
        self.show_grains.changed.connect(lambda v: self.apply_layer_selection())
        self.show_shells.changed.connect(lambda v: self.apply_layer_selection())
        self.view_button.changed.connect(lambda e=None: self.view_along())
        self._zone_axes = None
        self._last_choice = None
        self._turn = 0
        self.select_button.changed.connect(self.run_with_selection)
        follow_new_layers(viewer, self.layer, ("atom_model",))
        select_latest(viewer, self.layer, ("atom_model",))

    def run_with_selection(self, event=None):
        """Analyse with the atoms selected in the layer as cluster 1 and the rest as cluster 0."""
        layer = self.layer.value
        if layer is None or not layer.selected_data:
            self.status.value = "Select atoms first (the layer's selection tool)"
            return None
        clusters = np.zeros(len(layer.data), np.int64)
        clusters[sorted(layer.selected_data)] = 1
        return self.run(clusters=clusters)

    def run(self, event=None, *, clusters=None):
        layer = self.layer.value
        if layer is None or len(layer.data) < 10:
            self.status.value = "Not started: choose an atom layer with at least 10 atoms"
            return None
        model = atoms_from_layer(layer.data, layer.features, layer.metadata)
        strain = bool(self.strain.value)
        structure = self.structure.value
        try:
            element = element_value(self.element)
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        self._target = layer
        self.status.value = "Analysing..."
        return self.runner.start(
            lambda progress, cancel: analyze_structure(
                model,
                clusters=clusters,
                strain=strain,
                element=element,
                structure=structure,
                progress=progress,
            )
        )

    def _done(self, res) -> None:
        self.result = res
        layer = self._target
        if not apply_analysis(self, layer, res.model.features, source="structure"):
            return
        layer.metadata["structure_analysis"] = res.summary
        self._fill_table(res.summary["layers"])
        self.recolor()
        self._plot()
        self._zone_axes, self._last_choice = None, None
        if res.summary.get("n_layers"):  # a layered crystal: show its layers edge-on at once
            self.view_direction.value = SIDE_110
            self.view_along(SIDE_110)
        s = res.summary
        grains = s.get("grains") or {}
        multi = grains.get("kind") in MULTIPLY_TWINNED
        rot = s["relative_rotation_deg"]
        faults = ", ".join(f"{x['type']} at {x['layer']}" for x in s.get("faults", [])) or "none"
        a = s.get("lattice_constant_A")
        head = (
            "a bcc crystal, lattice constant "
            + ("not measured" if a is None else f"{a:.4f} A")
            + f"; {s['local_structure_counts']['bcc']} of {s['n_atoms']} atoms bcc"
            if s.get("lattice") == "bcc"
            else "an hcp crystal, a "
            + ("not measured" if a is None else f"{a:.4f} A")
            + (f", c {s['hcp_c_A']:.4f} A" if s.get("hcp_c_A") else "")
            + f": {s['n_layers']} (0001) layers; faults: {faults}"
            if s.get("lattice") == "hcp"
            else f"{grains['kind']}: {grains['n_grains']} twin domains ('grain'), "
            f"{sum(b['twin'] for b in grains['boundaries'])} coherent twin boundaries"
            + (", viewed down the five-fold axis" if grains.get("fivefold_axis_zyx") else "")
            if multi
            else f"{s['n_layers']} layers; faults: {faults}; twin boundaries "
            f"{s['twin_boundary_layers']}; rotation between clusters "
            + ("not measured" if rot is None else f"{rot:.2f} deg")
        )
        self.status.value = head + "".join(f". Note: {n}" for n in s.get("notes", []))

    def _fill_table(self, layers) -> None:
        self.table.setRowCount(len(layers))
        for i, L in enumerate(layers):
            o = L["orientation_deg"]
            vals = [
                L["index"],
                L["abc"],
                L["stacking"],
                L["n_atoms"],
                "" if o is None else f"{o:.2f}",
                _fmt(L.get("rmsd_2d_surface_A")),
                _fmt(L.get("rmsd_2d_core_A")),
            ]
            for j, v in enumerate(vals):
                self.table.setItem(i, j, QTableWidgetItem(str(v)))

    def colors(self) -> np.ndarray:
        """RGBA per atom for the chosen colouring."""
        from matplotlib import colormaps
        from matplotlib.colors import to_rgba

        f = self._target.features
        mode = self._color_mode()
        if mode == "study preset":
            g = layer_groups(f["layer"].to_numpy(), self.result.stacking.twin_boundaries)
            return np.array([to_rgba(STUDY_LAYER_COLORS[x]) for x in g])
        if mode not in f.columns:
            self.status.value = (
                f"No '{mode}': the atoms have one element (an alloy's shells from the surface)"
                if mode == "depth_shell"
                else f"No '{mode}' yet: tick 'strain, facets, local strain' and analyse"
            )
            return np.tile(to_rgba("#8d99ae"), (len(f), 1))
        if mode == "chemical_order":
            return np.array([to_rgba(_ORDER_COLORS.get(str(x), "#8d99ae")) for x in f[mode]])
        if mode in ("stacking", "local_structure", "facet"):
            table = _FACET_COLORS if mode == "facet" else _STACKING_COLORS
            return np.array([to_rgba(table.get(str(x), "#8d99ae")) for x in f[mode]])
        v = f[mode].to_numpy(dtype=float)
        if mode == "depth_shell":  # 0 at the surface, deeper shells darker
            return colormaps["viridis_r"](v / max(float(np.nanmax(v)), 1.0))
        if mode in ("layer", "cluster", "grain", "order_variant"):
            rgba = colormaps["tab20"]((np.nan_to_num(v) % 20) / 19.0)
            if mode in ("grain", "order_variant"):  # atoms in no grain, without an order
                rgba[~(v >= 0)] = to_rgba("#8d99ae")
            return rgba
        # strain-like features: symmetric diverging scale around 0, NaN (unassigned) grey
        lim = np.nanpercentile(np.abs(v), 99) if np.isfinite(v).any() else 1.0
        if mode in ("q4", "q6", "a_local"):
            lo, hi = np.nanmin(v), np.nanmax(v)
            t = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
            rgba = colormaps["viridis"](np.nan_to_num(t))
        else:
            rgba = colormaps["RdBu_r"](0.5 + 0.5 * np.clip(np.nan_to_num(v) / (lim or 1.0), -1, 1))
        rgba[~np.isfinite(v)] = to_rgba("#8d99ae")
        return rgba

    def recolor(self) -> None:
        if self.result is None or self._target is None:
            return
        self._target.face_color = self.colors()
        self.legend.value = self.legend_html()

    def _color_mode(self) -> str:
        """The chosen colouring. The study preset (interface, twin boundaries, the two clusters)
        is for a particle with an interface: one without (111) layers (bcc, amorphous) is
        coloured by bond order (fcc/hcp/bcc/other) instead, a layered one without an interface
        (a single crystal, an hcp crystal and its faults) by stacking."""
        mode = self.color_by.value
        if mode == "study preset" and self.result is not None:
            s = self.result.summary
            if not s.get("n_layers"):
                return "local_structure"
            if (s.get("grains") or {}).get("kind") in MULTIPLY_TWINNED:
                return "grain"  # twin planes not parallel: the twin domains
            if (s.get("chemical_order") or {}).get("phase") in ("L1_0", "L1_2"):
                return "chemical_order"  # an ordered alloy: its order
            if s.get("interface_layer") is None:
                return "stacking"
        return mode

    def legend_html(self) -> str:
        """What the colours mean, as swatches (categorical) or the scale (continuous)."""
        mode = self._color_mode()

        def swatches(table) -> str:
            return " &nbsp; ".join(  # an entry never breaks across lines
                f"<span style='color:{c}'>&#9679;</span>&nbsp;{name.replace(' ', '&nbsp;')}"
                for name, c in table.items()
            )

        if mode == "study preset":
            return swatches(STUDY_LAYER_COLORS)
        if mode in ("stacking", "local_structure"):
            return swatches(_STACKING_COLORS)
        if mode == "facet":
            return swatches({"{111}": _FACET_COLORS["111"], "{100}": _FACET_COLORS["100"],
                             "other": "#8d99ae"})  # fmt: skip
        if mode == "chemical_order":
            return swatches({**_ORDER_COLORS, "not measured": "#8d99ae"})
        if mode == "order_variant":
            return (
                "order_variant: which cube axis of its lattice an ordered atom's c is (L1_0 "
                "variant domains), cycling colours (tab20); grey: not ordered"
            )
        if mode == "grain" and self.result is not None:
            g = self.result.summary.get("grains") or {}
            return (
                f"grain: {g.get('kind', '')}, {g.get('n_grains', 0)} twin domains in cycling "
                "colours (tab20); grey: in no grain"
            )
        if mode in ("layer", "cluster"):
            return f"{mode}: cycling colours (tab20)"
        if mode == "depth_shell":
            return "depth_shell: the surface shell (yellow) to the deepest (dark violet), viridis"
        if mode in ("q4", "q6", "a_local"):
            return f"{mode}: low (dark violet) to high (yellow), viridis"
        return f"{mode}: compressive (blue), 0 (white), tensile (red); grey: not measured"

    def apply_layer_selection(self) -> None:
        if self.result is None or self._target is None:
            return
        f = self._target.features
        shown, labels = np.ones(len(f), bool), []
        for field, column, what, none in (
            (self.show_layers, "layer", "Layers", "a single crystal?"),
            (self.show_grains, "grain", "Grains", "a single crystal?"),
            (self.show_shells, "depth_shell", "Shells", "one element"),
        ):
            try:
                sel = parse_layer_selection(field.value)
            except ValueError:
                self.status.value = f"{what}: give numbers or ranges like -1:1"
                return
            if sel is None:
                continue
            if column not in f.columns:
                self.status.value = f"{what}: this analysis has none ({none})"
                return
            shown &= np.isin(f[column].to_numpy(), sorted(sel))
            labels.append(f"{what.lower()} {field.value.strip()}")
        draw_subset(self._viewer, self._target, shown, ", ".join(labels) or None)
        self._target.refresh()
        self.status.value = f"Showing {int(shown.sum())} of {len(shown)} atoms"

    def view_along(self, choice: str | None = None) -> bool:
        """Turn the 3D camera to a crystal direction of the analysed atoms (``VIEW_CHOICES``;
        the combo box's when None). Along an in-layer <110> or <112> the stacking direction is
        up and the layers, the interface and the twin boundaries show as lines; pressing again
        turns to the next of the three equivalent directions. Returns False (with a message)
        when there is nothing to view."""
        choice = choice or self.view_direction.value
        if self.result is not None and self.result.summary.get("lattice") == "bcc":
            return self._view_bcc()
        if self.result is None or not np.isfinite(self.result.stacking.normal).all():
            self.status.value = "Analyse first (a crystalline particle with (111) layers)"
            return False
        axis5 = (self.result.summary.get("grains") or {}).get("fivefold_axis_zyx")
        if axis5 is not None and choice != DOWN_111:
            # a decahedron: down its five-fold axis every segment's <110> columns are end-on
            # and the five twin planes edge-on, a star of five domains
            d = np.asarray(axis5, float)
            up, _ = in_plane_basis(d)
            self._viewer.dims.ndisplay = 3
            self._viewer.camera.set_view_direction(tuple(d), tuple(up))
            if self._target is not None:  # the whole particle in view
                self._viewer.reset_view(layers=[self._target], reset_camera_angle=False)
            self.status.value = (
                "Viewing down the five-fold axis: the five twin domains and their twin planes "
                "edge-on"
            )
            return True
        n = np.asarray(self.result.stacking.normal, float)
        n /= np.linalg.norm(n)
        self._viewer.dims.ndisplay = 3
        if choice == DOWN_111:
            up, _ = in_plane_basis(n)
            self._viewer.camera.set_view_direction(tuple(n), tuple(up))
            self.status.value = "Viewing down [111] (the stacking direction)"
            return True
        if self._zone_axes is None:
            try:
                self._zone_axes = in_plane_zone_axes(self._target.data, n)
            except ValueError as err:
                self.status.value = f"No in-layer direction: {err}"
                return False
        axes = self._zone_axes[VIEW_CHOICES[choice]]
        if choice == self._last_choice:
            self._turn = (self._turn + 1) % 3  # the next equivalent direction
        else:  # the one closest to the current view: the smallest turn of the camera
            now = np.asarray(self._viewer.camera.view_direction, float)
            self._turn = int(np.argmax(np.abs(axes @ now)))
        self._last_choice = choice
        self._viewer.camera.set_view_direction(tuple(axes[self._turn]), tuple(n))
        self.status.value = (
            f"Viewing along an in-layer {VIEW_CHOICES[choice]} ({self._turn + 1} of 3): the "
            "(111) layers, the interface and any twin boundary edge-on, [111] up"
        )
        return True

    def _view_bcc(self) -> bool:
        """A bcc crystal has no layers: look down its fitted lattice's [001], [011] and [111]
        in turn (atom columns end-on), one more with each press."""
        fits = self.result.summary.get("lattice_fits") or []
        if not fits:
            self.status.value = "No bcc lattice was fitted: nothing to look along"
            return False
        rot = np.asarray(fits[0]["rotation_crystal_to_lab"], float)
        names = ("[001]", "[011]", "[111]")
        self._bcc_turn = (getattr(self, "_bcc_turn", -1) + 1) % 3
        d = rot @ np.array(((0, 0, 1), (0, 1, 1), (1, 1, 1))[self._bcc_turn], float)
        d /= np.linalg.norm(d)
        up, _ = in_plane_basis(d)
        self._viewer.dims.ndisplay = 3
        self._viewer.camera.set_view_direction(tuple(d), tuple(up))
        self.status.value = (
            f"Viewing down the bcc lattice's {names[self._bcc_turn]} (atom columns end-on; "
            "press View for the next)"
        )
        return True

    def view_along_stacking(self, event=None) -> bool:
        """Look down the stacking direction [111]."""
        return self.view_along(DOWN_111)

    def side_view(self, event=None) -> bool:
        """Look along an in-layer <110>: the layers edge-on, the stacking direction up."""
        return self.view_along(SIDE_110)

    def _plot(self) -> None:
        f = self._target.features
        s = self.result.summary
        g = summary_layer_groups(f["layer"].to_numpy(), s)
        self._figure.clear()
        profile = s.get("composition_by_depth")  # an alloy's: a third panel
        axes = self._figure.subplots(3 if profile else 2, 1)
        ax1, ax2 = axes[0], axes[1]
        plot_q4_q6(
            f["q4"],
            f["q6"],
            g,
            ideal_fcc=s["boo"]["ideal_fcc_q4_q6"],
            ideal_hcp=s["boo"]["ideal_hcp_q4_q6"],
            ideal_bcc=s["boo"].get("ideal_bcc_q4_q6") if s.get("lattice") == "bcc" else None,
            ax=ax1,
        )
        plot_layer_rmsd(s["layers"], ax=ax2)
        if profile:
            plot_composition_by_depth(profile, ax=axes[2])
        self._canvas.draw_idle()
