"""What every stage shares: the atom model, progress and cancel, the memory guard, atomic file
writes, the torch device, the CPU threads, the cache folder and small geometry helpers. Imports
nothing else of the project."""

from .atoms import COORDINATE_COLUMNS, KNOWN_FEATURES, AtomModel
from .cache import cache_dir
from .device import cuda_available, resolve_device
from .files import replace_when_done, staged_folder
from .geometry import in_plane_basis
from .memory import available_memory_bytes, check_memory, format_bytes
from .progress import Cancelled, ProgressCallback, check_cancel, is_cancelled, report
from .threads import available_cpus, set_threads

__all__ = [
    "COORDINATE_COLUMNS",
    "KNOWN_FEATURES",
    "AtomModel",
    "Cancelled",
    "ProgressCallback",
    "available_cpus",
    "available_memory_bytes",
    "cache_dir",
    "check_cancel",
    "check_memory",
    "cuda_available",
    "format_bytes",
    "in_plane_basis",
    "is_cancelled",
    "replace_when_done",
    "report",
    "resolve_device",
    "set_threads",
    "staged_folder",
]
