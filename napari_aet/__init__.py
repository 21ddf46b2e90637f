"""napari-aet: atomic electron tomography from tilt series to 3D atomic structure."""

__version__ = "0.1.0"
