"""napari dock widgets: forms and wiring only; the work is done by the stage functions."""

from ._align import AlignWidget
from ._augment import AugmentWidget
from ._figures import FiguresWidget
from ._recon import ReconWidget
from ._review import ReviewWidget
from ._simulate import SimulateWidget
from ._strain import StrainWidget
from ._structure import StructureWidget
from ._tilt_series import TiltSeriesWidget
from ._trace import TraceWidget
from ._validate import ValidateWidget

__all__ = [
    "AlignWidget",
    "AugmentWidget",
    "FiguresWidget",
    "ReconWidget",
    "ReviewWidget",
    "SimulateWidget",
    "StrainWidget",
    "StructureWidget",
    "TiltSeriesWidget",
    "TraceWidget",
    "ValidateWidget",
]
