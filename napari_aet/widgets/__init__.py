"""napari dock widgets: forms and wiring only; the work is done by the stage functions."""

from ._recon import ReconWidget
from ._simulate import SimulateWidget
from ._tilt_series import TiltSeriesWidget

__all__ = ["ReconWidget", "SimulateWidget", "TiltSeriesWidget"]
