"""Weights files of the U-Net: the shipped ones in ``resources/`` and the user's own.

A weights file is ``torch.save`` of a plain dict (loadable with ``weights_only=True``):
``format``, ``config`` (the :class:`UNet3D` arguments), ``state_dict``, ``voxel_size_A`` (the
sampling the network was trained at), ``normalisation`` and ``provenance`` (how it was made).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..core.elements import parse_elements
from ..core.files import replace_when_done
from ._model import UNet3D

WEIGHTS_FORMAT = "napari-aet-unet/1"

#: Shipped weights: name -> file in ``napari_aet/resources``.
SHIPPED_WEIGHTS = {
    "fcc": "unet-fcc.pt",
    "amorphous": "unet-amorphous.pt",
    "alloy": "unet-alloy.pt",
}

#: The weights name that picks shipped weights by the data's elements (:func:`choose_weights`).
AUTO_WEIGHTS = "auto"


def resources_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "resources"


def shipped_weights() -> dict[str, Path]:
    """The shipped weights that are present: ``{name: path}``."""
    out = {}
    for name, fname in SHIPPED_WEIGHTS.items():
        p = resources_dir() / fname
        if p.exists():
            out[name] = p
    return out


def choose_weights(weights, element=None):
    """The weights to use: ``"auto"`` means ``"alloy"`` for data of several elements (when
    those weights are shipped) and ``"fcc"`` otherwise; any other value is returned as is.

    The single-element networks make neighbouring atoms of different elements alike (a Pt/Pd
    intensity ratio of 1.9 became 1.04) and erase light atoms beside heavy ones; the alloy
    weights were trained on alloys of several pairs of elements (their provenance).
    """
    if not (isinstance(weights, str) and weights == AUTO_WEIGHTS):
        return weights
    if element and len(parse_elements(element)) > 1 and "alloy" in shipped_weights():
        return "alloy"
    return "fcc"


def weights_file(weights="fcc", element=None) -> Path:
    """The file a shipped name (``"auto"`` chosen for ``element``) or a path stands for.

    Raises
    ------
    FileNotFoundError
        When the shipped file or the given file is not there (the message says what to pass).
    """
    weights = choose_weights(weights, element)
    if isinstance(weights, str) and weights in SHIPPED_WEIGHTS:
        p = resources_dir() / SHIPPED_WEIGHTS[weights]
        if not p.exists():
            raise FileNotFoundError(
                f"the shipped {weights!r} weights are not in {p.parent}; train your own with "
                "`napari-aet train` and pass the file"
            )
        return p
    p = Path(weights)
    if not p.exists():
        raise FileNotFoundError(
            f"weights file {p} not found; use a shipped name "
            f"({', '.join(SHIPPED_WEIGHTS)}) or the output of `napari-aet train`"
        )
    return p


def weights_digest(weights="fcc", element=None) -> str | None:
    """SHA-256 of the weights' file content, or None when there is no such file (loading it
    then raises the error that says so). A run's resume compares it, so that new weights under
    the same name (a newer release's shipped file, a retrained file) rerun the U-Net."""
    try:
        p = weights_file(weights, element)
    except FileNotFoundError:
        return None
    return hashlib.sha256(p.read_bytes()).hexdigest()


def save_weights(path, model: UNet3D, *, voxel_size_A: float, provenance: dict) -> Path:
    """Write a weights file (atomically)."""

    payload = {
        "format": WEIGHTS_FORMAT,
        "config": dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "voxel_size_A": float(voxel_size_A),
        "normalisation": "atom_peak",
        "provenance": json.dumps(provenance, default=str),
    }
    return replace_when_done(path, lambda tmp: torch.save(payload, tmp))


def load_weights(weights="fcc", *, device="cpu") -> tuple[UNet3D, dict]:
    """Load a U-Net: a shipped name (``"fcc"``, ``"amorphous"``, ``"alloy"``) or a weights
    file path (``"auto"``: see :func:`choose_weights`; here without an element, ``"fcc"``).

    Returns the model (eval mode, on ``device``) and the file's metadata
    (``voxel_size_A``, ``normalisation``, ``provenance``, ``source``).
    """
    p = weights_file(weights)
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling problem means "not ours"
        raise ValueError(f"{p} is not a napari-aet weights file ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise ValueError(
            f"{p} is not a napari-aet weights file (expected format {WEIGHTS_FORMAT!r}); "
            "a training checkpoint? pass the weights.pt written by `napari-aet train`"
        )
    model = UNet3D(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.eval().to(device)
    meta = {
        "voxel_size_A": float(payload["voxel_size_A"]),
        "normalisation": payload["normalisation"],
        "provenance": json.loads(payload["provenance"]),
        "source": str(p),
        "config": dict(payload["config"]),
    }
    return model, meta
