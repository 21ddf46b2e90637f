"""Running a stage in a worker thread with napari's progress bar and a cancel flag."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from magicgui.widgets import Container
from qtpy.QtCore import QEvent, QObject, QTimer, Signal

from ..core.progress import Cancelled
from ..core.threads import set_threads


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread (queued signal)."""

    progress = Signal(int, int, str)


class StageRunner:
    """Runs ``func(progress=..., cancel=...)`` in a worker; results of a cancelled run are dropped.

    Parameters
    ----------
    title : str
        Label of napari's progress bar.
    on_status : callable(str)
        Receives progress messages and the final state.
    on_result : callable(result)
        Called in the GUI thread with the stage's result (never for a cancelled run).
    on_busy : callable(bool)
        Called with True when a run starts and False when it ends (enable/disable buttons).
    """

    def __init__(self, title: str, on_status: Callable, on_result: Callable, on_busy: Callable):
        self.title = title
        self.on_status = on_status
        self.on_result = on_result
        self.on_busy = on_busy
        self.cancel_event = threading.Event()
        self.relay = _Relay()
        self.relay.progress.connect(self._on_progress)
        self._pbar = None
        self._returned_flag = False
        self.worker = None

    def _on_progress(self, done: int, total: int, message: str) -> None:
        from napari.utils import progress

        if self.cancel_event.is_set() or self._returned_flag:
            return  # a late progress message must not overwrite the final status
        # the status first: updating napari's progress bar can process pending events, the
        # result among them, whose final status must then win
        self.on_status(message)
        if self._pbar is None or self._pbar.total != total:
            if self._pbar is not None:
                self._pbar.close()
            self._pbar = progress(total=total, desc=self.title)
        self._pbar.n = done
        self._pbar.set_description(message)

    def start(self, func: Callable):
        from napari.qt.threading import create_worker

        set_threads(only_lower=True)  # torch counts the host's CPUs, not a container's quota
        self.cancel_event.clear()
        self._returned_flag = False
        relay, cancel = self.relay, self.cancel_event

        def work():
            try:
                return func(progress=lambda d, t, m: relay.progress.emit(d, t, m), cancel=cancel)
            except Cancelled:
                return None  # a cancelled run has no result

        worker = create_worker(work)
        worker.returned.connect(self._returned)
        worker.errored.connect(lambda err: self.on_status(f"Failed: {err}"))
        worker.finished.connect(self._finished)
        self.on_busy(True)
        self.worker = worker
        # started from the event loop, not here: a caller connects to the returned worker's
        # signals first (a short job on another core could otherwise finish, and emit
        # ``finished``, before anyone listened: seen as a test timing out under load)
        QTimer.singleShot(0, worker.start)
        return worker

    def cancel(self) -> None:
        self.cancel_event.set()
        self.on_status("Cancelling...")

    def _returned(self, result) -> None:
        self._returned_flag = True
        if result is None or self.cancel_event.is_set():
            return
        self.on_result(result)

    def _finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.on_busy(False)
        if self.cancel_event.is_set():
            self.on_status("Cancelled; nothing was added.")


class _FitWidth(QObject):
    """Keeps a scroll area as wide as its content's minimum (a dock that scrolls vertically
    must not cut its fields sideways) while its height stays free."""

    def __init__(self, scroll):
        super().__init__(scroll)
        self._scroll = scroll

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() in (QEvent.LayoutRequest, QEvent.Show, QEvent.Polish):
            bar = self._scroll.verticalScrollBar().sizeHint().width()
            frame = 2 * self._scroll.frameWidth()
            self._scroll.setMinimumWidth(obj.minimumSizeHint().width() + bar + frame)
        return False


class DockContainer(Container):
    """A dock widget's form that scrolls vertically instead of growing napari's window
    (several docks stacked on a 1,000-px screen), as wide as its widest field, with a small
    minimum height: the docks share the window's height.

    napari docks a magicgui widget's ``native``; a scrollable magicgui container's ``native``
    is the form *inside* its scroll area, which napari would take out of it. Here ``native``
    is the scroll area itself (magicgui's root widget), so napari docks the scroll area; the
    form's layout is :func:`content_layout`'s.
    """

    MIN_HEIGHT_PX = 160

    def __init__(self, **kwargs):
        super().__init__(scrollable=True, **kwargs)
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QFrame

        scroll = self.native
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setMinimumHeight(self.MIN_HEIGHT_PX)
        self._fit_width = _FitWidth(scroll)
        scroll.widget().installEventFilter(self._fit_width)
        # the fields stay at the top of a tall dock (the scroll area fills the dock and would
        # otherwise spread them out); magicgui inserts its widgets before this stretch
        content_layout(self).addStretch(1)

    @property
    def native(self):
        return self.root_native_widget

    def insert(self, key, widget) -> None:
        super().insert(key, widget)
        if getattr(widget, "_full_width", False):
            # a status line has no label: its text takes the whole row, not the value column
            ref = getattr(widget, "_labeled_widget_ref", None)
            labeled = ref() if ref is not None else None
            if labeled is not None:
                labeled._label_widget.hide()


def content_layout(container):
    """The Qt layout holding a magicgui container's widgets (inside its scroll area when the
    container scrolls): where extra Qt widgets (tables, plots) go."""
    native = container.native
    inner = native.widget() if hasattr(native, "setWidgetResizable") else native
    return inner.layout()


def add_to_form(container, widget) -> None:
    """A Qt widget at the bottom of a container's form (before a dock's closing stretch)."""
    layout = content_layout(container)
    last = layout.itemAt(layout.count() - 1) if layout.count() else None
    at_end = last is not None and last.spacerItem() is not None
    layout.insertWidget(layout.count() - 1 if at_end else layout.count(), widget)


def add_table(container, table):
    """A Qt table at the bottom of a container, its columns as wide as their headers and
    contents (a narrow dock scrolls the table sideways instead of cutting the headers)."""
    from qtpy.QtWidgets import QHeaderView, QSizePolicy

    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
    # the table's own width must not widen the dock: it takes the dock's and scrolls
    table.setSizePolicy(QSizePolicy.Ignored, table.sizePolicy().verticalPolicy())
    table.setMinimumWidth(50)
    add_to_form(container, table)
    return table


def add_plot_canvas(container, *, figsize=(3.6, 2.4), min_height: int = 200):
    """A matplotlib figure embedded at the bottom of a magicgui container."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout="constrained")
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(min_height)
    add_to_form(container, canvas)
    return figure, canvas


def status_label():
    """A status line that wraps long messages instead of widening the dock."""
    from magicgui.widgets import Label
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QSizePolicy

    label = Label(value="")
    label.native.setWordWrap(True)
    # the dock's width never follows a message (a wider dock shrinks the canvas under the
    # analyst's cursor between two clicks); the text wraps to the dock's width instead
    label.native.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
    label._full_width = True  # a DockContainer gives it the whole row
    # an analyst copies a long message (the alignment's notes, an error) into a report
    label.native.setTextInteractionFlags(Qt.TextSelectableByMouse)
    return label


class StageWidgetMixin:
    """Status label and run/cancel buttons wired to a :class:`StageRunner`."""

    def cancel(self, event=None) -> None:
        self.runner.cancel()

    @property
    def worker(self):
        return self.runner.worker

    def _set_status(self, text: str) -> None:
        self.status.value = text

    def _busy(self, busy: bool) -> None:
        self.run_button.enabled = not busy
        if hasattr(self, "cancel_button"):
            self.cancel_button.enabled = busy


def follow_new_layers(viewer, layer_widget, kinds: tuple[str, ...], skip=None) -> None:
    """Keep ``layer_widget``'s choices in step with the viewer's layers, and select each newly
    added layer whose ``metadata["napari_aet_type"]`` is one of ``kinds`` (and, with ``skip``,
    for which ``skip(layer)`` is false): a step picks up the previous step's result by default
    (``kinds=()`` only keeps the choices current)."""

    def on_insert(event) -> None:
        layer = event.value
        layer_widget.reset_choices()
        if layer.metadata.get("napari_aet_type") in kinds and not (skip and skip(layer)):
            try:
                layer_widget.value = layer
            except ValueError:  # not a choice of this widget (another layer type)
                pass

    viewer.layers.events.inserted.connect(on_insert)
    viewer.layers.events.removed.connect(lambda event: layer_widget.reset_choices())


def select_latest(viewer, layer_widget, kinds: tuple[str, ...], prefer=None) -> None:
    """Select the newest layer (the top of the layer list) whose ``napari_aet_type`` is one of
    ``kinds`` and, when ``prefer(layer)`` is given and some layer satisfies it, the newest of
    those: a widget opened after a step starts from that step's output (not the first layer)."""
    found = [
        lay
        for lay in viewer.layers
        if lay.metadata.get("napari_aet_type") in kinds
        and not lay.metadata.get("napari_aet_subset_of")
    ]
    if prefer is not None and any(prefer(lay) for lay in found):
        found = [lay for lay in found if prefer(lay)]
    for lay in reversed(found):
        try:
            layer_widget.value = lay
            return
        except ValueError:  # not a choice of this widget (another layer type)
            continue


def show_result(viewer, layer, hide_kinds: tuple[str, ...] = ()) -> None:
    """Bring a step's new layer into view: hide the layers of ``hide_kinds`` (e.g. the tilt
    series once a tomogram exists), put every slider at the middle of the new layer and fit
    the camera to it (a new tomogram otherwise opens at the tilt slider's position, often
    outside the particle)."""
    for other in viewer.layers:
        if other is not layer and other.metadata.get("napari_aet_type") in hide_kinds:
            other.visible = False
    layer.visible = True
    viewer.layers.selection.active = layer
    lo, hi = np.asarray(layer.extent.world, float)
    middle = (lo + hi) / 2
    ndim = viewer.dims.ndim
    point = list(viewer.dims.point)
    for i, value in enumerate(middle[::-1], start=1):  # layers align on their last axes
        if i <= ndim:
            point[ndim - i] = float(value)
    viewer.dims.point = point
    labels = tuple(getattr(layer, "axis_labels", ()) or ())
    if len(labels) == ndim:  # the slider's name: "z" for a tomogram, not the series' "tilt"
        viewer.dims.axis_labels = labels
    viewer.reset_view()


class OnHide(QObject):
    """Calls ``callback`` when the watched widget is hidden (its dock closed or hidden)."""

    def __init__(self, callback):
        super().__init__()
        self._callback = callback

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Hide:
            self._callback()
        return False


def draw_subset(viewer, layer, mask, label: str | None):
    """Draw only the points of ``layer`` where ``mask`` is true (napari 0.9 ignores
    ``Points.shown`` when drawing): a layer ``"<name> (<label>)"`` holds them and the full
    layer is hidden; ``label=None`` (or an all-true mask) removes the subset and shows the full
    layer again. ``layer.shown`` is set too, for code that reads it. Returns the subset layer
    or None."""
    mask = np.asarray(mask, bool)
    layer.shown = mask
    for old in [x for x in viewer.layers if x.metadata.get("napari_aet_subset_of") == layer.name]:
        viewer.layers.remove(old)
    if label is None or mask.all():
        layer.visible = True
        return None
    size = layer.size[mask] if np.ndim(layer.size) else layer.size
    sub = viewer.add_points(
        layer.data[mask],
        name=f"{layer.name} ({label})",
        size=size,
        face_color=np.asarray(layer.face_color)[mask],
        border_width=0,
        scale=layer.scale,
        units=layer.units,
        features=layer.features[mask].reset_index(drop=True),
        metadata={"napari_aet_subset_of": layer.name},
    )
    layer.visible = False
    return sub


def shipped_weight_choices() -> list[str]:
    """The U-Net weights a dock offers: "auto" (as ``napari-aet run``: the alloy network for
    several elements, fcc otherwise) where the fcc weights are shipped, then each shipped
    network."""
    from ..augment import AUTO_WEIGHTS, SHIPPED_WEIGHTS, shipped_weights

    names = [n for n in SHIPPED_WEIGHTS if n in shipped_weights()]
    return [*([AUTO_WEIGHTS] if "fcc" in names else []), *names]


def element_edit(default: str = "Pt", *, uses: str = ""):
    """A text field for the sample's element, or several for an alloy (``Pt,Ni``)."""
    from magicgui.widgets import LineEdit

    w = LineEdit(label="element(s)", value=default)
    w.tooltip = "a chemical symbol (Pt, Au, Si, ...) or several for an alloy: Pt,Ni" + (
        f"; {uses}" if uses else ""
    )
    return w


def element_value(widget) -> str:
    """The element field's value, canonical (``"Pt,Ni"``); ValueError naming the fix."""
    from ..core.elements import parse_elements

    return ",".join(parse_elements(str(widget.value)))


def layer_frame(layer):
    """``(world -> layer data, layer data -> world)`` for an axis-aligned layer (its scale
    and translate; napari-aet's layers are never rotated or sheared)."""
    scale = np.asarray(layer.scale, float)[-3:]
    shift = np.asarray(layer.translate, float)[-3:]
    return (lambda w: (np.asarray(w, float) - shift) / scale), (
        lambda d: np.asarray(d, float) * scale + shift
    )
