"""Bond-length restraints of the position fit (known answers: constructed lattices, a
simulated particle with a known strain field at few counts)."""

import numpy as np
import pytest

from napari_aet.core.atoms import AtomModel
from napari_aet.forward import BondRestraint, bond_restraint, refine_atomic_model
from napari_aet.simulate import build_structure, simulate_tilt_series
from napari_aet.trace._restrained import restrained_positions

PX = 0.358
ANGLES = np.linspace(-70, 70, 21)


def _fcc(n, a=3.92):
    g = np.arange(n)
    base = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    cells = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    return a * (cells[:, None, :] + base[None]).reshape(-1, 3)


def test_each_bond_is_restrained_to_the_bonds_about_it():
    """Two fcc crystals side by side, a = 3.80 and 4.00 A (5 % apart), traced with 5 pm of
    noise: away from where they meet, each bond's target is its own crystal's bond
    ``a / sqrt 2`` to 0.6 % (1.5 % at a corner), not the median of both; inside, each atom
    has 12 bonds."""
    rng = np.random.default_rng(0)
    left, right = _fcc(6, a=3.80), _fcc(6, a=4.00)
    right[:, 2] += left[:, 2].max() + 2.7
    pos = np.vstack([left, right]) + rng.normal(0, 0.05, (len(left) + len(right), 3))
    r = bond_restraint(pos, 0.05)
    mid = 0.5 * (pos[r.pairs[:, 0]] + pos[r.pairs[:, 1]])
    seam = left[:, 2].max() + 1.35
    for side, a in ((mid[:, 2] < seam - 7.0, 3.80), (mid[:, 2] > seam + 7.0, 4.00)):
        assert side.sum() > 500
        off = np.abs(r.lengths_A[side] / (a / np.sqrt(2)) - 1)
        # (1 pm is 0.4 %; the median of both crystals' bonds is 2.5 % from either)
        assert np.quantile(off, 0.95) < 0.006 and off.max() < 0.015
    deg = np.bincount(r.pairs.ravel(), minlength=len(pos))
    frac = np.vstack([left / 3.80, (right - right.min(axis=0)) / 4.00])  # 0 to 5.5 each
    core = np.all((frac > 0.9) & (frac < 4.6), axis=1)
    assert np.all(deg[core] == 12)
    with pytest.raises(ValueError, match="sigma_A"):
        BondRestraint(r.pairs, r.lengths_A, 0.0)
    with pytest.raises(ValueError, match="one target length each"):
        BondRestraint(r.pairs, r.lengths_A[:-1], 0.05)


def test_a_bcc_lattice_is_restrained_by_its_first_shell_only():
    """bcc's second shell (a, 1.155 first-shell bonds) stands inside the fcc cut of 1.2
    bonds: only the 8 first-shell bonds of an inside atom are restrained, to ``sqrt 3 a / 2``."""
    g = np.arange(6)
    cells = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3).astype(float)
    frac = np.vstack([cells, cells + 0.5])
    pos = 2.87 * frac + np.random.default_rng(1).normal(0, 0.02, frac.shape)
    r = bond_restraint(pos, 0.05)
    deg = np.bincount(r.pairs.ravel(), minlength=len(pos))
    core = np.all((frac > 0.9) & (frac < 4.1), axis=1)
    assert np.all(deg[core] == 8)
    assert np.median(r.lengths_A) == pytest.approx(np.sqrt(3) / 2 * 2.87, rel=0.003)


def test_the_penalty_is_quadratic_near_the_target_and_capped_far_from_it():
    import torch

    pos = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 2.8]], dtype=torch.float64)
    r = BondRestraint(np.array([[0, 1]]), np.array([2.75]), 0.05)
    # 5 pm long = 1 sigma: about 1 (Cauchy with a cap of 3: 9 log(1 + 1/9) = 0.948)
    assert r.penalty(pos, torch).item() == pytest.approx(9 * np.log1p(1 / 9))
    far = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 3.75]], dtype=torch.float64)
    # 1 A long = 20 sigma: 9 log(1 + 400 / 9) = 34, where a square would cost 400
    assert r.penalty(far, torch).item() == pytest.approx(9 * np.log1p(400 / 9))
    assert r.penalty(far, torch).item() < 0.1 * 20.0**2
    # two atoms on one spot: a finite penalty and gradient
    same = torch.zeros((2, 3), dtype=torch.float64, requires_grad=True)
    r.penalty(same, torch).backward()
    assert torch.isfinite(same.grad).all()


@pytest.fixture(scope="module")
def strained():
    """A 10-A Pt particle with a radial strain (0 at the centre, 2 % at the surface: 20 pm
    there) imaged at a twentieth of the study's dose (a few counts on the brightest
    column), exact geometry."""
    p = build_structure("fcc", radius_A=10, shape_px=(96, 96), pixel_size_A=PX, seed=4)
    ideal = p.positions
    c = ideal.mean(axis=0)
    d = ideal - c
    r = np.linalg.norm(d, axis=1)
    truth = ideal + 0.01 * d * r[:, None] / r.max()
    sim = simulate_tilt_series(
        truth, ANGLES, shape_px=(96, 96), seed=2, dose_e_per_A2=7666.0 / 20, pixel_size_A=PX
    )
    return ideal, truth, sim


def _rms(a, b):
    d = a - b
    d -= d.mean(axis=0)
    return float(np.sqrt((d**2).sum(axis=1).mean()))


def test_restrained_positions_are_closer_and_keep_a_real_strain(strained):
    """Fitted from a traced model 15 pm off per axis at few counts, the restrained fit
    (5 pm) lands closer to the truth than the free one, and the radial displacements it
    finds follow the true ones (least-squares slope near 1: the restraint's targets are the
    local bonds, so a smooth strain is not pulled flat)."""
    ideal, truth, sim = strained
    start = truth + np.random.default_rng(5).normal(0, 0.15, truth.shape)
    kw = dict(pixel_size_A=PX, refine_angles=False, refine_offsets=False, iterations=60)
    free = refine_atomic_model(sim.data, ANGLES, start, **kw)
    held = refine_atomic_model(sim.data, ANGLES, start, restraint=bond_restraint(start, 0.05), **kw)
    e_free, e_held = _rms(free.positions_A, truth), _rms(held.positions_A, truth)
    with pytest.raises(ValueError, match="build it from these positions"):
        refine_atomic_model(
            sim.data, ANGLES, start[:50], pixel_size_A=PX, restraint=bond_restraint(start, 0.05)
        )
    assert e_held < 0.7 * e_free
    true_disp = truth - ideal
    found = held.positions_A - held.positions_A.mean(0) - (ideal - ideal.mean(0))
    slope = float((found * true_disp).sum() / (true_disp**2).sum())
    assert 0.75 < slope < 1.25


def test_the_held_out_images_choose_the_restraint(strained):
    ideal, truth, sim = strained
    start = truth + np.random.default_rng(6).normal(0, 0.15, truth.shape)
    model = AtomModel(start)
    pos, rec = restrained_positions(model, sim.data, ANGLES, pixel_size_A=PX, iterations=60)
    assert pos is not None and rec["sigma_pm"] in (5.0, 10.0)
    assert min(rec["held_out_t"][f"{rec['sigma_pm']:g}"]) >= 2.0
    assert _rms(pos, truth) < 0.8 * _rms(start, truth)
    few, rec2 = restrained_positions(AtomModel(start[:10]), sim.data, ANGLES, pixel_size_A=PX,
                                     iterations=60)  # fmt: skip
    assert few is None and "atoms" in rec2["why"]


def test_a_restrained_fit_the_images_refuse_leaves_the_positions():
    """Images with no atom in them (the fit's linear start finds no positive correlation):
    the stage's step records why and the refined positions stay, nothing raised."""
    from napari_aet.trace._restrained import with_restrained_positions

    pos = _fcc(3)
    model = AtomModel(pos.copy())
    params = dict(element="Pt", pixel_size_A=PX, iterations=10, device="cpu")
    out, info = with_restrained_positions(
        model, {}, np.zeros((12, 48, 48), np.float32), np.linspace(-60, 60, 12), None, params
    )
    assert "failed" in info["restraints"]["why"]
    assert np.array_equal(out.positions, pos)
    alloy, info2 = with_restrained_positions(model, {}, None, None, None, {"element": "Pt,Ni"})
    assert "several elements" in info2["restraints"]["why"]


def test_the_run_log_says_what_the_restraint_did():
    from napari_aet.workflows.atom_stages import _restraints_note

    used = {"sigma_pm": 5.0, "held_out_t": {"5": [9.7, 7.8]}, "shift_rms_pm": 21.9,
            "fit_error_pm": 4.5}  # fmt: skip
    assert _restraints_note(used) == (
        "final positions fitted with their bonds restrained at 5 pm (the held-out images' "
        "choice, t >= 7.8): moved 21.9 pm RMS, error 4.5 pm"
    )
    kept = {**used, "why": "the restrained fit moved the atoms 4.0 pm (RMS), less than ..."}
    assert _restraints_note(kept).startswith("final positions not restrained: the restrained")
