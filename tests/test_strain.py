import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from napari_aet.analysis import analyze_structure, strain_map
from napari_aet.analysis._lattice import fit_cubic_lattice
from napari_aet.core.atoms import AtomModel
from napari_aet.simulate import fcc_particle

ROT = Rotation.from_euler("zyx", [33, -21, 47], degrees=True).as_matrix()


@pytest.fixture(scope="module")
def crystal():
    return fcc_particle(
        lattice_constant_A=3.912, radius_A=16, shape="sphere", orientation=ROT, seed=0
    )


def _strained(pts, e_lab):
    c = pts.mean(0)
    return c + (pts - c) @ (np.eye(3) + e_lab).T


def test_homogeneous_strain_is_recovered_in_the_lab_frame(crystal):
    # (z, y, x) tensor: exx = 0.01, eyy = -0.01, eyz = 0.003 (traceless: the lattice constant
    # of the fit stays 3.912 and the whole deformation is strain)
    e = np.array([[0.0, 0.003, 0.0], [0.003, -0.01, 0.0], [0.0, 0.0, 0.01]])
    pts = _strained(crystal, e)
    fit = fit_cubic_lattice(pts, lattice_constant_A=3.9, rotation=ROT)
    assert len(fit.assigned) == len(pts)
    res = strain_map(pts[fit.assigned], fit.displacements_A, grid_spacing_A=1.5)
    core = np.linalg.norm(pts[fit.assigned] - pts.mean(0), axis=1) < 6
    got = {k: np.median(v[core]) for k, v in res.per_atom.items()}
    expected = {"exx": 0.01, "eyy": -0.01, "ezz": 0.0, "exy": 0.0, "exz": 0.0, "eyz": 0.003}
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, abs=5e-4), k
    centre = np.array(res.grid["exx"].shape) // 2
    assert res.grid["exx"][tuple(centre)] == pytest.approx(0.01, abs=5e-4)
    assert np.isnan(res.grid["exx"][0, 0, 0])  # outside the particle


def test_crystal_frame(crystal):
    # crystal (x, y, z) = site components (s0, s1, s2); lab = ROT @ s
    e_s = np.diag([0.008, -0.008, 0.0])
    e_lab = ROT @ e_s @ ROT.T
    pts = _strained(crystal, e_lab)
    fit = fit_cubic_lattice(pts, lattice_constant_A=3.9, rotation=ROT)
    res = strain_map(
        pts[fit.assigned],
        fit.displacements_A,
        rotation=fit.rotation,
        frame="crystal",
        grid_spacing_A=None,
    )
    core = np.linalg.norm(pts[fit.assigned] - pts.mean(0), axis=1) < 6
    assert np.median(res.per_atom["exx"][core]) == pytest.approx(0.008, abs=5e-4)
    assert np.median(res.per_atom["eyy"][core]) == pytest.approx(-0.008, abs=5e-4)
    assert np.median(res.per_atom["ezz"][core]) == pytest.approx(0.0, abs=5e-4)
    with pytest.raises(ValueError, match="rotation"):
        strain_map(pts, np.zeros_like(pts), frame="crystal")


def test_unstrained_particle_and_features(crystal):
    res = analyze_structure(AtomModel(crystal), strain=True)
    f = res.model.features
    for k in ("exx", "eyy", "ezz", "exy", "exz", "eyz"):
        assert np.nanmax(np.abs(f[k])) < 1e-9


def test_facets_of_a_cube_and_local_lattice_constant():
    from napari_aet.analysis._lattice import fit_cubic_lattice
    from napari_aet.analysis._surface import facet_sets, local_lattice_constants

    half = 4
    g = np.arange(-2 * half, 2 * half + 1) / 2.0
    cube = np.array([[x, y, z] for x in g for y in g for z in g if round(2 * (x + y + z)) % 2 == 0])
    pts = 3.912 * cube @ ROT.T
    fs = facet_sets(pts, rotation=ROT, lattice_constant_A=3.912)
    on_face = np.abs(cube).max(axis=1) == half
    np.testing.assert_array_equal(fs["100"], on_face)  # the six {100} faces, nothing else
    # a uniformly expanded crystal has that lattice constant at every atom
    fit = fit_cubic_lattice(1.02 * pts, lattice_constant_A=3.912, rotation=ROT)
    a_loc = local_lattice_constants(
        (1.02 * pts)[fit.assigned], fit.sites, lattice_constant_A=fit.lattice_constant_A
    )
    assert np.nanmax(np.abs(a_loc - 1.02 * 3.912)) < 1e-9
    assert np.isnan(a_loc).sum() == 8  # the corners have only 3 neighbours


def test_local_strain_feature(crystal):
    res = analyze_structure(AtomModel(1.01 * crystal), strain=True)
    f = res.model.features
    assert np.nanmedian(f["local_strain"]) == pytest.approx(0.01, abs=1e-9)
    # the 2.7 A average of a uniform field is that field, at every atom with neighbours
    assert np.nanmax(np.abs(f["local_strain_smoothed"] - 0.01)) < 1e-9
    assert set(f["facet"]) <= {"111", "100", ""} and (f["facet"] != "").any()


def test_facets_of_a_cuboctahedron():
    from napari_aet.analysis._surface import facet_sets

    # fcc sites (units of a/2, even coordinate sum) inside |x|,|y|,|z| <= 8 and
    # |x|+|y|+|z| <= 12: six {100} squares (25 atoms) and eight {111} hexagons (61 atoms),
    # each above the study's 20-atom minimum for a reference plane
    g = np.arange(-8, 9)
    s = np.array([[x, y, z] for x in g for y in g for z in g if (x + y + z) % 2 == 0])
    s = s[np.abs(s).sum(1) <= 12]
    pts = 3.912 / 2 * s @ ROT.T
    fs = facet_sets(pts, rotation=ROT, lattice_constant_A=3.912)
    on100 = np.abs(s).max(1) == 8
    on111 = np.abs(s).sum(1) == 12
    np.testing.assert_array_equal(fs["100"], on100)
    np.testing.assert_array_equal(fs["111"], on111)
    assert on100.sum() > 20 and on111.sum() > 20


def test_strain_in_the_crystal_frame_of_the_analysis(crystal):
    # a traceless strain on the cubic axes: +0.8 % along one, -0.8 % along another. The
    # analysis fits its own lattice, whose cubic axes may be any permutation of the original
    # ones, so the normal components must be {+0.8, -0.8, 0} % in some order, shears zero
    e_lab = ROT @ np.diag([0.008, -0.008, 0.0]) @ ROT.T
    pts = _strained(crystal, e_lab)
    res = analyze_structure(AtomModel(pts), strain=True, strain_frame="crystal")
    f = res.model.features
    core = np.linalg.norm(pts - pts.mean(0), axis=1) < 6
    med = {k: np.nanmedian(f[k][core]) for k in ("exx", "eyy", "ezz", "exy", "exz", "eyz")}
    np.testing.assert_allclose(
        sorted([med["exx"], med["eyy"], med["ezz"]]), [-0.008, 0.0, 0.008], atol=5e-4
    )
    assert max(abs(med[k]) for k in ("exy", "exz", "eyz")) < 5e-4
    lab = analyze_structure(AtomModel(pts), strain=True).model.features
    assert abs(np.nanmedian(lab["eyz"][core])) > 1e-3  # in the lab frame the shear shows
