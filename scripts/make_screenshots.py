"""Render the README/docs screenshots of napari-aet in a real napari window (under Xvfb).

Run: `make screenshots` (starts a virtual display when there is none).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "images"


def _wait(worker) -> None:
    from qtpy.QtWidgets import QApplication

    done = []
    worker.finished.connect(lambda: done.append(True))
    while not done:
        QApplication.processEvents()
        time.sleep(0.05)


def _align_screenshot(viewer) -> None:
    """Align the sample (shifts, angle errors) in the 'Preprocess and align' widget."""
    from qtpy.QtWidgets import QApplication

    viewer.layers.clear()
    for w in list(viewer.window._dock_widgets):
        viewer.window.remove_dock_widget(viewer.window._dock_widgets[w])
    viewer.dims.ndisplay = 2
    viewer.open_sample("napari-aet", "nanodumbbell")
    _, widget = viewer.window.add_plugin_dock_widget("napari-aet", "2. Preprocess and align")
    widget.layer.value = viewer.layers["nanodumbbell tilt series"]
    widget.rounds.value = 1
    _wait(widget.run())
    viewer.layers["nanodumbbell tilt series"].visible = False
    viewer.dims.set_current_step(0, 3)
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(OUT / "align_widget.png"), canvas_only=False)
    viewer.window.remove_dock_widget(widget.native.parent())


def _recon_screenshot(viewer) -> None:
    """Reconstruct an aligned simulation of the sample in the GENFIRE widget; 3D view."""
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_aet._layers import tilt_series_layer_data
    from napari_aet.io import TiltSeries
    from napari_aet.simulate import simulate_tilt_series, twinned_pt_nanodumbbell

    viewer.layers.clear()
    viewer.dims.ndisplay = 2
    s = twinned_pt_nanodumbbell()
    sim = simulate_tilt_series(s.truth.atoms, s.angles_deg, seed=3)  # aligned: no errors
    ts = TiltSeries(sim.data, sim.angles_deg, sim.pixel_size_A, "aligned simulation")
    data, kw, _ = tilt_series_layer_data(ts, name="aligned tilt series")
    viewer.add_image(data, **kw)
    _, widget = viewer.window.add_plugin_dock_widget("napari-aet", "3. Reconstruct (GENFIRE)")
    widget.layer.value = viewer.layers["aligned tilt series"]
    widget.iterations.value = 50
    _wait(widget.run())
    viewer.layers["aligned tilt series"].visible = False
    tomo = viewer.layers["aligned tilt series GENFIRE"]
    viewer.dims.ndisplay = 3
    tomo.rendering = "mip"
    tomo.contrast_limits = (0, float(np.percentile(tomo.data, 99.95)))
    viewer.camera.angles = (0, -40, 80)
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(OUT / "recon_genfire.png"), canvas_only=False)
    viewer.dims.ndisplay = 2
    viewer.dims.set_current_step(0, tomo.data.shape[0] // 2)
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(OUT / "recon_genfire_slice.png"), canvas_only=True)


def _structure_screenshot(viewer) -> None:
    """The sample's true atoms analysed and coloured with the study's preset."""
    from qtpy.QtWidgets import QApplication

    viewer.layers.clear()
    for w in list(viewer.window._dock_widgets):
        viewer.window.remove_dock_widget(viewer.window._dock_widgets[w])
    viewer.open_sample("napari-aet", "nanodumbbell_truth")
    _, widget = viewer.window.add_plugin_dock_widget("napari-aet", "5. Structure")
    widget.layer.value = viewer.layers[0]
    _wait(widget.run())
    # the widget's own view after the analysis: along an in-layer <110>, the layers edge-on
    viewer.reset_view(reset_camera_angle=False)
    QApplication.processEvents()
    viewer.screenshot(str(OUT / "structure_widget.png"), canvas_only=False)
    widget.show_layers.value = "-1:1"
    QApplication.processEvents()
    viewer.screenshot(str(OUT / "structure_interface_layers.png"), canvas_only=True)
    viewer.window.remove_dock_widget(widget.native.parent())


def _trace_screenshot(viewer) -> None:
    """Trace the GENFIRE tomogram left by _recon_screenshot; atoms over the tomogram slice."""
    from qtpy.QtWidgets import QApplication

    for w in list(viewer.window._dock_widgets):
        viewer.window.remove_dock_widget(viewer.window._dock_widgets[w])
    tomo = viewer.layers["aligned tilt series GENFIRE"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-aet", "4. Trace atoms")
    widget.layer.value = tomo
    _wait(widget.run())
    widget.series.value = viewer.layers["aligned tilt series"]  # the series it was made from
    _wait(widget.refine())
    viewer.dims.ndisplay = 2
    tomo.rendering = "mip"
    widget.points.out_of_slice_display = False
    widget.points.size = 1.0
    viewer.dims.set_current_step(0, tomo.data.shape[0] // 2)
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(OUT / "trace_widget.png"), canvas_only=False)
    viewer.dims.ndisplay = 3
    tomo.visible = False
    viewer.camera.angles = (0, -40, 80)
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(OUT / "traced_atoms_3d.png"), canvas_only=True)


def _clear(viewer) -> None:
    viewer.layers.clear()
    for w in list(viewer.window._dock_widgets):
        viewer.window.remove_dock_widget(viewer.window._dock_widgets[w])


def _strain_screenshot(viewer) -> None:
    """Local strain on the {111} and {100} facets of the sample's true atoms."""
    from qtpy.QtWidgets import QApplication

    _clear(viewer)
    viewer.open_sample("napari-aet", "nanodumbbell_truth")
    _, widget = viewer.window.add_plugin_dock_widget("napari-aet", "5b. Strain and ORR")
    widget.layer.value = viewer.layers[0]
    _wait(widget.run())
    QApplication.processEvents()
    widget.color_by.value = "local_strain"
    widget.facets.value = "{111} and {100}"
    viewer.dims.ndisplay = 3
    viewer.camera.angles = (0, -40, 80)
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(OUT / "strain_widget.png"), canvas_only=False)


def _augment_screenshot(viewer) -> None:
    """The U-Net on the GENFIRE tomogram left by _recon_screenshot: raw and augmented slices."""
    from qtpy.QtWidgets import QApplication

    from napari_aet.augment import shipped_weights

    if "fcc" not in shipped_weights():
        print("no shipped weights: skipped the augment screenshot")
        return
    for w in list(viewer.window._dock_widgets):
        viewer.window.remove_dock_widget(viewer.window._dock_widgets[w])
    tomo = viewer.layers["aligned tilt series GENFIRE"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-aet", "3b. Augment (U-Net)")
    widget.layer.value = tomo
    _wait(widget.run())
    QApplication.processEvents()
    aug = viewer.layers[tomo.name + " U-Net"]
    viewer.dims.ndisplay = 2
    for layer in viewer.layers:
        layer.visible = layer in (tomo, aug)
    viewer.grid.enabled = True
    viewer.dims.set_current_step(1, tomo.data.shape[1] // 2)
    viewer.dims.order = (1, 0, 2)  # an xz slice: the missing wedge's elongation along z
    viewer.reset_view()
    viewer.camera.zoom *= 2.4
    QApplication.processEvents()
    viewer.screenshot(str(OUT / "augment_widget.png"), canvas_only=False)
    viewer.grid.enabled = False
    viewer.dims.order = (0, 1, 2)
    for layer in viewer.layers:
        layer.visible = True


def _figures_screenshot(viewer) -> None:
    """The Figures and export widget on the analysed true atoms."""
    from qtpy.QtWidgets import QApplication

    _clear(viewer)
    viewer.open_sample("napari-aet", "nanodumbbell_truth")
    _, structure = viewer.window.add_plugin_dock_widget("napari-aet", "5. Structure")
    structure.layer.value = viewer.layers[0]
    structure.strain.value = True
    _wait(structure.run())
    QApplication.processEvents()
    viewer.window.remove_dock_widget(structure.native.parent())
    _, widget = viewer.window.add_plugin_dock_widget("napari-aet", "6. Figures and export")
    widget.layer.value = viewer.layers[0]
    viewer.dims.ndisplay = 3
    viewer.camera.angles = (0, -40, 80)
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(OUT / "figures_widget.png"), canvas_only=False)
    # the widget's own 3D export: local strain in %, scale bar in A, the particle filling it
    widget.color_by.value = "local_strain"
    widget.view_path.value = OUT / "figures_view3d.png"
    widget.width_px.value = 1200
    widget.dpi.value = 150
    widget.save_view()


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
        only = set(sys.argv[1].split(",")) if len(sys.argv) > 1 else None
        steps = {
            "align": _align_screenshot,
            "structure": _structure_screenshot,
            "strain": _strain_screenshot,
            "figures": _figures_screenshot,
            "recon": _recon_screenshot,
            "augment": _augment_screenshot,
            "trace": _trace_screenshot,
        }
        for name, step in steps.items():
            if only is None or name in only or (name == "recon" and "augment" in only):
                step(viewer)
        viewer.close()
        print(f"wrote screenshots to {OUT}")
    finally:
        if display is not None:
            display.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
