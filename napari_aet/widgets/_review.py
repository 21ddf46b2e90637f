"""Dock widget "Review": walk the analyst through the most doubtful atoms, one key per decision."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import FloatSpinBox, PushButton, create_widget
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from .._layers import tomogram_voxel_size_A
from ..trace import (
    REFINE_FEATURES,
    EditableAtomModel,
    pick_near_point,
    review_atoms,
)
from ._runner import (
    DockContainer,
    OnHide,
    StageRunner,
    StageWidgetMixin,
    add_table,
    follow_new_layers,
    layer_frame,
    select_latest,
    status_label,
)
from ._shared import publish, shared_model

if TYPE_CHECKING:
    import napari


#: Keys: next, previous, accept, remove, add here, move to maximum.
REVIEW_KEYS = {
    "next": "Shift-N",
    "previous": "Shift-P",
    "accept": "Shift-K",
    "remove": "Shift-X",
    "add": "Shift-H",
    "move": "Shift-M",
}


#: Field of view [A] that Next/Previous zoom to around an item.
FIELD_A = 16.0
#: The current-item marker's layer type and ring diameter [A].
MARKER = "review_marker"
MARKER_SIZE_A = 2.4


class ReviewWidget(StageWidgetMixin, DockContainer):
    """Rank the traced atoms (and empty lattice sites) by doubt and review them in order.

    *Next*/*Previous* (Shift+N / Shift+P) centre the camera on the item and zoom in (in a slice
    view the slice goes to the item). Decisions, one key each: *Accept* (Shift+K), *Remove*
    (Shift+X), *Add here* (Shift+H: an atom at the tomogram maximum near a missing-atom
    candidate), *Move to maximum* (Shift+M). Every decision is logged in the atom model and
    autosaved; reviewed items stay reviewed when the list is rebuilt.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._offset = np.zeros(3)  # tomogram frame - atoms layer frame [A]
        self._viewer = viewer
        self.tomogram = create_widget(annotation="napari.layers.Image", label="tomogram")
        self.atoms = create_widget(annotation="napari.layers.Points", label="atoms")
        self.other = create_widget(
            annotation="napari.layers.Points",
            label="compare with (optional)",
            options={"nullable": True, "tooltip": "atoms traced in the other tomogram "
                     "(raw vs augmented): disagreements rank high"},
        )  # fmt: skip
        self.other.value = None
        self.slab = FloatSpinBox(
            label="3D slab (A, 0 = off)", value=8.0, min=0.0, max=100.0, step=1.0
        )
        self.run_button = PushButton(text="Rank by doubt")
        buttons = {k: PushButton(text=f"{k.capitalize()} ({v})") for k, v in REVIEW_KEYS.items()}
        self.buttons = buttons
        self.status = status_label()
        self.extend(
            [
                self.tomogram,
                self.atoms,
                self.other,
                self.slab,
                self.run_button,
                *buttons.values(),
                self.status,
            ]
        )
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["kind", "score", "reviewed", "reasons"])
        self.table.setMinimumHeight(180)
        add_table(self, self.table)
        self.items = None
        self.voxel_A = 1.0  # set from the tomogram when a review starts
        self.current = -1
        self.model: EditableAtomModel | None = None
        self.reviewed: set[int] = set()
        self.runner = StageRunner("Ranking", self._set_status, self._done, self._busy)
        self.run_button.changed.connect(self.run)
        actions = {
            "next": self.next,
            "previous": self.previous,
            "accept": self.accept,
            "remove": self.remove,
            "add": self.add_here,
            "move": self.move_to_max,
        }
        for k, f in actions.items():
            buttons[k].changed.connect(lambda v=None, f=f: f())
            viewer.bind_key(REVIEW_KEYS[k], lambda v, f=f: f(), overwrite=True)
        follow_new_layers(viewer, self.tomogram, ("tomogram",))
        follow_new_layers(viewer, self.atoms, ("atom_model",))
        select_latest(viewer, self.tomogram, ("tomogram",))
        select_latest(viewer, self.atoms, ("atom_model",))
        follow_new_layers(viewer, self.other, ())
        # closing or hiding the dock ends the review's clipping (a Hide event comes first)
        self._hide_filter = OnHide(self.clear_slab)
        self.native.installEventFilter(self._hide_filter)

    # ------------------------------------------------------------------ ranking
    def run(self, event=None):
        tomo, pts = self.tomogram.value, self.atoms.value
        if tomo is None or pts is None or len(pts.data) < 10:
            self.status.value = "Not started: choose a tomogram and an atom layer"
            return None
        try:
            px = tomogram_voxel_size_A(tomo)
        except ValueError as err:
            self.status.value = f"Not started: {err}"
            return None
        self.voxel_A = px
        vol = np.asarray(tomo.data)
        # review_atoms works in the tomogram's frame (voxel index x voxel size); the layers'
        # translates (a file's origin) give the way there and back
        t_tomo = np.asarray(tomo.translate, float)[-3:]
        self._offset = t_tomo - np.asarray(pts.translate, float)[-3:]
        pos = np.asarray(pts.data, float) - self._offset
        # the layer's shared model: Trace's undo, autosave and analysis columns are this one's
        self.model = shared_model(pts)
        self.status.value = "Ranking..."
        other = self.other.value
        other_pos = None
        if other is not None and other is not pts and len(other.data):
            other_pos = np.asarray(other.data, float) + np.asarray(other.translate)[-3:] - t_tomo
        feats = pts.features
        refine = {c: feats[c].to_numpy(float) for c in REFINE_FEATURES if c in feats.columns}
        return self.runner.start(
            lambda progress, cancel: review_atoms(
                pos,
                vol,
                voxel_size_A=px,
                other_positions_A=other_pos,
                refine_shift_A=refine.get("refine_shift_A"),
                refine_amplitude=refine.get("refine_amplitude"),
            )
        )

    def _done(self, review) -> None:
        self.items = review.table.copy()
        for axis, shift in zip(("z", "y", "x"), self._offset, strict=True):
            self.items[axis] = self.items[axis] + shift  # back to the atoms layer's frame
        done = self.model.model.metadata.get("reviewed_positions", [])
        if done:
            d = np.array(done)
            xyz = self.items[["z", "y", "x"]].to_numpy()
            dist = np.linalg.norm(xyz[:, None, :] - d[None], axis=2).min(axis=1)
            self.reviewed = set(np.nonzero(dist < 0.1)[0].tolist())
        self._fill_table()
        self.current = -1
        self._progress()

    def _fill_table(self) -> None:
        t = self.items
        n = min(len(t), 500)
        self.table.setRowCount(n)
        for i in range(n):
            r = t.iloc[i]
            vals = [
                r["kind"],
                f"{r['score']:.2f}",
                "yes" if i in self.reviewed else "",
                r["reasons"],
            ]
            for j, v in enumerate(vals):
                self.table.setItem(i, j, QTableWidgetItem(str(v)))

    def _progress(self) -> None:
        self.status.value = f"reviewed {len(self.reviewed)} / {len(self.items)}"

    # ------------------------------------------------------------------ navigation
    def _go(self, i: int) -> None:
        if self.items is None or not len(self.items):
            return
        self.current = int(np.clip(i, 0, len(self.items) - 1))
        r = self.items.iloc[self.current]
        p = np.array([r["z"], r["y"], r["x"]])
        w = self._world(p)  # the atoms layer may carry a translate (the tomogram's origin)
        v = self._viewer
        self._mark(w)  # first: a new layer may move the camera
        v.camera.center = tuple(w)
        # zoom in: a field of FIELD_A around the item fills the canvas's shorter side
        canvas = v.window._qt_viewer.canvas.native if hasattr(v.window, "_qt_viewer") else None
        side = min(canvas.width(), canvas.height()) if canvas is not None else 600
        v.camera.zoom = max(v.camera.zoom, side / FIELD_A)
        if v.dims.ndisplay == 2:
            hidden = list(v.dims.not_displayed)
            v.dims.set_point(hidden, [float(w[i]) for i in hidden])
        else:
            self._slab_around(w)
        self.table.selectRow(self.current)
        self.status.value = (
            f"item {self.current + 1}: {r['kind']}, score {r['score']:.2f} "
            f"({r['reasons'] or 'no strong reason'})"
        )

    def _mark(self, world) -> None:
        """A ring around the current item (its own layer, on top, not part of the model)."""
        v = self._viewer
        layer = next((la for la in v.layers if la.metadata.get("napari_aet_type") == MARKER), None)
        if layer is None:
            active = v.layers.selection.active
            layer = v.add_points(
                np.zeros((0, 3)),
                name="review: current item",
                symbol="ring",
                size=MARKER_SIZE_A,
                face_color="#ffd60a",
                border_width=0,
                out_of_slice_display=True,
                units=self.atoms.value.units if self.atoms.value is not None else None,
                metadata={"napari_aet_type": MARKER, "napari_aet_transient": True},
            )
            if active is not None:  # the marker does not take the analyst's selection
                v.layers.selection.active = active
        layer.data = np.asarray(world, float).reshape(1, 3)

    def clear_slab(self) -> None:
        """Take the review's clipping planes off the tomogram and the atoms and remove the
        item marker (when the dock is hidden or closed, so later 3D views and saved figures
        show everything)."""
        try:
            viewer_layers = list(self._viewer.layers)
        except RuntimeError:
            viewer_layers = []
        for layer in viewer_layers:
            if layer.metadata.get("napari_aet_type") == MARKER:
                self._viewer.layers.remove(layer)
        for widget in (self.tomogram, self.atoms):
            try:
                layer = widget.value
            except RuntimeError:  # the form is being torn down
                continue
            if layer is not None:
                layer.experimental_clipping_planes = []

    def _slab_around(self, p) -> None:
        """In 3D, clip the tomogram and the atoms to a slab across the line of sight through
        the item (``slab`` A thick), so the item is not hidden behind the rest."""
        half = float(self.slab.value) / 2
        d = np.asarray(self._viewer.camera.view_direction, float)[-3:]
        d = d / (np.linalg.norm(d) or 1.0)
        for layer in (self.tomogram.value, self.atoms.value):
            if layer is None:
                continue
            if half <= 0:
                layer.experimental_clipping_planes = []
                continue
            c = np.asarray(layer.world_to_data(p), float)[-3:]
            scale = np.asarray(layer.scale, float)[-3:]
            step = half / scale  # A -> data units along each axis
            layer.experimental_clipping_planes = [
                {"position": tuple(c - d * step), "normal": tuple(d), "enabled": True},
                {"position": tuple(c + d * step), "normal": tuple(-d), "enabled": True},
            ]

    def next(self) -> None:
        self._go(self.current + 1)

    def previous(self) -> None:
        self._go(self.current - 1)

    # ------------------------------------------------------------------ decisions
    def _item_position(self) -> np.ndarray | None:
        if self.items is None or self.current < 0:
            return None
        r = self.items.iloc[self.current]
        return np.array([r["z"], r["y"], r["x"]])

    def _decided(self, action: str, p: np.ndarray, *, log: bool = True) -> None:
        meta = self.model.model.metadata
        if log:
            self.model.log_review(action, p)
        else:  # add/remove/move logged themselves; count the decision
            meta["n_reviewed"] = int(meta.get("n_reviewed", 0)) + 1
        meta.setdefault("reviewed_positions", []).append([float(v) for v in p])
        self.reviewed.add(self.current)
        self.model.autosave()
        self._sync_points()
        self._fill_table()
        self._progress()
        self.next()

    def _sync_points(self) -> None:
        publish(self.atoms.value, self.model)

    def _current_model(self):
        """The atoms layer's shared model, with edits made on the layer since taken in."""
        pts = self.atoms.value
        if pts is not None:
            self.model = shared_model(pts)
        return self.model

    def _world(self, p) -> np.ndarray:
        """World position of a point in the atoms layer's coordinates."""
        pts = self.atoms.value
        return layer_frame(pts)[1](p) if pts is not None else np.asarray(p, float)

    def _maximum_near(self, p_A: np.ndarray, radius_A: float) -> np.ndarray:
        """Sub-voxel tomogram maximum within ``radius_A`` of a point, both in the atoms
        layer's coordinates."""
        px = self.voxel_A
        tomo = self.tomogram.value
        vox = layer_frame(tomo)[0](self._world(p_A))
        q = pick_near_point(np.asarray(tomo.data), vox, radius_vox=radius_A / px)
        step = np.asarray(tomo.scale, float)[-3:]
        return np.asarray(p_A, float) + (q - vox) * step  # the same move, atoms' frame

    def accept(self) -> None:
        p = self._item_position()
        if p is not None:
            self._decided("accept", p)

    def remove(self) -> None:
        p = self._item_position()
        if p is None:
            return
        self._current_model()
        i = self.model.nearest(p, max_distance_A=0.1)
        if i is None:
            self.status.value = "No atom here to remove"
            return
        self.model.remove(i)
        self._decided("remove", p, log=False)

    def add_here(self) -> None:
        p = self._item_position()
        if p is None:
            return
        self._current_model()
        q = self._maximum_near(p, 0.7)
        self.model.add(q)
        self._decided("add", q, log=False)

    def move_to_max(self) -> None:
        p = self._item_position()
        if p is None:
            return
        self._current_model()
        i = self.model.nearest(p, max_distance_A=0.1)
        if i is None:
            self.status.value = "No atom here to move"
            return
        q = self._maximum_near(p, 1.0)
        self.model.move(i, q)
        self._decided("move", p, log=False)
