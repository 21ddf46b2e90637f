"""Projected atomic potentials from the Kirkland parametrization, blurred by a Gaussian probe."""

from __future__ import annotations

import functools
from importlib.resources import files

import numpy as np
from scipy.special import j0

#: Bohr radius times elementary charge, a0 * e, in V * A^2 (Kirkland 2010, eq. 5.9).
A0_E_VOLT_A2 = 0.529177 * 14.3996

_PARAM_COLUMNS = ("a1", "b1", "a2", "b2", "a3", "b3", "c1", "d1", "c2", "d2", "c3", "d3")


@functools.cache
def _kirkland_table() -> dict[str, tuple[int, np.ndarray]]:
    text = files("napari_aet").joinpath("resources/kirkland_parameters.csv").read_text()
    rows = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    header = rows[0].split(",")
    if tuple(header[2:]) != _PARAM_COLUMNS:
        raise RuntimeError("resources/kirkland_parameters.csv has an unexpected header")
    table = {}
    for row in rows[1:]:
        parts = row.split(",")
        table[parts[0]] = (int(parts[1]), np.array([float(v) for v in parts[2:]]))
    return table


def kirkland_parameters(element: str) -> np.ndarray:
    """Return the 12 Kirkland coefficients ``a1 b1 a2 b2 a3 b3 c1 d1 c2 d2 c3 d3`` of an element.

    Parameters
    ----------
    element : str
        Chemical symbol, e.g. ``"Pt"``.

    References
    ----------
    E. J. Kirkland, *Advanced Computing in Electron Microscopy*, 2nd ed., Springer (2010),
    Appendix C. :doi:`10.1007/978-1-4419-6533-2`
    """
    table = _kirkland_table()
    if element not in table:
        raise ValueError(
            f"no Kirkland parameters for element {element!r}; use a chemical symbol such as "
            f"'Pt', 'Au', 'Pd' (available: {', '.join(table)})"
        )
    return table[element][1].copy()


def atomic_number(element: str) -> int:
    """Atomic number of a chemical symbol known to the parametrization."""
    kirkland_parameters(element)
    return _kirkland_table()[element][0]


def scattering_factor(element: str, q_inv_A: np.ndarray) -> np.ndarray:
    """Electron scattering factor ``f_e(q)`` in Angstrom at spatial frequency ``q`` [1/A]."""
    p = kirkland_parameters(element)
    q2 = np.asarray(q_inv_A, dtype=np.float64) ** 2
    a, b, c, d = p[0:6:2], p[1:6:2], p[6:12:2], p[7:12:2]
    lorentz = (a[:, None] / (q2.ravel()[None, :] + b[:, None])).sum(0)
    gauss = (c[:, None] * np.exp(-d[:, None] * q2.ravel()[None, :])).sum(0)
    return (lorentz + gauss).reshape(q2.shape)


def projected_potential_profile(
    element: str,
    r_A: np.ndarray,
    *,
    blur_sigma_A: float = 0.45,
    q_max_inv_A: float | None = None,
    n_q: int = 512,
) -> np.ndarray:
    """Radial profile of one atom's projected potential convolved with a Gaussian [V * A].

    The projected potential of an isolated atom is the 2D inverse Fourier transform of
    ``2 pi a0 e f_e(q)`` (Kirkland 2010, eq. 5.9 with ``q_z = 0``). For a radially symmetric
    function that is a Hankel transform, evaluated here by quadrature after multiplying by the
    transform of the Gaussian, ``exp(-2 pi^2 sigma^2 q^2)``, which stands for the probe and the
    thermal smearing together.

    Parameters
    ----------
    element : str
        Chemical symbol.
    r_A : ndarray
        Radii [A] at which to evaluate.
    blur_sigma_A : float
        Standard deviation of the Gaussian blur [A]. Must be positive: the bare projected
        potential diverges logarithmically at the nucleus.
    q_max_inv_A, n_q
        Quadrature range and number of points. The defaults (``2 / blur_sigma_A``, where the
        Gaussian has fallen to ``exp(-79)``, and 512 points) agree with a 65,536-point
        quadrature to 2e-9 of the peak for blurs of 0.05-1.5 A.
    """
    if blur_sigma_A <= 0:
        raise ValueError("blur_sigma_A must be > 0 Angstrom (the bare potential diverges at r=0)")
    if q_max_inv_A is None:
        q_max_inv_A = 2.0 / blur_sigma_A
    # Dense near q=0, where the Lorentzian terms vary fastest.
    q = np.linspace(0.0, 1.0, n_q) ** 2 * q_max_inv_A
    fq = scattering_factor(element, q) * np.exp(-2.0 * np.pi**2 * blur_sigma_A**2 * q**2)
    # trapezoid weights, so that the quadrature is one matrix-vector product
    w = np.zeros_like(q)
    dq = np.diff(q)
    w[:-1] += dq / 2
    w[1:] += dq / 2
    r = np.asarray(r_A, dtype=np.float64)
    hankel = 2.0 * np.pi * (j0(2.0 * np.pi * np.outer(r.ravel(), q)) @ (fq * q * w))
    return (2.0 * np.pi * A0_E_VOLT_A2 * hankel).reshape(r.shape)


@functools.cache
def _profile_table(element: str, blur_sigma_A: float, r_max_A: float, n: int = 2048):
    r = np.linspace(0.0, r_max_A, n)
    v = projected_potential_profile(element, r, blur_sigma_A=blur_sigma_A)
    v = v - v[-1]  # go to zero at the cut-off so that windows leave no steps
    v[v < 0] = 0.0
    return r, v


def profile_cutoff_radius(element: str, *, blur_sigma_A: float, rel_tol: float = 1e-3) -> float:
    """Radius [A] beyond which the blurred projected potential is below ``rel_tol`` of its peak."""
    return _cutoff_radius(str(element), float(blur_sigma_A), float(rel_tol))


@functools.lru_cache(maxsize=256)
def _cutoff_radius(element: str, blur_sigma_A: float, rel_tol: float) -> float:
    # Cached: every projection asks for it.
    r = np.linspace(0.0, 8.0, 801)
    v = projected_potential_profile(element, r, blur_sigma_A=blur_sigma_A)
    above = np.nonzero(v > rel_tol * v[0])[0]
    return float(r[above[-1]] + 0.1) if above.size else float(r[1])
