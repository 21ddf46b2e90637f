"""napari sample-data contributions: the simulated twinned Pt nanodumbbell and its truth."""

from __future__ import annotations

from ._layers import atoms_layer_data, tilt_series_layer_data
from .io import TiltSeries
from .simulate import twinned_pt_nanodumbbell


def make_nanodumbbell_sample():
    """Tilt series of the simulated twinned Pt nanodumbbell (21 x 256 x 256, 0.358 A)."""
    sim = twinned_pt_nanodumbbell()
    ts = TiltSeries(
        sim.data,
        sim.angles_deg,
        sim.pixel_size_A,
        "napari-aet sample: twinned Pt nanodumbbell (simulated)",
        {"provenance": sim.settings},
    )
    return [tilt_series_layer_data(ts, name="nanodumbbell tilt series")]


def make_nanodumbbell_truth_sample():
    """The true atoms of the simulated nanodumbbell, coloured by (111) stacking (fcc / hcp)."""
    sim = twinned_pt_nanodumbbell()
    return [atoms_layer_data(sim.truth.atoms, name="nanodumbbell true atoms")]
