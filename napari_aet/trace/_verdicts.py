"""The images' verdicts on a traced atom model: one fit of the atoms (and trial atoms) and
which of them stay, join or go by their fitted amplitudes (:func:`_fit_and_judge`), judged on
the counts when the fitted images were denoised (:func:`_judge_fit`); where each stands among
the others is :mod:`._packing`'s to say. The refine stage
(:func:`napari_aet.trace.refine_atom_positions`) runs it on every pass."""

from __future__ import annotations

import numpy as np

from ..core.atoms import AtomModel
from ..core.elements import parse_elements
from ..core.progress import check_cancel
from ..forward import MIN_MODEL_CORRELATION, refine_atomic_model, why_untrusted
from ._counts_moves import counts_prefer_origin, traced_starts
from ._packing import (
    DUPLICATE_SPACING,
    FULL_SITE_NEIGHBOURS,
    TRIAL_MIN_NEIGHBOURS,
    _crystal_fraction,
    _full_sites,
    _hanging_trials,
    _held_under_the_bar,
    _nearest_atom_of_trials,
    _on_the_lattice,
    _without_duplicates,
)
from ._tracer import classify_species

#: Atoms that the refinement moved further than this [A] are worth a look in the review.
LARGE_SHIFT_A = 0.5
#: The per-atom features :func:`refine_atom_positions` adds.
REFINE_FEATURES = ("refine_shift_A", "refine_amplitude")
#: With candidates, also: each atom's refined amplitude over its standard error
REFINE_SIGNIFICANCE = "refine_significance"
#: With candidates: a traced atom whose refined amplitude falls below this fraction of the
#: median atom's is removed (the images do not show it) ...
DROP_AMPLITUDE = 0.35
#: ... and a rejected candidate whose refined amplitude rises above this fraction joins.
ADD_AMPLITUDE = 0.6
#: One element: an atom whose amplitude lies more than this many robust standard deviations
#: (1.4826 MAD of the atoms' amplitudes) below the median atom's is not an atom like the others
#: and goes too, up to a bar of :data:`ADD_AMPLITUDE` (what a trial needs to join; at high
#: counts the spread is small and real atoms that the image model fits a little less well
#: would go: uncapped, the bar was 0.85 on a test series and a real Pt atom went). What the
#: images show there is a fraction of an atom: the density between close neighbours or a
#: neighbour's misplaced share. Measured on the final models of independent series (atoms
#: below the bar, true / false by the truth): amorphous Pt at a third of the counts 1 / 10
#: (bar 0.45), a Pt polyhedron with acquisition faults 1 / 3 (0.6), at the study's counts
#: 0 / 1 (0.6); a twinned Pt dumbbell and an Au particle at a third of the counts, a
#: multislice Pt particle and amorphous Si at 4.4 counts per pixel: none (bars 0.35-0.6).
#: 3.5 standard deviations: a real atom of a normal spread falls below it once in 4,000.
OUTLIER_SIGMAS = 3.5
#: An alloy's bars are set on its faintest element's median amplitude, taken from the traced
#: atoms and the trials whose amplitude stands at least this many standard errors above 0
#: (clearly atoms of some element; a trial on nothing reaches it once in 700).
SPECIES_TRIAL_Z = 3.0
#: When neither the images' fit nor the held-out images trust a refinement (very low counts),
#: the counts still decide the tracer's doubtful calls with the positions held as traced
#: (:func:`~._held_out.held_verdicts`), provided they measure the traced atoms' amplitudes to
#: at least this many standard errors (median): a real atom of the median amplitude then falls below
#: the drop bar (0.35) only beyond 3.2 standard errors, and a trial on nothing rises above the
#: add bar (0.6) only beyond 3. Measured on independent 128-px series at a tenth of the
#: study's counts (6-7 on the brightest column; docs/benchmarks.md, twenty-sixth session),
#: where the counts' fit from the true positions moves atoms 30 pm (the traced ones are
#: 19-33 pm off): median significance 5.2-8.5, identification error 9.4 -> 6.0 % and
#: 7.5 -> 4.1 % (twinned Pt dumbbells), 9.1 -> 7.7 % (Pt polyhedron), 16.1 -> 8.0 % and
#: 2.4 -> 1.0 % (Au), 10.1 -> 6.7 % (Pd), positions unchanged; a misaligned series (3.2) and
#: a 256-px dumbbell (3.1, more atoms per projected column) were left alone, where the bars
#: would have removed 43 and 295 atoms (forced on the dumbbell they took it from 17.6 to
#: 25.0 %: 201 more misses for 26 fewer false atoms). The held-out test cannot judge these verdicts
#: (t -0.3 to +2.5: a few atoms in ten images at these counts).
HELD_VERDICT_SIGNIFICANCE = 5.0
#: The same bar holds an alloy's verdicts in a refinement that ran: where the counts measure its
#: faintest element's traced atoms below it (median), the images cannot tell those atoms from
#: nothing, and the verdicts (joins, drops) would be coin flips; the traced atoms stay, with
#: refined positions and elements from their amplitudes (``info["faint_verdicts"]``), and only
#: a candidate measured on its own joins (:data:`~._packing.ALLOY_TRIAL_MIN_NEIGHBOURS`).
#: Independent Fe-Pt series with the alloy U-Net (docs/benchmarks.md, twenty-ninth session):
#: at a third of the study's counts (Fe median significance 2.9) traced 7.36 %, after the
#: verdicts 17.93 %, held 10.11 %; with acquisition faults (4.4) 5.98, 10.80 and 7.82 %. It
#: costs where the tracer missed many of the faint atoms: a 256-px Fe-Pt particle, 847 of
#: 1,905 Fe missed (3.7), 22.33 % applied, 26.97 % held.
#: An alloy's trial atom joins only where the counts measure its amplitude to at least this
#: many standard errors, the bar the held verdicts put on the faintest element's median: the
#: add bar (:data:`ADD_AMPLITUDE`) is set on the faintest element's amplitude, and where the
#: image model misfits a heavy atom's neighbourhood the residual looks like a faint atom that
#: clears it at 3-5 standard errors. On independent 128-px series (docs/benchmarks.md,
#: forty-fourth session), of the trials the verdicts added below the bar none was a true atom
#: and 11 (Ni-Pd-Pt at the study's counts: 10; Fe-Pt at five times them: 1) were false; one
#: element is left as it was (its add bar, 0.6 of a heavy atom, lies far above the noise).
ALLOY_TRIAL_SIGNIFICANCE = HELD_VERDICT_SIGNIFICANCE
#: A full site (:func:`~._packing._full_sites`, :data:`~._packing.FULL_SITE_NEIGHBOURS` around
#: an atom-sized hole) holds an atom (a traced one stays, an empty lattice site's trial joins)
#: when the images show at least this fraction of the median atom's amplitude there, below the
#: bars elsewhere (:data:`DROP_AMPLITUDE`): an atom-sized hole inside a metal is a vacancy, rare
#: in a nanoparticle, and a real atom there may fit faint at low counts.
FULL_SITE_AMPLITUDE = 0.1
#: An alloy crystal's drop bar comes down (from :data:`DROP_AMPLITUDE`, to 0 at the lowest) to
#: :data:`OUTLIER_SIGMAS` robust standard deviations below its faintest element's median traced
#: amplitude, the spread measured over at least this many of those atoms
#: (:func:`_faint_drop_bar`; the atoms only it keeps stand on the lattice,
#: :data:`~._packing.FAINT_KEEP_MIN_NEIGHBOURS`). Their standard errors count the counting noise
#: alone; their spread also holds what the image model misses beside heavier atoms (a light
#: atom's share of a heavy neighbour's misfit). On independent 128-px Fe-Pt series at the
#: study's counts (random and L1_0, two draws each; docs/benchmarks.md, fifty-third session) Fe
#: measured at 5.1-5.5 standard errors spread as if at 3.1-3.6, and every traced atom under the
#: fixed bar of 0.35 was a real Fe atom (3 of 3, 1 of 1, 3 of 3, 5 of 5; amplitudes 0.07-0.22 of
#: the median Fe for three with 12 neighbours each, where the empty-site pass found the same).
#: Not in an amorphous particle (:data:`TRACER_SHARE_MIN_CRYSTAL`), whose false atoms widen the
#: spread they would be judged by: a Ni-Pd-Pt one (seed 21) had 19 false and 1 real atom under
#: 0.35, and 12 false ones under the bar its spread gave (0).
SPREAD_MIN_ATOMS = 20
#: A crystal: at least this fraction of the refined atoms nearest an ideal crystal point (fcc,
#: hcp or bcc) of the Q4-Q6 map: an alloy's faint atoms are held where the tracer put them
#: only in a crystal (:func:`~napari_aet.trace._post_fit._with_faint_positions_held`), and
#: only there does their drop bar follow their spread (:func:`_faint_drop_bar`). Measured
#: on the refined atoms of 72 runs (docs/benchmarks.md, thirtieth session): every amorphous
#: one 0.00, every crystal 0.75-1.00, even at a tenth of the counts, but for a misaligned
#: series at a tenth of the counts whose atoms were 68 % wrong (0.06).
TRACER_SHARE_MIN_CRYSTAL = 0.5
#: With ``judge_images``: L-BFGS iterations of the amplitude fit on them (positions held).
JUDGE_ITERATIONS = 20


def _fit_and_judge(atoms, images, angles_deg, trial, trial_intensity, *, judge, origin,
                   pixel_size_A, iterations, refine_geometry, element, device, progress,
                   cancel, judge_images=None, weighting="uniform",
                   min_correlation=MIN_MODEL_CORRELATION, refine_positions=True,
                   site_trials=False):  # fmt: skip
    """One refinement of ``atoms`` plus ``trial`` atoms against the images; with ``judge``, the
    images (``judge_images`` when given, positions held) keep the trials that rise and drop
    the atoms that fade. ``origin``: where each of ``atoms`` started (the traced positions;
    default their positions) for ``refine_shift_A``. Returns ``(model, info, result the
    verdicts came from, origin of the kept atoms, kept mask or None)``. ``refine_positions``:
    False holds every atom where it is (amplitudes alone fitted). ``site_trials``: the trials
    are empty sites of the atoms' lattice (:func:`~napari_aet.trace._trials.site_trials`) and
    join at the bar a traced atom stays at (:func:`_drop_bar`), not at :data:`ADD_AMPLITUDE`:
    the lattice already says an atom is likely there, as the tracer did for a traced one, and
    an atom at a site the images show at 0.5 of the median would stay if it were there and
    not come if it were not."""
    start = np.vstack([atoms.positions, trial]) if len(trial) else atoms.positions
    res = refine_atomic_model(
        images,
        angles_deg,
        start,
        pixel_size_A=pixel_size_A,
        refine_positions=refine_positions,
        refine_angles=refine_geometry,
        refine_offsets=refine_geometry,
        iterations=iterations,
        return_images=judge,
        amplitude_sigmas=judge,
        weighting=weighting,
        device=device,
        progress=progress,
        cancel=cancel,
    )
    origin = np.vstack([atoms.positions if origin is None else origin, trial])
    # a denoised series is judged by its counts (_judge_fit): its own fit's width and
    # correlation are the denoiser's smoothing (BM3D widens an amorphous particle's atoms)
    counts_judge = judge and judge_images is not None
    why = "" if counts_judge else why_untrusted(res, min_correlation=min_correlation)
    info = {
        "iterations": iterations,
        "refine_geometry": refine_geometry,
        "sigma_A": res.sigma_A,
        "weighting": {"method": weighting, **res.weighting},
        "residual_start": res.residual[0],
        "residual_end": res.residual[-1],
        "image_correlation_median": float(np.median(res.image_correlation)),
        "angle_corrections_deg": res.angle_corrections_deg.tolist(),
        "offsets_px": res.offsets_px.tolist(),
    }
    if why:
        info["not_refined"] = why
        info["poor_fit_only"] = not why_untrusted(res, min_correlation=0.0)
        return atoms, info, res, origin[: atoms.n_atoms], None
    positions = res.positions_A
    if judge and judge_images is not None:
        res = _judge_fit(
            res, judge_images, info, pixel_size_A, refine_geometry, device, cancel, weighting,
            min_correlation,
        )  # fmt: skip
        if info["judged_on"] != "judge_images":
            # the counts do not resolve the atoms; the denoised images' good fit is the
            # denoiser's smoothness, not evidence: neither can judge, so nothing changes
            info["not_refined"] = (
                f"the undenoised counts do not support the atom model "
                f"({info['judge_images_untrusted']}); a denoised series alone cannot tell "
                "atoms from noise, so the traced positions are kept"
            )
            return atoms, info, res, origin[: atoms.n_atoms], None
        if not refine_geometry:  # (a fit that moved the geometry: the counts' would not match)
            positions, res = _traced_places_the_counts_prefer(
                res, judge_images, atoms, origin, info, pixel_size_A, device, cancel, weighting,
                min_correlation,
            )  # fmt: skip
    n0 = atoms.n_atoms
    shift = np.linalg.norm(positions - origin, axis=1)
    elements = parse_elements(element)
    ref = float(np.median(res.amplitudes[:n0]))
    faint = None  # which of the traced atoms (and clearly significant trials) are the faintest
    if len(elements) > 1 and n0 >= 3 * len(elements):
        # the faintest element's amplitude, from the traced atoms and the trials the counts
        # show clearly: when the tracer missed every atom of it (a U-Net trained on one
        # element erases Ni beside Pd and Pt), the traced atoms alone set the bars on the
        # next element, and its trials fell under the add bar
        amps = res.amplitudes[:n0]
        if judge and len(trial) and res.amplitude_sigma is not None:
            tz = res.amplitudes[n0:] / np.maximum(res.amplitude_sigma[n0:], 1e-30)
            amps = np.r_[amps, res.amplitudes[n0:][tz >= SPECIES_TRIAL_Z]]
        faint = _faintest(amps, elements)
        if faint is not None:
            ref = float(np.median(amps[faint]))
    amp_all = res.amplitudes / max(ref, 1e-30)
    info["amplitude_reference"] = max(ref, 1e-30)
    features = atoms.features.copy()
    if len(trial):
        import pandas as pd

        extra = pd.DataFrame({"intensity": trial_intensity}) if "intensity" in features else None
        features = pd.concat(
            [features, extra if extra is not None else pd.DataFrame(index=range(len(trial)))],
            ignore_index=True,
        )
        if "manual" in features:
            features["manual"] = features["manual"].fillna(0).astype(np.int8)
    features[REFINE_FEATURES[0]] = shift
    features[REFINE_FEATURES[1]] = amp_all
    keep = np.ones(len(start), bool)
    if judge:
        z = res.amplitudes / np.maximum(res.amplitude_sigma, 1e-30)
        features[REFINE_SIGNIFICANCE] = z
        bar = bar_fixed = _drop_bar(amp_all[:n0], single=len(elements) == 1)
        crystal = False
        if faint is not None:  # an alloy's crystal: as far below its faint atoms as they spread
            # (the particle's kind judged where the atoms started: at low counts a fit's
            # positions leave half of a crystal's atoms out of the crystal classes)
            info["crystal_fraction"] = _crystal_fraction(origin[:n0])
            crystal = info["crystal_fraction"] >= TRACER_SHARE_MIN_CRYSTAL
            if crystal:
                bar = _faint_drop_bar(amp_all[:n0][faint[:n0]], bar)
        info["drop_amplitude"] = bar
        held = None if faint is None else _faint_verdicts(z[:n0], faint[:n0], elements)
        waits = held is not None and not held["applied"]
        # where an alloy's verdicts wait the traced atoms stay (HELD_VERDICT_SIGNIFICANCE)
        keep[:n0] = True if waits else amp_all[:n0] >= bar
        if crystal and not waits and bar < bar_fixed:  # under the fixed bar only on the lattice
            keep[:n0] &= _held_under_the_bar(origin[:n0], amp_all[:n0], keep[:n0], bar_fixed)
        keep[n0:] = amp_all[n0:] >= (bar if site_trials else ADD_AMPLITUDE)
        if len(elements) == 1:  # a full site (FULL_SITE_NEIGHBOURS around an atom-sized hole)
            # holds an atom unless the images show nearly nothing there (FULL_SITE_AMPLITUDE)
            full = _full_sites(start, n0, site_trials, fitted=positions)
            low = full & ~keep & (amp_all >= FULL_SITE_AMPLITUDE)
            keep |= low
            info["full_sites"] = {
                "neighbours": FULL_SITE_NEIGHBOURS,
                "amplitude_bar": FULL_SITE_AMPLITUDE,
                "n_atoms": int(full[:n0].sum()),
                "n_trials": int(full[n0:].sum()),
                "n_atoms_kept_under_bar": int(low[:n0].sum()),
                "n_trials_joined_under_bar": int(low[n0:].sum()),
                "n_under_full_bar": int((full & (amp_all < FULL_SITE_AMPLITUDE)).sum()),
            }
        if len(elements) > 1:  # an alloy's trial joins only where the counts measure it, and
            # in a crystal where it stands on the lattice of the atoms kept
            # (ALLOY_TRIAL_MIN_NEIGHBOURS): so too where the verdicts wait, each trial being
            # judged by its own significance
            keep[n0:] &= z[n0:] >= ALLOY_TRIAL_SIGNIFICANCE
            if crystal:  # (where the atoms and trials started: a faint trial's fit wanders
                # by tenths of an angstrom, as far as a surface neighbour stands inside the
                # counting radius)
                keep[n0:] &= _on_the_lattice(start[:n0][keep[:n0]], trial, keep[n0:])
            if waits:  # a trial on a traced atom would take its place: it goes instead
                keep[n0:] &= (
                    _nearest_atom_of_trials(positions[:n0], positions[n0:]) >= DUPLICATE_SPACING
                )
        info["trial_separation"] = _separation(z[n0:], keep[n0:])
        unique = _without_duplicates(positions, amp_all, keep)
        keep[n0:] &= unique[n0:]
        if not waits:
            keep[:n0] &= unique[:n0]
        if len(elements) == 1 and len(trial):
            hanging = _hanging_trials(positions, keep, n0)
            keep &= ~hanging
            info["hanging_trials"] = {
                "min_neighbours": TRIAL_MIN_NEIGHBOURS,
                "n_refused": int(hanging.sum()),
            }
        if held is not None:
            held["n_trials_joined"] = int(keep[n0:].sum())
            info["faint_verdicts"] = held
        features["refine_added"] = np.r_[np.zeros(n0, np.int8), np.ones(len(trial), np.int8)]
        info.update(
            {
                "n_trial_candidates": int(len(trial)),
                "n_added": int(keep[n0:].sum()),
                "n_removed": int((~keep[:n0]).sum()),
            }
        )
    info.update(
        {
            "shift_A_median": float(np.median(shift[:n0])),
            "shift_A_p95": float(np.percentile(shift[:n0], 95)),
            f"n_moved_over_{LARGE_SHIFT_A}_A": int((shift[:n0] > LARGE_SHIFT_A).sum()),
            "n_amplitude_below_0.3": int((amp_all[:n0] < 0.3).sum()),
        }
    )
    if len(elements) > 1 and keep.sum() >= 3 * len(elements):
        species = np.asarray(features["element"] if "element" in features else [""] * len(keep))
        species = species.astype(object)
        species[np.nonzero(keep)[0]] = elements_by_amplitude(res.amplitudes[keep], elements)
        features["element"] = species.astype(str)
        info["species_counts"] = {e: int((species[keep] == e).sum()) for e in elements}
    elif "element" in features:
        features["element"] = features["element"].fillna(elements[0]).astype(str)
    meta = dict(atoms.metadata)
    meta["refinement"] = info
    features = features[keep].reset_index(drop=True)
    return AtomModel(positions[keep], features, meta), info, res, origin[keep], keep


def _judge_fit(
    res, judge_images, info, pixel_size_A, refine_geometry, device, cancel, weighting="uniform",
    min_correlation=MIN_MODEL_CORRELATION,
):  # fmt: skip
    """The amplitudes (and their standard errors) of ``res``'s atoms, held where ``res`` put
    them, fitted to ``judge_images``; ``res`` itself when that fit cannot be trusted. Says
    which in ``info["judged_on"]``."""
    judged = refine_atomic_model(
        judge_images,
        res.angles_deg,
        res.positions_A,
        pixel_size_A=pixel_size_A,
        refine_positions=False,
        refine_angles=False,
        # a fit that moved the images' offsets left them in res; the counts need their own
        refine_offsets=refine_geometry,
        iterations=JUDGE_ITERATIONS,
        return_images=True,
        amplitude_sigmas=True,
        weighting=weighting,
        device=device,
        cancel=cancel,
    )
    why = why_untrusted(judged, min_correlation=min_correlation)
    if why:
        info.update({"judged_on": "images", "judge_images_untrusted": why})
        info["poor_fit_only"] = not why_untrusted(judged, min_correlation=0.0)
        return res
    info.update(
        {
            "judged_on": "judge_images",
            "judge_image_correlation_median": float(np.median(judged.image_correlation)),
            "judge_sigma_A": judged.sigma_A,
        }
    )
    return judged


def _traced_places_the_counts_prefer(judged, counts, atoms, origin, info, pixel_size_A, device,
                                     cancel, weighting, min_correlation):  # fmt: skip
    """``(positions, judged)``: the fitted positions with the traced atoms that the fit to the
    denoised series moved far (:data:`~._counts_moves.MIN_MOVE_A`) and that the ``counts``
    would rather have where the tracer put them (``origin``) moved back there
    (:func:`~._counts_moves.counts_prefer_origin`, on ``judged``: the amplitudes fitted to
    the counts with the positions held), and the amplitudes judged again there when any went
    back (``info["counts_moves_in_fit"]``). Done before the verdicts, not only after the last
    fit: a denoiser's painted lattice at a stacking fault moved correctly traced atoms of an
    independent faulted dumbbell's neck 1.2-1.5 A off their sites, where their amplitudes,
    judged there, fell under the drop bar; the site passes then filled the painted sites
    (docs/benchmarks.md, fifty-eighth session). Trials and the atoms they
    added have no traced place and are not judged."""
    from dataclasses import replace

    positions = np.asarray(judged.positions_A, float)
    n0 = atoms.n_atoms
    start = np.full_like(positions, np.nan)
    start[:n0] = traced_starts(origin[:n0], atoms.features)
    back, record = counts_prefer_origin(judged, counts, start, pixel_size_A=pixel_size_A)
    info["counts_moves_in_fit"] = record
    if not back.any():
        return positions, judged
    check_cancel(cancel, "refinement")
    moved = positions.copy()
    moved[back] = start[back]
    again = {}
    judged_there = _judge_fit(
        replace(judged, positions_A=moved), counts, again, pixel_size_A, False, device, cancel,
        weighting, min_correlation,
    )  # fmt: skip
    if again["judged_on"] != "judge_images":  # (their fit there failed: the moves stand)
        record["n_back"] = 0
        return positions, judged
    info.update(again)
    return moved, judged_there


def _drop_bar(amplitudes, *, single: bool, least: int = 20) -> float:
    """The amplitude (over the median atom's) below which an atom goes: :data:`DROP_AMPLITUDE`,
    raised for one element to :data:`OUTLIER_SIGMAS` robust standard deviations below the
    median, at most :data:`ADD_AMPLITUDE` (not for an alloy, whose amplitudes have a mode per
    species)."""
    amp = np.asarray(amplitudes, float)
    if not single or len(amp) < least:
        return DROP_AMPLITUDE
    return float(np.clip(_outlier_bar(amp), DROP_AMPLITUDE, ADD_AMPLITUDE))


def _outlier_bar(amplitudes) -> float:
    """:data:`OUTLIER_SIGMAS` robust standard deviations (1.4826 MAD) below the median of
    ``amplitudes``: a real atom of a normal spread falls below it once in 4,000."""
    amp = np.asarray(amplitudes, float)
    med = float(np.median(amp))
    return med - OUTLIER_SIGMAS * 1.4826 * float(np.median(np.abs(amp - med)))


def _faint_drop_bar(amplitudes, bar: float, least: int = SPREAD_MIN_ATOMS) -> float:
    """An alloy's drop bar ``bar`` lowered to :data:`OUTLIER_SIGMAS` robust standard
    deviations (1.4826 MAD) below the median of its faintest element's traced ``amplitudes``
    (over the median of those), and no lower than 0: where they spread so wide that a real
    atom of theirs falls under the bar, the images cannot tell such an atom from a fraction
    of one (:data:`SPREAD_MIN_ATOMS`; for a crystal, whose faint atoms are few of them false).
    ``bar`` as given for fewer than ``least`` atoms."""
    amp = np.asarray(amplitudes, float)
    if len(amp) < least:
        return bar
    return float(np.clip(_outlier_bar(amp), 0.0, bar))


def _separation(z, kept, least: int = 5) -> float | None:
    """How far the trials the images kept stand from those they rejected: the 10th
    percentile of the kept trials' significance over the 99th percentile of the rejected
    ones' (inf when fewer than ``least`` were rejected; None when fewer were kept)."""
    if kept.sum() < least:
        return None
    if (~kept).sum() < least:
        return float("inf")
    noise = float(np.percentile(z[~kept], 99))
    return float(np.percentile(z[kept], 10)) / max(noise, 1e-30)


def elements_by_amplitude(amplitudes, elements) -> np.ndarray:
    """Each atom's element from its fitted amplitude: 1D K-means, one class per element
    (:func:`classify_species` without a noise class), as strings."""
    _, _, lab = classify_species(np.asarray(amplitudes, float), elements, noise=False)
    return np.asarray(elements)[lab].astype(str)


def _faintest(amplitudes, elements) -> np.ndarray | None:
    """Which ``amplitudes`` are of an alloy's faintest element (:func:`elements_by_amplitude`);
    None for one element, or when fewer than 3 are (too few for its median)."""
    if len(elements) < 2 or len(amplitudes) < 3 * len(elements):
        return None
    faint = elements_by_amplitude(amplitudes, elements) == elements[-1]
    return faint if faint.sum() >= 3 else None


def _faint_verdicts(z, faint, elements) -> dict | None:
    """Whether an alloy's verdicts apply: its faintest element's traced atoms (``faint``, the
    classification its bars were set on) measured to at least
    :data:`HELD_VERDICT_SIGNIFICANCE` standard errors (``z``, median); None when fewer than 3
    traced atoms are of it (the tracer missed it: the trials then set the bars)."""
    faint = np.asarray(faint, bool)
    if faint.sum() < 3:
        return None
    med = float(np.median(np.asarray(z, float)[faint]))
    return {
        "element": elements[-1],
        "n_atoms": int(faint.sum()),
        "median_significance": med,
        "significance_bar": HELD_VERDICT_SIGNIFICANCE,
        "applied": bool(med >= HELD_VERDICT_SIGNIFICANCE),
    }
