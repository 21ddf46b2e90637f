"""Analyses of atom models (no Qt, no napari)."""

from ._compare import ModelComparison, compare_atom_models

__all__ = ["ModelComparison", "compare_atom_models"]
