"""Refinement of a traced atom model's positions against the measured tilt series."""

from __future__ import annotations

import numpy as np

from ..core.atoms import AtomModel
from ..core.elements import parse_elements
from ..core.progress import check_cancel, prefixed
from ..forward import MIN_MODEL_CORRELATION
from ._faint_held_out import faint_positions_by_held_out
from ._final_verdicts import (
    _without_hanging_atoms,
    _without_sparse_faint_atoms,
    _without_squeezed_atoms,
)
from ._held_out import held_out_check, held_verdicts, marginal_fit, refused_record
from ._position_source import choose_position_source
from ._post_fit import (
    _with_counts_correction,
    _with_counts_moves_back,
    _with_faint_positions_held,
    _with_tracer_share,
)
from ._restrained import with_restrained_positions
from ._trials import (
    SITE_MIN_NEIGHBOURS,
    _trial_candidates,
    off_lattice_of_close_pairs,
    residual_trials,
    site_trials,
)
from ._verdicts import REFINE_FEATURES, _fit_and_judge

#: Another pass (up to ``residual_passes``) runs only while a pass added at least
#: :data:`RESIDUAL_MIN_ADDED` of the atoms and the images told its atoms from its noise: the
#: significance (amplitude over its standard error) of the trials they kept, at its 10th
#: percentile, above the 99th percentile of the trials they rejected (a ratio of at least
#: this). Measured on independent series, with every pass forced and the kept trials labelled
#: by the truth: a 3,259-atom Pt polyhedron, passes 1 and 2 at 2.4 and 2.3 (all 193 atoms they
#: added were real; 1.50 -> 0.43 % identification error); a 2,340-atom amorphous Pt particle
#: at a third of the counts, 1.11 and 1.22 (85 of 89 and 8 of 10 real; 2.18 -> 1.71 %); a
#: twinned Pt dumbbell at a third, 1.43 (14 of 14 real, then 1 of 2); a 12,759-atom amorphous
#: Si particle at 4.4 counts per pixel, 0.95, 0.89 and 0.87 (passes 2 and 3 added 306 and 113
#: real atoms and 449 and 445 false ones).
RESIDUAL_SEPARATION = 1.0
#: ... (a fraction of the atoms: a pass that adds fewer leaves little for the next; whether it
#: reached its cap does not say: the same polyhedron with the tilt axis held vertical had 601
#: trials, 15 under the cap, and 161 of them real atoms, and stopped at 0.92 %)
RESIDUAL_MIN_ADDED = 0.005
#: After the residual passes, at most this many passes try the empty sites of the model's own
#: lattice (:func:`napari_aet.trace._trials.site_trials`; :func:`_site_passes`).
SITE_PASSES = 2
#: How the fits weigh the pixels (:func:`napari_aet.forward.refine_atomic_model`):
#: ``"variance"`` weighs each by the inverse of a noise variance fitted to grow linearly with
#: the signal (counting noise: an atom's bright core is noisier than the background). On the
#: independent series of docs/benchmarks.md it took the final RMSD down by 0.1-0.5 pm in 15
#: of 18 cases (the 2,376-atom dumbbell at 256 px from 11.1 to 10.6 pm), left 2 unchanged and
#: put 0.9 pm on Ni at a third of the counts (still so with the background rule of
#: :data:`napari_aet.forward._noise_model.MIN_VARIANCE_FRACTION`, which made a small simulated
#: Pt-Ni alloy without background fall back to uniform weights instead of moving a faint Ni
#: atom 1.35 A). Not the default until the Ni loss is understood.
WEIGHTING = "uniform"


def refine_atom_positions(
    atoms: AtomModel,
    images,
    angles_deg,
    *,
    pixel_size_A: float,
    iterations: int = 60,
    refine_geometry: bool = False,
    candidates=None,
    element="Pt",
    residual_pass: bool = True,
    residual_passes: int = 3,
    site_pass: bool = True,
    judge_images=None,
    denoiser=None,
    weighting: str = WEIGHTING,
    held_out: bool = True,
    restraints: bool = True,
    device: str = "auto",
    progress=None,
    cancel=None,
) -> tuple[AtomModel, dict]:
    """Move each traced atom to where the measured images put it.

    A tomogram blurs atoms along the missing wedge and the tracer reads positions off it; the
    images themselves are sharper evidence. Every atom's position (and amplitude) is refined by
    least squares against every pixel of every aligned image
    (:func:`napari_aet.align.refine_atomic_model`), the angles and image offsets held (or also
    refined, ``refine_geometry``). On the sample this halves the positions' RMSD against the
    truth (18 to 9 pm, see docs/benchmarks.md).

    When the refined model cannot be trusted (it fits the images poorly, or its atoms are not
    resolved: :func:`napari_aet.align.why_untrusted`) the positions are kept as traced and the
    reason is returned in ``info["not_refined"]``. A poor fit alone is not the last word
    (``held_out``): at very low counts the true atoms fit the counts poorly too, and the
    images decide instead whether a refinement beats the tracer
    (:func:`~napari_aet.trace._held_out.held_out_check`).

    Parameters
    ----------
    atoms : AtomModel
        Traced atoms in the volume frame of a reconstruction of ``images``.
    images : ndarray of shape (n_images, rows, cols)
        The aligned tilt series the atoms were reconstructed from.
    angles_deg : array-like of shape (n_images,)
        Its tilt angles [degrees].
    pixel_size_A : float
    iterations : int
        L-BFGS iterations of the joint stage.
    refine_geometry : bool
        Also refine the angles and offsets (the model is then rotated/translated to the gauge).
    candidates : pandas.DataFrame, optional
        The tracer's candidates (``z, y, x, intensity, is_atom``; ``candidates.csv``). With
        them the images also decide the tracer's doubtful calls: rejected candidates that are
        not too faint and not on an atom join the fit as trial atoms; a trial atom whose
        refined amplitude rises above :data:`ADD_AMPLITUDE` of the median atom's is added, a
        traced atom whose amplitude falls below :data:`DROP_AMPLITUDE` (for one element, also
        one :data:`OUTLIER_SIGMAS` robust standard deviations below the median, a bar of at
        most :data:`ADD_AMPLITUDE`) is removed, and of two atoms that end closer than 0.6
        nearest-neighbour distances the fainter goes. For one element, an atom that hangs off
        a dense packing in the final positions (fewer than 3 neighbours) goes at the end
        (``info["hanging_atoms"]``), and so does, of two atoms closer than 0.8
        nearest-neighbour distances, the one off its neighbours' lattice
        (``info["squeezed_atoms"]``), and an atom with at most 5 neighbours that the images
        show under :data:`ADD_AMPLITUDE` (``info["sparse_atoms"]``). The feature
        ``refine_added`` marks the added atoms.
    element : str or sequence of str
        Several elements (an alloy): each atom's ``element`` is then its class of refined
        amplitude (:func:`classify_species`), and amplitudes are measured against the
        faintest species' median, so that light atoms are not taken for false ones.
    residual_pass : bool
        With ``candidates``: then a second pass tries atoms where the images show density that
        the refined model lacks and no candidate covered (:func:`residual_trials`: peaks of a
        tomogram of the residual images), judged the same way; ``info["residual_pass"]``
        says what it found. Atoms it adds have no tracer ``intensity`` (NaN). Then up to
        :data:`SITE_PASSES` passes try the empty sites of the model's own lattice
        (:func:`~napari_aet.trace._trials.site_trials`), which join at the bar an atom stays at
        (``info["site_pass"]``), and a last one the sites of the final positions, held
        (``info["site_pass"]["last"]``), unless ``site_pass`` is False.
    site_pass : bool
        With ``residual_pass``: the passes over the empty sites of the model's own lattice.
    residual_passes : int
        Most residual passes: another runs while a pass added atoms
        (:data:`RESIDUAL_MIN_ADDED`) and the trials the images kept stood clear of those they
        rejected
        (:data:`RESIDUAL_SEPARATION`; ``info["residual_pass"]["per_pass"]``): where the images
        cannot tell a missed atom from noise (a thick light-element particle at low counts),
        more passes add false atoms as fast as real ones and do not run.
    judge_images : ndarray like ``images``, optional
        With ``candidates``: the images on which the verdicts are reached, when ``images``
        are a denoised series: the undenoised counts, in the same aligned frame. Positions
        are fitted to ``images`` (a denoiser's smoother images place atoms better); each
        atom's amplitude and its standard error are then fitted to ``judge_images`` with the
        positions held, and which atoms stay, join or go, and where the residual passes look,
        follow from those (a denoiser can erase a faint or sharp atom, or paint a plausible
        one, and the counts cannot). When that fit cannot be trusted
        (:func:`napari_aet.forward.why_untrusted`: the counts do not resolve the atoms) the
        atoms are kept as traced, as they are when ``images`` are counts that the model fits
        poorly (``info["not_refined"]``; ``info["judged_on"]`` is ``"images"``): the denoised
        series fits well because it is smooth, and on independent series at a tenth of the
        study's counts its verdicts added false atoms and its positions moved atoms away.
    denoiser : callable, optional
        With ``judge_images``: what made ``images`` from them (``denoiser(counts) -> images``).
        The positions are then fitted to whichever of the two places atoms better on a
        replicate with known positions (:func:`choose_position_source`, after the first fit;
        ``info["position_source"]``): a denoiser's images suit a crystal and can bias an
        amorphous particle's positions more than the counts' noise moves them. When the counts
        win, everything is fitted to them from then on (as with ``images=judge_images``). When
        the denoised images win, the final atoms are fitted once more to the counts and the
        smooth part of how far that moves them is added (a denoiser shrinks a smooth strain
        field as well as each atom's own displacement:
        :mod:`~napari_aet.trace._counts_correction`; ``info["counts_correction"]``).
    weighting : {"uniform", "variance"}
        How every fit weighs the pixels (:data:`WEIGHTING`; ``refine_atomic_model``'s
        ``weighting``): plain least squares, or by the inverse of a noise variance fitted to
        grow with the signal. ``info["weighting"]`` records the fitted noise model.
    held_out : bool
        When the fit is refused for its poor correlation with the images alone (its atoms
        resolved): refine on every other image (by angle; the counts, when ``judge_images``
        are given, judge), and compare that model with the traced atoms on the images it did
        not see (:func:`napari_aet.forward.held_out_comparison`). When it predicts them better
        (:data:`~napari_aet.trace._held_out.HELD_OUT_T`) the refinement on all images is
        used, judged by its atoms' width alone; otherwise the traced atoms stay. For atoms
        that are not a crystal the burden of proof turns: the refinement stands unless the
        traced atoms predict the held-out images better by ``HELD_OUT_T``; and the same test
        judges their fit when it passed the bar but correlates with the counts below
        :data:`~napari_aet.trace._held_out.HELD_OUT_CORRELATION`. Where they stay and
        ``candidates`` are given, the counts, positions held, decide which atoms stay or join
        (``info["held_verdicts"]``). ``info["held_out"]`` records the test. Not for several
        elements (the comparison images equal atoms) or fewer than ``2 * HELD_OUT_MIN_IMAGES``
        images (:mod:`~napari_aet.trace._held_out`).
    restraints : bool
        For one element, fit the refined atoms' final positions to the counts once more with
        their bonds restrained, at the prior bond-length spread that the held-out images
        choose, or not at all (:mod:`napari_aet.trace._restrained`; ``info["restraints"]``).

    Returns
    -------
    (AtomModel, dict)
        The refined model, with the features ``refine_shift_A`` (how far each atom moved) and
        ``refine_amplitude`` (its fitted amplitude over the median: near 0 suggests a false
        atom), and a JSON-serialisable summary.
    """

    params = dict(
        pixel_size_A=pixel_size_A, iterations=iterations, refine_geometry=refine_geometry,
        candidates=candidates, element=element, residual_pass=residual_pass,
        residual_passes=residual_passes, site_pass=site_pass, denoiser=denoiser,
        weighting=weighting, device=device, progress=progress, cancel=cancel,
    )  # fmt: skip
    model, info, origin = _refine_once(
        atoms, images, angles_deg, judge_images=judge_images, return_origin=True, **params
    )
    poor = "not_refined" in info and info.get("poor_fit_only")
    marginal = marginal_fit(info, model, atoms)
    check = None
    if held_out and (poor or marginal is not None):
        # the images' fit alone cannot say (very low counts): images the refinement never saw do
        check_cancel(cancel, "refinement")
        check = held_out_check(
            atoms, images, angles_deg, judge_images, params, refine_once=_refine_on_part
        )
        if marginal is not None:
            check.update(marginal)
    if check is None or (marginal is not None and check["verdict"] != "traced"):
        # the refinement stands (a marginal one: vindicated, or no test could run: several
        # elements, too few images or atoms, as before the test existed)
        if held_out and "not_refined" not in info:
            # an alloy's faint atoms: the fit's positions or the tracer's, by the held-out images
            model, info = faint_positions_by_held_out(
                model, info, origin, atoms, images, angles_deg, judge_images, params,
                refine_once=_refine_on_part,
            )  # fmt: skip
        if restraints and "not_refined" not in info:
            model, info = with_restrained_positions(
                model, info, images, angles_deg, judge_images, params, origin
            )
        if check is not None:
            info["held_out"] = check
            model.metadata["refinement"] = info
        return model, info
    if marginal is not None:  # the refinement goes; the traced atoms stay, judged as below
        model = AtomModel(atoms.positions, atoms.features.copy(), dict(atoms.metadata))
        info = refused_record(info, marginal["counts_correlation"])
    if check["verdict"] == "refined":
        params["progress"] = prefixed(progress, "refinement the held-out images vindicated: ")
        model, info = _refine_once(
            atoms, images, angles_deg, judge_images=judge_images, min_correlation=0.0,
            tracer_share=False, **params,
        )  # fmt: skip
        if restraints and "not_refined" not in info:
            model, info = with_restrained_positions(
                model, info, images, angles_deg, judge_images, params
            )
    elif candidates is not None:
        # the positions stay as traced; the counts may still say which atoms are there
        check_cancel(cancel, "refinement")
        model, info["held_verdicts"] = held_verdicts(
            atoms, images if judge_images is None else judge_images, angles_deg, params
        )
    info["held_out"] = check
    model.metadata["refinement"] = info
    return model, info


def _refine_once(atoms, images, angles_deg, *, pixel_size_A, iterations, refine_geometry,
                 candidates, element, residual_pass, residual_passes, judge_images, denoiser,
                 site_pass=True, final=True,
                 weighting, device, progress, cancel,
                 min_correlation=MIN_MODEL_CORRELATION, tracer_share=True,
                 return_origin=False):  # fmt: skip
    """:func:`refine_atom_positions` without the held-out images' verdict; ``min_correlation``
    is the bar of every fit's :func:`~napari_aet.forward.why_untrusted`; ``tracer_share``:
    the traced positions' share of the final ones (:data:`TRACER_SHARE`); ``final``: the
    model is the result (not a held-out test's), so the last site pass and the packing
    verdicts run (:func:`_last_site_pass`, :func:`_without_squeezed_atoms`,
    :func:`_without_sparse_faint_atoms`, :func:`_without_hanging_atoms`)."""
    judge = candidates is not None
    if judge_images is not None:
        judge_images = np.asarray(judge_images, np.float32)
        if judge_images.shape != np.shape(images):
            raise ValueError(
                f"judge_images has shape {judge_images.shape} but the images {np.shape(images)}: "
                "give the same series (same alignment) before and after the denoiser"
            )
    kw = dict(pixel_size_A=pixel_size_A, iterations=iterations, refine_geometry=refine_geometry,
              element=element, device=device, progress=progress, cancel=cancel,
              judge_images=judge_images if judge else None, weighting=weighting,
              min_correlation=min_correlation)  # fmt: skip
    trial, trial_intensity = _trial_candidates(atoms, candidates)
    model, info, res, origin, kept = _fit_and_judge(
        atoms, images, angles_deg, trial, trial_intensity, judge=judge, origin=None, **kw
    )
    source = None
    if denoiser is not None and info.get("judged_on") == "judge_images" and kept is not None:
        check_cancel(cancel, "refinement")
        source = choose_position_source(
            res, denoiser, pixel_size_A=pixel_size_A, iterations=iterations, atoms=kept,
            weighting=weighting, min_correlation=min_correlation, device=device, cancel=cancel,
        )  # fmt: skip
        if source["source"] == "counts":  # fit everything to the counts from here on
            images, judge_images = judge_images, None
            kw["judge_images"] = None
            model, info, res, origin, _ = _fit_and_judge(
                atoms, images, angles_deg, trial, trial_intensity, judge=judge, origin=None,
                **kw,
            )  # fmt: skip
        info["position_source"] = source
    held = "not_refined" in info or (info.get("faint_verdicts") or {}).get("applied") is False
    if not judge or not residual_pass or held or model.n_atoms < 4:
        model, info = _with_faint_positions_held(model, info, origin)
        # (an alloy's held verdicts too: its faint atoms' positions fitted to a denoised
        # series are judged on the counts like any others)
        model, info = _with_counts_moves_back(model, info, source, judge_images, origin,
                                              angles_deg=angles_deg, **kw)  # fmt: skip
        model, info = _with_counts_correction(
            model, info, source, judge_images, origin, angles_deg=angles_deg, **kw
        )
        hanging = final and judge and not held and len(parse_elements(element)) == 1
        return _finish(model, info, source, origin, tracer_share, return_origin, hanging)
    imgs = np.asarray(images, np.float32)
    passes, n_first, last_info = [], (info["n_added"], info["n_removed"]), info
    n_first_trials = info["n_trial_candidates"]
    for _ in range(max(1, int(residual_passes))):
        check_cancel(cancel, "refinement")
        # the residual of the images the verdicts were reached on (the counts whenever given:
        # a fit whose counts could not judge kept the traced atoms and ended before this)
        base = imgs if judge_images is None else judge_images
        # an alloy's bars are its faintest element's: a noise peak chosen on the images that
        # judge it passes for a light atom, so the peaks are chosen on one half of the images
        # and confirmed on the other (one element: a whole atom's bar; as before)
        extra, rinfo = residual_trials(
            base - res.model_images, res.angles_deg, model.positions,
            pixel_size_A=pixel_size_A, device=device, cancel=cancel,
            split_halves=len(parse_elements(element)) > 1,
        )  # fmt: skip
        passes.append(rinfo)
        if not len(extra):
            break
        model2, info2, res2, origin2, kept = _fit_and_judge(
            model, images, angles_deg, extra, np.full(len(extra), np.nan), judge=True,
            origin=origin, **kw,
        )  # fmt: skip
        if "not_refined" in info2:
            rinfo["not_refined"] = info2["not_refined"]
            break
        rinfo.update({k: info2[k] for k in ("n_added", "n_removed")})
        _keep_added_marks(model, model2, len(extra), kept)
        model, res, origin, last_info = model2, res2, origin2, info2
        sep = info2.get("trial_separation")
        rinfo["separation"] = sep
        enough = info2["n_added"] >= max(1.0, RESIDUAL_MIN_ADDED * model2.n_atoms)
        if not enough or sep is None or sep < RESIDUAL_SEPARATION:
            break
    summary = dict(passes[0])
    summary.update(
        {
            "passes": len(passes),
            "n_trials": int(sum(p.get("n_trials", 0) for p in passes)),
            "n_added": int(sum(p.get("n_added", 0) for p in passes)),
            "n_removed": int(sum(p.get("n_removed", 0) for p in passes)),
            "per_pass": passes,
        }
    )
    sites = {"n_added": 0, "n_removed": 0}
    if site_pass:
        model, res, origin, last_info, sites = _site_passes(
            model, res, origin, last_info, images, angles_deg, kw, cancel
        )
    info = dict(last_info)
    info["residual_pass"] = summary
    if site_pass:
        info["site_pass"] = sites
    info["n_added"] = n_first[0] + summary["n_added"] + sites["n_added"]
    info["n_removed"] = n_first[1] + summary["n_removed"] + sites["n_removed"]
    info["n_trial_candidates"] = n_first_trials
    if source is not None:
        info["position_source"] = source
    model.metadata["refinement"] = info
    # an alloy's measured faint atoms that the fit scattered off the tracer's crystal
    model, info = _with_faint_positions_held(model, info, origin)
    model, info = _with_counts_moves_back(model, info, source, judge_images, origin,
                                          angles_deg=angles_deg, **kw)  # fmt: skip
    model, info = _with_counts_correction(
        model, info, source, judge_images, origin, angles_deg=angles_deg, **kw
    )
    if site_pass and final:
        if tracer_share:  # the final positions first: the last site pass tries their sites
            model, info = _with_tracer_share(model, info, source, origin)
            tracer_share = False
        if len(parse_elements(element)) == 1:  # a squeezed atom's site is then tried again
            model, info, origin = _without_squeezed_atoms(model, info, origin)
        model, info, origin = _last_site_pass(model, info, origin, images, angles_deg, kw)
    hanging = final and len(parse_elements(element)) == 1
    return _finish(model, info, source, origin, tracer_share, return_origin, hanging)


def _last_site_pass(model, info, origin, images, angles_deg, kw):
    """``(model, info, origin)`` with the empty sites of the final positions' lattice that
    the images fill (judged as in :func:`_site_passes`, the positions held) added
    (``info["site_pass"]["last"]``); no atom goes. The fitted positions scatter a bond's
    landings (:func:`site_trials`), the final ones less: on the faulted 256-px dumbbell at a
    third of the counts 21 of the final model's 41 missed atoms stood at its sites, 13 at
    full ones."""
    trial = site_trials(model.positions)
    record = {"n_trials": int(len(trial)), "n_added": 0}
    if len(trial):
        check_cancel(kw["cancel"], "refinement")
        judged, info2, _, _, kept = _fit_and_judge(
            model, images, angles_deg, trial, np.full(len(trial), np.nan), judge=True,
            origin=origin, site_trials=True, refine_positions=False, **kw,
        )  # fmt: skip
        if "not_refined" in info2:
            record["not_refined"] = info2["not_refined"]
        elif kept[model.n_atoms :].any():
            import pandas as pd

            k = int(kept[model.n_atoms :].sum())
            added = judged.features.iloc[-k:].reset_index(drop=True)
            added["refine_added"] = np.int8(1)
            features = pd.concat([model.features, added], ignore_index=True)
            features = features.astype(model.features.dtypes.to_dict(), errors="ignore")
            positions = np.vstack([model.positions, judged.positions[-k:]])
            origin = np.vstack([np.asarray(origin, float), trial[kept[model.n_atoms :]]])
            model = AtomModel(positions, features, dict(model.metadata))
            record["n_added"] = k
    info = {**info, "n_added": int(info.get("n_added", 0)) + record["n_added"]}
    info["site_pass"] = {**info.get("site_pass", {}), "last": record}
    model.metadata["refinement"] = info
    return model, info, origin


def _refine_on_part(*args, **kwargs):
    """:func:`_refine_once` for the held-out tests' refinements on part of the images: no last
    site pass and no packing verdicts (hanging and squeezed atoms: the final model's, on its
    final positions: a fit to half of the images scatters the atoms, and on an independent
    dumbbell at a tenth of the counts 47 of 316 such atoms hung)."""
    return _refine_once(*args, final=False, **kwargs)


def _keep_added_marks(model, judged, n_trials, kept) -> None:
    """``judged`` (``model`` plus ``n_trials`` trials, ``kept`` of them) marks as added
    (``refine_added``) the atoms any pass added: ``model``'s marks and every kept trial."""
    added = np.r_[model.features["refine_added"].to_numpy(np.int8), np.ones(n_trials, np.int8)]
    judged.features["refine_added"] = added[kept]


def _site_passes(model, res, origin, info, images, angles_deg, kw, cancel):
    """Up to :data:`SITE_PASSES` fits with the empty sites of the model's own lattice as trials
    (:func:`site_trials`; they join at the bar an atom stays at), while a pass adds at least
    :data:`RESIDUAL_MIN_ADDED` of the atoms (a missed atom's neighbours are often missed too:
    the next pass sees their sites). Then, for one element, of two atoms too close to both be
    there, the one whose place the bonds around it predict clearly less, and that the last fit
    found fainter, goes (:func:`~napari_aet.trace._trials.off_lattice_of_close_pairs`).
    Returns the model, its fit (before that removal), its origin, the last fit's info and a
    summary (``info["site_pass"]``)."""
    summary = {"min_neighbours": SITE_MIN_NEIGHBOURS, "passes": 0, "n_trials": 0,
               "n_added": 0, "n_removed": 0, "per_pass": []}  # fmt: skip
    for _ in range(SITE_PASSES):
        check_cancel(cancel, "refinement")
        trial = site_trials(model.positions)
        if not len(trial):
            break
        model2, info2, res2, origin2, kept = _fit_and_judge(
            model, images, angles_deg, trial, np.full(len(trial), np.nan), judge=True,
            origin=origin, site_trials=True, **kw,
        )  # fmt: skip
        step = {"n_trials": int(len(trial))}
        summary["per_pass"].append(step)
        summary["passes"] += 1
        summary["n_trials"] += len(trial)
        if "not_refined" in info2:
            step["not_refined"] = info2["not_refined"]
            break
        step.update({k: int(info2[k]) for k in ("n_added", "n_removed")})
        step["bar"] = float(info2["drop_amplitude"])
        summary["n_added"] += step["n_added"]
        summary["n_removed"] += step["n_removed"]
        _keep_added_marks(model, model2, len(trial), kept)
        model, res, origin, info = model2, res2, origin2, info2
        if info2["n_added"] < max(1.0, RESIDUAL_MIN_ADDED * model2.n_atoms):
            break
    # of two atoms too close to both be there, which the images kept, the fainter one off the
    # lattice (one element: an alloy's faint atoms are placed less well beside heavy ones and
    # fall off their lattice by noise; on a 128-px Fe-Pt series it took out three real atoms)
    drop = np.zeros(model.n_atoms, bool)
    if len(parse_elements(kw["element"])) == 1:
        amp = model.features.get(REFINE_FEATURES[1])  # the last fit's, on the counts if judged
        drop = off_lattice_of_close_pairs(
            model.positions, None if amp is None else amp.to_numpy(float)
        )
    summary["n_off_lattice_removed"] = int(drop.sum())
    if drop.any():
        model, origin = model.subset(~drop), origin[~drop]
        summary["n_removed"] += int(drop.sum())
    return model, res, origin, info, summary


def _finish(model, info, source, origin, tracer_share, return_origin, hanging=False):
    """:func:`_refine_once`'s result: with the traced positions' share when ``tracer_share``,
    without the atoms squeezed beside another, the faint ones the packing does not vouch for
    and those that hang off a dense packing when ``hanging`` (the verdicts ran, one element:
    :func:`_without_squeezed_atoms`, :func:`_without_sparse_faint_atoms`,
    :func:`_without_hanging_atoms`), and with where each of its atoms started (``origin``)
    when ``return_origin``."""
    if tracer_share:
        model, info = _with_tracer_share(model, info, source, origin)
    if hanging:
        model, info, origin = _without_squeezed_atoms(model, info, origin)
        model, info, origin = _without_sparse_faint_atoms(model, info, origin)
        model, info, origin = _without_hanging_atoms(model, info, origin)
    return (model, info, origin) if return_origin else (model, info)
