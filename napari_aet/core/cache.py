"""The project's cache folder (cached samples, autosaves of edited atom models)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Folder for cached samples and autosaves: ``$NAPARI_AET_CACHE`` or
    ``~/.cache/napari-aet`` (``$XDG_CACHE_HOME`` respected)."""
    root = os.environ.get("NAPARI_AET_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "napari-aet"
    )
    return Path(root)
