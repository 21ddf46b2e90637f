"""Whether a refinement beats the tracer when the images' fit alone cannot say.

At very low counts the true atoms fit the counts poorly too: a refinement refused for its poor
fit alone, or one that passed the bar at few counts on atoms that no lattice holds (a glass),
is put to images it never saw. It is refined on every other image (by angle) and compared with
the traced atoms on the other half (:func:`held_out_check`,
:func:`napari_aet.forward.held_out_comparison`). Where the traced atoms stay, the counts, every
position held, decide which of the tracer's doubtful calls stay or join
(:func:`held_verdicts`). The refine stage (:func:`napari_aet.trace.refine_atom_positions`)
decides with these; its single refinement is passed in (``refine_once``).
"""

from __future__ import annotations

import numpy as np

from ..core.atoms import AtomModel
from ..core.elements import parse_elements
from ..core.progress import prefixed
from ..forward import held_out_comparison
from . import _verdicts
from ._faint_held_out import MIN_IMAGES, refine_on_half
from ._packing import _crystal_fraction
from ._trials import _trial_candidates
from ._verdicts import ADD_AMPLITUDE, JUDGE_ITERATIONS, _fit_and_judge, elements_by_amplitude

#: A refinement refused for its poor fit alone is used when, fitted to every other image, it
#: predicts the images it did not see better than the traced atoms by this many standard
#: errors (paired over the held-out images: :func:`napari_aet.forward.held_out_comparison`).
#: Measured on independent 128-px series at a tenth of the study's counts (5-7 on the
#: brightest column; docs/benchmarks.md): a twinned Pt dumbbell and a Pt polyhedron, whose
#: refinement would take the identification error from 9.4 to 9.7 % and from 9.1 to 22 %,
#: gave t = -11.3 and -9.2; Au, Pd, Ni particles and a second dumbbell -9 to -21; two
#: amorphous Pt particles, which it takes from 58 to 14 % and from 65 to 23 %, +4.7 and +5.2.
#: The test leans to the traced atoms (traced from all images; the refinement it judges saw
#: half): an Au particle it kept would have gone from 16.1 to 11.6 %.
#: For atoms that are not a crystal (under :data:`~._verdicts.TRACER_SHARE_MIN_CRYSTAL` of
#: the traced atoms and of the half-fit's in a crystal class) the burden of proof turns: the
#: refinement stands unless the traced atoms predict the held-out images better by
#: ``HELD_OUT_T`` standard errors. The tracer cannot lean on a lattice there and misses many
#: atoms at few counts; on independent 128-px glasses and amorphous particles at a tenth of the
#: counts (docs/benchmarks.md, sixty-first session) the refinement was better in five of six
#: draws, two of them at t = +1.5 and -1.6 (a Pt glass 15.7 -> 1.9 %, a Ta glass 7.8 -> 2.1 %,
#: which the plain bar left as traced), and worse in the one at t = -2.7 (7.8 -> 10.9 %).
HELD_OUT_T = 2.0
#: A refinement of atoms that are not a crystal (a glass, an amorphous particle: under
#: :data:`~._verdicts.TRACER_SHARE_MIN_CRYSTAL` of the refined atoms, and of the traced ones,
#: in a crystal class) whose fit passed the bar (:data:`~napari_aet.forward.MIN_MODEL_CORRELATION`)
#: with a median correlation with the counts below this is also put to the held-out test;
#: where the traced atoms predict the held-out images clearly better (the glass's bar of
#: :data:`HELD_OUT_T`), the positions stay as traced and the counts, positions held, decide
#: which atoms stay (as for a fit refused). At so few counts no lattice
#: holds a glass's atoms: on an independent 128-px Pt glass at a tenth of the study's counts
#: (docs/benchmarks.md, sixty-first session; correlation 0.51) the refinement moved rightly
#: traced atoms more than 1 A and lost real ones (7.8 -> 10.9 %; t = -2.7), where the counts
#: with the traced positions take it to 5.9 %; an amorphous Pt particle the tracer half missed
#: is vindicated (t = +8.5, 48 -> 11 %). Crystals are left to the refinement: the held-out
#: test also preferred the traced atoms of a 256-px faulted dumbbell at a third of the counts
#: (correlation 0.59, t = -4.1) whose refinement takes it from 18 % to 3.3 %. At a third of the
#: counts the 128-px correlations were 0.81-0.89.
HELD_OUT_CORRELATION = 0.7
#: The held-out test needs at least this many images in each half (the faint atoms' test's,
#: which shares its split) ...
HELD_OUT_MIN_IMAGES = MIN_IMAGES
#: ... and this many traced atoms.
HELD_OUT_MIN_ATOMS = 20


def held_verdicts(atoms, counts, angles_deg, params) -> tuple[AtomModel, dict]:
    """The tracer's doubtful calls decided by the counts with every position held as traced:
    ``(model, record)``. For a series whose refinement neither the images' fit nor the held-out
    images trust (very low counts: the counts place each atom no better than the tracer did),
    the amplitudes alone are fitted to ``counts`` (the traced atoms and the tracer's rejected
    candidates as trials, :func:`_trial_candidates`) and the usual bars decide
    (:func:`_fit_and_judge`); no residual pass (its trial positions come from the residual,
    which such counts do not pin down). Used only when the traced atoms' amplitudes (an
    alloy's: its faintest element's) are measured well enough that the bars separate an atom
    from nothing (:data:`._verdicts.HELD_VERDICT_SIGNIFICANCE`); otherwise ``atoms`` come back
    unchanged (an alloy's with their elements from the amplitudes,
    :func:`species_from_amplitudes`)."""
    trial, trial_intensity = _trial_candidates(atoms, params["candidates"])
    model, info, res, _, kept = _fit_and_judge(
        atoms, counts, angles_deg, trial, trial_intensity, judge=True, origin=None,
        pixel_size_A=params["pixel_size_A"], iterations=JUDGE_ITERATIONS, refine_geometry=False,
        element=params["element"], device=params["device"],
        progress=prefixed(params["progress"], "amplitudes on the counts, positions held: "),
        cancel=params["cancel"], weighting=params["weighting"], min_correlation=0.0,
        refine_positions=False,
    )  # fmt: skip
    if kept is None:
        return atoms, {"applied": False, "why": info["not_refined"]}
    n0 = atoms.n_atoms
    # an alloy's bars are set on its faintest element's amplitudes, and so is the significance
    # they need: _fit_and_judge measured it and held its verdicts below the bar (Fe beside Pt
    # at a tenth of the counts: 1.2 against 5.2 for all atoms, where the verdicts removed 34
    # atoms and added 76 for 1 % more error); one element: over all traced atoms
    bar = _verdicts.HELD_VERDICT_SIGNIFICANCE  # the module's, as _fit_and_judge reads it
    faint = info.get("faint_verdicts")
    if faint is not None:
        z_med = faint["median_significance"]
    else:
        z = res.amplitudes[:n0] / np.maximum(res.amplitude_sigma[:n0], 1e-30)
        z_med = float(np.median(z))
    # every trial's and traced atom's amplitude over the reference the bars were set on
    amp = res.amplitudes / info["amplitude_reference"]
    record = {
        "significance_median": z_med,
        "significance_bar": bar,
        "n_trial_candidates": info["n_trial_candidates"],
        "n_added": info["n_added"],
        "n_removed": info["n_removed"],
        "drop_amplitude": info.get("drop_amplitude"),
        "add_amplitude": ADD_AMPLITUDE,
        # the amplitudes of what went and of the trials that did not join (for the figure)
        "removed_amplitudes": [round(float(a), 4) for a in amp[:n0][~kept[:n0]]],
        "rejected_trial_amplitudes": [round(float(a), 4) for a in amp[n0:][~kept[n0:]]],
    }
    if z_med < bar:
        return species_from_amplitudes(atoms, res.amplitudes[:n0], params["element"], record), {
            **record,
            "applied": False,
            "why": (
                f"the counts measure the traced atoms' amplitudes to {z_med:.1f} standard "
                f"errors (median; {bar:g} needed to tell an atom from "
                "nothing)"
            ),
        }
    return model, {**record, "applied": True}


def species_from_amplitudes(atoms, amplitudes, element, record: dict):
    """An alloy's traced atoms with their elements told apart by their amplitudes fitted to
    the counts (positions held), where the verdicts on which atoms are there were refused:
    telling a Pd from a Pt atom (0.38 of its brightness in ADF) needs less than telling either
    from nothing. On independent series at a tenth of the study's counts the traced atoms'
    elements, from the GENFIRE tomogram, were 29 % (Pd-Pt) and 22 % (Fe-Pt) wrong, from these
    amplitudes 12 and 6 % (docs/benchmarks.md, twenty-eighth session). ``record`` gets
    ``species_from_counts`` and ``species_counts``; one element: ``atoms`` as given."""
    elements = parse_elements(element)
    if len(elements) < 2 or atoms.n_atoms < 3 * len(elements):
        return atoms
    features = atoms.features.copy()
    features["element"] = elements_by_amplitude(amplitudes, elements)
    record["species_from_counts"] = True
    record["species_counts"] = {e: int(np.sum(features["element"] == e)) for e in elements}
    return AtomModel(atoms.positions, features, dict(atoms.metadata))


def refused_record(info, correlation) -> dict:
    """The record of a refinement that passed the bar but that the held-out images refused
    (:data:`HELD_OUT_CORRELATION`): the first fit's settings and measures, what the refinement
    would have done (``refused_refinement``) and why not (``not_refined``)."""
    keep = (
        "iterations",
        "refine_geometry",
        "sigma_A",
        "weighting",
        "image_correlation_median",
        "judged_on",
        "judge_image_correlation_median",
        "judge_sigma_A",
        "position_source",
    )
    would = ("n_added", "n_removed", "n_trial_candidates", "shift_A_median", "shift_A_p95")
    out = {k: info[k] for k in keep if k in info}
    out["refused_refinement"] = {k: info[k] for k in would if k in info}
    out["not_refined"] = (
        f"the fit correlates with the counts at only {correlation:.2f} (below "
        f"{HELD_OUT_CORRELATION:g}: too few counts to vouch for atoms that no lattice holds) "
        "and the images it did not see preferred the traced positions"
    )
    out["poor_fit_only"] = True
    return out


def marginal_fit(info, model, atoms) -> dict | None:
    """Whether a refinement whose fit passed the bar goes to the held-out test all the same:
    its median correlation with the counts is below :data:`HELD_OUT_CORRELATION` and neither
    its atoms nor the traced ``atoms`` are a crystal (under
    :data:`~._verdicts.TRACER_SHARE_MIN_CRYSTAL` of them in a crystal class of the Q4-Q6
    map). Then the record (``counts_correlation``, ``correlation_bar``,
    ``crystal_fraction_refined``), else None. The correlation is the amplitudes' fit to the
    counts with the positions of a fit to a denoised series held, or the fit's own (to the
    counts; a denoised series that no counts judge correlates highly and is not put to it)."""
    if "not_refined" in info or model.n_atoms < HELD_OUT_MIN_ATOMS:
        return None
    if info.get("judged_on") == "judge_images":
        corr = info.get("judge_image_correlation_median")
    else:  # fitted to the images themselves (the counts, or a series that nothing judges)
        corr = info.get("image_correlation_median")
    if corr is None or corr >= HELD_OUT_CORRELATION:
        return None
    crystal = _crystal_fraction(model.positions)
    if max(crystal, _crystal_fraction(atoms.positions)) >= _verdicts.TRACER_SHARE_MIN_CRYSTAL:
        return None  # a crystal, as traced or as refined (a noisy fit can hide a small one's)
    return {"counts_correlation": float(corr), "correlation_bar": HELD_OUT_CORRELATION,
            "crystal_fraction_refined": crystal}  # fmt: skip


def held_out_check(atoms, images, angles_deg, judge_images, params, *, refine_once) -> dict:
    """Whether a refinement on half the images predicts the other half better than the traced
    atoms do (``verdict``: ``"refined"``, ``"traced"`` or ``"not run"``, and why)."""
    angles = np.asarray(angles_deg, np.float64)
    n = len(angles)
    if n < 2 * HELD_OUT_MIN_IMAGES:
        return {"verdict": "not run", "why": f"{n} images (it needs {2 * HELD_OUT_MIN_IMAGES})"}
    if len(parse_elements(params["element"])) > 1:
        return {"verdict": "not run", "why": "several elements"}
    if atoms.n_atoms < HELD_OUT_MIN_ATOMS:
        return {"verdict": "not run", "why": f"{atoms.n_atoms} atoms"}
    fit, held, seen, (model, info) = refine_on_half(
        atoms, images, angles, judge_images, params, refine_once, "held-out test",
        min_correlation=0.0,
    )  # fmt: skip
    out = {"fit_images": fit.tolist(), "held_out_images": held.tolist(), "t_bar": HELD_OUT_T}
    if "not_refined" in info:
        return {**out, "verdict": "traced", "why": info["not_refined"]}
    cmp = held_out_comparison(
        seen[held], angles[held], atoms.positions, model.positions,
        pixel_size_A=params["pixel_size_A"], sigma_A=info.get("judge_sigma_A", info["sigma_A"]),
    )  # fmt: skip
    t = cmp["t"]
    # a glass: the refinement stands unless the held-out images clearly prefer the traced atoms
    crystal = max(_crystal_fraction(atoms.positions), _crystal_fraction(model.positions))
    glass = crystal < _verdicts.TRACER_SHARE_MIN_CRYSTAL
    bar = -HELD_OUT_T if glass else HELD_OUT_T
    verdict = "refined" if t is not None and (t > bar if glass else t >= bar) else "traced"
    return {**out, **cmp, "verdict": verdict, "n_atoms_half_fit": int(model.n_atoms),
            "crystal_fraction": crystal, "t_bar": bar}  # fmt: skip
