"""The "Augment (U-Net)" dock widget."""

import numpy as np
import pytest
import torch

from napari_aet.augment import UNet3D, gaussian_target, save_weights


@pytest.fixture
def tomogram_viewer(make_napari_viewer, tmp_path):
    from napari_aet.widgets import AugmentWidget

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    pos = rng.uniform(8, 32, size=(40, 3)) * 0.358
    vol = 50 * gaussian_target(pos, (40, 40, 40), voxel_size_A=0.358) + rng.random((40,) * 3)
    viewer.add_image(
        vol.astype(np.float32),
        name="tomo",
        scale=(0.358,) * 3,
        metadata={"napari_aet_type": "tomogram", "voxel_size_A": 0.358},
    )
    torch.manual_seed(0)
    weights = save_weights(
        tmp_path / "w.pt", UNet3D(depth=2, width=4), voxel_size_A=0.358, provenance={}
    )
    w = AugmentWidget(viewer)
    w.layer.value = viewer.layers["tomo"]
    w.weights.value = "weights file..."
    w.weights_file.value = weights
    w.tile.value = 32
    w.device.value = "cpu"
    return viewer, w


def test_augment_widget_adds_the_augmented_tomogram_beside_the_raw(tomogram_viewer, qtbot):
    viewer, w = tomogram_viewer
    with qtbot.waitSignal(w.run().finished, timeout=120000):
        pass
    out = viewer.layers["tomo U-Net"]
    assert out.data.shape == (40, 40, 40)
    assert tuple(out.scale) == pytest.approx((0.358,) * 3)
    assert out.metadata["napari_aet_type"] == "tomogram" and out.metadata["augmented"]
    assert out.metadata["augment_settings"]["tile_px"] == 32
    qtbot.waitUntil(lambda: "Done" in w.status.value, timeout=30000)


def test_augment_widget_refuses_bad_input(tomogram_viewer, tmp_path):
    viewer, w = tomogram_viewer
    w.weights_file.value = tmp_path / "missing.pt"
    assert w.run() is None
    assert "weights file" in w.status.value
    viewer.add_image(np.zeros((16, 16, 16), np.float32), name="no scale")
    w.layer.value = viewer.layers["no scale"]
    assert w.run() is None
    assert "no voxel size" in w.status.value
    assert [layer.name for layer in viewer.layers] == ["tomo", "no scale"]


def test_augment_widget_auto_weights_follow_the_element(tomogram_viewer, qtbot):
    from qtpy.QtCore import Qt

    viewer, w = tomogram_viewer
    w.weights.value = "auto"  # the default, as in `napari-aet run`
    # (explicitly hidden or not: the dock itself is not shown here)
    assert not w.element.native.isHidden() and w.weights_file.native.isHidden()
    w.element.value = "Xq"
    assert w.run() is None and "not a chemical symbol" in w.status.value
    w.element.value = "Pt,Pd"  # an alloy: the alloy network
    qtbot.mouseClick(w.run_button.native, Qt.MouseButton.LeftButton)  # as the analyst does
    qtbot.waitUntil(lambda: "Done" in w.status.value, timeout=120000)
    assert "alloy weights" in w.status.value
    assert "alloy" in str(viewer.layers["tomo U-Net"].metadata["augment_settings"]["weights"])
    w.weights.value = "fcc"  # the element still sets the spacing the network sees
    assert not w.element.native.isHidden()


def test_augment_widget_defaults_to_auto(make_napari_viewer):
    from napari_aet.widgets import AugmentWidget

    w = AugmentWidget(make_napari_viewer())
    assert w.weights.value == "auto" and w.element.value == "Pt"


def test_augment_widget_draws_the_typed_element_at_the_networks_spacing(tomogram_viewer, qtbot):
    """With the shipped fcc weights (trained on Pt, bond 2.77 A), the element typed into the
    field sets the spacing the network sees: Co (2.51 A) is drawn 1.10x larger, as
    ``napari-aet run --element Co`` does."""
    from qtpy.QtCore import Qt

    from napari_aet.augment import shipped_weights

    if "fcc" not in shipped_weights():
        pytest.skip("no shipped fcc weights")
    viewer, w = tomogram_viewer
    w.weights.value = "fcc"
    w.element.native.selectAll()
    qtbot.keyClicks(w.element.native, "Co")  # typed, as the analyst does
    qtbot.mouseClick(w.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Done" in w.status.value, timeout=120000)
    s = viewer.layers["tomo U-Net"].metadata["augment_settings"]
    assert s["resampled"] is True and s["bond_length_A"]["zoom"] == pytest.approx(1.10, abs=0.01)
    assert viewer.layers["tomo U-Net"].data.shape == viewer.layers["tomo"].data.shape
