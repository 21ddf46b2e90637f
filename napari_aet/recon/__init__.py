"""GENFIRE reconstruction in torch (CUDA when present, CPU otherwise); no Qt, no napari."""

from ._genfire import GenfireResult, check_tomogram, estimate_genfire_memory, genfire
from ._geometry import euler_to_matrix_xyz, projection_axes
from ._gridding import GriddedData, dense_projection_dft, grid_dft, grid_fft, projection_dft
from ._support import projection_masks, visual_hull_support

__all__ = [
    "GenfireResult",
    "GriddedData",
    "check_tomogram",
    "dense_projection_dft",
    "estimate_genfire_memory",
    "euler_to_matrix_xyz",
    "genfire",
    "grid_dft",
    "grid_fft",
    "projection_axes",
    "projection_dft",
    "projection_masks",
    "visual_hull_support",
]
