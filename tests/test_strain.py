import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from napari_aet.analysis import analyze_structure, strain_map
from napari_aet.analysis._lattice import fit_fcc_lattice
from napari_aet.atoms import AtomModel
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
    fit = fit_fcc_lattice(pts, lattice_constant_A=3.9, rotation=ROT)
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
    fit = fit_fcc_lattice(pts, lattice_constant_A=3.9, rotation=ROT)
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
