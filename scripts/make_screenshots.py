"""Render the README/docs screenshots of napari-aet in a real napari window (under Xvfb).

Run: `make screenshots` (starts a virtual display when there is none).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "images"


def main() -> int:
    display = None
    if not os.environ.get("DISPLAY"):
        from pyvirtualdisplay import Display

        display = Display(visible=False, size=(1600, 1000))
        display.start()
    try:
        import napari
        from qtpy.QtWidgets import QApplication

        OUT.mkdir(parents=True, exist_ok=True)
        viewer = napari.Viewer(show=True)
        viewer.window.resize(1400, 900)
        viewer.open_sample("napari-aet", "nanodumbbell")
        viewer.window.add_plugin_dock_widget("napari-aet", "1. Tilt-series geometry")
        viewer.dims.set_current_step(0, 10)
        viewer.reset_view()
        QApplication.processEvents()
        viewer.screenshot(str(OUT / "sample_tilt_series.png"), canvas_only=False)

        viewer.layers.clear()
        for w in list(viewer.window._dock_widgets):
            viewer.window.remove_dock_widget(viewer.window._dock_widgets[w])
        viewer.open_sample("napari-aet", "nanodumbbell_truth")
        viewer.dims.ndisplay = 3
        viewer.camera.angles = (0, -40, 80)
        viewer.reset_view()
        viewer.camera.zoom *= 0.85
        QApplication.processEvents()
        viewer.screenshot(str(OUT / "sample_true_atoms_3d.png"), canvas_only=True)
        viewer.close()
        print(f"wrote screenshots to {OUT}")
    finally:
        if display is not None:
            display.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
