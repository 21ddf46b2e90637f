"""One editable atom model per atoms layer, shared by every widget that edits or annotates it.

Trace, Review, Structure and Strain all reach the atoms of a Points layer through
:func:`shared_model`: one :class:`~napari_aet.trace.EditableAtomModel` (one undo stack, one
edit log, one autosave) per layer, so an atom removed in Review is undone with Ctrl+Z in
Trace, and an analysis's columns survive the next edit (marked stale). Edits made with
napari's own Points tools are taken into the model (logged as manual edits) the next time a
widget reaches it, not dropped.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np

from .._layers import atoms_from_layer
from ..trace import EditableAtomModel, default_autosave_path

_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shared_model(layer, *, autosave_path=None, adopt: bool = True) -> EditableAtomModel:
    """The editable model of a Points layer: the one already shared, else a new one from the
    layer's atoms, autosaved at the layer's ``autosave_path`` (metadata), ``autosave_path`` or
    next to its source data. ``adopt`` (call it before an edit, not after) first takes in
    edits made on the layer with napari's own tools."""
    model = _MODELS.get(layer)
    if model is not None:
        if adopt:
            model.adopt_positions(np.asarray(layer.data, float))
        return model
    meta = layer.metadata
    path = meta.get("autosave_path") or autosave_path
    if path is None:
        path = default_autosave_path(meta.get("atom_model_metadata", {}).get("source"), layer.name)
    model = EditableAtomModel(atoms_from_layer(layer.data, layer.features, meta), Path(path))
    _MODELS[layer] = model
    return model


def share(layer, model: EditableAtomModel) -> EditableAtomModel:
    """Make ``model`` the layer's shared model (a new tracing or a restored autosave) and
    show it there."""
    _MODELS[layer] = model
    publish(layer, model)
    return model


def has_shared_model(layer) -> bool:
    return layer in _MODELS


def publish(layer, model: EditableAtomModel) -> None:
    """Show the model's atoms and features in its layer (with the edit log in the metadata,
    for sessions and File > Save)."""
    m = model.model
    layer.data = m.positions.copy()
    layer.features = m.features.reset_index(drop=True)
    layer.metadata["atom_model_metadata"] = {**dict(m.metadata), "edit_log": list(model.edit_log)}
    if model.autosave_path is not None:
        layer.metadata["autosave_path"] = str(model.autosave_path)


def take_analysis(layer, features, *, source: str) -> EditableAtomModel:
    """Put an analysis's per-atom columns into the layer's shared model (kept through later
    edits, marked stale by them) and show them; ValueError when the atoms changed while it
    ran. The layer's colours then belong to the analysis (``colour_by`` in its metadata)."""
    model = shared_model(layer, adopt=False)
    model.set_analysis(features, source=source)
    model.autosave()
    publish(layer, model)
    layer.metadata["colour_by"] = source
    return model


def stale_note(layer) -> str | None:
    """A status line when the layer's atoms were edited after its analysis, else None."""
    if layer is None or not has_shared_model(layer):
        return None
    model = shared_model(layer, adopt=False)
    if not model.analysis_stale:
        return None
    return (
        "The atoms were edited after the analysis: its columns (and colours) are out of date "
        "for the edited atoms; analyse again to recompute"
    )


def apply_analysis(widget, layer, features, *, source: str) -> bool:
    """An analysis widget's result into the layer's shared model (:func:`take_analysis`);
    the widget's status then says when later edits leave it out of date. False (and the
    reason in the status) when the atoms changed while it ran."""
    try:
        take_analysis(layer, features, source=source)
    except ValueError as err:
        widget.status.value = f"Not applied: {err}"
        return False
    if getattr(widget, "_stale_watch", None) is not layer:

        def on_edit(event=None):
            note = stale_note(layer)
            if note:
                widget.status.value = note

        layer.events.data.connect(on_edit)
        widget._stale_watch = layer
    return True
