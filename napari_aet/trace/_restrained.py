"""The refined atoms' final positions, fitted with their bonds restrained.

After the verdicts, which atoms are there is settled; where each one is, fitted to the counts
on its own, is not: at a third of the study's counts a twinned Pt dumbbell's atoms fitted one
by one from the true positions came out 38 pm off, 61 of 2,400 more than 1 A. Restraining
every first-shell bond to the median length of the bonds about it
(:func:`napari_aet.forward.bond_restraint`) lets the neighbours say where an atom can be. How
strongly is a prior bond-length spread, chosen by the data: each half of the images (every
other tilt) is fitted without and with each spread of :data:`RESTRAINT_SIGMAS_PM`, and each
fit predicts the other half (:func:`napari_aet.forward.held_out_comparison`); the spread that
predicts the images it never saw best, by :data:`RESTRAINT_T` standard errors over the free fit
in both directions, is used on all the images. A crystal takes the tightest; an amorphous
particle, whose bond lengths spread, a loose one or none. The restrained positions replace the
given ones only where they moved the atoms by more than their own error
(:data:`MIN_SHIFT_OVER_ERROR`).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..core.atoms import AtomModel
from ..core.progress import check_cancel, report
from ..forward import bond_restraint, held_out_comparison, refine_atomic_model
from ._faint_held_out import MIN_IMAGES

#: The prior bond-length spreads tried [pm], loosest first. Independent 256-px series at a
#: third of the study's counts (docs/benchmarks.md, sixty-eighth session), the final atoms
#: refitted to the counts from their positions: a twinned Pt dumbbell (2,368 atoms) 38.7 pm
#: free, 23.7 / 13.6 / 7.5 pm at 20 / 10 / 5 pm (23.4 pm for the positions before); a Pt
#: icosahedron (8,217 atoms) 34.7 free, 14.0 and 11.4 pm at 10 and 5 (30.2 before). An
#: amorphous Pt particle at a tenth of the counts (128 px): 25.9 pm free, 24.9 at 20, 25.4 at
#: 10, 28.4 at 5; the held-out images chose 20 (the 5 pm half fits predicted them no better
#: than the free ones, t = -1.3 and -0.1).
RESTRAINT_SIGMAS_PM = (20.0, 10.0, 5.0)
#: A restrained fit must predict the held-out half better than the free fit by this many
#: standard errors (paired over the images) in both directions to be used.
RESTRAINT_T = 2.0
#: Too few atoms carry too few bonds to judge a prior by.
MIN_ATOMS = 20
#: The restrained positions replace the given ones only where they moved the atoms (RMS) by
#: more than this many times their own error (its halves' disagreement): less says the given
#: positions, which hold the tracer's share, were as good. On 128-px finals that kept a bcc Fe
#: particle at 8.4 pm (restrained 10.1, shift / error 0.69) and a faulted polyhedron at 5.6
#: (5.9, 0.83), and gave up 0.6-1.7 pm on a glass, a decahedron and an amorphous particle
#: (0.39-0.80); the particles the restraint rescued moved 1.4-4.8 times their error (a
#: dumbbell at a third 23.4 -> 7.5 pm, a Ta glass at a tenth 28.1 -> 12.3 pm).
MIN_SHIFT_OVER_ERROR = 1.0
#: L-BFGS iterations of each half's fits (at most; the final fit takes the stage's): they
#: rank the spreads, and a free fit stopped early is the harder reference to beat.
HALF_ITERATIONS = 30


def restrained_positions(model: AtomModel, images, angles_deg, *, pixel_size_A: float,
                         iterations: int, device: str = "auto", progress=None,
                         cancel=None) -> tuple[np.ndarray | None, dict]:  # fmt: skip
    """``(positions, record)``: the atoms of ``model`` fitted to ``images`` (the counts, as
    aligned) with their bonds restrained at the prior spread the held-out images choose
    (module docstring), and what was measured; ``positions`` is None where no spread
    predicts the held-out images clearly better than the free fit (or the test cannot run:
    ``record["why"]``), or where the restrained fit moved the atoms less than its own error
    (:data:`MIN_SHIFT_OVER_ERROR`), and the caller keeps its positions.
    ``record["fit_error_pm"]``: the restrained fit's error as its two halves' fits disagree
    (each has twice the variance of the whole's: their difference four times)."""
    t0 = time.perf_counter()
    imgs = np.asarray(images, np.float32)
    angles = np.asarray(angles_deg, np.float64)
    record: dict = {"sigmas_pm": list(RESTRAINT_SIGMAS_PM), "t_bar": RESTRAINT_T}
    if len(imgs) < 2 * MIN_IMAGES:
        return None, {**record, "why": f"{len(imgs)} images (it needs {2 * MIN_IMAGES})"}
    if model.n_atoms < MIN_ATOMS:
        return None, {**record, "why": f"{model.n_atoms} atoms (it needs {MIN_ATOMS})"}
    start = model.positions
    bonds = bond_restraint(start, RESTRAINT_SIGMAS_PM[0] / 100.0)  # the same bonds for each
    restraints = {s: replace(bonds, sigma_A=s / 100.0) for s in RESTRAINT_SIGMAS_PM}
    record["n_bonds"] = int(len(restraints[RESTRAINT_SIGMAS_PM[0]].pairs))
    if not record["n_bonds"]:
        return None, {**record, "why": "no bonds"}
    order = np.argsort(angles, kind="stable")
    halves = (np.sort(order[0::2]), np.sort(order[1::2]))
    kw = dict(pixel_size_A=pixel_size_A, refine_angles=False, refine_offsets=False,
              iterations=iterations, device=device, cancel=cancel)  # fmt: skip
    n_steps, done = 2 * (1 + len(RESTRAINT_SIGMAS_PM)) + 1, 0
    gain = {s: [] for s in RESTRAINT_SIGMAS_PM}
    t = {s: [] for s in RESTRAINT_SIGMAS_PM}
    half_fits = []
    for fit, held in (halves, halves[::-1]):
        fits = {}
        half_fits.append(fits)
        for s in (None, *RESTRAINT_SIGMAS_PM):
            check_cancel(cancel, "restrained positions")
            fits[s] = refine_atomic_model(
                imgs[fit], angles[fit], start, restraint=restraints.get(s),
                **{**kw, "iterations": min(iterations, HALF_ITERATIONS)},
            )  # fmt: skip
            done += 1
            report(progress, done, n_steps, "restrained positions: held-out fits")
        for s in RESTRAINT_SIGMAS_PM:
            c = held_out_comparison(
                imgs[held], angles[held], fits[None].positions_A, fits[s].positions_A,
                pixel_size_A=pixel_size_A, sigma_A=fits[None].sigma_A,
            )  # fmt: skip
            gain[s].append(float(np.sum(c["gain"])))
            t[s].append(None if c["t"] is None else float(c["t"]))
    record["held_out_gain"] = {f"{s:g}": gain[s] for s in RESTRAINT_SIGMAS_PM}
    record["held_out_t"] = {f"{s:g}": t[s] for s in RESTRAINT_SIGMAS_PM}
    ok = [s for s in RESTRAINT_SIGMAS_PM if all(v is not None and v >= RESTRAINT_T for v in t[s])]
    if not ok:
        record["why"] = (
            f"no bond-length spread predicted the held-out images better than the free fit by "
            f"{RESTRAINT_T:g} standard errors in both halves: positions kept"
        )
        record["seconds"] = time.perf_counter() - t0
        return None, record
    best = max(ok, key=lambda s: sum(gain[s]))
    record["sigma_pm"] = best
    check_cancel(cancel, "restrained positions")
    res = refine_atomic_model(imgs, angles, start, restraint=restraints[best], **kw)
    report(progress, n_steps, n_steps, f"restrained positions: bonds at {best:g} pm")
    positions = np.asarray(res.positions_A, np.float64)
    moved = np.linalg.norm(positions - start, axis=1)
    record["shift_rms_pm"] = 100.0 * float(np.sqrt(np.mean(moved**2)))
    halves_apart = half_fits[0][best].positions_A - half_fits[1][best].positions_A
    var_fit = float(np.mean(np.sum(halves_apart**2, axis=1))) / 4.0
    record["fit_error_pm"] = 100.0 * np.sqrt(var_fit)
    record["seconds"] = time.perf_counter() - t0
    if record["shift_rms_pm"] < MIN_SHIFT_OVER_ERROR * record["fit_error_pm"]:
        record["why"] = (
            f"the restrained fit moved the atoms {record['shift_rms_pm']:.1f} pm (RMS), less "
            f"than its own error ({record['fit_error_pm']:.1f} pm): positions kept"
        )
        return None, record
    return positions, record


def with_restrained_positions(model, info, images, angles_deg, judge_images, params,
                              origin=None) -> tuple[AtomModel, dict]:  # fmt: skip
    """``(model, info)`` with one element's refined atoms at their restrained positions
    (:func:`restrained_positions`, fitted to the counts when ``judge_images`` holds them);
    ``info["restraints"]`` records the test and the spread used, or why none was; with
    ``origin`` (where each atom started) ``refine_shift_A`` is measured from it."""
    from ..core.elements import parse_elements
    from ._post_fit import _moved

    o = origin if origin is not None and len(origin) == model.n_atoms else None
    if len(parse_elements(params["element"])) != 1:
        record = {"why": "several elements: their bonds differ (not restrained)"}
        positions = None
    else:
        try:
            positions, record = restrained_positions(
                model, images if judge_images is None else judge_images, angles_deg,
                pixel_size_A=params["pixel_size_A"], iterations=params["iterations"],
                device=params["device"], progress=params.get("progress"),
                cancel=params.get("cancel"),
            )  # fmt: skip
        except ValueError as err:  # a fit the images refuse: the refined positions stay
            positions, record = None, {"why": f"a restrained fit failed ({err}): positions kept"}
    info = {**info, "restraints": record}
    if positions is None:
        model.metadata["refinement"] = info
        return model, info
    return _moved(model, positions, info, o), info
