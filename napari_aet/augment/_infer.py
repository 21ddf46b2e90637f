"""Sliding-window U-Net inference with overlap blending, for any volume size, on GPU or CPU.

The input is brought to the network's terms automatically: resampled to the voxel size the
weights were trained at and, when the data's element is known, to the bond length of the
particles they were trained on (when the two together differ by more than 1 %), then
normalised so that the background is 0 and a typical atom peaks at 1
(:func:`normalise_tomogram`). The output keeps those units (a 0.45 A Gaussian of peak ~1 per
atom) and is resampled back to the input's grid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.device import resolve_device
from ..core.elements import mean_bond_length_A, parse_elements
from ..core.memory import check_memory
from ..core.progress import check_cancel, report
from ._model import UNet3D
from ._normalise import atom_peak_scale
from ._weights import choose_weights, load_weights


@dataclass
class AugmentResult:
    """An augmented tomogram.

    Attributes
    ----------
    volume : ndarray of float32, same shape as the input
        Augmented tomogram, atoms as Gaussians of peak ~1 on a zero background.
    settings : dict
        Weights (source, provenance summary), tiling, device, normalisation applied.
    seconds : float
    """

    volume: np.ndarray
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0


def _starts(n: int, tile: int, step: int) -> list[int]:
    if n <= tile:
        return [0]
    s = list(range(0, n - tile, step))
    return s + [n - tile]


def _ramp(tile: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    w = np.ones(tile, np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if not at_start:
            w[:overlap] = r
        if not at_end:
            w[-overlap:] = r[::-1]
    return w


def predict_tiled(
    model: UNet3D,
    volume: np.ndarray,
    *,
    tile_px: int = 96,
    overlap_px: int = 16,
    device="cpu",
    progress=None,
    cancel=None,
) -> np.ndarray:
    """Run ``model`` over ``volume`` in overlapping tiles, blended with linear ramps.

    Tiles start on multiples of the network's down-sampling factor, so every tile sees the
    same pooling grid; the overlaps are blended with weights that fall linearly to the tile
    edges inside the volume (not at the volume's own borders), which hides the seams.
    """
    m = model.multiple
    tile = max(m, (int(tile_px) // m) * m)
    overlap = min(int(overlap_px), tile // 2)
    step = max(m, ((tile - overlap) // m) * m)
    overlap = tile - step
    vol = np.asarray(volume, np.float32)
    shape = vol.shape
    padded = [max(tile, -(-s // m) * m) for s in shape]
    work = np.zeros(padded, np.float32)
    work[: shape[0], : shape[1], : shape[2]] = vol
    out = np.zeros(padded, np.float32)
    weight = np.zeros(padded, np.float32)
    starts = [_starts(p, tile, step) for p in padded]
    total = int(np.prod([len(s) for s in starts]))
    dev = torch.device(device)
    amp = dev.type == "cuda"
    k = 0
    with torch.no_grad():
        for z in starts[0]:
            for y in starts[1]:
                for x in starts[2]:
                    check_cancel(cancel, "the U-Net augmentation")
                    sl = (slice(z, z + tile), slice(y, y + tile), slice(x, x + tile))
                    t = torch.from_numpy(np.ascontiguousarray(work[sl])[None, None]).to(dev)
                    with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=amp):
                        pred = model(t)
                    pred = pred.float()[0, 0].cpu().numpy()
                    w = (
                        _ramp(tile, overlap, z == 0, z + tile >= padded[0])[:, None, None]
                        * _ramp(tile, overlap, y == 0, y + tile >= padded[1])[None, :, None]
                        * _ramp(tile, overlap, x == 0, x + tile >= padded[2])[None, None, :]
                    )
                    out[sl] += pred * w
                    weight[sl] += w
                    k += 1
                    report(progress, k, total, f"tile {k}/{total}")
    return (out / weight)[: shape[0], : shape[1], : shape[2]]


def training_sets(provenance: dict) -> list[dict]:
    """The settings of each training set in a weights' provenance (empty when it does not say).

    The weights file stores each set's settings (``data``: one dict, or a list for several
    sets); ``provenance.json`` beside it stores each set's manifest (``data.settings``).
    """
    data = provenance.get("data") or []
    out = []
    for d in data if isinstance(data, list) else [data]:
        if isinstance(d, dict):
            d = d.get("settings", d)
            if isinstance(d, dict) and d:
                out.append(d)
    return out


def training_bond_length_A(provenance: dict) -> float | None:
    """The mean nearest-neighbour distance [A] of the particles the weights were trained on
    (the mean over its training sets): ``napari-aet train`` builds every structure (fcc,
    faulted, hcp, bcc, decahedra, icosahedra, glass) with its nearest neighbours at one fcc
    lattice constant's bond ``a / sqrt(2)`` (the amorphous packing at the fcc density; a
    set's ``bond_scale_max`` spreads it symmetrically), so a set's bond is that; its
    elements' bond where a set names no lattice constant; None when the provenance says
    neither."""
    bonds = [
        float(s["lattice_constant_A"]) / np.sqrt(2.0)
        if s.get("lattice_constant_A")
        else mean_bond_length_A(s["element"])
        for s in training_sets(provenance)
        if s.get("lattice_constant_A") or s.get("element")
    ]
    return float(np.mean(bonds)) if bonds else None


def bond_length_zoom(provenance: dict, element) -> tuple[float, float | None, float | None]:
    """How much larger the data's atoms must be drawn for the network to see its training's
    spacing: (the training's bond length over the data's, the data's [A], the training's [A]);
    1 when either is unknown.

    The network learnt what an atom and its neighbours look like at one spacing (the shipped
    weights: Pt's 2.77 A); a hcp Co particle at a tenth of the study's counts, drawn at its own
    2.51 A, lost 89 of 418 atoms to it, drawn at Pt's 65 (docs/benchmarks.md, fifty-fifth
    session)."""
    trained = training_bond_length_A(provenance)
    if not element or trained is None:
        return 1.0, None, trained
    data = mean_bond_length_A(element)
    return trained / data, data, trained


def outside_training(provenance: dict, *, voxel_size_A: float, element=None) -> list[str]:
    """Where the data lie outside what the weights were trained on (an element no training set
    had, a voxel size far from theirs before resampling), one note each; empty when the
    weights' provenance does not say."""
    sets = training_sets(provenance)
    notes = []
    trained = [s["element"] for s in sets if s.get("element")]
    seen = {e for t in trained for e in parse_elements(t)}
    if element and seen and not set(parse_elements(element)) <= seen:
        notes.append(
            f"the network was trained on {' / '.join(trained)} particles, the data are "
            f"{element}: its atom images differ in contrast (their spacing is matched by "
            "resampling); compare with --augment none"
        )
    px = [float(s["pixel_size_A"]) for s in sets if s.get("pixel_size_A")]
    trained_px = px[0] if px else None
    if trained_px and not 0.5 <= voxel_size_A / float(trained_px) <= 2.0:
        notes.append(
            f"the voxel size {voxel_size_A:g} A is far from the training's {trained_px:g} A: the "
            "volume is resampled by a large factor; compare with --augment none"
        )
    return notes


def augment_volume(
    volume,
    *,
    voxel_size_A: float,
    weights="auto",
    tile_px: int = 96,
    overlap_px: int = 16,
    device: str = "auto",
    element: str | None = None,
    progress=None,
    cancel=None,
) -> AugmentResult:
    """Augment a tomogram with the U-Net (missing-wedge and noise artifacts removed).

    Parameters
    ----------
    volume : ndarray of shape (z, y, x)
        A GENFIRE tomogram (any units; normalised automatically).
    element : str, optional
        The data's element(s): the volume is also resampled so that their bond length (Vegard's
        rule for several) appears as the training particles' did (:func:`bond_length_zoom`),
        and a note (``settings["notes"]``) says when it is not an element the weights were
        trained on, as for a voxel size far from theirs.
    voxel_size_A : float
        Its voxel size [A]; the volume is resampled to the network's sampling (and bond
        length) and back when the two together differ by more than 1 %.
    weights : str, path or UNet3D
        ``"fcc"``, ``"amorphous"`` or ``"alloy"`` (shipped), ``"auto"`` (``"alloy"`` when
        ``element`` names several, else ``"fcc"``), a weights file from ``napari-aet train``, or
        a model (then trained at ``voxel_size_A``).
    tile_px, overlap_px : int
        Side of the tiles and their overlap [voxels]; tiles bound the memory.
    device : {"auto", "cpu", "cuda"}
    progress, cancel
        Progress per tile and cancel flag.

    Returns
    -------
    AugmentResult
    """
    from scipy import ndimage

    t0 = time.perf_counter()
    vol = np.asarray(volume, np.float32)
    if vol.ndim != 3:
        raise ValueError(f"a tomogram must be 3D (z, y, x); got shape {vol.shape}")
    if voxel_size_A is None or voxel_size_A <= 0:
        raise ValueError("voxel_size_A must be positive (Angstrom); read it from the file")
    dev = resolve_device(device)
    weights = choose_weights(weights, element)
    if isinstance(weights, UNet3D):
        model, meta = weights.eval().to(dev), {"voxel_size_A": voxel_size_A, "source": "model"}
    else:
        model, meta = load_weights(weights, device=dev)
    net_vs = meta["voxel_size_A"]
    prov = meta.get("provenance", {})
    bond_zoom, bond_data, bond_trained = bond_length_zoom(prov, element)
    zoom = voxel_size_A / net_vs * bond_zoom
    resample = abs(zoom - 1) > 0.01
    new_shape = tuple(int(round(s * zoom)) for s in vol.shape) if resample else vol.shape
    check_memory(
        4 * (vol.size + 3 * int(np.prod(new_shape))) + 4 * model.config["width"] * 6 * tile_px**3,
        f"augmenting a {vol.shape} tomogram",
        hint="Use a smaller tile_px or crop the volume.",
    )
    work = ndimage.zoom(vol, zoom, order=3) if resample else vol
    offset, scale = atom_peak_scale(work, voxel_size_A=net_vs)
    work = (work - offset) / scale
    out = predict_tiled(
        model,
        work,
        tile_px=tile_px,
        overlap_px=overlap_px,
        device=dev,
        progress=progress,
        cancel=cancel,
    )
    if resample:
        # back by linear interpolation: a spline's ripple would turn the network's empty
        # vacuum (exact zeros) into a floor of tiny maxima that the tracer takes as candidates
        # (a Ni-Pd-Pt glass: 536 of them, its alloy threshold then fell from 3.1 to 1.0 and 34
        # false atoms were traced)
        out = ndimage.zoom(out, [a / b for a, b in zip(vol.shape, out.shape, strict=True)], order=1)
        out = np.maximum(out, 0)
    notes = outside_training(prov, voxel_size_A=float(voxel_size_A), element=element)
    settings = {
        "stage": "augment",
        "weights": meta.get("source"),
        "weights_trained": {
            k: prov.get(k) for k in ("command", "epochs_done", "final_val_loss") if k in prov
        },
        "network_voxel_size_A": net_vs,
        "input_voxel_size_A": float(voxel_size_A),
        "resampled": bool(resample),
        "bond_length_A": {"data": bond_data, "training": bond_trained, "zoom": bond_zoom},
        "normalisation": {"offset": offset, "atom_peak": scale},
        "tile_px": tile_px,
        "overlap_px": overlap_px,
        "device": str(dev),
        "notes": notes,
    }
    return AugmentResult(out.astype(np.float32), settings, time.perf_counter() - t0)
