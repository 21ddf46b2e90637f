"""Convergence curves of iterative reconstructions."""

from __future__ import annotations

import numpy as np


def _figure_axes(ax, figsize):
    """``(figure, axes)``: the given axes and its figure, or a new figure of ``figsize``."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def plot_recon_errors(errors, rfree=None, *, ax=None, title: str | None = "GENFIRE convergence"):
    """Plot the Fourier error and R-free against the iteration number.

    Parameters
    ----------
    errors : array-like of shape (iterations,)
    rfree : array-like of shape (iterations,), optional
        NaN entries (R-free disabled) are not drawn.
    ax : matplotlib Axes, optional
        Drawn into when given; otherwise a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _figure_axes(ax, (4.2, 3.0))
    e = np.asarray(errors, dtype=float)
    it = np.arange(1, len(e) + 1)
    ax.plot(it[1:], e[1:], label="error (enforced points)", color="#1f77b4")
    if rfree is not None and np.isfinite(np.asarray(rfree, float)[1:]).any():
        ax.plot(it[1:], np.asarray(rfree, float)[1:], label="R-free (held out)", color="#d62728")
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative Fourier error")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_trace_histogram(
    intensities, threshold: float, *, ax=None, bins: int = 80, other_tomogram=None,
    left_out=None,
):  # fmt: skip
    """Histogram of candidate intensities with the atom / non-atom threshold.

    ``other_tomogram``: a mask of the candidates that only the tomogram an alloy's elements
    were told apart in showed (the tracer's ``species_volume_atom``: atoms the U-Net erased,
    which the refine stage tries), drawn as a class of their own. ``left_out``: a mask of
    the candidates above the threshold that the tracer left out all the same (its
    ``doubtful_left_out``: an alloy's half-formed peaks outside the lattice), drawn so too.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _figure_axes(ax, (4.2, 3.0))
    v = np.asarray(intensities, float)
    extra = np.zeros(len(v), bool) if other_tomogram is None else np.asarray(other_tomogram, bool)
    out = np.zeros(len(v), bool) if left_out is None else np.asarray(left_out, bool)
    span = (v.min(), v.max())
    noise, *_ = ax.hist(
        v[(v < threshold) & ~extra], bins=bins, range=span, color="#8d99ae", label="non-atoms"
    )
    atoms, *_ = ax.hist(
        v[(v >= threshold) & ~extra & ~out], bins=bins, range=span, color="#3a86ff",
        label="atoms",
    )  # fmt: skip
    if out.any():
        label = f"off the lattice ({int(out.sum())})"
        ax.hist(v[out], bins=bins, range=span, color="#8338ec", alpha=0.85, label=label)
    if noise.max(initial=0) > 20 * max(atoms.max(initial=0), 1):
        # a flood of faint maxima (a small particle in a large field) would flatten the atoms
        ax.set_yscale("log")
    if extra.any():
        label = f"only in the elements' tomogram ({int(extra.sum())}, tried by refine)"
        ax.hist(v[extra], bins=bins, range=span, color="#fb8500", alpha=0.85, label=label)
    ax.axvline(threshold, color="#d62728", lw=1.5, label=f"threshold {threshold:.3g}")
    ax.set_xlabel("integrated intensity")
    ax.set_ylabel("candidates")
    ax.legend(frameon=False, fontsize=8)
    return fig


#: The study's colours: interface red, upper twin boundary yellow, lower green.
STUDY_LAYER_COLORS = {
    "interface": "#e63946",
    "upper twin boundary": "#f4d35e",
    "lower twin boundary": "#2a9d8f",
    "bottom cluster": "#457b9d",
    "top cluster": "#a8dadc",
}


def layer_groups(layer, twin_boundaries) -> np.ndarray:
    """Group name of each atom for the study's colour preset."""
    layer = np.asarray(layer)
    tb = sorted(twin_boundaries)
    out = np.where(layer > 0, "top cluster", "bottom cluster").astype(object)
    if tb:
        out[layer == 0] = "interface"
        out[layer == tb[-1]] = "upper twin boundary"
        if len(tb) > 1:
            out[layer == tb[0]] = "lower twin boundary"
    return out.astype(str)


def summary_layer_groups(layer, summary: dict):
    """:func:`layer_groups` for a particle with an interface (the study's clusters either side
    of it), else None: a single crystal or an hcp one has no clusters to tell apart, and one
    without (111) layers no layers."""
    if not summary.get("n_layers", 1) or summary.get("interface_layer", 0) is None:
        return None
    return layer_groups(layer, summary.get("twin_boundary_layers") or [])


def plot_q4_q6(q4, q6, groups, *, ideal_fcc=None, ideal_hcp=None, ideal_bcc=None, ax=None):
    """The Q4-Q6 map of every atom coloured by layer group (``groups`` None: a particle without
    (111) layers, one colour), with the ideal fcc, hcp (and bcc) points."""
    fig, ax = _figure_axes(ax, (4.2, 3.4))
    if groups is None:
        ax.scatter(np.asarray(q4), np.asarray(q6), s=4, color="#264653", label="atoms", lw=0)
        groups = np.full(len(np.asarray(q4)), "")
    groups = np.asarray(groups)
    for name, color in STUDY_LAYER_COLORS.items():
        sel = groups == name
        if sel.any():
            ax.scatter(
                np.asarray(q4)[sel],
                np.asarray(q6)[sel],
                s=4,
                color=color,
                label=name,
                alpha=0.7,
                lw=0,
            )
    for pt, lab in ((ideal_fcc, "ideal fcc"), (ideal_hcp, "ideal hcp"), (ideal_bcc, "ideal bcc")):
        if pt is not None:
            ax.plot(*pt, "kx", ms=8, mew=2)
            ax.annotate(lab, pt, textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("Q4 (averaged)")
    ax.set_ylabel("Q6 (averaged)")
    ax.legend(frameon=False, fontsize=7, markerscale=3)
    return fig


def plot_layer_rmsd(layers, *, ax=None):
    """2D RMSD of each (111) layer against its fitted hexagonal lattice, surface and core."""
    fig, ax = _figure_axes(ax, (4.2, 3.0))
    for key, label, color in (
        ("rmsd_2d_surface_A", "surface", "#e76f51"),
        ("rmsd_2d_core_A", "core", "#264653"),
    ):
        pts = [(L["index"], L[key]) for L in layers if L.get(key) is not None]
        if pts:
            x, y = np.array(pts).T
            ax.plot(x, 100 * y, "o-", ms=3, color=color, label=label)
    ax.axvline(0, color="#e63946", lw=0.8, ls="--")
    ax.set_xlabel("(111) layer (0 = interface)")
    ax.set_ylabel("2D RMSD (pm)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize=8)
    else:
        ax.text(0.5, 0.5, "no (111) layer could be fitted", ha="center", transform=ax.transAxes)
    return fig


def plot_r_factors(angles_deg, r_per_image, *, ax=None):
    """R-factor of every image against its tilt angle, with the mean."""
    fig, ax = _figure_axes(ax, (4.2, 3.0))
    r = np.asarray(r_per_image, float)
    # lines by angle: a file in acquisition order (dose-symmetric) would zigzag
    order = np.argsort(np.asarray(angles_deg, float), kind="stable")
    ax.plot(np.asarray(angles_deg, float)[order], r[order], "o-", ms=4, color="#264653")
    ax.axhline(r.mean(), color="#e76f51", ls="--", lw=1, label=f"mean {r.mean():.3f}")
    ax.set_xlabel("tilt angle (deg)")
    ax.set_ylabel("R-factor")
    ax.legend(frameon=False, fontsize=8)
    return fig


def plot_rdf(amorphous: dict, *, ax=None):
    """Radial distribution function ``g(r)`` with its first peak and minimum (the
    ``amorphous`` part of ``analysis.json``)."""
    fig, ax = _figure_axes(ax, (4.2, 3.0))
    r = np.asarray(amorphous["rdf_r_A"], float)
    g = np.array([np.nan if v is None else v for v in amorphous["rdf_g"]], float)
    ax.plot(r, g, color="#264653", lw=1)
    ax.axhline(1.0, color="#999999", lw=0.8, ls=":")
    # the peak's label left of its line (g(r) is 0 there), the minimum's right of its own:
    # the two lines lie 0.6-0.9 A apart and their labels would overlap on one side
    for key, label, color, side in (
        ("rdf_first_peak_A", "first peak", "#e76f51", "right"),
        ("rdf_first_minimum_A", "first minimum", "#2a9d8f", "left"),
    ):
        if amorphous.get(key) is not None:
            ax.axvline(amorphous[key], color=color, lw=0.8, ls="--")
            text = f"{label} {amorphous[key]:.2f} Å"
            ax.text(amorphous[key], ax.get_ylim()[1] * 0.95,
                    f"{text} " if side == "right" else f" {text}", color=color, fontsize=7,
                    va="top", ha=side)  # fmt: skip
    cn = amorphous.get("coordination_mean")
    ax.set_title(f"mean coordination {cn:.2f}" if cn is not None else "", fontsize=9)
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    return fig


def plot_voronoi_motifs(amorphous: dict, *, ax=None):
    """Bar chart of the most frequent Voronoi indices ``<n3,n4,n5,n6>`` of the interior atoms
    (``voronoi_motifs`` of the ``amorphous`` part of ``analysis.json``), named motifs marked."""
    fig, ax = _figure_axes(ax, (4.6, 3.0))
    vm = amorphous.get("voronoi_motifs") or {}
    top = vm.get("top") or []
    if not top:
        ax.text(0.5, 0.5, "no interior atoms with a Voronoi cell", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)  # fmt: skip
        ax.set_axis_off()
        return fig
    labels = [t["index"] + (f"\n{t['motif']}" if t["motif"] else "") for t in top]
    frac = [100 * t["fraction"] for t in top]
    colors = ["#e76f51" if t["motif"] else "#264653" for t in top]
    ax.bar(range(len(top)), frac, color=colors)
    ax.set_xticks(range(len(top)), labels, rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("interior atoms (%)")
    ax.set_title(
        f"Voronoi indices <n3,n4,n5,n6> of {vm['n_atoms_with_index']} interior atoms", fontsize=9
    )
    return fig


def plot_deviation_histogram(comparisons: dict, *, bins: int = 30, ax=None):
    """Histogram of the common atoms' deviations [pm] per comparison (the study's Fig. S1)."""
    fig, ax = _figure_axes(ax, (4.6, 3.2))  # a constrained layout, also in a widget's figure
    dmax = max(
        (np.linalg.norm(c.deviations_A, axis=1).max(initial=0) for c in comparisons.values()),
        default=1.0,
    )
    edges = np.linspace(0, 100 * dmax, bins + 1)
    colors = ("tab:gray", "tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple")
    for (name, c), color in zip(comparisons.items(), colors, strict=False):
        d = 100 * np.linalg.norm(c.deviations_A, axis=1)
        label = f"{name}: RMSD {100 * c.rmsd_A:.1f} pm, {100 * c.identification_error:.2f} %"
        ax.hist(d, bins=edges, histtype="step", lw=1.6, color=color, label=label)
    ax.set_xlabel("deviation (pm)")
    ax.set_ylabel("atoms")
    ax.legend(fontsize=7, frameon=False)
    return fig


def plot_refine_shifts(refined, info: dict):
    """Histogram of how far the position refinement moved each atom [pm], or why it kept the
    traced positions."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 3.2), layout="constrained")
    ax = fig.add_subplot()
    verdicts = info.get("held_verdicts") or {}
    if "not_refined" in info and verdicts.get("applied"):
        # positions kept as traced, atoms judged by their amplitudes on the counts
        kept = np.asarray(refined.features["refine_amplitude"], float)
        removed = np.asarray(verdicts.get("removed_amplitudes", []), float)
        rejected = np.asarray(verdicts.get("rejected_trial_amplitudes", []), float)
        every = np.concatenate([kept, removed, rejected])
        bins = np.linspace(min(every.min(), 0.0), every.max(), 61)
        ax.hist(
            [kept, removed, rejected],
            bins=bins,
            stacked=True,
            color=["0.3", "C3", "C0"],
            label=[
                f"kept or added ({len(kept)})",
                f"removed ({len(removed)})",
                f"trials left out ({len(rejected)})",
            ],
        )
        for key, style in (("drop_amplitude", "C3"), ("add_amplitude", "C0")):
            if verdicts.get(key) is not None:
                ax.axvline(verdicts[key], color=style, lw=1, ls="--")
        ax.set_xlabel("amplitude on the counts (median atom = 1)")
        ax.set_ylabel("atoms")
        ax.set_title(
            f"positions as traced; {verdicts['n_removed']} removed, {verdicts['n_added']} added",
            fontsize=9,
        )
        ax.legend(fontsize=7, frameon=False)
    elif "refine_shift_A" in refined.features and "shift_A_median" in info:
        ax.hist(100 * refined.features["refine_shift_A"], bins=60, color="0.3")
        ax.set_xlabel("refinement shift (pm)")
        ax.set_ylabel("atoms")
        ax.set_title(f"{refined.n_atoms} atoms, median {100 * info['shift_A_median']:.1f} pm")
    else:
        ax.text(0.5, 0.5, f"not refined:\n{info['not_refined']}", ha="center", wrap=True)
        ax.set_axis_off()
    return fig


def plot_alignment(record: dict, *, blurred_ratio: float | None = None):
    """The alignment's corrections per tilt from its record (``alignment.json``): the angle
    change the final fit estimated with its ``k`` standard errors (the bar a change must
    clear) and the change applied; the shifts applied; and, when the width check ran, each
    image's fitted atom width with the median and the ``blurred_ratio`` bar (images above it
    are held as out of focus; default the alignment's :data:`~napari_aet.align.BLURRED_RATIO`)."""
    from matplotlib.figure import Figure

    from ..align import BLURRED_RATIO, blurred_images  # torch: only when drawn

    blurred_ratio = BLURRED_RATIO if blurred_ratio is None else blurred_ratio

    ang_in = np.asarray(record["angles_in_deg"], float)
    applied = np.asarray(record["angles_refined_deg"], float) - ang_in
    shifts = np.asarray(record.get("shifts_px_row_col") or np.zeros((len(ang_in), 2)), float)
    sig = record.get("significance") or {}
    widths = (record.get("projection_matching") or {}).get("image_width_A")
    rows = 3 if widths else 2
    fig = Figure(figsize=(5.0, 1.9 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True)
    ax = axes[0]
    fit = sig.get("angle_changes_fit_deg")
    if fit is not None and sig.get("angle_sigma_deg") is not None:
        bar = float(sig.get("k_sigma", 3.0)) * np.asarray(sig["angle_sigma_deg"], float)
        ax.errorbar(ang_in, fit, yerr=bar, fmt="o", ms=3, color="#8d99ae", lw=0.8, capsize=2,
                    label=f"estimated +- {sig.get('k_sigma', 3.0):.2g} SE")  # fmt: skip
    ax.plot(ang_in, applied, "s", ms=4, color="#e76f51", label="applied")
    ax.axhline(0.0, color="#999999", lw=0.6)
    ax.set_ylabel("angle change (deg)")
    ax.legend(frameon=False, fontsize=7, loc="best")
    ax = axes[1]
    order = np.argsort(ang_in, kind="stable")  # lines by angle, whatever the file's order
    ax.plot(ang_in[order], shifts[order, 0], "o-", ms=3, lw=0.8, color="#264653", label="rows")
    ax.plot(ang_in[order], shifts[order, 1], "s-", ms=3, lw=0.8, color="#2a9d8f",
            label="columns")  # fmt: skip
    ax.axhline(0.0, color="#999999", lw=0.6)
    ax.set_ylabel("shift (px)")
    ax.legend(frameon=False, fontsize=7, loc="best")
    if widths:
        ax = axes[2]
        w = np.asarray(widths, float)
        med = float(np.median(w))
        out = np.zeros(len(w), bool)
        out[blurred_images(w, ang_in, blurred_ratio)[0]] = True  # the alignment's own rule
        ax.plot(ang_in[~out], w[~out], "o", ms=4, color="#264653")
        ax.plot(ang_in[out], w[out], "X", ms=7, color="#d62828", label="out of focus (held)")
        ax.axhline(med, color="#999999", lw=0.8, ls=":", label=f"median {med:.2f} Å")
        ax.axhline(blurred_ratio * med, color="#d62828", lw=0.8, ls="--",
                   label=f"{blurred_ratio:g} x median")  # fmt: skip
        ax.set_ylabel("atom width (Å)")
        ax.legend(frameon=False, fontsize=7, loc="best")
    axes[-1].set_xlabel("tilt angle (deg)")
    axis = record.get("tilt_axis_angle_deg")
    if axis is not None:
        axes[0].set_title(f"tilt axis {axis:+.2f} deg", fontsize=9)
    return fig


def plot_grains(positions_A, grain, grains: dict, *, ax=None):
    """The atoms projected along a multiply twinned particle's five-fold axis (a decahedron's;
    an icosahedron's first; otherwise the particle's longest direction), coloured by
    ``grain`` (the ``grains`` part of ``analysis.json`` says which), the traces of the twin
    planes that hold the axis drawn from the centre out: the star of a decahedron."""
    from matplotlib import colormaps

    from ..core.geometry import in_plane_basis

    fig, ax = _figure_axes(ax, (4.2, 4.2))
    pos = np.asarray(positions_A, float)
    grain = np.asarray(grain, int)
    axes = grains.get("fivefold_axes_zyx") or []
    if axes:
        view, what = np.asarray(axes[0], float), "down a five-fold axis"
    else:
        c = pos - pos.mean(0)
        view, what = np.linalg.svd(c, full_matrices=False)[2][0], "down the longest direction"
    view = view / np.linalg.norm(view)
    e1, e2 = in_plane_basis(view)
    c = pos - pos.mean(0)
    u, v = c @ e1, c @ e2
    order = np.argsort(c @ view)  # far atoms first, near ones drawn over them
    colours = colormaps["tab20"]((np.maximum(grain, 0) % 20) / 19.0)
    colours[grain < 0] = (0.55, 0.6, 0.68, 1.0)
    ax.scatter(u[order], v[order], s=9, c=colours[order], linewidths=0)
    r = float(np.hypot(u, v).max())
    traces = []  # (direction, a point on it) in the picture of each twin plane on the axis
    for b in grains.get("boundaries", []):
        n = np.asarray(b.get("plane_normal_zyx") or (0, 0, 0), float)
        if b.get("twin") and abs(n @ view) < np.sin(np.deg2rad(8.0)):
            t = np.cross(view, n)  # the plane's trace, from the axis out
            pair = np.isin(grain, b["grains"])  # on the side where its two grains lie
            if pair.any() and (c[pair].mean(0) @ t) < 0:
                t = -t
            q = np.asarray(b.get("plane_point_zyx") or pos.mean(0), float) - pos.mean(0)
            traces.append((np.array([t @ e1, t @ e2]), np.array([q @ e1, q @ e2])))
    if traces:
        # where the traces meet (least squares): the axis in the picture
        a = sum(np.eye(2) - np.outer(d, d) / (d @ d) for d, _ in traces)
        rhs = sum((np.eye(2) - np.outer(d, d) / (d @ d)) @ q for d, q in traces)
        hub = np.linalg.lstsq(a, rhs, rcond=None)[0] if len(traces) > 1 else np.zeros(2)
        for d, _ in traces:
            d = d / np.linalg.norm(d)
            ax.plot([hub[0], hub[0] + r * d[0]], [hub[1], hub[1] + r * d[1]], color="#222222",
                    lw=0.6, alpha=0.6)  # fmt: skip
    ax.set_aspect("equal")
    ax.set_xlabel("Å")
    ax.set_ylabel("Å")
    ax.set_title(
        f"{grains.get('kind', '')}: {grains.get('n_grains', 0)} grains, {what}", fontsize=9
    )
    return fig


def plot_chemical_order(positions_A, species, chem: dict, lattice_fits, *, ax=None):
    """A slab through the largest grain of a binary alloy, one lattice constant thick, seen
    down a cube axis of its fitted lattice (for L1_0 one across c, so that the (001) layers of
    the two elements alternate up the picture), atoms coloured by element; the title gives the
    phase and the long-range order parameter (``chem``: the ``chemical_order`` part of
    ``analysis.json``; ``lattice_fits`` its ``lattice_fits``)."""
    fig, ax = _figure_axes(ax, (4.2, 4.2))
    pos = np.asarray(positions_A, float)
    species = np.asarray(species).astype(str)
    grains = chem.get("grains") or []
    if not grains or not lattice_fits:
        ax.text(0.5, 0.5, "no fitted grain to show", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        return fig
    g = max(grains, key=lambda x: x["n_atoms"])
    fit = next((f for f in lattice_fits if f["cluster"] == g["grain"]), lattice_fits[0])
    rot = np.asarray(fit["rotation_crystal_to_lab"], float)
    k = g.get("L1_0_axis", 2) if g["phase"] == "L1_0" else 2
    view = rot[:, (k + 1) % 3]  # a cube axis across c
    up = rot[:, k]
    view, up = view / np.linalg.norm(view), up / np.linalg.norm(up)
    right = np.cross(up, view)
    c = pos - pos.mean(0)
    a = float(fit.get("lattice_constant_A") or 3.9)
    slab = np.abs(c @ view) <= 0.5 * a
    colours = dict(zip(chem["elements"], ("#e76f51", "#264653"), strict=False))
    for e in chem["elements"]:
        sel = slab & (species == e)
        ax.scatter(c[sel] @ right, c[sel] @ up, s=22, c=colours.get(e, "#8d99ae"), label=e,
                   linewidths=0)  # fmt: skip
    ax.set_aspect("equal")
    ax.set_xlabel("Å")
    ax.set_ylabel("Å" + (" (c up)" if g["phase"] == "L1_0" else ""))
    key = "S_L1_2" if g["phase"] == "L1_2" else "S_L1_0"
    ax.set_title(
        f"{g['phase']}, S = {g[key]:.2f} ({g['n_atoms']} atoms); slab {a:.1f} Å thick",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    return fig


def plot_composition_by_depth(profile: dict, *, ax=None):
    """Each element's share per shell from the surface (0) inward with its binomial standard
    error (``profile``: the ``composition_by_depth`` part of ``analysis.json``) and, where the
    atoms carry the refine stage's significance, each element's median beside it (right axis,
    dashed): a share that falls where its element is measured weakly may be atoms missed."""
    fig, ax = _figure_axes(ax, (4.6, 3.2))
    shells = profile.get("shells") or []
    elements = profile.get("elements") or []
    if not shells or len(elements) < 2:
        ax.text(0.5, 0.5, "one element: no profile", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        return fig
    x = np.array([s["depth_A"] for s in shells])
    colours = ("#e76f51", "#264653", "#2a9d8f", "#e9c46a", "#8d99ae")
    twin = None
    for e, col in zip(elements, colours, strict=False):
        share = np.array([s[e]["share"] for s in shells])
        err = np.array([s[e]["share_error"] for s in shells])
        ax.errorbar(x, share, yerr=err, marker="o", ms=4, color=col, capsize=2, label=e)
        sig = [s[e].get("median_significance") for s in shells]
        if all(v is not None for v in sig):
            twin = twin or ax.twinx()
            twin.plot(x, sig, ls="--", color=col, lw=1, alpha=0.7)
    ax.set_xlabel("depth below the surface (Å)")
    ax.set_ylabel("share of the shell")
    ax.set_ylim(0, 1)
    if twin is not None:
        twin.set_ylabel("median significance (dashed)", fontsize=8)
        twin.set_ylim(bottom=0)
    n = sum(s["n_atoms"] for s in shells)
    ax.set_title(f"composition by depth ({n} atoms)", fontsize=9)
    ax.legend(fontsize=7, loc="best", frameon=False)
    return fig
