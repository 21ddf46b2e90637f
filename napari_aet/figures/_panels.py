"""Publication panels of an atom model: crystal-direction projections, [111] layers, strain
slices, facet maps, 3D views, measured vs reprojected images (matplotlib, no Qt)."""

from __future__ import annotations

import numpy as np

from ..analysis import nearest_neighbour_distance
from ..core.geometry import in_plane_basis
from ._montage import add_scale_bar

#: Fixed colours of the A, B, C stacking positions (the study's Fig. 2 palette).
ABC_COLORS = {"A": "#d62728", "B": "#ffbf00", "C": "#2ca02c"}


def _figure(figsize, dpi=150):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=dpi)


def transparent_centre_rgba(name: str = "RdBu_r", n: int = 256):
    """``(controls, rgba)`` of a matplotlib diverging map whose centre fades to transparent
    (opacity ``min(1.5 |2t - 1|, 1)``), for 3D maps of signed quantities."""
    from matplotlib import colormaps

    t = np.linspace(0, 1, n)
    rgba = colormaps[name](t)
    rgba[:, 3] = np.clip(np.abs(2 * t - 1) * 1.5, 0, 1)
    return t, rgba


def diverging_limit(values) -> float:
    """Half-width of a colour scale centred at zero: the 98th percentile of ``|values|``
    (finite ones), 1 when there are none or all are zero."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    lim = float(np.percentile(np.abs(v), 98)) if v.size else 1.0
    return lim if lim > 0 else 1.0


#: Colour of atoms whose value is missing (NaN): neutral grey, on every colour scale.
NAN_COLOR = (0.75, 0.75, 0.75, 1.0)


def values_to_rgba(values, limits, cmap: str = "RdBu_r") -> np.ndarray:
    """RGBA ``(n, 4)`` of ``values`` on a matplotlib colour map over ``limits`` (clipped at
    both ends); missing values (NaN, inf) are :data:`NAN_COLOR`."""
    from matplotlib import colormaps

    v = np.asarray(values, float)
    lo, hi = float(limits[0]), float(limits[1])
    t = np.clip((np.nan_to_num(v, nan=lo, posinf=hi, neginf=lo) - lo) / ((hi - lo) or 1.0), 0, 1)
    rgba = colormaps[cmap](t)
    rgba[~np.isfinite(v)] = NAN_COLOR
    return rgba


def project_model_along(
    positions_A,
    direction_lab,
    *,
    pixel_size_A: float = 0.358,
    blur_sigma_A: float = 0.45,
    margin_A: float = 4.0,
):
    """Projection image of an atom model along a lab direction (Gaussian atoms, unit weight).

    Returns the image ``(rows, cols)`` and the in-plane axes (two unit vectors): rows run along
    the second vector, columns along the first, both perpendicular to ``direction_lab``.
    """
    from scipy import ndimage

    d = np.asarray(direction_lab, float)
    d = d / np.linalg.norm(d)
    e1, e2 = in_plane_basis(d)
    p = np.asarray(positions_A, float)
    u, v = p @ e1, p @ e2
    lo_u, lo_v = u.min() - margin_A, v.min() - margin_A
    nu = int(np.ceil((u.max() + margin_A - lo_u) / pixel_size_A)) + 1
    nv = int(np.ceil((v.max() + margin_A - lo_v) / pixel_size_A)) + 1
    img = np.zeros((nv, nu))
    iu = np.clip(np.round((u - lo_u) / pixel_size_A).astype(int), 0, nu - 1)
    iv = np.clip(np.round((v - lo_v) / pixel_size_A).astype(int), 0, nv - 1)
    np.add.at(img, (iv, iu), 1.0)
    return ndimage.gaussian_filter(img, blur_sigma_A / pixel_size_A), (e1, e2)


def crystal_direction_projections(
    positions_A,
    rotation,
    *,
    directions=((1, 1, 0), (0, 0, 1), (1, 1, 1)),
    include_lab_z: bool = True,
    pixel_size_A: float = 0.358,
    blur_sigma_A: float = 0.45,
    scale_bar_A: float = 10.0,
    title: str | None = "Projections along crystal directions",
):
    """Forward projections of the model along crystal directions of a fitted cluster.

    Parameters
    ----------
    positions_A : ndarray of shape (N, 3)
        The whole model ``(z, y, x)`` [A].
    rotation : ndarray of shape (3, 3)
        Crystal-to-lab rotation of the cluster's fitted fcc lattice: column ``k`` is cubic axis
        ``k`` (``[100]``, ``[010]``, ``[001]``) in lab ``(z, y, x)`` (``LatticeFit.rotation``).
    directions : sequence of (h, k, l)
        Crystal directions to look along.
    include_lab_z : bool
        Add the projection along the lab z (beam at zero tilt).
    """
    r = np.asarray(rotation, float)
    views = [
        (f"[{''.join(str(int(c)) for c in hkl)}]", r @ np.asarray(hkl, float)) for hkl in directions
    ]
    if include_lab_z:
        views.append(("lab z", np.array([1.0, 0.0, 0.0])))
    fig = _figure((2.6 * len(views), 2.8))
    axes = fig.subplots(1, len(views), squeeze=False)[0]
    for ax, (name, d) in zip(axes, views, strict=True):
        img, _ = project_model_along(
            positions_A, d, pixel_size_A=pixel_size_A, blur_sigma_A=blur_sigma_A
        )
        ax.imshow(img, cmap="gray", origin="lower")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        add_scale_bar(ax, length_A=scale_bar_A, pixel_size_A=pixel_size_A)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _hexagon_around(points_2d, d_nn: float):
    """Vertices of the hexagon of in-plane neighbours around the point nearest the centroid."""
    from scipy.spatial import cKDTree

    c = points_2d.mean(0)
    i = int(np.argmin(np.linalg.norm(points_2d - c, axis=1)))
    idx = cKDTree(points_2d).query_ball_point(points_2d[i], 1.2 * d_nn)
    nb = points_2d[[j for j in idx if j != i]]
    if len(nb) < 6:
        return None
    ang = np.arctan2(*(nb - points_2d[i]).T[::-1])
    return nb[np.argsort(ang)][:6], points_2d[i]


def stacking_layers_figure(
    positions_A,
    layer,
    normal,
    *,
    center_layer: int,
    abc=None,
    stacking=None,
    d_nn_A: float | None = None,
    title: str | None = None,
):
    """Three (111) layers around ``center_layer`` viewed along the stacking normal.

    Atoms are coloured by their A/B/C position (``abc``) when given, else by layer; a hexagon
    guide joins the six in-plane neighbours of a central atom in each layer, so fcc (ABC) and
    hcp (ABA) stacking show as shifted or repeated hexagons. ``stacking`` labels each layer.
    """

    p = np.asarray(positions_A, float)
    layer = np.asarray(layer)
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    e1, e2 = in_plane_basis(n)
    d_nn = d_nn_A or nearest_neighbour_distance(p)
    wanted = [center_layer - 1, center_layer, center_layer + 1]
    present = [k for k in wanted if np.any(layer == k)]
    if not present:
        raise ValueError(f"no atoms in layers {wanted}; choose a layer of the model")
    fig = _figure((3.4 * len(present), 3.6))
    axes = fig.subplots(1, len(present), squeeze=False)[0]
    all_uv = np.stack([p @ e1, p @ e2], 1)
    sel_all = np.isin(layer, present)
    lo, hi = all_uv[sel_all].min(0) - 2, all_uv[sel_all].max(0) + 2
    for ax, k in zip(axes, present, strict=True):
        sel = layer == k
        uv = all_uv[sel]
        if abc is not None:
            labels = np.asarray(abc)[sel].astype(str)
            colors = [ABC_COLORS.get(s, "0.5") for s in labels]
            name = max(set(labels), key=list(labels).count) if len(labels) else "?"
        else:
            colors, name = "tab:blue", ""
        # the layers below in grey, for registry
        for kk, shade in ((k - 1, "0.85"),):
            below = layer == kk
            if np.any(below):
                ax.scatter(*all_uv[below].T, s=18, c=shade, linewidths=0)
        ax.scatter(*uv.T, s=26, c=colors, edgecolors="k", linewidths=0.3)
        hexa = _hexagon_around(uv, d_nn) if len(uv) >= 7 else None
        if hexa is not None:
            verts, _ = hexa
            ax.fill(*verts.T, fill=False, ec="k", lw=1.2)
        lab = ""
        if stacking is not None and np.any(sel):
            vals, counts = np.unique(np.asarray(stacking)[sel].astype(str), return_counts=True)
            lab = f", {vals[np.argmax(counts)]}"
        ax.set_title(f"layer {k} ({name}{lab})", fontsize=9)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "(111) layers viewed along the stacking normal", fontsize=10)
    fig.tight_layout()
    return fig


def strain_slices_figure(
    positions_A,
    values,
    *,
    component: str = "exx",
    slab_A: float = 2.3,
    axes_names=("z", "y", "x"),
    title: str | None = None,
):
    """Central slabs through the model perpendicular to z, y and x, atoms coloured by a strain
    component (diverging map centred at zero, in %) with a colour bar."""
    p = np.asarray(positions_A, float)
    v = np.asarray(values, float) * 100
    ok = np.isfinite(v)
    if not ok.any():
        raise ValueError(f"no finite {component} values: run the analysis with strain first")
    c = np.median(p[ok], axis=0)
    lim = diverging_limit(v)
    fig = _figure((10, 3.4))
    axes = fig.subplots(1, 3)
    sc = None
    for k, ax in enumerate(axes):
        sel = ok & (np.abs(p[:, k] - c[k]) < slab_A / 2)
        other = [j for j in range(3) if j != k]
        sc = ax.scatter(
            p[sel, other[1]], p[sel, other[0]], c=v[sel], cmap="RdBu_r", vmin=-lim, vmax=lim,
            s=22, edgecolors="k", linewidths=0.2,
        )  # fmt: skip
        ax.set_title(f"slab across {axes_names[k]} ({sel.sum()} atoms)", fontsize=9)
        ax.set_xlabel(f"{axes_names[other[1]]} (Å)", fontsize=8)
        ax.set_ylabel(f"{axes_names[other[0]]} (Å)", fontsize=8)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
    cb = fig.colorbar(sc, ax=list(axes), shrink=0.85)
    cb.set_label(f"{component} (%)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def atoms_3d_figure(
    positions_A,
    values=None,
    *,
    label: str = "",
    cmap: str | None = None,
    diverging: bool = False,
    categories=None,
    elev: float = 20.0,
    azim: float = -60.0,
    scale_bar_A: float = 10.0,
    title: str | None = None,
    size: float = 12.0,
):
    """A 3D view of the atoms (matplotlib), coloured by a feature, with colour and scale bars.

    ``values`` numeric -> colour bar (``diverging``: centred at zero); ``categories`` (a dict
    value -> colour) colours by a label and draws a legend instead.
    """
    p = np.asarray(positions_A, float)
    fig = _figure((5.2, 4.6))
    ax = fig.add_subplot(projection="3d")
    if categories is not None and values is not None:
        vals = np.asarray(values).astype(str)
        # the commonest label faint and small, rarer ones on top: defects stay visible
        order = sorted(categories, key=lambda k: -(vals == k).sum())
        for rank, name in enumerate(order):
            sel = vals == name
            if sel.any():
                ax.scatter(
                    *p[sel][:, ::-1].T,
                    s=size * (0.6 if rank == 0 else 1.6),
                    c=categories[name],
                    alpha=0.25 if rank == 0 and len(order) > 1 else 1.0,
                    label=f"{name} ({sel.sum()})",
                    depthshade=False,
                    edgecolors="none",
                )
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    elif values is not None:
        v = np.asarray(values, float)
        kw = {}
        if diverging:
            lim = diverging_limit(v)
            kw = {"vmin": -lim, "vmax": lim}
        kw["cmap"] = cmap or ("RdBu_r" if diverging else "viridis")
        sc = ax.scatter(*p[:, ::-1].T, s=size, c=v, depthshade=True, edgecolors="none", **kw)
        cb = fig.colorbar(sc, ax=ax, shrink=0.6, pad=0.08)
        cb.set_label(label)
    else:
        ax.scatter(*p[:, ::-1].T, s=size, c="tab:gray", depthshade=True, edgecolors="none")
    ax.view_init(elev=elev, azim=azim)
    ax.set_box_aspect(np.ptp(p, axis=0)[::-1] + 1e-6)
    ax.set_axis_off()
    # scale bar along x at the lowest corner
    lo = p.min(0)
    ax.plot([lo[2], lo[2] + scale_bar_A], [lo[1], lo[1]], [lo[0], lo[0]], "k-", lw=3)
    ax.text(lo[2] + scale_bar_A / 2, lo[1], lo[0] - 0.4 * scale_bar_A, f"{scale_bar_A:g} Å",
            fontsize=8, ha="center", va="top")  # fmt: skip
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def facet_map_figure(positions_A, values, facet, *, label="local strain (%)", which=("111", "100")):
    """Surface atoms of the chosen facets in 3D, coloured by ``values`` (diverging at zero)."""
    f = np.asarray(facet).astype(str)
    sel = np.isin(f, list(which))
    if not sel.any():
        raise ValueError(f"no atoms on {', '.join(which)} facets: run the analysis with strain")
    v = np.asarray(values, float)[sel] * (100 if "%" in label else 1)
    return atoms_3d_figure(
        np.asarray(positions_A, float)[sel],
        v,
        label=label,
        diverging=True,
        title=f"{{{'} / {'.join(which)}}} facets ({sel.sum()} atoms)",
        size=18,
    )


def measured_vs_reprojected_figure(
    measured, calculated, angles_deg, *, pixel_size_A: float, n_show: int = 5, scale_bar_A=10.0
):
    """Measured, reprojected and residual images for ``n_show`` tilts spread over the series."""
    measured = np.asarray(measured, float)
    calculated = np.asarray(calculated, float)
    n = len(measured)
    # spread over the angles, left to right (a file in acquisition order is not by angle)
    by_angle = np.argsort(np.asarray(angles_deg, float), kind="stable")
    idx = by_angle[np.unique(np.linspace(0, n - 1, min(n_show, n)).round().astype(int))]
    fig = _figure((1.9 * len(idx), 6.0))
    axes = fig.subplots(3, len(idx), squeeze=False)
    for c, i in enumerate(idx):
        lo, hi = np.percentile(measured[i], [0.5, 99.8])
        r = measured[i] - calculated[i]
        lim = float(np.percentile(np.abs(r), 99.5)) or 1.0
        for row, (img, kw) in enumerate(
            (
                (measured[i], {"cmap": "gray", "vmin": lo, "vmax": hi}),
                (calculated[i], {"cmap": "gray", "vmin": lo, "vmax": hi}),
                (r, {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}),
            )
        ):
            ax = axes[row, c]
            ax.imshow(img, **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"{angles_deg[i]:+.0f}°", fontsize=9)
            if c == 0:
                ax.set_ylabel(("measured", "reprojected", "residual")[row], fontsize=9)
                add_scale_bar(  # black on the residual's white zero
                    ax,
                    length_A=scale_bar_A,
                    pixel_size_A=pixel_size_A,
                    color="black" if row == 2 else "white",
                )
    fig.tight_layout()
    return fig


def save_figure(fig, path_stem, *, formats=("png",), dpi: int = 300) -> list:
    """Write ``fig`` as ``path_stem.<fmt>`` for each format (png, svg, pdf); returns the paths."""
    from pathlib import Path

    out = []
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        fmt = fmt.lower().lstrip(".")
        if fmt not in ("png", "svg", "pdf"):
            raise ValueError(f"unknown figure format {fmt!r}; choose png, svg or pdf")
        p = stem.with_suffix(f".{fmt}")
        fig.savefig(p, dpi=dpi if fmt == "png" else None, bbox_inches="tight")
        out.append(p)
    return out
