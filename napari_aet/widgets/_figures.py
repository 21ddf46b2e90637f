"""Dock widget "Figures and export": paper figures, 3D-view screenshots, atom-model export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    PushButton,
    Select,
    SpinBox,
    create_widget,
)

from .._layers import atoms_from_layer
from ..figures import (
    RUN_FIGURES,
    diverging_limit,
    make_figures,
    save_figure,
    values_to_rgba,
    write_html_report,
)
from ..io import write_atoms
from ..session import layer_tuples, read_session, write_session
from ..workflows import FiguresSettings
from ._runner import (
    DockContainer,
    StageRunner,
    StageWidgetMixin,
    follow_new_layers,
    select_latest,
    status_label,
)

D = FiguresSettings()


if TYPE_CHECKING:
    import napari

CURRENT = "current colours"
#: Fractions shown in percent, as the Strain widget and the figures show them.
PERCENT_FEATURES = ("exx", "eyy", "ezz", "exy", "exz", "eyz", "local_strain",
                    "facet_local_strain", "local_strain_smoothed")  # fmt: skip
ATOM_FORMATS = {"CSV": ".csv", "extended XYZ": ".xyz", "HDF5": ".h5"}


def compose_view_figure(
    image: np.ndarray,
    *,
    label: str | None = None,
    cmap: str | None = None,
    limits: tuple[float, float] | None = None,
    title: str | None = None,
    dpi: int = 300,
):
    """A screenshot with a colour bar (when coloured by a number) as a matplotlib figure."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    h, w = image.shape[:2]
    fig = Figure(figsize=(w / dpi * 1.18, h / dpi), dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, 0.84, 1.0))
    ax.imshow(image)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    if label and cmap and limits:
        cax = fig.add_axes((0.87, 0.15, 0.025, 0.7))
        sm = ScalarMappable(norm=Normalize(*limits), cmap=cmap)
        cb = fig.colorbar(sm, cax=cax)
        cb.set_label(label, fontsize=7)
        cb.ax.tick_params(labelsize=6)
    return fig


def _fit_camera(viewer, points_A: np.ndarray, fill: float = 0.85) -> None:
    """Centre the camera on the atoms and zoom so that they fill ``fill`` of the canvas
    (in any view direction: their largest extent)."""
    if not len(points_A):
        return
    lo, hi = points_A.min(axis=0), points_A.max(axis=0)
    extent = float(np.linalg.norm(hi - lo)) or 1.0
    native = viewer.window._qt_viewer.canvas.native
    h, w = native.height(), native.width()
    viewer.camera.center = tuple((0.5 * (lo + hi)).tolist())
    viewer.camera.zoom = fill * min(h, w) / extent


class FiguresWidget(StageWidgetMixin, DockContainer):
    """Export figures of the analysed atom model, a 3D view with colour and scale bars, and the
    model itself (CSV, extended XYZ or HDF5, with every feature).

    The figures are those of ``napari-aet figures`` drawn from the layer's features and the
    analysis stored by the *Structure* widget; they run in a worker thread. The 3D view is
    napari's own canvas (shown viewer) with its scale bar, plus a colour bar.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self.layer = create_widget(annotation="napari.layers.Points", label="atoms")
        # 3D view
        self.color_by = ComboBox(label="colour by", choices=self._features)
        self.colormap = ComboBox(
            label="colormap", choices=["RdBu_r", "viridis", "magma", "twilight"], value="RdBu_r"
        )
        self.centered = CheckBox(label="centre colours at zero", value=True)
        self.width_px = SpinBox(label="image width (px)", value=1600, min=200, max=8000)
        self.view_path = FileEdit(label="3D view file", mode="w", value="figures/view3d.png")
        self.view_button = PushButton(text="Save 3D view")
        # figures
        self.figures = Select(label="figures", choices=list(RUN_FIGURES), value=list(RUN_FIGURES))
        self.png = CheckBox(label="PNG", value=True)
        self.svg = CheckBox(label="SVG", value=False)
        self.pdf = CheckBox(label="PDF", value=False)
        self.dpi = SpinBox(label="dpi", value=D.dpi, min=50, max=1200)
        self.strain_component = ComboBox(
            label="strain component",
            choices=["exx", "eyy", "ezz", "exy", "exz", "eyz"],
            value=D.strain_component,
        )
        self.folder = FileEdit(label="figures folder", mode="d", value="figures")
        self.run_button = PushButton(text="Export figures")
        # atoms
        self.atom_format = ComboBox(label="atom file", choices=list(ATOM_FORMATS), value="CSV")
        self.atom_path = FileEdit(label="atom model file", mode="w", value="atoms.csv")
        self.atoms_button = PushButton(text="Export atom model")
        # session
        self.session_path = FileEdit(
            label="session file", mode="w", filter="*.aet.h5", value="analysis.aet.h5"
        )
        self.save_session_button = PushButton(text="Save session")
        self.open_session_button = PushButton(text="Open session")
        self.status = status_label()
        self.extend(
            [
                self.layer,
                self.color_by,
                self.colormap,
                self.centered,
                self.width_px,
                self.view_path,
                self.view_button,
                self.figures,
                self.png,
                self.svg,
                self.pdf,
                self.dpi,
                self.strain_component,
                self.folder,
                self.run_button,
                self.atom_format,
                self.atom_path,
                self.atoms_button,
                self.session_path,
                self.save_session_button,
                self.open_session_button,
                self.status,
            ]
        )
        self.runner = StageRunner("figures", self._set_status, self._done, self._busy)
        self._auto_paths: dict[str, Path] = {}  # export paths still at their defaults
        self.result = None
        self.view_button.changed.connect(self.save_view)
        self.run_button.changed.connect(self.run)
        self.atoms_button.changed.connect(self.export_atoms)
        self.save_session_button.changed.connect(self.save_session)
        self.open_session_button.changed.connect(self.open_session)
        self.atom_format.changed.connect(self._suffix)
        self._watched = None
        self.layer.changed.connect(self._watch_features)
        self.layer.changed.connect(self._default_paths)
        follow_new_layers(viewer, self.layer, ("atom_model",))
        select_latest(viewer, self.layer, ("atom_model",))
        self._default_paths()

    def _default_paths(self, event=None) -> None:
        """Export paths next to the analyst's data (the folder of the newest layer opened from
        a file), not the working folder; a path the analyst typed is kept."""
        folder = data_folder(self._viewer)
        if folder is None:
            return
        layer = self.layer.value
        stem = layer.name if layer is not None else "atoms"
        suffix = ATOM_FORMATS[self.atom_format.value]
        wanted = {
            "folder": folder / "figures",
            "view_path": folder / "figures" / "view3d.png",
            "atom_path": folder / f"{stem}{suffix}",
            "session_path": folder / "analysis.aet.h5",
        }
        for name, path in wanted.items():
            field = getattr(self, name)
            now = Path(field.value)
            first = name not in self._auto_paths and not now.is_absolute()
            if first or now == self._auto_paths.get(name):  # a default: follow the data
                field.value = path
                self._auto_paths[name] = path

    def _watch_features(self, layer=None) -> None:
        """Keep *colour by* in step with the layer's features (they grow with each analysis)."""
        if self._watched is not None and hasattr(self._watched.events, "features"):
            self._watched.events.features.disconnect(self._refresh_features)
        self._watched = self.layer.value
        if self._watched is not None and hasattr(self._watched.events, "features"):
            self._watched.events.features.connect(self._refresh_features)
        self._refresh_features()

    def _refresh_features(self, event=None) -> None:
        self.color_by.reset_choices()

    def _features(self, widget=None) -> list[str]:
        layer = getattr(self, "layer", None)
        layer = layer.value if layer is not None else None
        if layer is None:
            return [CURRENT]
        return [CURRENT, *[str(c) for c in layer.features.columns]]

    def _suffix(self, fmt) -> None:
        p = Path(self.atom_path.value)
        self.atom_path.value = p.with_suffix(ATOM_FORMATS[fmt])
        if p == self._auto_paths.get("atom_path"):
            self._auto_paths["atom_path"] = Path(self.atom_path.value)

    def _model(self):
        layer = self.layer.value
        if layer is None or len(layer.data) == 0:
            raise ValueError("choose an atom layer")
        return layer, atoms_from_layer(layer.data, layer.features, layer.metadata)

    # -- export atoms ---------------------------------------------------------------------
    def export_atoms(self, event=None):

        try:
            _, model = self._model()
            path = Path(self.atom_path.value)
            if path.suffix.lower() not in (".csv", ".xyz", ".h5", ".hdf5"):
                path = path.with_suffix(ATOM_FORMATS[self.atom_format.value])
            write_atoms(path, model)
        except (ValueError, OSError) as err:
            self.status.value = f"Not exported: {err}"
            return None
        n_feat = model.features.shape[1]
        self.status.value = f"Wrote {model.n_atoms} atoms with {n_feat} features to {path}"
        return path

    # -- session ---------------------------------------------------------------------------
    def save_session(self, event=None):
        """Save every image and points layer (data, display, metadata, features)."""

        layers = [
            la for la in self._viewer.layers if type(la).__name__.lower() in ("image", "points")
        ]
        others = [la.name for la in self._viewer.layers if la not in layers]
        if not layers:
            self.status.value = "Not saved: no image or points layers"
            return None
        try:
            path = write_session(self.session_path.value, layer_tuples(layers))
        except (ValueError, OSError) as err:
            self.status.value = f"Not saved: {err}"
            return None
        msg = f"Saved {len(layers)} layers to {path}"
        if others:
            msg += f" (not kept: {', '.join(others)})"
        self.status.value = msg
        return path

    def open_session(self, event=None):
        """Add the layers of a session file to the viewer."""

        try:
            tuples = read_session(self.session_path.value)
        except (ValueError, OSError) as err:
            self.status.value = f"Not opened: {err}"
            return None
        for data, attrs, kind in tuples:
            getattr(self._viewer, f"add_{kind}")(data, **attrs)
        self.status.value = f"Opened {len(tuples)} layers from {self.session_path.value}"
        return tuples

    # -- 3D view ----------------------------------------------------------------------------
    def save_view(self, event=None):
        """Screenshot of the 3D canvas, coloured as chosen, with scale and colour bars."""

        try:
            layer, model = self._model()
        except ValueError as err:
            self.status.value = f"Not saved: {err}"
            return None
        v = self._viewer
        label = cmap = limits = None
        feat = self.color_by.value
        if feat != CURRENT:
            vals = np.asarray(layer.features[feat])
            if not np.issubdtype(vals.dtype, np.number):
                self.status.value = f"Not saved: {feat!r} is not numeric; pick a number feature"
                return None
            finite = vals[np.isfinite(vals)]
            if not finite.size:
                self.status.value = f"Not saved: {feat!r} has no finite values"
                return None
            if self.centered.value:
                lim = diverging_limit(finite)
                limits = (-lim, lim)
            else:
                limits = (float(np.percentile(finite, 2)), float(np.percentile(finite, 98)))
            cmap = self.colormap.value
            layer.face_color = values_to_rgba(vals, limits, cmap)
            label = feat
            if feat in PERCENT_FEATURES:  # the bar in %, as the rest of the UI
                limits = (100 * limits[0], 100 * limits[1])
                label = f"{feat} (%)"
        if v.dims.ndisplay != 3:
            v.dims.ndisplay = 3
            v.reset_view()
        v.scale_bar.visible = True
        if v.scale_bar.unit is None:
            v.scale_bar.unit = "angstrom"
        camera = (v.camera.center, v.camera.zoom)
        _fit_camera(v, np.asarray(layer.data, float))  # the particle fills the image
        try:
            img = v.screenshot(canvas_only=True, flash=False)
            scale = int(self.width_px.value) / max(1, img.shape[1])
            if scale > 1.05:  # render the canvas larger rather than upsampling pixels
                v.camera.zoom = v.camera.zoom * scale  # napari enlarges the canvas, not the view
                img = v.screenshot(canvas_only=True, scale=scale, flash=False)
        finally:
            v.camera.center, v.camera.zoom = camera  # the user's view back
        dpi = int(self.dpi.value)
        fig = compose_view_figure(img, label=label, cmap=cmap, limits=limits, dpi=dpi)
        path = Path(self.view_path.value)
        fmts = [path.suffix.lstrip(".").lower() or "png"]
        written = save_figure(fig, path.with_suffix(""), formats=fmts, dpi=dpi)
        self.status.value = f"Wrote {written[0]} ({img.shape[1]} x {img.shape[0]} px)"
        return written[0]

    # -- figures ------------------------------------------------------------------------------
    def run(self, event=None):
        try:
            layer, model = self._model()
            names = list(self.figures.value)
            if not names:
                raise ValueError("pick at least one figure")
            boxes = (("png", self.png), ("svg", self.svg), ("pdf", self.pdf))
            formats = [f for f, box in boxes if box.value]
            if not formats:
                raise ValueError("pick at least one format (PNG, SVG, PDF)")
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        summary = dict(layer.metadata.get("structure_analysis") or {})
        data = {"atoms": model, "analysis": summary}
        out = Path(self.folder.value)
        kw = dict(
            figures=names,
            formats=formats,
            dpi=int(self.dpi.value),
            strain_component=self.strain_component.value,
        )

        def work(progress, cancel):
            res = make_figures(data, out, progress=progress, **kw)
            (out / "analysis.json").write_text(json.dumps(summary, indent=2, default=float))
            res["report"] = str(write_html_report(out / "report.html", res, summary))
            return res

        self.status.value = "Drawing..."
        return self.runner.start(work)

    def _done(self, res) -> None:
        self.result = res
        msg = f"Wrote {len(res['written'])} figures and report.html to {res['out_dir']}"
        if res["skipped"]:
            msg += "; skipped: " + "; ".join(f"{k} ({v})" for k, v in res["skipped"].items())
        self.status.value = msg


def data_folder(viewer) -> Path | None:
    """The folder of the data in the viewer: that of the newest layer read from a file
    (napari's ``layer.source.path``, else a tilt series' recorded source file); None when
    every layer was made in the session (the sample, a simulation)."""
    for layer in reversed(list(viewer.layers)):
        for candidate in (
            getattr(getattr(layer, "source", None), "path", None),
            layer.metadata.get("source"),
        ):
            if not candidate:
                continue
            path = Path(str(candidate))
            if path.is_file():
                return path.parent
            if path.is_dir():
                return path
    return None
