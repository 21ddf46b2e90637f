"""Every figure of a finished run, in the formats asked for, and an HTML report around them."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from ..analysis import MULTIPLY_TWINNED
from . import (
    plot_alignment,
    plot_chemical_order,
    plot_composition_by_depth,
    plot_grains,
    plot_layer_rmsd,
    plot_q4_q6,
    plot_r_factors,
    plot_rdf,
    plot_voronoi_motifs,
    summary_layer_groups,
)

#: Figures :func:`make_run_figures` knows, in report order, with their captions.
RUN_FIGURES = {
    "atoms_stacking": "Atoms coloured by local (111) stacking (fcc, hcp, other).",
    "atoms_layers": "Atoms coloured by (111) layer index (0 = interface).",
    "crystal_projections": "Forward projections of the model along crystal directions of "
    "cluster 0's fitted lattice, and along lab z.",
    "grains": "Twin domains of a multiply twinned particle (a decahedron, an icosahedron) "
    "down its five-fold axis, coloured by grain, with the traces of the twin planes.",
    "chemical_order": "A slab through a binary alloy's largest grain, one lattice constant "
    "thick, down a cube axis of its lattice (for L1_0 across c: the two elements' (001) layers "
    "alternate up the picture), atoms coloured by element, with the phase and S.",
    "composition_depth": "An alloy's composition shell by shell from the surface inward: "
    "each element's share with its standard error and, dashed, its atoms' median significance "
    "(a share that falls where its element is measured weakly may be atoms missed).",
    "layers_111": "The three (111) layers around the interface viewed along the stacking "
    "normal; hexagons join the in-plane neighbours of a central atom.",
    "layer_rmsd": "Per-layer 2D RMSD of the hexagonal-net fits.",
    "q4_q6": "Local bond-orientational order (averaged Q4, Q6) by layer group.",
    "strain_slices": "Central slabs coloured by a strain component (lab frame).",
    "facet_strain": "Surface atoms on {111} and {100} facets coloured by surface local strain "
    "(each atom's local strain averaged over the atoms of its facet kind with a 2.7 Å Gaussian).",
    "facet_orr": "Surface atoms on {111} and {100} facets coloured by ORR activity, "
    "log10(j / j_Pt(111)), from the relation table given to the analysis.",
    "rdf": "Radial distribution function g(r) of an amorphous particle, its first peak and "
    "minimum, and the mean coordination.",
    "voronoi_motifs": "Short-range-order motifs of an amorphous particle: the most frequent "
    "Voronoi indices <n3,n4,n5,n6> of its interior atoms (named ideal motifs in red).",
    "alignment": "The alignment per tilt: angle changes estimated (with the bar of k standard "
    "errors they must clear) and applied, shifts applied, and each image's fitted atom width "
    "(images far out of focus marked).",
    "r_factor": "R-factor per tilt between the measured images and the model's projections.",
    "measured_vs_reprojected": "Measured, reprojected and residual images at five tilts.",
}


def make_figures(
    data: dict,
    out_dir,
    *,
    figures=None,
    formats=("png",),
    dpi: int = 300,
    strain_component: str = "exx",
    center_layer: int | None = None,
    progress=None,
) -> dict:
    """Write the figures that ``data`` allows.

    Parameters
    ----------
    data : dict
        ``atoms`` (AtomModel with the analysis features) and ``analysis`` (the analysis
        summary) at least; ``rfactor`` (rfactor.json content), ``measured``, ``calculated``,
        ``angles_deg``, ``pixel_size_A`` for the validation figures (see :func:`load_run`).
    out_dir : path
    figures : list of str, optional
        Names from :data:`RUN_FIGURES`; default all.
    formats : sequence of {"png", "svg", "pdf"}
    dpi : int
        Resolution of PNG files.
    strain_component : str
        Component for the strain slices (``exx`` ... ``eyz``).
    center_layer : int, optional
        Middle layer of the [111] panel; default the interface (layer 0).

    Returns
    -------
    dict
        ``{"written": {name: [paths]}, "skipped": {name: reason}, "out_dir": str}``.
    """
    from ._panels import (
        atoms_3d_figure,
        crystal_direction_projections,
        facet_map_figure,
        measured_vs_reprojected_figure,
        save_figure,
        stacking_layers_figure,
        strain_slices_figure,
    )

    out = Path(out_dir)
    wanted = list(figures or RUN_FIGURES)
    unknown = [f for f in wanted if f not in RUN_FIGURES]
    if unknown:
        raise ValueError(f"unknown figures {unknown}; choose from {', '.join(RUN_FIGURES)}")
    d = data
    atoms, summary = d["atoms"], d.get("analysis") or {}
    f = atoms.features
    p = atoms.positions
    written, skipped = {}, {}

    def need(cols):
        missing = [c for c in cols if c not in f.columns]
        if missing:
            raise LookupError(f"the model has no {', '.join(missing)}: run the analysis")

    def crystalline():
        normal = summary.get("stacking_normal_zyx") or []
        if summary.get("amorphous") or None in normal:
            kind = "a bcc crystal" if summary.get("lattice") == "bcc" else "amorphous"
            raise LookupError(f"the particle forms no close-packed layers ({kind})")

    def build(name):
        if name in ("rdf", "voronoi_motifs"):
            if not summary.get("amorphous"):
                raise LookupError(f"no {name} in analysis.json (only amorphous particles get one)")
            if name == "voronoi_motifs":
                return plot_voronoi_motifs(summary["amorphous"])
            return plot_rdf(summary["amorphous"])
        if name in ("atoms_stacking", "atoms_layers", "layers_111", "layer_rmsd", "q4_q6"):
            if name != "q4_q6":
                crystalline()
        if name == "atoms_stacking":
            need(["stacking"])
            colors = {"fcc": "#1f77b4", "hcp": "#d62728", "other": "#bbbbbb"}
            return atoms_3d_figure(p, f["stacking"], categories=colors, title="Local stacking")
        if name == "atoms_layers":
            need(["layer"])
            return atoms_3d_figure(p, f["layer"], label="(111) layer", cmap="twilight")
        if name == "crystal_projections":
            fits = summary.get("lattice_fits") or []
            rot = fits[0].get("rotation_crystal_to_lab") if fits else None
            if rot is None:
                raise LookupError("no fitted cluster lattice in analysis.json")
            if summary.get("lattice") == "hcp":
                raise LookupError("the projections down <100>, <110>, <111> are for cubic lattices")
            return crystal_direction_projections(p, np.asarray(rot))
        if name == "grains":
            g = summary.get("grains") or {}
            if g.get("kind") not in MULTIPLY_TWINNED:
                raise LookupError(
                    "not a multiply twinned particle (analysis.json's grains: "
                    f"{g.get('kind', 'none')})"
                )
            need(["grain"])
            return plot_grains(p, f["grain"], g)
        if name == "chemical_order":
            chem = summary.get("chemical_order")
            if not chem:
                raise LookupError("not a two-element alloy (no chemical_order in analysis.json)")
            need(["element"])
            return plot_chemical_order(p, f["element"], chem, summary.get("lattice_fits") or [])
        if name == "composition_depth":
            prof = summary.get("composition_by_depth")
            if not prof:
                raise LookupError("one element (no composition_by_depth in analysis.json)")
            return plot_composition_by_depth(prof)
        if name == "layers_111":
            need(["layer"])
            normal = summary.get("stacking_normal_zyx")
            if normal is None or None in normal:
                raise LookupError("no stacking normal in analysis.json")
            k = 0 if center_layer is None else int(center_layer)
            return stacking_layers_figure(
                p,
                f["layer"],
                normal,
                center_layer=k,
                abc=f["abc"] if "abc" in f.columns else None,
                stacking=f["stacking"] if "stacking" in f.columns else None,
            )
        if name == "layer_rmsd":
            if not summary.get("layers"):
                raise LookupError("no per-layer fits in analysis.json")
            return plot_layer_rmsd(summary["layers"])
        if name == "q4_q6":
            need(["q4", "q6", "layer"])
            groups = summary_layer_groups(f["layer"].to_numpy(), summary)
            boo = summary.get("boo", {})
            return plot_q4_q6(
                f["q4"],
                f["q6"],
                groups,
                ideal_fcc=boo.get("ideal_fcc_q4_q6"),
                ideal_hcp=boo.get("ideal_hcp_q4_q6"),
                ideal_bcc=boo.get("ideal_bcc_q4_q6") if summary.get("lattice") == "bcc" else None,
            )
        if name == "strain_slices":
            need([strain_component])
            return strain_slices_figure(p, f[strain_component], component=strain_component)
        if name == "facet_strain":
            need(["local_strain", "facet"])
            # the study's surface local strain: averaged over the facet's atoms (2.7 A)
            if "facet_local_strain" in f:
                return facet_map_figure(
                    p, f["facet_local_strain"], f["facet"], label="surface local strain (%)"
                )
            return facet_map_figure(p, f["local_strain"], f["facet"])
        if name == "facet_orr":
            if "orr_activity" not in f.columns:
                raise LookupError("no orr_activity: analyze with --strain --orr TABLE")
            return facet_map_figure(
                p, f["orr_activity"], f["facet"], label="ORR log10(j / j_Pt(111))"
            )
        if name == "alignment":
            if "alignment" not in d:
                raise LookupError("no align/alignment.json")
            return plot_alignment(d["alignment"])
        if name == "r_factor":
            if "rfactor" not in d:
                raise LookupError("no validate/rfactor.json")
            r = d["rfactor"]
            return plot_r_factors(r["angles_deg"], r["r_per_image"])
        if name == "measured_vs_reprojected":
            if "calculated" not in d:
                raise LookupError("no validate/projections.h5 and align/aligned_tilt_series.h5")
            return measured_vs_reprojected_figure(
                d["measured"], d["calculated"], d["angles_deg"], pixel_size_A=d["pixel_size_A"]
            )
        raise AssertionError(name)

    for i, name in enumerate(wanted):
        try:
            fig = build(name)
        except (LookupError, ValueError) as err:
            skipped[name] = str(err).strip("'\"")
            continue
        fig = getattr(fig, "figure", fig)  # plot_* helpers may return an Axes' figure
        written[name] = [str(x) for x in save_figure(fig, out / name, formats=formats, dpi=dpi)]
        if progress is not None:
            progress(i + 1, len(wanted), name)
    return {"written": written, "skipped": skipped, "out_dir": str(out)}


def _numbers_table(summary: dict) -> str:
    keys = [
        ("n_atoms_traced", "atoms traced"),
        ("n_atoms", "atoms analysed"),
        ("lattice", "lattice (bond order)"),
        ("lattice_constant_A", "lattice constant (Å)"),
        ("n_layers", "(111) layers"),
        ("twin_boundary_layers", "twin-boundary layers"),
        ("relative_rotation_deg", "relative rotation of the clusters (°)"),
        ("r_factor_mean", "mean R-factor"),
        ("r_factor_blur_A", "its forward projections' blur (Å; fitted)"),
        ("r_factor_mean_study_blur", "mean R-factor with the study's 0.45 Å blur"),
        ("tilt_axis_angle_deg", "tilt-axis angle (°)"),
        ("n_atoms_outside_field", "atoms outside some image's field (less certain)"),
        ("atoms_not_confirmed", "atoms not confirmed by the images"),
        ("n_surface_atoms", "surface atoms"),
    ]
    rows = []
    for k, label in keys:
        if k in summary and summary[k] is not None:
            v = summary[k]
            v = f"{v:.4g}" if isinstance(v, float) else v
            rows.append(f"<tr><td>{html.escape(label)}</td><td>{html.escape(str(v))}</td></tr>")
    for key, val in (summary.get("counts") or {}).items():
        rows.append(f"<tr><td>{html.escape(key)} atoms</td><td>{val}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def write_html_report(
    path, figures_result: dict, summary: dict, *, run_dir=None, title=None
) -> Path:
    """An HTML page at ``path`` with the key numbers of ``summary`` (an ``analysis.json``),
    every written figure and its caption, and the full summary (collapsed). Figures are linked
    relative to the page."""
    page = Path(path)
    run = Path(run_dir) if run_dir is not None else page.parent
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title or 'napari-aet report')}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;}"
        "img{max-width:100%;border:1px solid #ddd}td{padding:2px 12px}"
        "figure{margin:2em 0}figcaption{color:#444}</style></head><body>",
        f"<h1>{html.escape(title or 'napari-aet report')}</h1>",
        f"<p>Run folder: <code>{html.escape(str(run.resolve()))}</code>; napari-aet "
        f"{html.escape(str(summary.get('napari_aet_version', '?')))}</p>",
        "<h2>Key numbers</h2>",
        _numbers_table(summary),
        "<h2>Figures</h2>",
    ]
    for name, paths in figures_result.get("written", {}).items():
        png = next((q for q in paths if q.endswith(".png")), None)
        rel = {q: html.escape(os.path.relpath(q, page.parent)) for q in paths}
        others = " ".join(f"<a href='{rel[q]}'>{Path(q).suffix[1:].upper()}</a>" for q in paths)
        img = f"<img src='{rel[png]}' alt='{html.escape(name)}'>" if png else ""
        parts.append(
            f"<figure>{img}<figcaption><b>{html.escape(name)}</b>: "
            f"{html.escape(RUN_FIGURES.get(name, ''))} {others}</figcaption></figure>"
        )
    for name, why in figures_result.get("skipped", {}).items():
        parts.append(f"<p><i>{html.escape(name)} not drawn: {html.escape(why)}</i></p>")
    parts += [
        "<h2>analysis.json</h2><details><summary>show</summary><pre>",
        html.escape(json.dumps(summary, indent=2, default=str)),
        "</pre></details></body></html>",
    ]
    page.write_text("\n".join(parts), encoding="utf-8")
    return page
