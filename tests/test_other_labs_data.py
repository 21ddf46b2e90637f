"""Data as other groups ship it: MATLAB .mat files, full-range series, a horizontal tilt axis."""

import json
import warnings

import h5py
import numpy as np
import pytest
import scipy.io as sio

from napari_aet.analysis import compare_atom_models
from napari_aet.cli import main
from napari_aet.io import is_atom_model_file, read_angles, read_atoms, read_tilt_series
from napari_aet.simulate import build_structure, simulate_tilt_series


def _write_v73(path, arrays: dict) -> None:
    """A MATLAB v7.3 file: HDF5 behind MATLAB's 128-byte header, arrays stored transposed."""
    with h5py.File(path, "w", userblock_size=512) as h5:
        for k, v in arrays.items():
            h5.create_dataset(k, data=np.asarray(v).transpose())
    head = b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116, b" ") + b"\0" * 8 + b"\0\x02IM"
    with open(path, "r+b") as fh:
        fh.write(head)


@pytest.fixture(scope="module")
def stack():
    rng = np.random.default_rng(0)
    return rng.uniform(1, 2, (60, 40, 48)).astype(np.float32), np.arange(0, 180, 3.0)


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_mat_tilt_series_in_matlab_layout_with_euler_angles(version, stack, tmp_path):
    data, ang = stack
    mat = np.moveaxis(data, 0, -1)  # MATLAB keeps (rows, cols, n)
    euler = np.stack([np.zeros(60), ang, np.zeros(60)], axis=1)  # GENFIRE (phi, theta, psi)
    path = tmp_path / "series.mat"
    if version == "v5":
        sio.savemat(path, {"projections": mat, "angles": euler})
    else:
        _write_v73(path, {"projections": mat, "angles": euler})
    ts = read_tilt_series(path)
    # GENFIRE's convention (tests/test_genfire_convention.py): its first image index is x and
    # its tilt the opposite of napari-aet's
    np.testing.assert_array_equal(ts.data, np.swapaxes(data, 1, 2))
    np.testing.assert_array_equal(ts.angles_deg, -ang)
    assert ts.metadata["format"] == "MATLAB .mat" and ts.metadata["variable"] == "projections"
    np.testing.assert_array_equal(read_angles(path), ang)  # the file's own numbers
    assert not is_atom_model_file(path)


def test_mat_series_stored_stack_first_and_angles_as_one_row(stack, tmp_path):
    data, ang = stack
    sio.savemat(tmp_path / "s.mat", {"data": data, "tilt_angles": ang[None, :]})
    ts = read_tilt_series(tmp_path / "s.mat")
    np.testing.assert_array_equal(ts.data, data)  # the angles say the stack is (n, rows, cols)


def test_mat_euler_angles_whose_phi_varies_are_recorded(stack, tmp_path):
    data, ang = stack
    euler = np.stack([np.linspace(0, 10, 60), ang, np.zeros(60)], axis=1)
    sio.savemat(tmp_path / "s.mat", {"projections": np.moveaxis(data, 0, -1), "angles": euler})
    gf = read_tilt_series(tmp_path / "s.mat").metadata["genfire"]
    assert gf["object_turn_deg"] == pytest.approx(5.0)  # the common phi turns the object
    assert gf["out_of_plane_deg"] > 1.0 and "not a single-axis geometry" in gf["note"]


@pytest.mark.parametrize("shape", ["3xN", "Nx3", "v7.3"])
def test_mat_atom_models(shape, tmp_path):
    xyz = np.random.default_rng(1).uniform(0, 20, (3, 50))
    path = tmp_path / "model.mat"
    if shape == "3xN":
        sio.savemat(path, {"model": xyz})
    elif shape == "Nx3":
        sio.savemat(path, {"atoms": xyz.T})
    else:
        _write_v73(path, {"model": xyz})
    assert is_atom_model_file(path)
    m = read_atoms(path)
    np.testing.assert_allclose(m.positions, xyz.T[:, ::-1])  # x, y, z -> z, y, x


def test_a_mat_file_without_a_stack_says_what_it_holds(tmp_path):
    sio.savemat(tmp_path / "x.mat", {"a": np.zeros((4, 4)), "b": np.zeros((5, 5))})
    with pytest.raises(ValueError, match="cannot tell which variable"):
        read_tilt_series(tmp_path / "x.mat")


def test_full_range_series_from_a_mat_file_reconstructs_and_traces(tmp_path, capsys):
    """60 images over 0..177 degrees (as GENFIRE/RESIRE data sets come): read from .mat,
    reconstructed and traced by the CLI, every atom found."""
    atoms = build_structure("fcc", radius_A=7.0, shape_px=(64, 64), pixel_size_A=0.4, seed=2)
    ang = np.arange(0, 178, 3.0)
    sim = simulate_tilt_series(atoms, ang, pixel_size_A=0.4, shape_px=(64, 64), seed=1)
    # in GENFIRE's convention: first image index x, tilt -theta (tests/test_genfire_convention)
    genfire = np.moveaxis(np.swapaxes(sim.data, 1, 2), 0, -1)
    sio.savemat(tmp_path / "s.mat", {"projections": genfire, "angles": -ang})
    rc = main(["-q", "recon", str(tmp_path / "s.mat"), "--pixel-size", "0.4", "--iterations",
               "30", "--out", str(tmp_path / "r")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    rc = main(["-q", "trace", str(tmp_path / "r" / "tomogram.h5"), "--out", str(tmp_path / "t")])
    assert rc == 0, capsys.readouterr().err
    traced = read_atoms(tmp_path / "t" / "atoms.csv")
    c = compare_atom_models(atoms.positions, traced.positions)
    assert c.n_common == atoms.n_atoms == traced.n_atoms
    assert c.rmsd_A < 0.1  # no missing wedge: better than a +-70 series of the same particle


def test_horizontal_tilt_axis_is_found_over_the_half_circle(sample):
    from napari_aet.align import estimate_tilt_axis_angle

    turned = np.ascontiguousarray(np.rot90(sample.data, k=1, axes=(1, 2)))
    angle, info = estimate_tilt_axis_angle(turned, details=True)
    assert abs(abs(angle) - 90.0) < 0.5  # the axis is horizontal (+-90 is one axis)
    assert not info["uncertain"]
    # the old +-20-degree scan could only return its limit; it now says so
    with pytest.warns(UserWarning, match="uncertain"):
        estimate_tilt_axis_angle(turned, search_range_deg=20.0)


def test_featureless_images_give_an_uncertain_tilt_axis():
    from napari_aet.align import estimate_tilt_axis_angle

    noise = np.random.default_rng(0).poisson(2.0, (9, 48, 48)).astype(float)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, info = estimate_tilt_axis_angle(noise, details=True, margin_px=None)
    assert info["uncertain"] and any("uncertain" in str(w.message) for w in caught)


def test_run_passes_the_tilt_axis_and_element_to_its_stages(tmp_path):
    from napari_aet.cli import build_parser
    from napari_aet.cli.run import settings_from_args

    def settings(*opts):
        args = build_parser().parse_args(["run", "t.h5", "--out", str(tmp_path), *opts])
        return settings_from_args(args)

    s = settings("--tilt-axis=90", "--element", "Au", "--lattice-constant", "4.1")
    assert s.align.tilt_axis_value() == 90.0
    assert s.analyze.element == "Au" and s.analyze.lattice_constant_A == 4.1
    assert s.validate.element == "Au" and s.augment.element == "Au"
    assert settings().align.tilt_axis == "estimate" and settings().analyze.element == "Pt"
    assert settings("--augment", "none").stages()[2] == "trace"


def test_amorphous_particle_gets_rdf_and_coordination_not_crystal_labels(tmp_path):
    from napari_aet.core.atoms import AtomModel
    from napari_aet.io import write_atoms
    from napari_aet.simulate import amorphous_particle

    pos = amorphous_particle(radius_A=12, min_distance_A=2.2, seed=0)
    write_atoms(tmp_path / "a.csv", AtomModel(pos + 30))
    assert main(["-q", "analyze", str(tmp_path / "a.csv"), "--out", str(tmp_path / "o")]) == 0
    s = json.loads((tmp_path / "o" / "analysis.json").read_text())
    am = s["amorphous"]
    # the first peak sits just above the particle's minimum distance, then a minimum
    assert 2.2 <= am["rdf_first_peak_A"] < 2.7 < am["rdf_first_minimum_A"] < 4.0
    assert 2 < am["coordination_mean"] < 12
    assert s["twin_boundary_layers"] == [] and s["lattice_fits"] == []
    atoms = read_atoms(tmp_path / "o" / "atoms.csv")
    assert set(atoms.features["stacking"]) == {"other"}
    assert (atoms.features["coordination"] >= 0).all()
    assert (tmp_path / "o" / "figures" / "rdf.png").stat().st_size > 5000


def test_a_crystal_gets_no_amorphous_summary():
    from napari_aet.analysis import analyze_structure
    from napari_aet.core.atoms import AtomModel
    from napari_aet.simulate import fcc_particle

    res = analyze_structure(AtomModel(fcc_particle(radius_A=9, shape="sphere", seed=0)))
    assert res.summary["amorphous"] is None and "coordination" not in res.model.features


@pytest.mark.slow
def test_run_on_a_full_range_au_series_with_a_horizontal_axis_from_a_mat_file(tmp_path):
    """Another lab's acquisition end to end: Au, 60 images over 0..177 degrees, tilt axis
    horizontal, shifted images, shipped as a MATLAB v7.3 file with no pixel size, the stack
    first (as numpy made it: napari-aet's own convention, not GENFIRE's; both MATLAB versions
    are read alike: ``test_mat_tilt_series_in_matlab_layout_with_euler_angles``). The images
    cannot tell a horizontal axis's sense; it is taken at -90 deg (GENFIRE's images as they
    lie, :func:`napari_aet.align._axis_choice.horizontal_sense`), the sense simulated here."""
    atoms = build_structure(
        "fcc", element="Au", radius_A=7.0, shape_px=(64, 64), pixel_size_A=0.4, seed=2
    )
    ang = np.arange(0, 180, 3.0)
    sim = simulate_tilt_series(
        atoms, ang, pixel_size_A=0.4, shape_px=(64, 64), element="Au", seed=1,
        tilt_axis_angle_deg=-90.0, shift_error_px=1.0,
    )  # fmt: skip
    arrays = {"projections": sim.data, "angles": ang}
    _write_v73(tmp_path / "au.mat", arrays)
    rc = main(["-q", "run", str(tmp_path / "au.mat"), "--pixel-size", "0.4", "--element", "Au",
               "--augment", "none", "--recon-iterations", "40", "--rounds", "1",
               "--figure-formats", "png", "--figure-dpi", "100",
               "--out", str(tmp_path / "run")])  # fmt: skip
    assert rc == 0
    axis = json.loads((tmp_path / "run" / "align" / "alignment.json").read_text())["tilt_axis"]
    assert abs(abs(axis["applied_deg"]) - 90.0) < 1.0
    traced = read_atoms(tmp_path / "run" / "atoms.csv")
    c = compare_atom_models(atoms.positions, traced.positions)
    assert c.n_common >= 0.95 * atoms.n_atoms and traced.n_atoms <= 1.05 * atoms.n_atoms
    assert c.rmsd_A < 0.25
    s = json.loads((tmp_path / "run" / "analysis.json").read_text())
    assert s["reference_lattice_constant_A"] == 4.078
    assert s["lattice_constant_A"] == pytest.approx(4.078, rel=0.01)


@pytest.mark.slow
def test_run_on_an_amorphous_light_element_particle(tmp_path):
    """Si, amorphous: traced, no crystal labels, g(r) and coordination instead."""
    from napari_aet.core.atoms import AtomModel
    from napari_aet.forward import rotation_center_A
    from napari_aet.io import TiltSeries, write_tilt_series
    from napari_aet.simulate import amorphous_particle

    pos = amorphous_particle(
        radius_A=8.0, min_distance_A=2.2, number_density_per_A3=0.05, seed=3
    ) + rotation_center_A((64, 64), 0.4)
    ang = np.arange(-60, 61, 4.0)
    sim = simulate_tilt_series(
        AtomModel(pos), ang, pixel_size_A=0.4, shape_px=(64, 64), element="Si", seed=1
    )
    write_tilt_series(tmp_path / "si.h5", TiltSeries(sim.data, ang, 0.4))
    rc = main(["-q", "run", str(tmp_path / "si.h5"), "--element", "Si", "--tilt-axis", "none",
               "--augment", "none", "--recon-iterations", "40", "--rounds", "1",
               "--figure-formats", "png", "--figure-dpi", "100",
               "--out", str(tmp_path / "run")])  # fmt: skip
    assert rc == 0
    traced = read_atoms(tmp_path / "run" / "atoms.csv")
    c = compare_atom_models(pos, traced.positions)
    assert c.n_common >= 0.95 * len(pos) and traced.n_atoms <= 1.05 * len(pos)
    s = json.loads((tmp_path / "run" / "analysis.json").read_text())
    assert s["twin_boundary_layers"] == [] and set(traced.features["stacking"]) == {"other"}
    assert 2.2 <= s["amorphous"]["rdf_first_peak_A"] < 2.6
    assert any("no tabulated fcc lattice constant" in n for n in s["notes"])
    assert (tmp_path / "run" / "figures" / "rdf.png").exists()


def test_run_no_align_only_preprocesses(tmp_path):
    from napari_aet.cli import build_parser
    from napari_aet.cli.run import settings_from_args

    args = build_parser().parse_args(
        ["run", "t.h5", "--out", str(tmp_path), "--no-align", "--tilt-axis", "5"]
    )
    al = settings_from_args(args).align
    assert not (al.center_of_mass or al.common_line or al.projection_matching)
    assert al.tilt_axis_value() is None  # vertical: the given 5 deg is not applied


def test_augment_notes_data_outside_the_weights_training():
    from napari_aet.augment._infer import outside_training

    prov = json.loads(
        (
            __import__("pathlib").Path(__file__).parent.parent
            / "napari_aet/resources/unet-fcc.provenance.json"
        ).read_text()
    )
    assert outside_training(prov, voxel_size_A=0.358, element="Pt") == []
    assert "trained on Pt" in outside_training(prov, voxel_size_A=0.358, element="Au")[0]
    assert "far from the training" in outside_training(prov, voxel_size_A=1.2, element=None)[0]
    assert outside_training({}, voxel_size_A=5.0, element="Si") == []


def test_voronoi_indices_of_known_structures():
    """fcc -> <0,12,0,0> (also with 3 pm noise), bcc -> <0,6,0,8>, an icosahedron's centre
    -> <0,0,12,0>; surface atoms get none."""
    from scipy.spatial import cKDTree

    from napari_aet.analysis import voronoi_indices
    from napari_aet.simulate import fcc_particle

    pos = fcc_particle(radius_A=12, shape="sphere", seed=0)
    pos = pos + np.random.default_rng(0).normal(0, 0.03, pos.shape)
    full = cKDTree(pos).query_ball_point(pos, 3.3, return_length=True) == 13
    idx, counts = voronoi_indices(pos, interior=full)
    assert set(idx[full]) == {"<0,12,0,0>"} and set(idx[~full]) == {""}
    assert (counts[~full] == -1).all()
    # without a mask the open cells of the surface atoms are left out on their own
    assert set(voronoi_indices(pos)[0][full]) == {"<0,12,0,0>"}
    assert (voronoi_indices(pos)[0] == "").sum() >= 0.8 * (~full).sum()
    a = 2.87
    g = np.mgrid[-4:5, -4:5, -4:5].reshape(3, -1).T * a
    bcc = np.vstack([g, g + a / 2])
    inner = np.abs(bcc).max(axis=1) < 2 * a
    assert set(voronoi_indices(bcc, interior=inner)[0][inner]) == {"<0,6,0,8>"}
    phi = (1 + 5**0.5) / 2
    ico = np.array([[0, s1, s2 * phi] for s1 in (1, -1) for s2 in (1, -1)])
    ico = np.vstack([ico, np.roll(ico, 1, axis=1), np.roll(ico, 2, axis=1)])
    ico = 2.7 * ico / np.linalg.norm(ico[0])
    cluster = np.vstack([[0, 0, 0], ico, 2 * ico])
    centre = np.r_[True, np.zeros(24, bool)]
    assert voronoi_indices(cluster, interior=centre, bond_A=2.7)[0][0] == "<0,0,12,0>"


def test_amorphous_analysis_reports_voronoi_motifs(tmp_path):
    from napari_aet.core.atoms import AtomModel
    from napari_aet.io import write_atoms
    from napari_aet.simulate import amorphous_particle

    pos = amorphous_particle(radius_A=14, min_distance_A=2.2, seed=1)
    write_atoms(tmp_path / "a.h5", AtomModel(pos + 30))
    assert main(["-q", "analyze", str(tmp_path / "a.h5"), "--out", str(tmp_path / "o")]) == 0
    s = json.loads((tmp_path / "o" / "analysis.json").read_text())
    vm = s["amorphous"]["voronoi_motifs"]
    atoms = read_atoms(tmp_path / "o" / "atoms.h5")
    inner = atoms.features["voronoi_index"].to_numpy() != ""
    # the closed cells: the interior, not the outer shell of atoms
    assert vm["n_atoms_with_index"] == inner.sum() > 0.3 * len(pos)
    assert (atoms.features["surface"] == (~inner).astype(int)).all()
    assert s["n_surface_atoms"] == (~inner).sum()
    r = np.linalg.norm(pos - pos.mean(axis=0), axis=1)
    assert r[inner].max() < r.max() - 1.0
    # a random packing: many different motifs, none dominant, and no perfect crystal
    assert len(vm["top"]) == 10 and vm["top"][0]["fraction"] < 0.2
    assert vm["named"]["fcc/hcp"] < 0.05
    assert atoms.features["voronoi_index"][inner].str.match(r"^<\d+,\d+,\d+,\d+>$").all()
    assert (tmp_path / "o" / "figures" / "voronoi_motifs.png").stat().st_size > 5000


def _write_ncem_emd(path, data, *, angles=None, pixel_nm=0.04, title="HAADF"):
    """An NCEM EMD file written by RosettaSciIO's own writer (not by the project)."""
    from rsciio.emd import file_writer

    tilt = {"name": "tilt", "units": "deg", "index_in_array": 0, "navigate": True}
    if angles is None:
        tilt.update(size=len(data), offset=0.0, scale=1.0, units="")
    else:
        tilt.update(size=len(data), offset=float(angles[0]), scale=float(np.diff(angles)[0]))
    axes = [tilt] + [
        {"name": n, "units": "nm", "index_in_array": i, "size": data.shape[i], "offset": 0.0,
         "scale": pixel_nm, "navigate": False}
        for i, n in ((1, "y"), (2, "x"))
    ]  # fmt: skip
    file_writer(
        str(path),
        {
            "data": data,
            "axes": axes,
            "metadata": {"General": {"title": title}, "Signal": {}},
            "original_metadata": {},
        },
    )


def test_emd_tilt_series_with_angles_and_pixel_size_from_its_axes(stack, tmp_path):
    data, ang = stack
    _write_ncem_emd(tmp_path / "s.emd", data, angles=ang)
    ts = read_tilt_series(tmp_path / "s.emd")
    np.testing.assert_allclose(ts.data, data)
    np.testing.assert_allclose(ts.angles_deg, ang)
    assert ts.pixel_size_A == pytest.approx(0.4)
    assert ts.metadata["dataset"] == "HAADF" and "EMD" in ts.metadata["format"]
    # a stack axis without angle units (as Velox writes): the angles come from elsewhere
    _write_ncem_emd(tmp_path / "v.emd", data, angles=None)
    ts = read_tilt_series(tmp_path / "v.emd", angles=",".join(str(a) for a in ang))
    np.testing.assert_allclose(ts.angles_deg, ang)
    with pytest.raises(ValueError, match="no image or image stack named 'DF4'"):
        read_tilt_series(tmp_path / "s.emd", dataset="DF4")


def _turned(atoms, delta_deg, shape_px, pixel_size_A):
    from napari_aet.simulate import turn_about_beam

    return turn_about_beam(atoms, delta_deg, shape_px=shape_px, pixel_size_A=pixel_size_A)


@pytest.mark.parametrize("delta", [-120.0, 37.0, 178.0])
def test_second_axis_turn_is_measured_and_refined(delta):
    from napari_aet.align import refine_second_axis_turn, register_second_axis
    from napari_aet.recon import genfire

    atoms = build_structure(
        "twinned dumbbell", radius_A=6, shape_px=(64, 64), pixel_size_A=0.4, seed=5
    )
    ang = np.arange(-60, 61, 6.0)
    a = simulate_tilt_series(atoms, ang, pixel_size_A=0.4, shape_px=(64, 64), seed=1)
    b = simulate_tilt_series(
        _turned(atoms, delta, (64, 64), 0.4), ang, pixel_size_A=0.4, shape_px=(64, 64), seed=2
    )
    reg = register_second_axis(a.data, ang, b.data, ang)
    vol = genfire(a.data, ang, iterations=20).volume
    d, corr = refine_second_axis_turn(
        vol, b.data, ang, reg.rotation_deg, candidates=reg.candidates_deg
    )
    assert abs((d - delta + 180) % 360 - 180) < 0.2 and corr > 0.9


def test_dual_axis_recon_beats_either_single_axis(tmp_path):
    """Two +-60 deg series, the second turned by 90 deg: `recon --second-axis` finds the turn
    and the joint tomogram traces every atom closer to the truth than the first series alone."""
    from napari_aet.io import TiltSeries, write_tilt_series

    atoms = build_structure(
        "fcc", element="Au", radius_A=8, shape="convex", shape_px=(64, 64), pixel_size_A=0.4,
        seed=4,
    )  # fmt: skip
    ang = np.arange(-60, 61, 6.0)
    for name, model, seed in (("a", atoms, 1), ("b", _turned(atoms, 90.0, (64, 64), 0.4), 2)):
        sim = simulate_tilt_series(
            model, ang, pixel_size_A=0.4, shape_px=(64, 64), element="Au", seed=seed
        )
        write_tilt_series(tmp_path / f"{name}.h5", TiltSeries(sim.data, ang, 0.4))
    rmsd = {}
    for name, extra in (("single", []), ("dual", ["--second-axis", str(tmp_path / "b.h5")])):
        out = tmp_path / name
        assert main(["-q", "recon", str(tmp_path / "a.h5"), "--iterations", "40",
                     "--out", str(out / "r"), *extra]) == 0  # fmt: skip
        assert main(["-q", "trace", str(out / "r" / "tomogram.h5"), "--element", "Au",
                     "--out", str(out / "t")]) == 0  # fmt: skip
        traced = read_atoms(out / "t" / "atoms.csv")
        c = compare_atom_models(atoms.positions, traced.positions)
        assert c.n_common >= atoms.n_atoms - 1
        rmsd[name] = c.rmsd_A
    rec = json.loads((tmp_path / "dual" / "r" / "recon.json").read_text())
    assert abs(rec["dual_axis"]["rotation_deg"] - 90.0) < 0.2
    assert rec["dual_axis"]["n_images"] == [21, 21]
    assert rmsd["dual"] < 0.6 * rmsd["single"]
    assert main(["-q", "recon", str(tmp_path / "a.h5"), "--second-axis",
                 str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x")]) == 1  # fmt: skip


def test_structure_option_forces_the_amorphous_or_crystalline_analysis():
    """A crystal analysed as amorphous gets g(r) and fcc Voronoi cells, no layers; a small
    noisy crystal below the automatic layering bar still gets layers when called crystalline."""
    from napari_aet.analysis import analyze_structure
    from napari_aet.core.atoms import AtomModel
    from napari_aet.simulate import fcc_particle

    crystal = AtomModel(fcc_particle(radius_A=9, shape="sphere", seed=0))
    res = analyze_structure(crystal, structure="amorphous")
    am = res.summary["amorphous"]
    assert res.summary["n_layers"] == 0 and am is not None
    assert am["voronoi_motifs"]["top"][0]["index"] == "<0,12,0,0>"
    assert am["rdf_first_peak_A"] == pytest.approx(3.912 / np.sqrt(2), abs=0.1)
    small = fcc_particle(radius_A=5, shape="sphere", seed=0)
    noisy = AtomModel(small + np.random.default_rng(1).normal(0, 0.45, small.shape))
    auto = analyze_structure(noisy)
    forced = analyze_structure(noisy, structure="crystalline")
    assert auto.summary["n_layers"] == 0 < forced.summary["n_layers"]
    with pytest.raises(ValueError, match="choose 'auto'"):
        analyze_structure(crystal, structure="glass")


@pytest.mark.slow
def test_run_with_a_second_axis_aligns_both_and_reconstructs_them_together(tmp_path):
    from napari_aet.io import TiltSeries, write_tilt_series

    atoms = build_structure(
        "fcc", element="Au", radius_A=8, shape="convex", shape_px=(64, 64), pixel_size_A=0.4,
        seed=4,
    )  # fmt: skip
    ang = np.arange(-60, 61, 6.0)
    for name, model, seed in (("a", atoms, 1), ("b", _turned(atoms, -75.0, (64, 64), 0.4), 2)):
        sim = simulate_tilt_series(
            model, ang, pixel_size_A=0.4, shape_px=(64, 64), element="Au", seed=seed,
            shift_error_px=1.0,
        )  # fmt: skip
        write_tilt_series(tmp_path / f"{name}.h5", TiltSeries(sim.data, ang, 0.4))
    rc = main(["-q", "run", str(tmp_path / "a.h5"), "--second-axis", str(tmp_path / "b.h5"),
               "--element", "Au", "--tilt-axis", "none", "--augment", "none",
               "--recon-iterations", "40", "--rounds", "1",
               "--figure-formats", "png", "--figure-dpi", "100",
               "--out", str(tmp_path / "run")])  # fmt: skip
    assert rc == 0
    assert (tmp_path / "run" / "align" / "second" / "aligned_tilt_series.h5").exists()
    rec = json.loads((tmp_path / "run" / "recon" / "recon.json").read_text())
    assert abs(rec["dual_axis"]["rotation_deg"] + 75.0) < 0.3
    traced = read_atoms(tmp_path / "run" / "atoms.csv")
    c = compare_atom_models(atoms.positions, traced.positions)
    assert c.n_common >= atoms.n_atoms - 1 and traced.n_atoms <= atoms.n_atoms + 1
    assert c.rmsd_A < 0.15
    assert main(["-q", "run", str(tmp_path / "a.h5"), str(tmp_path / "b.h5"), "--second-axis",
                 str(tmp_path / "b.h5"), "--out", str(tmp_path / "x")]) == 1  # fmt: skip


@pytest.mark.slow
def test_run_on_odd_non_square_images_from_an_mrc_file_with_a_tlt_file(tmp_path):
    """Images of 75 x 91 pixels (odd, not square), shipped as an MRC stack with the pixel size
    in its header and the angles in an IMOD .tlt file: every atom found, the tomogram's shape
    follows the images'."""
    import mrcfile

    atoms = build_structure(
        "fcc", element="Pt", radius_A=7.0, shape_px=(75, 75), pixel_size_A=0.4, seed=3
    )
    ang = np.arange(-70, 71, 5.0)
    sim = simulate_tilt_series(
        atoms, ang, pixel_size_A=0.4, shape_px=(75, 91), seed=1, background_counts=1
    )
    with mrcfile.new(tmp_path / "series.mrc") as mrc:
        mrc.set_data(sim.data.astype(np.float32))
        mrc.voxel_size = 0.4
    (tmp_path / "series.tlt").write_text("\n".join(f"{a:.2f}" for a in ang) + "\n")
    rc = main(["-q", "run", str(tmp_path / "series.mrc"), "--angles", str(tmp_path / "series.tlt"),
               "--element", "Pt", "--figure-formats", "png", "--figure-dpi", "100",
               "--out", str(tmp_path / "run")])  # fmt: skip
    assert rc == 0
    with h5py.File(tmp_path / "run" / "recon" / "tomogram.h5", "r") as f:
        assert f["tomogram"].shape == (91, 75, 91)
    traced = read_atoms(tmp_path / "run" / "atoms.csv")
    c = compare_atom_models(atoms.positions, traced.positions)
    assert c.n_common == atoms.n_atoms == traced.n_atoms
    assert c.rmsd_A < 0.1


def test_mat_variables_named_as_groups_name_them(stack, tmp_path):
    """Published files name their variables freely: ``final_projections`` beside a 2D mask,
    ``Angles_init`` and ``Angles_refined`` (the refined ones taken), ``atomic_model``."""
    data, ang = stack
    euler = np.stack([np.zeros(60), ang, np.zeros(60)])
    sio.savemat(tmp_path / "pub.mat", {
        "final_projections": np.moveaxis(data, 0, -1), "support_mask": np.ones((40, 48)),
        "Angles_init": np.round(euler), "Angles_refined": euler + [[0.0], [0.1], [0.0]],
    })  # fmt: skip
    ts = read_tilt_series(tmp_path / "pub.mat")
    assert ts.metadata["variable"] == "final_projections"
    assert ts.metadata["angles_variable"] == "Angles_refined"
    np.testing.assert_allclose(ts.angles_deg, -(ang + 0.1))  # GENFIRE's sign
    xyz = np.random.default_rng(1).uniform(0, 20, (3, 50))
    sio.savemat(tmp_path / "m.mat", {"atomic_model": xyz, "atom_types": np.ones((1, 50))})
    np.testing.assert_allclose(read_atoms(tmp_path / "m.mat").positions, xyz.T[:, ::-1])
