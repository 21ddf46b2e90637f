"""Scan lines that recorded nothing: a band of an image's rows that all hold one value.

A scanning microscope writes an image line by line. When the beam is blanked for a moment, the
scan is interrupted or a part of the frame is lost on its way to the disk, whole lines come out
as one value (0, or the detector's offset) in the middle of an otherwise recorded image. Taken
as data, such a band tells the reconstruction that the specimen is empty there: on a twinned Pt
dumbbell at a third of the study's counts, 16 blank lines in one of 21 images cost the traced
model 18 atoms (18 missed against none) and the final model 1 pm; left out, the image costs
nothing measurable (docs/benchmarks.md). The image is left out whole: the reconstruction and
the fits take images, not pixels with weights.

Only bands inside the image count: a series shifted or turned before it arrived has fill rows
at its top and bottom edge (:func:`napari_aet.align._preprocess.fill_masks` takes those out of
the background fit), and those are not lost lines. Nor are rows of zeros in counts so sparse
that a line of zeros is likely: a band is flagged only when the lines beside it hold at least
:data:`MIN_EXPECTED_COUNTS` counts (for raw counts; any other data's neighbouring lines only
have to vary, since a detector's read noise never gives a line one exact value).
"""

from __future__ import annotations

import numpy as np

from ..core.counts import is_counts

#: A band of constant lines is flagged in counts only when the lines beside it hold at least
#: this many counts on average: a line of zeros in Poisson counts of that mean has a chance of
#: e^-10 = 5e-5.
MIN_EXPECTED_COUNTS = 10.0


def dead_scan_lines(data) -> dict[int, list[tuple[int, int]]]:
    """The bands of rows ``[start, stop)`` of each image that hold one value throughout,
    inside the image (not touching its first or last row) and beside rows that vary.

    Parameters
    ----------
    data : array, shape (n_images, rows, cols)

    Returns
    -------
    dict
        Image index -> its bands; images without any are left out.
    """
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"dead_scan_lines takes a stack (n, rows, cols), not shape {arr.shape}")
    counts = is_counts(arr)
    out: dict[int, list[tuple[int, int]]] = {}
    for i, img in enumerate(arr):
        flat = np.ptp(img, axis=1) == 0
        if not flat.any() or flat.all():
            continue
        edges = np.flatnonzero(np.diff(np.r_[0, flat.astype(np.int8), 0]))
        bands = []
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            if start == 0 or stop == len(flat):  # fill at the edge of a series moved elsewhere
                continue
            beside = img[[start - 1, stop]].astype(np.float64)
            if np.ptp(beside, axis=1).min() == 0:
                continue
            if counts and beside.sum(axis=1).mean() < MIN_EXPECTED_COUNTS:
                continue  # sparse counts: a line of zeros is likely
            bands.append((int(start), int(stop)))
        if bands:
            out[i] = bands
    return out


def dead_lines_reason(bands) -> str:
    """How a note names an image's dead bands: ``"scan lines 50-65 hold one value"``."""
    parts = ", ".join(f"{a}-{b - 1}" if b - a > 1 else f"{a}" for a, b in bands)
    n = sum(b - a for a, b in bands)
    return f"scan line{'s' if n > 1 else ''} {parts} hold one value (beam blanked, data lost)"
