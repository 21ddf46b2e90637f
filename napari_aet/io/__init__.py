"""Reading and writing tilt series, tilt angles and atom models (no Qt, no napari)."""

from ._angles import (
    find_angle_sidecar,
    parse_angles,
    read_angle_file,
    read_angles,
    validate_angles,
    write_angles,
)
from ._atom_files import ATOM_SUFFIXES, is_atom_model_file, read_atoms, write_atoms
from ._folder import image_files, is_image_folder
from ._genfire import MergedSeriesError, from_genfire_geometry
from ._matlab import is_mat_volume
from ._tilt_series import (
    TILT_SERIES_SUFFIXES,
    TiltSeries,
    TiltSeriesFileError,
    file_notes,
    read_each_series,
    read_tilt_series,
    write_tilt_series,
)
from ._volume import VOLUME_SUFFIXES, read_volume, write_volume

__all__ = [
    "ATOM_SUFFIXES",
    "TILT_SERIES_SUFFIXES",
    "TiltSeries",
    "TiltSeriesFileError",
    "find_angle_sidecar",
    "from_genfire_geometry",
    "MergedSeriesError",
    "file_notes",
    "image_files",
    "is_image_folder",
    "is_atom_model_file",
    "is_mat_volume",
    "parse_angles",
    "read_angle_file",
    "read_angles",
    "read_atoms",
    "read_tilt_series",
    "read_each_series",
    "validate_angles",
    "write_angles",
    "write_atoms",
    "write_tilt_series",
    "VOLUME_SUFFIXES",
    "read_volume",
    "write_volume",
]
