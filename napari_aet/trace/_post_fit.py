"""What happens to a refinement's positions after its fit to a denoised series: the long
moves the counts undo (:mod:`~napari_aet.trace._counts_moves`), the smooth part of what the
counts move them by (:mod:`~napari_aet.trace._counts_correction`) and the traced positions'
share (:data:`TRACER_SHARE`). Each takes and returns ``(model, info)``, recording what it did
in ``info`` (``refine.json``); each leaves the model alone where it does not apply."""

from __future__ import annotations

import numpy as np

from ..core.atoms import AtomModel
from ..core.progress import check_cancel
from ..forward import MIN_MODEL_CORRELATION, refine_atomic_model, why_untrusted
from ._counts_correction import counts_correction
from ._counts_moves import MIN_MOVE_A, counts_prefer_origin, far_moves, traced_starts
from ._packing import _crystal_fraction
from ._verdicts import JUDGE_ITERATIONS, TRACER_SHARE_MIN_CRYSTAL

#: When the replicate measured the fit's precision (a denoiser ran:
#: :func:`~napari_aet.trace._position_source.choose_position_source`), each traced atom ends at
#: ``w`` of the way back from its refined position to its traced one,
#: ``w=TRACER_SHARE*min(1,(s/d)^2)``: ``s`` the fit's RMS error on the replicate, ``d`` the RMS of
#: how far the fit moved the traced atoms. Were the tracer's and the fit's errors independent,
#: ``d^2-s^2`` would be the tracer's variance and ``(s/d)^2`` the inverse-variance weight of the
#: traced position; the fit starts from the traced positions, so the errors share a part and the
#: weight is halved. When the fit moves atoms by no more than its own noise (``d<=s``: very low
#: counts) traced and refined count alike. Measured on 42 finished runs of independent series
#: (docs/benchmarks.md, thirtieth session; 128 and 256 px, Pt, Au, Pd, Ni, Ag, W, Fe, Ta, crystals
#: and amorphous, a tenth to the full counts): the final RMSD fell in 32 (by up to 7.2 pm: Fe at a
#: tenth of the counts 21.3 -> 14.1 pm, a Pt polyhedron 17.5 -> 12.8, Pd 15.6 -> 12.6, Ni 20.7 ->
#: 17.2), stayed within 0.05 pm in 6, rose in 4 amorphous ones by 0.1-0.8 pm (an amorphous
#: particle's traced positions are worse than a crystal's); the full weight ``(s/d)^2`` gained as
#: much at a tenth of the counts but lost up to 2.9 pm elsewhere. Not when the held-out images
#: decided (they chose the refinement). Until the forty-ninth session only crystals got it
#: (the runs it made worse were random packings, whose traced positions are poor: 0.1-0.8 pm);
#: on quenched metallic glasses (128 px, seed 21) it took 0.4-2.8 pm off every run (Pt at the
#: study's counts 5.1 -> 4.7 pm, at a third 8.9 -> 7.7, Ta 9.6 -> 8.7, Ni-Pd-Pt 16.5 -> 13.7 and
#: 25.2 -> 23.5 pm with 12.40 -> 8.53 %) and cost the random packings 0.0-1.0 pm.
TRACER_SHARE = 0.5
#: A fit that leaves this much less of a crystal's atoms in a crystal class of the Q4-Q6 map
#: than the tracer did has scattered them (fits at these counts keep 0.9-1.0 of a crystal:
#: the random Fe-Pt particle 0.95 traced and fitted; the L1_0 FePt's fit 0.66 of 1.00).
SCATTER_DROP = 0.15
#: ... and, in a crystal, faint atoms whose verdicts apply keep the tracer's positions unless
#: their median significance reaches this: the verdicts' bar (5) says that an atom is there,
#: not that the fit places it better than the tracer. Independent 128-px series (docs/
#: benchmarks.md, fifty-second session): Fe of random and L1_0 Fe-Pt at the study's counts
#: (5.5-5.7) fitted 22 pm off against 17 and 14 traced; Pd of Pd-Pt (11.8-22) 5.0 against 5.9.
FAINT_POSITION_SIGNIFICANCE = 10.0


def _with_counts_moves_back(model, info, source, counts, origin, *, angles_deg, pixel_size_A,
                            refine_geometry, weighting, device, cancel, **_):  # fmt: skip
    """``(model, info)`` with the traced atoms that the fit to a denoised series moved far
    and that the counts would rather have where the tracer put them moved back there
    (:func:`~napari_aet.trace._counts_moves.counts_prefer_origin`, on the atoms' amplitudes
    fitted to the counts with the positions held; ``info["counts_moves"]``). Only when the
    positions were fitted to a denoised series that the counts judged, the geometry held."""
    if source is None or source.get("source") != "denoised" or counts is None:
        return model, info
    if info.get("judged_on") != "judge_images" or origin is None or refine_geometry:
        return model, info  # (a fit that moved the geometry: the counts' fit would not match)
    if len(origin) != model.n_atoms or model.n_atoms < 5:
        return model, info
    start = traced_starts(origin, model.features)
    if not len(far_moves(model.positions, start)):
        info = {**info, "counts_moves": {"min_move_A": MIN_MOVE_A, "n_judged": 0, "n_back": 0}}
        model.metadata["refinement"] = info
        return model, info
    check_cancel(cancel, "refinement")
    fit = refine_atomic_model(
        counts, angles_deg, model.positions, pixel_size_A=pixel_size_A, refine_positions=False,
        refine_angles=False, refine_offsets=False, iterations=JUDGE_ITERATIONS,
        return_images=True, weighting=weighting, device=device, cancel=cancel,
    )  # fmt: skip
    back, record = counts_prefer_origin(fit, counts, start, pixel_size_A=pixel_size_A)
    info = {**info, "counts_moves": record}
    positions = model.positions.copy()
    positions[back] = start[back]
    return _moved(model, positions, info, origin if back.any() else None), info


def _with_counts_correction(model, info, source, counts, origin, *, angles_deg, pixel_size_A,
                            iterations, refine_geometry, weighting, device, progress, cancel,
                            min_correlation=MIN_MODEL_CORRELATION, **_):  # fmt: skip
    """``(model, info)`` with the smooth part of what the counts move the positions by
    added, when the positions were fitted to a denoised series that the replicate chose over
    the counts (:mod:`~napari_aet.trace._counts_correction`; ``info["counts_correction"]``)."""
    if source is None or source.get("source") != "denoised" or counts is None:
        return model, info
    if "not_refined" in info or model.n_atoms < 5:
        return model, info
    if refine_geometry:  # the denoised fit moved the geometry: the counts' fit would not match
        info["counts_correction"] = {"applied": False, "why": "refine_geometry"}
        return model, info
    check_cancel(cancel, "refinement")
    res = refine_atomic_model(
        counts, angles_deg, model.positions, pixel_size_A=pixel_size_A, refine_angles=False,
        refine_offsets=False, iterations=iterations, weighting=weighting, device=device,
        progress=progress, cancel=cancel,
    )  # fmt: skip
    why = why_untrusted(res, min_correlation=min_correlation)
    if why:
        info["counts_correction"] = {"applied": False, "why": why}
        return model, info
    smooth, cinfo = counts_correction(model.positions, res.positions_A - model.positions)
    info["counts_correction"] = cinfo
    if smooth is None:
        return model, info
    if origin is not None and len(origin) != model.n_atoms:
        origin = None
    return _moved(model, model.positions + smooth, info, origin), info


def _held_faint(model, info) -> np.ndarray | None:
    """Which atoms are of an alloy's faintest element when its verdicts wait
    (``info["faint_verdicts"]`` not applied), by their ``element``; None otherwise."""
    held = info.get("faint_verdicts")
    if not held or "element" not in model.features:
        return None
    if held.get("applied") and not held.get("n_positions_held"):
        return None  # verdicts that apply, positions not held as scattered
    return model.features["element"].to_numpy().astype(str) == held["element"]


def _with_faint_positions_held(model, info, origin):
    """``(model, info)`` with an alloy's faintest element's atoms back where the tracer put
    them when its verdicts wait (:func:`_held_faint`: the counts measure those atoms below the
    bar, and place them no better than the tracer did) and the particle is a crystal (the
    tracer share's test, :data:`TRACER_SHARE_MIN_CRYSTAL`); the record says how many, or why
    not. Independent 128-px Fe-Pt series (docs/benchmarks.md, forty-fourth session; Fe median
    significance 2.9-5.0): a third of the study's counts 10.57 % / 20.1 pm -> 8.28 % / 17.1 pm
    (the refined Fe positions had moved 6 right atoms more than 1 A off), acquisition faults
    18.1 -> 14.6 pm, the study's counts 3.45 -> 2.99 %. An amorphous particle's traced
    positions are worse: the three-element amorphous alloy at a third 34.88 % / 25.6 pm held
    would be 32.89 % / 30.8 pm, so there they stay refined. Whether the particle is a crystal
    is judged on the traced positions: a fit that scattered the faint atoms would hide the
    crystal it spoiled (an L1_0 FePt at a third, forty-fifth session: 16 % of the fitted
    atoms in a crystal class against 100 % traced; 13.10 % / 29.4 pm -> 5.29 % / 13.1 pm).
    Where the verdicts apply, the faint atoms go back only if the fit took the tracer's
    crystal apart (:data:`SCATTER_DROP`) or measured them too weakly to place them
    (:data:`FAINT_POSITION_SIGNIFICANCE`)."""
    verdicts = info.get("faint_verdicts")
    if not verdicts or "element" not in model.features:
        return model, info
    if origin is None or len(origin) != model.n_atoms:
        return model, info
    faint = model.features["element"].to_numpy().astype(str) == verdicts["element"]
    origin = np.asarray(origin, float)
    crystal = _crystal_fraction(origin)  # the particle's kind, judged on the tracer's model
    held = {**verdicts, "crystal_fraction": crystal}
    why = ""
    if verdicts.get("applied"):
        # the counts measure the faint atoms: their fitted positions stay unless the fit took
        # the crystal the tracer found apart (SCATTER_DROP or more of the atoms leaving the
        # crystal classes of the Q4-Q6 map): a fit that errs by its image model beside the
        # bright element (an L1_0 FePt's Fe between Pt layers, forty-fifth session) scatters
        # them, a real displacement would not
        fitted = _crystal_fraction(model.positions)
        held["crystal_fraction_fitted"] = fitted
        scattered = crystal - fitted >= SCATTER_DROP
        sig = float(verdicts.get("median_significance", np.inf))
        hold = crystal >= TRACER_SHARE_MIN_CRYSTAL and (
            scattered or sig < FAINT_POSITION_SIGNIFICANCE
        )
        why = (
            f": the fit left {100 * fitted:.0f} % of the atoms in a crystal class against "
            f"{100 * crystal:.0f} % traced"
            if scattered
            else f": measured at a median significance of {sig:.1f} (< "
            f"{FAINT_POSITION_SIGNIFICANCE:g}), enough to say they are there, not to place them"
        )
    else:
        hold = crystal >= TRACER_SHARE_MIN_CRYSTAL
        if not hold:
            held["positions"] = (
                f"refined: {100 * crystal:.0f} % of the atoms in a crystal class (< "
                f"{100 * TRACER_SHARE_MIN_CRYSTAL:.0f} %), not held as a crystal's are (the "
                "held-out images may still send them back: faint_verdicts.held_out)"
            )
    if not hold:
        info = {**info, "faint_verdicts": held}
        model.metadata["refinement"] = info
        return model, info
    positions = model.positions.copy()
    positions[faint] = origin[faint]
    held["positions"] = f"{int(faint.sum())} {held['element']} atoms kept as traced{why}"
    held["n_positions_held"] = int(faint.sum())
    info = {**info, "faint_verdicts": held}
    return _moved(model, positions, info, origin), info


def _with_tracer_share(model, info, source, origin):
    """``(model, info)`` with each traced atom moved :data:`TRACER_SHARE`-weighted back toward
    its traced position, by how far the fit moved the atoms against the fit's own error on the
    replicate (``info["tracer_share"]``); unchanged without a replicate or a refinement."""
    if source is None or "not_refined" in info or origin is None:
        return model, info
    if len(origin) != model.n_atoms or "refine_added" not in model.features:
        return model, info
    rms = source.get("replicate_rms_pm") or {}
    corr = info.get("counts_correction") or {}
    if source.get("source") == "denoised" and corr.get("applied"):
        fit_error = rms.get("denoised_corrected") or rms.get("denoised")
    else:
        fit_error = rms.get(source.get("source"))
    traced = model.features["refine_added"].to_numpy(np.int8) == 0
    shift = model.positions - np.asarray(origin, float)
    fitted = traced.copy()  # how far the fit moved atoms: not over an alloy's faint atoms
    faint = _held_faint(model, info)  # held as traced (_with_faint_positions_held)
    if faint is not None and info["faint_verdicts"].get("n_positions_held"):
        fitted &= ~faint
    if fit_error is None or fitted.sum() < 4:
        return model, info
    moved = 100.0 * float(np.sqrt(np.mean(np.sum(shift[fitted] ** 2, axis=1))))
    if not moved > 0:
        return model, info
    # crystal or glass alike (TRACER_SHARE): the weight says how good the traced positions are
    w = TRACER_SHARE * min(1.0, (float(fit_error) / moved) ** 2)
    record = {
        "weight": w,
        "crystal_fraction": _crystal_fraction(np.asarray(origin, float)),
        "crystal_fraction_fitted": _crystal_fraction(model.positions),
        "fit_error_pm": float(fit_error),
        "shift_rms_pm": moved,
        "share": TRACER_SHARE,
    }
    positions = model.positions.copy()
    positions[traced] -= w * shift[traced]
    info = {**info, "tracer_share": record}
    return _moved(model, positions, info, origin), info


def _moved(model, positions, info, origin=None) -> AtomModel:
    """``model`` with ``positions`` and ``info`` as its refinement record; with ``origin``
    (the traced positions) its ``refine_shift_A`` measured again from them."""
    features = model.features.copy()
    if origin is not None and "refine_shift_A" in features:
        features["refine_shift_A"] = np.linalg.norm(positions - np.asarray(origin), axis=1)
    out = AtomModel(positions, features, dict(model.metadata))
    out.metadata["refinement"] = info
    return out
