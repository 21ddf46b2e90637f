import numpy as np
import pytest

from napari_aet.forward import (
    atomic_number,
    kirkland_parameters,
    projected_potential_profile,
    scattering_factor,
)
from napari_aet.forward._potentials import A0_E_VOLT_A2

ELEMENTS = ["Pt", "Au", "Pd", "Ag", "Ni", "Fe", "Co"]


@pytest.mark.parametrize("element", ELEMENTS)
def test_projected_potential_integrates_to_forward_scattering(element):
    # The plane integral of the projected potential is its transform at q = 0:
    # 2 pi a0 e f_e(0); the Gaussian blur does not change it.
    r = np.linspace(0, 25, 5001)
    v = projected_potential_profile(element, r, blur_sigma_A=0.45)
    total = np.trapezoid(2 * np.pi * r * v, r)
    expected = 2 * np.pi * A0_E_VOLT_A2 * scattering_factor(element, np.zeros(1))[0]
    assert total == pytest.approx(expected, rel=2e-3)


def test_heavier_atoms_scatter_more():
    f0 = {el: scattering_factor(el, np.zeros(1))[0] for el in ELEMENTS}
    z = {el: atomic_number(el) for el in ELEMENTS}
    assert z["Pt"] == 78 and z["Au"] == 79 and z["Fe"] == 26
    assert f0["Pt"] > f0["Pd"] > f0["Ni"]
    assert f0["Au"] > f0["Ag"]


def test_blur_lowers_peak_and_spreads():
    r = np.array([0.0, 1.0])
    sharp = projected_potential_profile("Pt", r, blur_sigma_A=0.3)
    wide = projected_potential_profile("Pt", r, blur_sigma_A=0.8)
    assert sharp[0] > wide[0]
    assert wide[1] / wide[0] > sharp[1] / sharp[0]


def test_table_values_pt():
    p = kirkland_parameters("Pt")
    assert p.shape == (12,)
    assert p[0] == pytest.approx(0.98469794)  # a1 of Pt in Kirkland's Table C.4


def test_unknown_element_message():
    with pytest.raises(ValueError, match="chemical symbol"):
        kirkland_parameters("Xx")
    with pytest.raises(ValueError, match="blur_sigma_A"):
        projected_potential_profile("Pt", np.zeros(1), blur_sigma_A=0)


@pytest.mark.parametrize("element", ["Pt", "Ni", "Si", "C"])
@pytest.mark.parametrize("sigma", [0.05, 0.45, 1.5])
def test_peak_of_the_blurred_potential_has_its_closed_form(element, sigma):
    # At r = 0 each term of the Kirkland sum has a closed form once blurred by a Gaussian
    # (alpha = 2 pi^2 sigma^2): a / (q^2 + b) -> pi a exp(alpha b) E1(alpha b),
    # c exp(-d q^2) -> pi c / (d + alpha). The quadrature must reproduce it.
    from scipy.integrate import quad

    def exp_e1(x):  # exp(x) E1(x) = int_0^inf exp(-t) / (x + t) dt, without overflow
        return quad(lambda t: np.exp(-t) / (x + t), 0, np.inf, epsabs=0, epsrel=1e-12)[0]

    p = kirkland_parameters(element)
    a, b, c, d = p[0:6:2], p[1:6:2], p[6:12:2], p[7:12:2]
    alpha = 2 * np.pi**2 * sigma**2
    lorentz = sum(np.pi * ai * exp_e1(alpha * bi) for ai, bi in zip(a, b, strict=True))
    exact = 2 * np.pi * A0_E_VOLT_A2 * (lorentz + np.sum(np.pi * c / (d + alpha)))
    v0 = projected_potential_profile(element, np.zeros(1), blur_sigma_A=sigma)[0]
    assert v0 == pytest.approx(exact, rel=1e-8)
    # and away from the centre the defaults agree with a quadrature eight times as fine
    r = np.linspace(0.0, 8.0, 401)
    fine = projected_potential_profile(
        element, r, blur_sigma_A=sigma, q_max_inv_A=4.0 / sigma, n_q=4096
    )
    fast = projected_potential_profile(element, r, blur_sigma_A=sigma)
    assert np.abs(fast - fine).max() < 1e-8 * fine[0]


def test_a_rendered_atom_is_its_profile_at_each_pixel_and_the_field_cuts_it():
    # one Pt atom at a sub-pixel place, one beside the left edge: every pixel holds the
    # blurred profile (less its value at the cut-off) at that pixel's distance, nothing
    # beyond the cut-off, and the edge atom's far side is not wrapped into the image
    from napari_aet.forward import render_projection
    from napari_aet.forward._potentials import profile_cutoff_radius

    px, blur = 0.35, 0.45
    coords = np.array([[20.3, 21.7], [30.0, 0.4]])
    img = render_projection(
        coords, np.array(["Pt", "Pt"]), shape_px=(48, 40), pixel_size_A=px, blur_sigma_A=blur
    )
    r_cut = profile_cutoff_radius("Pt", blur_sigma_A=blur)
    rr, cc = np.mgrid[:48, :40]
    d = np.hypot(rr - 20.3, cc - 21.7) * px
    tail = projected_potential_profile("Pt", np.array([r_cut]), blur_sigma_A=blur)[0]
    expected = np.where(
        d < r_cut,
        projected_potential_profile("Pt", d.ravel(), blur_sigma_A=blur).reshape(d.shape) - tail,
        0.0,
    )
    near = (np.hypot(rr - 30.0, cc - 0.4) * px) < r_cut
    assert np.allclose(img[~near], expected[~near], rtol=1e-4, atol=1e-4 * expected.max())
    assert img[20, 22] == pytest.approx(expected.max(), rel=1e-4)
    assert img[:, 30:].sum() == pytest.approx(expected[:, 30:].sum(), rel=1e-4)
    # the edge atom: its left half is outside the image and lost, its right half is there
    edge = np.hypot(rr - 30.0, cc - 0.4) * px
    on = edge < r_cut
    assert img[on & (cc <= 3)].max() == pytest.approx(
        projected_potential_profile("Pt", np.array([edge[30, 0]]), blur_sigma_A=blur)[0] - tail,
        rel=1e-3,
    )
