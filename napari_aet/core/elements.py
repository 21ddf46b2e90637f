"""What the pipeline needs to know of an element: its bond length and reference lattice.

The tracer's minimum distance, the default Q4/Q6 cutoff and the strain reference all follow
from the element (or the elements of an alloy) instead of Pt's numbers. Atomic numbers,
reference crystal structures and covalent radii come from ASE's tables (:mod:`ase.data`); the
fcc lattice constants of the common fcc metals are room-temperature values (Kittel).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers, chemical_symbols, covalent_radii, reference_states

#: fcc lattice constants [A] at room temperature (Kittel, Introduction to Solid State Physics).
FCC_LATTICE_CONSTANTS_A = {
    "Pt": 3.912,
    "Au": 4.078,
    "Pd": 3.891,
    "Ag": 4.086,
    "Ni": 3.524,
    "Cu": 3.615,
    "Al": 4.050,
    "Ir": 3.839,
    "Rh": 3.803,
}

#: The tracer's minimum distance per bond length: the study's 2 A for Pt (bond 2.766 A).
MIN_DISTANCE_PER_BOND = 2.0 / (FCC_LATTICE_CONSTANTS_A["Pt"] / math.sqrt(2.0))


@dataclass(frozen=True)
class ElementData:
    """One element's constants.

    Attributes
    ----------
    symbol : str
    atomic_number : int
    structure : str or None
        Its crystal structure at room temperature (``"fcc"``, ``"bcc"``, ``"hcp"``,
        ``"diamond"``, ...), None where ASE has none.
    fcc_lattice_constant_A : float or None
        The bulk fcc lattice constant (fcc metals only): the strain reference.
    bond_length_A : float
        Nearest-neighbour distance in its reference structure (twice the covalent radius where
        the structure gives none).
    """

    symbol: str
    atomic_number: int
    structure: str | None
    fcc_lattice_constant_A: float | None
    bond_length_A: float


def _canonical(symbol) -> str:
    s = str(symbol).strip()
    s = s[:1].upper() + s[1:].lower()
    if s not in atomic_numbers or s == "X":
        raise ValueError(
            f"{symbol!r} is not a chemical symbol; give one such as Pt, Au, Si (or several for "
            "an alloy: 'Pt,Ni')"
        )
    return s


def element_data(symbol) -> ElementData:
    """The constants of one element (see :class:`ElementData`)."""
    s = _canonical(symbol)
    z = atomic_numbers[s]
    ref = reference_states[z] or {}
    sym = ref.get("symmetry")
    a = ref.get("a")
    fcc_a = FCC_LATTICE_CONSTANTS_A.get(s, a if sym == "fcc" else None)
    bond = {
        "fcc": (fcc_a or 0) / math.sqrt(2.0),
        "bcc": (a or 0) * math.sqrt(3.0) / 2.0,
        "hcp": a or 0,
        "diamond": (a or 0) * math.sqrt(3.0) / 4.0,
        "sc": a or 0,
        "diatom": ref.get("d") or 0,
    }.get(sym, 0.0)
    if not bond > 0:
        bond = 2.0 * float(covalent_radii[z])
    return ElementData(s, int(z), sym, None if fcc_a is None else float(fcc_a), float(bond))


def split_elements(spec) -> list[str]:
    """The elements of ``"Pt,Ni"`` (also ``+ ; /`` or spaces between them) or of a sequence,
    canonical and in the order given (each once)."""
    if spec is None:
        raise ValueError("no element given; give a chemical symbol such as Pt")
    parts = re.split(r"[,+;\s/]+", spec.strip()) if isinstance(spec, str) else list(spec)
    parts = [p for p in parts if str(p).strip()]
    if not parts:
        raise ValueError(f"no element in {spec!r}; give a chemical symbol such as Pt")
    return list(dict.fromkeys(_canonical(p) for p in parts))


def parse_elements(spec) -> tuple[str, ...]:
    """One or several elements: ``"Pt"``, ``"Pt,Ni"``, ``"Pt+Ni"``, ``"Pt Ni"`` or a sequence.

    Returns the canonical symbols, heaviest first (the order species are told apart by
    contrast)."""
    return tuple(sorted(split_elements(spec), key=lambda s: -atomic_numbers[s]))


def mean_bond_length_A(elements, fractions=None) -> float:
    """Composition-weighted bond length of one or several elements (Vegard's rule)."""
    els = parse_elements(elements)
    w = np.ones(len(els)) if fractions is None else np.asarray(fractions, float)
    return float(np.average([element_data(e).bond_length_A for e in els], weights=w))


def fcc_reference_A(elements, fractions=None) -> float | None:
    """The fcc lattice constant of an element, or an alloy's by Vegard's rule; None when one
    of them is not an fcc metal."""
    els = parse_elements(elements)
    a = [element_data(e).fcc_lattice_constant_A for e in els]
    if any(v is None for v in a):
        return None
    w = np.ones(len(els)) if fractions is None else np.asarray(fractions, float)
    return float(np.average(a, weights=w))


def tracer_min_distance_A(elements) -> float:
    """The tracer's default minimum distance between atoms: :data:`MIN_DISTANCE_PER_BOND`
    times the shortest bond of the elements (2.0 A for Pt, 1.70 for Si, 1.11 for C)."""
    els = parse_elements(elements)
    return round(MIN_DISTANCE_PER_BOND * min(element_data(e).bond_length_A for e in els), 3)


def known_symbols() -> tuple[str, ...]:
    """Every chemical symbol (for option help and validation)."""
    return tuple(chemical_symbols[1:])


def hcp_c_over_a(elements) -> float:
    """The mean ``c / a`` of the hcp elements among ``elements`` (ASE's reference states: Ru
    1.584, Co 1.622, Ti 1.588, ...), the ideal ``sqrt(8/3)`` when none is hcp."""
    ratios = []
    for e in split_elements(elements):
        ref = reference_states[atomic_numbers[e]] or {}
        if ref.get("symmetry") == "hcp" and ref.get("c/a"):
            ratios.append(float(ref["c/a"]))
    return float(np.mean(ratios)) if ratios else float(np.sqrt(8.0 / 3.0))
