"""Can the counts tell a run's wrong atoms from the truth?

For finished `bench_independent.py` cases (each a folder with ``truth.csv``, ``tilt_series.h5``
and the run's ``run/``), the final model's false atoms are paired one to one with the truth's
missed atoms within 2.2 A (a stacking shift is 1.6 A in Pt), and the fall of the squared
residual of the aligned counts when every paired atom moves to its truth position at once is
printed with its standard deviation under the counts' noise (``z``: the fall over it), and
the same for a control: as many rightly traced atoms, the nearest to the false ones, moved
to their truth positions (a model whose positions were fitted to these counts is favoured
over the truth's by the noise it fitted: the control's ``z`` is that bias), and both again
with the moved atoms' positions refitted locally from each start (the two configurations
each at its own best, which removes the bias: the control's refitted ``z`` is then near 0).
A second table: the missed atoms with no false partner and the false atoms with no missed
one, and how many of them the counts alone would add or remove (``z > 2`` for one atom). The
image model is the run's own (amplitudes and widths fitted to the counts with the positions
held, each atom a Gaussian; the change is exact for that model given the residual, the moved
atoms' overlaps with themselves and each other included). A fall well above its noise says
the images could correct those atoms; one near or below 0 says that, at these counts, the
data prefer the wrong sites and no method judged on them would move them.

``--noise-free``: also the same on the case's noise-free signal (regenerated with the case's
name, size and seed), put through the run's own alignment and scaled to the counts image by
image: what the data would say on average (its ``z`` in units of the counts' noise).

    python benchmarks/bench_wrong_sites.py /tmp/b/pt-dumbbell-third-faults --noise-free \
        pt-dumbbell/third-faults 256 13
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

PAIR_A = 2.2


def _pairs(truth, positions):
    """Indices (false atom, missed truth atom) paired one to one within PAIR_A, after a rigid
    registration of the truth onto the model; the registered truth and the matched pairs
    (truth, model) within 1 A."""
    from scipy.optimize import linear_sum_assignment

    from napari_aet.analysis import compare_atom_models, register_rigid

    truth, _ = register_rigid(positions, truth)
    c = compare_atom_models(truth, positions, radius_A=1.0)
    missed = np.setdiff1d(np.arange(len(truth)), c.pairs[:, 0])
    false = np.setdiff1d(np.arange(len(positions)), c.pairs[:, 1])
    if not len(missed) or not len(false):
        return false[:0], missed[:0], truth, c.pairs[:0], len(missed), len(false)
    d = np.linalg.norm(positions[false][:, None] - truth[missed][None], axis=-1)
    r, k = linear_sum_assignment(np.where(d < PAIR_A, d, 1e6))
    ok = d[r, k] < PAIR_A
    return false[r[ok]], missed[k[ok]], truth, c.pairs, len(missed), len(false)


def _noise_sd(res, rc, pad=8):
    """Noise per pixel for sums over smooth kernels near the points ``rc``: the spread of 3x3
    block means times 3 (noise correlated between neighbours counts as it does in such sums)."""
    r0, c0 = np.maximum(np.floor(rc.min(0)).astype(int) - pad, 0)
    r1, c1 = np.minimum(np.ceil(rc.max(0)).astype(int) + pad, np.array(res.shape) - 1)
    win = res[r0 : r1 + 1, c0 : c1 + 1]
    h, w = (win.shape[0] // 3) * 3, (win.shape[1] // 3) * 3
    blocks = win[:h, :w].reshape(h // 3, 3, w // 3, 3).mean(axis=(1, 3))
    return 3.0 * float(np.std(blocks))


def _atom_peaks(m, pixel_size_A):
    """Each image's atom width [px] ``(n_images,)`` and each atom's peak height in it
    ``(n_images, n_atoms)``, from the model ``m`` fitted with its images."""
    from napari_aet.trace._counts_moves import atom_image_terms

    inten, sigma_A = atom_image_terms(m)
    s_px = np.maximum(sigma_A / pixel_size_A, 1e-3)
    return s_px, inten / (2.0 * np.pi * s_px[:, None] ** 2)


def collective_fall(data, m, moving, start_A, end_A, *, pixel_size_A):
    """Fall of ``||images - model||^2`` when the atoms at ``start_A`` (part of the model) move
    to ``end_A`` together, and its standard deviation; ``m`` the model fitted to ``data``
    with its images, ``moving`` the indices of the moving atoms in it. With ``G_x`` a unit-peak
    Gaussian of width ``s``: ``<G_x, G_y> = pi s^2 exp(-|x-y|^2 / 4 s^2)`` and ``<r, G_x> =
    2 pi s^2 S(x)`` (``S`` the residual smoothed by the unit-integral Gaussian)."""
    from scipy import ndimage

    from napari_aet.forward import project_positions

    res = np.asarray(data, np.float64) - np.asarray(m.model_images, np.float64)
    n_img, rows, cols = res.shape
    s_px, peaks = _atom_peaks(m, pixel_size_A)
    fall, var = 0.0, 0.0
    for i in range(n_img):
        s, a = float(s_px[i]), peaks[i, moving]
        kw = dict(shape_px=(rows, cols), pixel_size_A=pixel_size_A, shift_px=m.offsets_px[i])
        p = project_positions(start_A, float(m.angles_deg[i]), **kw)
        q = project_positions(end_A, float(m.angles_deg[i]), **kw)
        smooth = ndimage.gaussian_filter(res[i], s)
        at = ndimage.map_coordinates
        lin = 2.0 * np.pi * s * s * float(a @ (at(smooth, q.T, order=1) - at(smooth, p.T, order=1)))

        def e(x, y, s=s):
            return np.exp(-np.sum((x[:, None] - y[None]) ** 2, axis=-1) / (4.0 * s * s))

        quad = np.pi * s * s * float(a @ (e(q, q) - e(q, p) - e(p, q) + e(p, p)) @ a)
        fall += 2.0 * lin - quad
        var += 4.0 * _noise_sd(res[i], np.concatenate([p, q])) ** 2 * max(quad, 0.0)
    return fall, float(np.sqrt(var))


def _windows(m, shape, pixel_size_A, points, sig_px, pad=4.0):
    """Per image: the linear map (z, y, x) [A] -> (row, col) [px], its offset, and the window
    holding ``points`` (list of (n, 3) arrays) padded by ``pad`` atom widths."""
    from napari_aet.forward import project_positions

    out = []
    for i in range(len(m.angles_deg)):
        kw = dict(shape_px=shape, pixel_size_A=pixel_size_A, shift_px=m.offsets_px[i])
        o = project_positions(np.zeros((1, 3)), float(m.angles_deg[i]), **kw)[0]
        a = np.stack(
            [project_positions(np.eye(3)[j : j + 1], float(m.angles_deg[i]), **kw)[0] - o
             for j in range(3)], axis=1,
        )  # fmt: skip
        rc = np.concatenate([p @ a.T + o for p in points])
        lo = np.maximum(np.floor(rc.min(0) - pad * sig_px[i]).astype(int), 0)
        hi = np.minimum(np.ceil(rc.max(0) + pad * sig_px[i]).astype(int), np.array(shape) - 1)
        out.append((a, o, lo, hi))
    return out


def _render(x, peaks, sig_px, win, jac=False):
    """The atoms at ``x`` (n, 3) as Gaussians in every window, and the derivatives."""
    vals, jacs = [], []
    for i, (a, o, lo, hi) in enumerate(win):
        rr, cc = np.mgrid[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1]
        u = np.stack([rr.ravel(), cc.ravel()], 1).astype(float)
        d = u[:, None, :] - (x @ a.T + o)[None]
        g = np.exp(-np.sum(d * d, -1) / (2 * sig_px[i] ** 2)) * peaks[i][None]
        vals.append(g.sum(1))
        if jac:
            jacs.append(((g[:, :, None] * d / sig_px[i] ** 2) @ a).reshape(len(u), -1))
    return (np.concatenate(vals), np.concatenate(jacs)) if jac else np.concatenate(vals)


def refitted_fall(data, m, moving, start_A, end_A, *, pixel_size_A, max_step_A=0.6):
    """Fall of the squared residual from the atoms ``moving`` fitted locally (positions only,
    within ``max_step_A``, the rest of the model held) from ``start_A`` to the same fitted
    from ``end_A``: the two configurations compared each at its own best, so neither gains
    from having been fitted to these data before."""
    from scipy.optimize import least_squares

    res = np.asarray(data, np.float64) - np.asarray(m.model_images, np.float64)
    sig_px, peaks = _atom_peaks(m, pixel_size_A)
    peaks = peaks[:, moving]
    win = _windows(m, res.shape[1:], pixel_size_A, [start_A, end_A], sig_px)
    # the data the moving atoms must explain: the residual with their own images added back
    base = np.concatenate(
        [res[i][lo[0] : hi[0] + 1, lo[1] : hi[1] + 1].ravel() for i, (_, _, lo, hi) in
         enumerate(win)]
    ) + _render(start_A, peaks, sig_px, win)  # fmt: skip

    def best(x0):
        r = least_squares(
            lambda v: _render(v.reshape(-1, 3), peaks, sig_px, win) - base, x0.ravel(),
            jac=lambda v: _render(v.reshape(-1, 3), peaks, sig_px, win, jac=True)[1],
            bounds=((x0 - max_step_A).ravel(), (x0 + max_step_A).ravel()), max_nfev=30,
            x_scale=0.1,
        )  # fmt: skip
        return float(np.sum(r.fun**2))

    return best(np.asarray(start_A, float)) - best(np.asarray(end_A, float))


def single_falls(data, m, add_A, remove, *, pixel_size_A):
    """z of the fall of the squared residual for adding one atom of the median amplitude at
    each of ``add_A`` alone, and for removing each of the model's atoms ``remove`` alone
    (no refit; the noise per pixel from the particle's central region)."""
    from scipy import ndimage

    from napari_aet.forward import project_positions

    res = np.asarray(data, np.float64) - np.asarray(m.model_images, np.float64)
    n_img, rows, cols = res.shape
    s_px, peaks = _atom_peaks(m, pixel_size_A)
    amp = np.asarray(m.amplitudes, float)
    unit = peaks.sum(axis=1) / amp.sum()  # each image's peak per unit of amplitude
    centre = np.array([[rows / 4, cols / 4], [3 * rows / 4, 3 * cols / 4]])
    # each image's residual smoothed by its atom width, and its noise: the same for both sets
    smoothed = [ndimage.gaussian_filter(res[i], float(s_px[i])) for i in range(n_img)]
    noise_var = [_noise_sd(res[i], centre) ** 2 for i in range(n_img)]
    out = {}
    for key, pts, a_rel in (("add", add_A, np.full(len(add_A), np.median(amp))),
                            ("remove", m.positions_A[remove], amp[remove])):  # fmt: skip
        sign = 1.0 if key == "add" else -1.0
        fall, var = np.zeros(len(pts)), np.zeros(len(pts))
        for i in range(n_img):
            s, a = float(s_px[i]), unit[i] * a_rel
            kw = dict(shape_px=(rows, cols), pixel_size_A=pixel_size_A, shift_px=m.offsets_px[i])
            at = project_positions(pts, float(m.angles_deg[i]), **kw)
            overlap = ndimage.map_coordinates(smoothed[i], at.T, order=1)
            lin = 2.0 * np.pi * s * s * a * overlap
            fall += sign * 2.0 * lin - np.pi * s * s * a * a
            var += 4.0 * noise_var[i] * np.pi * s * s * a * a
        out[key] = fall / np.sqrt(np.maximum(var, 1e-30))
    return out


def _fit(data, angles, positions, pixel_size_A):
    """The model's amplitudes, widths and image scales fitted to ``data``, positions held."""
    from napari_aet.forward import refine_atomic_model

    return refine_atomic_model(
        np.asarray(data, np.float32), angles, positions, pixel_size_A=pixel_size_A,
        refine_positions=False, refine_angles=False, refine_offsets=False, iterations=20,
        return_images=True,
    )  # fmt: skip


def _judge(data, model, positions, false, target, pixel_size_A):
    """:func:`collective_fall` and :func:`refitted_fall` of moving ``false`` to ``target``."""
    fall, sd = collective_fall(data, model, false, positions[false], target,
                               pixel_size_A=pixel_size_A)  # fmt: skip
    refit = refitted_fall(data, model, false, positions[false], target,
                          pixel_size_A=pixel_size_A)  # fmt: skip
    return fall, sd, refit


def _noise_free(case_dir, name, size, seed, counts):
    """The case's noise-free signal through the run's alignment, scaled to ``counts``."""
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_independent as bi

    from napari_aet.align import apply_alignment

    _, _, series, _ = bi._make_case(name, size, 0.358, seed)
    al = json.loads((case_dir / "run/align/alignment.json").read_text())
    nf = apply_alignment(
        np.asarray(series.signal, np.float32), tilt_axis_angle_deg=al["tilt_axis_angle_deg"],
        shifts_px=np.asarray(al["shifts_px_row_col"]),
    ).astype(np.float64)  # fmt: skip
    for i in range(len(nf)):
        a = np.stack([nf[i].ravel(), np.ones(nf[i].size)], 1)
        k = np.linalg.lstsq(a, counts[i].ravel(), rcond=None)[0]
        nf[i] = nf[i] * k[0] + k[1]
    return nf


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="+", help="bench_independent case folders")
    ap.add_argument("--noise-free", nargs=3, metavar=("NAME", "SIZE", "SEED"),
                    help="with one case: its name, image size and seed")  # fmt: skip
    args = ap.parse_args(argv)
    from napari_aet.io import read_atoms, read_tilt_series

    unpaired = []

    print("| case | missed / false | pairs within 2.2 A | median distance (A) | data | "
          "z | control z | z, both refitted | control z, both refitted |")  # fmt: skip
    print("|---|---|---:|---:|---|---:|---:|---:|---:|")
    for case in args.cases:
        d = Path(case)
        truth = np.loadtxt(d / "truth.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2))
        pos = read_atoms(d / "run/atoms.csv").positions
        false, missed, reg, matched, n_miss, n_false = _pairs(truth, pos)
        # the control: as many right atoms, the nearest to the false ones, moved to the truth
        # (a fit favours the positions it fitted over the truth's by its noise alone)
        if len(false):
            from scipy.spatial import cKDTree

            near = np.unique(cKDTree(pos[matched[:, 1]]).query(pos[false], k=3)[1].ravel())
            ctrl = matched[near[: len(false)]]
        cnt = read_tilt_series(d / "run/align/aligned_tilt_series_undenoised.h5")
        counts = np.asarray(cnt.data, np.float64)
        dist = np.linalg.norm(pos[false] - reg[missed], axis=1)
        data = [("counts", counts)]
        if args.noise_free:
            name, size, seed = args.noise_free
            data.append(("noise-free", _noise_free(d, name, int(size), int(seed), counts)))
        ang = np.asarray(cnt.angles_deg)
        m = _fit(counts, ang, pos, cnt.pixel_size_A)
        lone_missed = np.setdiff1d(np.setdiff1d(np.arange(len(reg)), matched[:, 0]), missed)
        lone_false = np.setdiff1d(np.setdiff1d(np.arange(len(pos)), matched[:, 1]), false)
        z = single_falls(counts, m, reg[lone_missed], lone_false, pixel_size_A=cnt.pixel_size_A)
        unpaired.append((d.name, z, np.median(m.amplitudes), m.amplitudes[lone_false]))
        for tag, images in data:
            if not len(false):
                print(f"| {d.name} | {n_miss} / {n_false} | 0 | | {tag} | | | | |")
                continue
            fit = m if tag == "counts" else _fit(images, ang, pos, cnt.pixel_size_A)
            fall, sd, refit = _judge(images, fit, pos, false, reg[missed], cnt.pixel_size_A)
            c_fall, c_sd, c_refit = _judge(images, fit, pos, ctrl[:, 1], reg[ctrl[:, 0]],
                                           cnt.pixel_size_A)  # fmt: skip
            if tag == "counts":  # the noise-free signal's falls in units of the counts' noise
                sd_counts, c_sd_counts = sd, c_sd
            sd, c_sd = sd_counts, c_sd_counts
            print(f"| {d.name} | {n_miss} / {n_false} | {len(false)} | {np.median(dist):.2f} | "
                  f"{tag} | {fall / sd:+.1f} | {c_fall / c_sd:+.1f} | {refit / sd:+.1f} | "
                  f"{c_refit / c_sd:+.1f} |", flush=True)  # fmt: skip

    print()
    print("| case | missed without a false partner | z > 2 for adding it | false without a missed "
          "partner | z > 2 for removing it | its amplitude / the median |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|")
    for name, z, med, a in unpaired:
        amps = ", ".join(f"{v:.2f}" for v in np.sort(a / med)) if len(a) else ""
        print(f"| {name} | {len(z['add'])} | {int(np.sum(z['add'] > 2))} | {len(z['remove'])} | "
              f"{int(np.sum(z['remove'] > 2))} | {amps} |")  # fmt: skip


if __name__ == "__main__":
    main()
