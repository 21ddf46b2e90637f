import threading

import numpy as np
import pytest
import torch
from skimage.feature import peak_local_max

from napari_aet.core.progress import Cancelled
from napari_aet.forward import rotation_center_A
from napari_aet.recon import (
    dense_projection_dft,
    estimate_genfire_memory,
    genfire,
    grid_dft,
    grid_fft,
    projection_axes,
    projection_dft,
    visual_hull_support,
)
from napari_aet.simulate import simulate_tilt_series

N = 48
PX = 0.5
# an asymmetric three-atom object: a mirrored reconstruction cannot match it
OFFSETS = np.array([[4.0, -3.0, 2.0], [-5.0, 6.0, 1.0], [0.0, 0.0, -6.0]])


@pytest.fixture(scope="module")
def three_atoms():
    atoms = rotation_center_A((N, N), PX) + OFFSETS
    angles = np.linspace(-70, 70, 29)
    sim = simulate_tilt_series(
        atoms, angles, pixel_size_A=PX, shape_px=(N, N), dose_e_per_A2=None, blur_sigma_A=0.5
    )
    return atoms, angles, sim.data


def _peaks_A(vol, n=3):
    return np.array(sorted((peak_local_max(vol, min_distance=3, num_peaks=n) * PX).tolist()))


@pytest.mark.parametrize("interpolation", ["fft", "dft"])
def test_reconstruction_recovers_atoms_unmirrored(three_atoms, interpolation):
    atoms, angles, data = three_atoms
    res = genfire(data, angles, iterations=40, interpolation=interpolation, support="box")
    assert res.volume.shape == (N, N, N)
    np.testing.assert_allclose(_peaks_A(res.volume), np.array(sorted(atoms.tolist())), atol=PX)
    # a mirror along the beam would put the atoms at 2c - z: far from the truth
    mirrored = atoms.copy()
    mirrored[:, 0] = 2 * rotation_center_A((N, N), PX)[0] - mirrored[:, 0]
    assert np.abs(_peaks_A(res.volume) - np.array(sorted(mirrored.tolist()))).max() > 2.0
    # errors and R-free fall
    assert res.errors[-1] < 0.5 * res.errors[1]
    assert res.rfree[-1] < res.rfree[1]
    assert res.settings["interpolation"] == interpolation


def test_euler_geometry_dual_axis(three_atoms):
    atoms = three_atoms[0]
    angles = np.linspace(-60, 60, 13)
    a = simulate_tilt_series(
        atoms, angles, pixel_size_A=PX, shape_px=(N, N), dose_e_per_A2=None, blur_sigma_A=0.5
    )
    b = simulate_tilt_series(
        atoms,
        angles,
        pixel_size_A=PX,
        shape_px=(N, N),
        dose_e_per_A2=None,
        blur_sigma_A=0.5,
        tilt_axis_angle_deg=90.0,
    )
    # simulate's in-plane tilt-axis angle a is Euler phi = -a
    euler = np.concatenate(
        [
            np.stack([0 * angles, angles, 0 * angles], 1),
            np.stack([-90 + 0 * angles, angles, 0 * angles], 1),
        ]
    )
    data = np.concatenate([a.data, b.data])
    for interp in ("fft", "dft"):
        res = genfire(data, euler_deg=euler, iterations=30, interpolation=interp, support="box")
        np.testing.assert_allclose(_peaks_A(res.volume), np.array(sorted(atoms.tolist())), atol=PX)


def test_single_axis_equals_euler_with_zero_phi_psi():
    ang = np.array([-40.0, 10.0, 55.0])
    r1, c1, b1 = projection_axes(ang)
    r2, c2, b2 = projection_axes(euler_deg=np.stack([0 * ang, ang, 0 * ang], 1))
    np.testing.assert_allclose(r1, r2)
    np.testing.assert_allclose(c1, c2)
    np.testing.assert_allclose(np.einsum("ij,ij->i", c1, b1), 0, atol=1e-12)


def test_dft_gridding_matches_dense_dft():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(1, 20, 16)).astype(np.float32)
    r, c, b = projection_axes([23.0])
    grid_shape = (32, 40, 32)
    g = grid_dft(torch.as_tensor(img), r, c, b, grid_shape, radius=0.3)
    assert len(g.index) > 100
    k = g.signed_frequencies().numpy().astype(float)
    f3 = k / np.array(grid_shape)
    f_row, f_col = f3 @ r[0], f3 @ c[0]
    ref = dense_projection_dft(img[0], f_row, f_col)
    np.testing.assert_allclose(g.values.numpy(), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # and the NUFFT alone
    np.testing.assert_allclose(
        projection_dft(img[0], f_row, f_col), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max()
    )


def test_fft_gridding_at_zero_tilt_is_the_padded_dft():
    rng = np.random.default_rng(1)
    img = rng.normal(size=(1, 16, 16)).astype(np.float32)
    r, c, _ = projection_axes([0.0])
    grid_shape = (32, 32, 32)
    g = grid_fft(torch.as_tensor(img), r, c, grid_shape, radius=0.3)
    k = g.signed_frequencies().numpy().astype(float)
    assert np.all(k[:, 0] == 0)  # the zero-tilt slice is the kz = 0 plane
    ref = dense_projection_dft(img[0], k[:, 1] / 32, k[:, 2] / 32)
    np.testing.assert_allclose(g.values.numpy(), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.slow
def test_auto_support_holds_every_atom(sample):
    sim = simulate_tilt_series(sample.truth.atoms, sample.angles_deg, seed=2)
    r, c, _ = projection_axes(sample.angles_deg)
    sup = visual_hull_support(sim.data, r, c, (256, 256, 256)).numpy()
    idx = np.round(sample.truth.atoms.positions / sample.pixel_size_A).astype(int)
    assert sup[idx[:, 0], idx[:, 1], idx[:, 2]].all()
    assert sup.mean() < 0.15  # and it is much smaller than the box


def test_auto_support_keeps_a_thick_particles_faint_rim():
    """A round, thick particle at low counts (a 1,415-atom icosahedron, 18 counts at the
    brightest column, a background of 3): Li's threshold rises with the thickness and its
    hull cuts atoms of the thin rim; with the vacuum-referenced foreground added (the
    default) (nearly) every atom is inside, in a hull still far smaller than the box and not much
    larger than Li's."""
    from napari_aet.recon import projection_masks
    from napari_aet.simulate import build_structure
    from napari_aet.simulate._tilt_series import STUDY_DOSE_PER_IMAGE_E_PER_A2

    size = 128
    atoms = build_structure("icosahedron", radius_A=0.4 * size * 0.358, shape_px=(size, size),
                            seed=1)  # fmt: skip
    angles = np.arange(-70, 70.1, 7.0)
    dose = 0.1 * STUDY_DOSE_PER_IMAGE_E_PER_A2
    sim = simulate_tilt_series(atoms, angles, shape_px=(size, size), background_counts=3.0,
                               dose_e_per_A2=dose, seed=2)  # fmt: skip
    assert 12 <= np.percentile(sim.data, 99.9) <= 25
    r, c, _ = projection_axes(angles)
    idx = np.round(atoms.positions / 0.358).astype(int)
    cut, size_of = {}, {}
    for method in ("li", "union"):
        masks = projection_masks(sim.data, method=method)
        sup = visual_hull_support(sim.data, r, c, (size,) * 3, masks=masks).numpy()
        cut[method] = int((~sup[idx[:, 0], idx[:, 1], idx[:, 2]]).sum())
        size_of[method] = sup.mean()
    assert cut["li"] >= 10
    assert cut["union"] <= 0.1 * cut["li"]  # 27 and 1 as written
    assert size_of["li"] < size_of["union"] < 1.5 * size_of["li"] < 0.5


def test_vacuum_foreground_needs_vacuum():
    """A particle that fills the field leaves no vacuum strips to measure: no
    vacuum-referenced foreground, and the support's masks are Li's alone; with vacuum around
    it the particle is found."""
    from scipy import ndimage

    from napari_aet.recon import projection_masks
    from napari_aet.recon._support import vacuum_foreground

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    rho = np.hypot(yy - 32.0, xx - 32.0)
    filled = rng.poisson(5.0 + 10.0 * (rho < 36)).astype(float)  # over every strip's middle
    assert vacuum_foreground(filled) is None
    np.testing.assert_array_equal(
        projection_masks(filled[None]), projection_masks(filled[None], method="li")
    )
    yy, xx = np.mgrid[:128, :128]
    rho = np.hypot(yy - 64.0, xx - 64.0)
    alone = rng.poisson(2.0 + 10.0 * (rho < 20)).astype(float)
    fg = vacuum_foreground(alone)
    # the disk, and the reach of the 3-px smoothing and of the noise at 2 deviations (28-35 px
    # over five draws), one part
    assert fg[rho < 20].all() and not fg[rho > 40].any()
    assert ndimage.label(fg)[1] == 1
    with pytest.raises(ValueError, match="method must be"):
        projection_masks(alone[None], method="otsu")


def test_single_axis_hull_matches_the_general_projection():
    """The separable path for a tilt about the rows' axis reads the same mask pixels as the
    general one (directions off the axis by 1e-30 take the general path, same rounding)."""
    rng = np.random.default_rng(3)
    ang = np.sort(rng.uniform(-70, 70, 7))
    masks = rng.random((7, 22, 26)) > 0.3
    r, c, _ = projection_axes(ang)
    assert np.all(r[:, [0, 2]] == 0) and np.all(c[:, 1] == 0)  # the fast path's case
    r2, c2 = r.copy(), c.copy()
    r2[:, [0, 2]] = 1e-30
    c2[:, 1] = 1e-30
    for shape in ((26, 22, 26), (19, 25, 17)):
        fast = visual_hull_support(_blank(masks), r, c, shape, masks=masks).numpy()
        slow = visual_hull_support(_blank(masks), r2, c2, shape, masks=masks).numpy()
        assert fast.any() and not fast.all()
        np.testing.assert_array_equal(fast, slow)


def _blank(masks):
    return np.zeros(masks.shape, np.float32)


def test_memory_check_refuses_impossible_request():
    huge = np.broadcast_to(np.zeros((1, 1, 1), np.float32), (21, 4096, 4096))
    with pytest.raises(MemoryError, match="Crop the images to the particle"):
        genfire(huge, np.linspace(-70, 70, 21), oversampling=4, iterations=1)
    assert estimate_genfire_memory(21, 256, 256, oversampling=2) < 4e9


def test_bad_inputs(three_atoms):
    _, angles, data = three_atoms
    with pytest.raises(ValueError, match="one per image"):
        genfire(data, angles[:-1], iterations=1)
    with pytest.raises(ValueError, match="n_images, rows, cols"):
        genfire(data[0], angles, iterations=1)
    bad = data.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="nan_policy"):
        genfire(bad, angles, iterations=1)
    with pytest.raises(ValueError, match="either angles_deg"):
        genfire(data, iterations=1)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            genfire(data, angles, iterations=1, device="cuda")


def test_cancel_stops_without_result(three_atoms):
    _, angles, data = three_atoms
    ev = threading.Event()
    seen = []

    def progress(done, total, msg):
        seen.append(done)
        if "iteration 3" in msg:
            ev.set()

    with pytest.raises(Cancelled):
        genfire(data, angles, iterations=50, progress=progress, cancel=ev, support="box")
    assert len(seen) < 40


@pytest.mark.parametrize("small, big", [((20, 24, 20), (40, 48, 40)), ((17, 14, 17), (26, 22, 26))])
def test_pruned_transforms_equal_the_dense_padded_ones(small, big):
    """The per-iteration transforms skip the padding's lines: they must give exactly what the
    dense transforms of the zero-padded cube give (and crop), odd sizes included."""
    from napari_aet.recon._genfire import _PrunedFFT

    rng = np.random.default_rng(3)
    cube = rng.normal(size=small).astype(np.float32)
    fft = _PrunedFFT(small, big)
    padded = np.zeros(big, np.float32)
    padded[: small[0], : small[1], : small[2]] = cube
    spec = fft.forward(torch.from_numpy(cube))
    dense = np.fft.rfftn(padded)
    np.testing.assert_allclose(spec.numpy(), dense, atol=1e-4 * np.abs(dense).max())
    # the inverse of an arbitrary spectrum (not one of a cube: the crop matters)
    other = rng.normal(size=dense.shape) + 1j * rng.normal(size=dense.shape)
    back = fft.inverse(torch.from_numpy(other.astype(np.complex64)))
    want = np.fft.irfftn(other, s=big)[: small[0], : small[1], : small[2]]
    assert back.dtype == torch.float32 and back.is_contiguous()
    np.testing.assert_allclose(back.numpy(), want, atol=1e-5 * np.abs(want).max())


def test_auto_support_falls_back_to_the_box_when_the_foregrounds_disagree(three_atoms):
    """Images whose particle sits 15 px from where the geometry puts it, in turn left and
    right (a series left unaligned): their foregrounds share no voxel. The visual hull would
    zero the whole tomogram; the box is used instead and the settings say so."""
    atoms, angles, data = three_atoms
    moved = np.stack([np.roll(img, 15 if i % 2 else -15, axis=1) for i, img in enumerate(data)])
    res = genfire(moved, angles, iterations=10)
    assert res.support.all() and res.volume.max() > 0
    assert "share" in res.settings["support_note"]
    # aligned images keep their hull, and no note
    res = genfire(data, angles, iterations=10)
    assert not res.support.all() and "support_note" not in res.settings
