"""Several fast frames per tilt: registered, corrected for the scan's drift distortion, summed.

An ADF-STEM tilt series is usually recorded as a few short scans per tilt (the study: three
images of 4 us dwell per angle), because the specimen drifts: one long scan would smear the
drift into the image, several short ones can be registered and added. Two things follow from
a drift that is steady over the few seconds of one tilt's frames:

* **Translation between frames.** Frame ``k`` shows the specimen moved by ``s_k`` since the
  first; the sum of unregistered frames is the image convolved with the drift's path.
* **Scan distortion within each frame.** A scan takes its rows one after the other, so row
  ``y`` is recorded a fraction ``y / H`` of the scan time after row 0: a specimen drifting at
  ``u`` pixels per scan time is drawn sheared and stretched, pixel ``p`` showing the specimen's
  point ``p - s_k - u y / H``. Every frame carries the same distortion (the rate is the same),
  so registering frames does not see it, but it differs from tilt to tilt with the drift, and
  no shift or angle of the alignment can take it out of the tilt series.

Both come from the frames' registration: the displacement between consecutive frames is the
drift over one frame period, ``d = u * frame_interval`` (``frame_interval``: the frame period
over the image's scan time; 1 for frames scanned back to back, more with a pause between them
or for frames cut from a taller scan). Each frame is then resampled (cubic splines) to where
the specimen was at the middle of the tilt's scans, distortion undone, and the frames summed:
counts stay counts (pixels that some frames do not cover are scaled by the frames that do).

Registration is by cross-correlation of each frame with the sum of the others (leave one out,
so a frame's own noise does not pull the peak to zero), iterated, on frames with the vacuum's
plane taken off, first smoothed (the particle's outline), then each frequency weighted for the
signal it carries (:func:`frame_shifts`), in a window about the particle where it fills a small
part of a large field (the vacuum carries only noise): the particle's whole image carries the
registration, which works at the few counts per frame that a low-dose series splits into its
frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.signal.windows import tukey

from ..core.counts import is_counts
from ..core.memory import check_memory
from ..core.progress import check_cancel, report

#: Directions the rows of a frame were scanned in: ``"down"`` (row 0 first, as microscope
#: software stores an image), ``"up"`` (the last row first), ``"none"`` (frames registered by
#: shifts only, the scan distortion left as it is).
SCAN_DIRECTIONS = ("down", "up", "none")
#: Frames further apart than this fraction of the image's shorter side are refused.
MAX_FRAME_SHIFT_FRACTION = 0.25
#: A tilt whose frames depart further than this from a steady drift, and further than
#: :data:`DRIFT_SIGNIFICANCE_K` times the places' scatter, had a jump: its frames are placed
#: where they registered, and it gets a note [px].
DRIFT_NONLINEARITY_NOTE_PX = 0.5
#: A tilt's drift is corrected only when it is this many standard errors from none (the
#: alignment's rule for its corrections); else its frames are added as recorded.
DRIFT_SIGNIFICANCE_K = 3.0
#: A frame whose signal (over its median) differs from its tilt's median frame by more than
#: this fraction gets a note (a beam current that changed, a blanked part of a scan).
FRAME_SIGNAL_NOTE = 0.25
#: Frames are registered in a window about the particle (its objects' box on the tilt's sum,
#: :func:`_particle_window`) widened by this margin [px] on every side ...
WINDOW_MARGIN_PX = 24
#: ... when that window is at most this fraction of the image's side on both axes (else, or
#: when the vacuum cannot be measured, on the whole image).
WINDOW_MAX_FRACTION = 0.6
#: The coarse registration's smoothing [px]: the particle's outline, not its lattice (column
#: spacings in projection are 4-6 px at 0.358 A).
COARSE_SMOOTH_PX = 3.0
#: The fine registration looks for its peak this near the coarse place [px] (under the nearest
#: lattice peak, a column spacing away).
FINE_SEARCH_PX = 2.0
#: The registration's window: a Tukey window flat over all but this fraction of each side.
WINDOW = 0.2


@dataclass
class FrameRegistration:
    """Registered, distortion-corrected and summed frames (:func:`register_frames`).

    Attributes
    ----------
    data : ndarray of float32, shape (n_tilts, rows, cols)
        The sum of each tilt's frames, in the frames' units (counts stay counts).
    shifts_px : ndarray, shape (n_tilts, n_frames, 2)
        Where the specimen was at the start of each frame, relative to the mean of its tilt's
        frames [pixels, (row, col)]: on the steady drift's line through the registered places
        (which averages their noise), those places themselves where they depart from it by
        more than :data:`DRIFT_NONLINEARITY_NOTE_PX` (a jump), or 0 where no drift shows.
    drift_px_per_frame : ndarray, shape (n_tilts, 2)
        Each tilt's steady drift over one frame period (the least-squares line through its
        registered places; 0 where it is within :data:`DRIFT_SIGNIFICANCE_K` standard errors
        of none) [pixels, (row, col)].
    drift_nonlinearity_px : ndarray, shape (n_tilts,)
        Root-mean-square departure of the shifts from that line (0 with two frames).
    scan_direction, frame_interval
        As given (:func:`register_frames`).
    uncovered_pixels : int
        Output pixels (of all images) that some frame did not record: each such frame's
        nearest recorded pixel stands in (:func:`add_frames`).
    place_scatter_px : float
        The registered places' scatter about steady drifts (one axis, pooled over the tilts;
        0 with two frames): the registration's noise.
    unregistered : list of int
        Tilts whose drift is within :data:`DRIFT_SIGNIFICANCE_K` standard errors of none:
        their frames were added as recorded.
    counts : bool
        The frames were counts (integer, non-negative): ``data`` is counts too, resampled (its
        noise correlated between neighbouring pixels), its sums kept.
    notes : list of str
        What an analyst should read.
    """

    data: np.ndarray
    shifts_px: np.ndarray
    drift_px_per_frame: np.ndarray
    drift_nonlinearity_px: np.ndarray
    scan_direction: str
    frame_interval: float
    uncovered_pixels: int = 0
    notes: list[str] = field(default_factory=list)
    place_scatter_px: float = 0.0
    unregistered: list[int] = field(default_factory=list)
    counts: bool = False

    @property
    def n_frames(self) -> int:
        return int(self.shifts_px.shape[1])

    def record(self) -> dict:
        """A JSON-ready record of the registration (for the align stage's provenance)."""
        speed = np.hypot(*self.drift_px_per_frame.T)
        return {
            "frames_per_image": self.n_frames,
            "scan_direction": self.scan_direction,
            "scan_distortion_corrected": self.scan_direction != "none",
            "frame_interval": self.frame_interval,
            "drift_px_per_frame_row_col": np.round(self.drift_px_per_frame, 4).tolist(),
            "drift_px_per_frame_max": round(float(speed.max()), 4),
            "drift_px_per_frame_median": round(float(np.median(speed)), 4),
            "drift_nonlinearity_px": np.round(self.drift_nonlinearity_px, 4).tolist(),
            "frame_shifts_px_row_col": np.round(self.shifts_px, 4).tolist(),
            "pixels_not_in_every_frame": int(self.uncovered_pixels),
            "place_scatter_px": round(float(self.place_scatter_px), 4),
            "drift_significance_k": DRIFT_SIGNIFICANCE_K,
            "added_unregistered": [int(i) for i in self.unregistered],
            "counts": bool(self.counts),
            "notes": list(self.notes),
        }


def _vacuum_plane(image) -> np.ndarray:
    """The vacuum's level under one tilt's summed frames: a plane through its outer strips
    (:func:`napari_aet.recon._support.vacuum`), or the image's median where the strips are not
    vacuum."""
    from ..recon._support import vacuum as _vacuum

    image = np.asarray(image, np.float64)
    vac = _vacuum(image, ndimage.gaussian_filter(image, 2.0), 2.0)
    if vac is None:
        return np.full(image.shape, float(np.median(image)))
    return np.broadcast_to(vac[0], image.shape)


def _particle_window(image) -> tuple[slice, slice] | None:
    """Where to register one tilt's frames: the box of the objects that stand out of the
    vacuum in the frames' sum ``image`` (:func:`napari_aet.align._crop._objects`; those with
    at least 2 % of the largest one's signal), widened by :data:`WINDOW_MARGIN_PX` and grown
    to a fast FFT size; None (the whole image) when nothing stands out, the vacuum cannot be
    measured, or the box is more than :data:`WINDOW_MAX_FRACTION` of the image."""
    from scipy.fft import next_fast_len

    from ._crop import OTHER_OBJECT_FRACTION, _objects

    objects = _objects(np.asarray(image, np.float64), COARSE_SMOOTH_PX)
    if objects is None or isinstance(objects, str):
        return None
    top = objects[0][0]
    kept = [(r, c) for sig, r, c, _ in objects if sig >= OTHER_OBJECT_FRACTION * top]
    rows = np.concatenate([r for r, _ in kept])
    cols = np.concatenate([c for _, c in kept])
    window = []
    for lo, hi, size in ((rows.min(), rows.max(), image.shape[0]),
                         (cols.min(), cols.max(), image.shape[1])):  # fmt: skip
        side = next_fast_len(int(hi - lo + 1 + 2 * WINDOW_MARGIN_PX))
        if side > WINDOW_MAX_FRACTION * size:
            return None
        start = int(np.clip((lo + hi + 1) // 2 - side // 2, 0, size - side))
        window.append(slice(start, start + side))
    return window[0], window[1]


def frame_shifts(
    frames,
    *,
    upsample: int = 100,
    spectrum_sigma: float = 1.0,
    max_iter: int = 6,
    vacuum=None,
) -> np.ndarray:
    """Where the specimen is in each of one tilt's frames, relative to their mean [px].

    The frames (the vacuum's plane off, a Tukey window against the edges) are registered in
    two steps, each frame against the sum of the others at their latest places (leave one
    out, so that a frame's own noise does not pull the peak to zero), one frame at a time,
    until no place changes by more than 0.01 px:

    * **coarse**, on frames smoothed by :data:`COARSE_SMOOTH_PX` (the particle's outline, not
      its lattice), from a start that registers each frame to the one before: a crystal's
      lattice makes peaks one column spacing apart, and at a few counts per frame the noise
      can lift one of those above the true one;
    * **fine**, near the coarse places only (within :data:`FINE_SEARCH_PX`), on the frames as
      they are, each frequency of the cross-correlation weighted for the signal it carries over
      the noise (the maximum-likelihood weighting of Knapp & Carter 1976): for a frame with
      signal power ``P`` and white noise ``N`` per frequency against the sum of the other
      ``m - 1``, ``P / (N (m P + N))``. ``P`` is the frames' mean cross-spectrum at their
      current places (smoothed over ``spectrum_sigma`` frequency bins; no noise power in it),
      ``N`` their power where the probe passes no signal (beyond 0.4 cycles per pixel). The
      peak is found to ``1 / upsample`` of a pixel by a local discrete Fourier transform.

    ``vacuum``: the vacuum's level under the frames' sum (:func:`_vacuum_plane`), when the
    caller has it.

    Returns
    -------
    ndarray, shape (n_frames, 2)
        ``s_k``: frame ``k`` shows the specimen's point ``p - s_k`` at pixel ``p`` (if the
        frames differ by shifts only), the mean over the frames removed.
    """
    f = np.asarray(frames, np.float64)
    m, h, w = f.shape
    level = _vacuum_plane(f.sum(0)) if vacuum is None else vacuum
    g = (f - level[None] / m) * (tukey(h, WINDOW)[:, None] * tukey(w, WINDOW)[None, :])
    raw = np.fft.fft2(g)
    coarse = np.fft.fft2(ndimage.gaussian_filter(g, (0, COARSE_SMOOTH_PX, COARSE_SMOOTH_PX)))

    def rounds(ft, s, weight_of=None, radius=None):
        moved = np.stack([ndimage.fourier_shift(ft[k], -s[k]) for k in range(m)])
        total = moved.sum(0)
        weight = 1.0 if weight_of is None else weight_of(moved)
        for _ in range(max_iter):
            change = 0.0
            for k in range(m):
                cross = (total - moved[k]) * weight * np.conj(ft[k])
                # the lag of the peak moves frame k onto the others, which sit at 0: frame k's
                # specimen is at minus that lag
                new = -_peak(cross, -s[k], radius, upsample)
                change = max(change, float(np.abs(new - s[k]).max()))
                s[k] = new
                total -= moved[k]
                moved[k] = ndimage.fourier_shift(ft[k], -s[k])
                total += moved[k]
            if change < 0.01:
                break
            if weight_of is not None:
                weight = weight_of(moved)
        return s

    s = np.zeros((m, 2))
    for k in range(1, m):  # a start: each frame against the one before
        s[k] = s[k - 1] - _peak(coarse[k - 1] * np.conj(coarse[k]), None, None, 10)
    s = rounds(coarse, s)
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.fftfreq(w)[None, :]
    beyond = np.hypot(ky, kx) > 0.4
    noise = float(np.mean([np.median(np.abs(raw[k][beyond]) ** 2) for k in range(m)]))
    if noise > 0:

        def weight_of(moved):
            power = _signal_power(moved, spectrum_sigma)
            return power / (noise * (m * power + noise))

        s = rounds(raw, s, weight_of, FINE_SEARCH_PX)
    return s - s.mean(0)


def _peak(cross, guess, radius, upsample: int) -> np.ndarray:
    """The lag [px, (row, col)] of the largest value of the cross-correlation whose spectrum
    is ``cross`` (``R * conj(M)``: the lag that moves ``M`` onto ``R``), among the lags within
    ``radius`` of ``guess`` (all when None), to ``1 / upsample`` of a pixel: the integer peak,
    then a discrete Fourier transform on finer and finer grids about it."""
    h, w = cross.shape
    cc = np.fft.ifft2(cross).real
    ly = np.fft.fftfreq(h) * h  # the lags, signed
    lx = np.fft.fftfreq(w) * w
    if guess is not None and radius is not None:
        near = (ly[:, None] - guess[0]) ** 2 + (lx[None, :] - guess[1]) ** 2 <= radius**2
        cc = np.where(near, cc, -np.inf)
    i, j = np.unravel_index(int(np.argmax(cc)), cc.shape)
    lag = np.array([ly[i], lx[j]], np.float64)
    fy, fx = np.fft.fftfreq(h), np.fft.fftfreq(w)
    span, step = 1.0, 0.1
    while True:
        off = np.arange(-span, span + step / 2, step)
        ey = np.exp(2j * np.pi * np.outer(lag[0] + off, fy))
        ex = np.exp(2j * np.pi * np.outer(fx, lag[1] + off))
        c = (ey @ cross @ ex).real
        a, b = np.unravel_index(int(np.argmax(c)), c.shape)
        lag += (off[a], off[b])
        if step <= 1.0 / upsample * 1.0001:
            return lag
        span, step = step, max(step / 10, 1.0 / upsample)


def _signal_power(moved, spectrum_sigma: float) -> np.ndarray:
    """The signal's power per frequency: the frames' mean cross-spectrum at their places
    (each pair's, so no noise power in it), smoothed over ``spectrum_sigma`` bins, >= 0."""
    m, h, w = moved.shape
    cross = np.zeros((h, w))
    for j in range(m):
        for k in range(j + 1, m):
            cross += (moved[j] * np.conj(moved[k])).real
    cross /= m * (m - 1) / 2
    return np.clip(ndimage.gaussian_filter(cross, spectrum_sigma, mode="wrap"), 0, None)


def _source_pixels(q_y, q_x, c, u, direction: str, rows: int):
    """The pixel of a frame (row, col) that recorded the specimen point that pixel ``q`` of
    the output shows; ``c = s_k - s_ref`` the frame's displacement, ``u`` the drift over one
    scan (both [px]). Row ``y`` of a frame is recorded at the fraction ``a + b y`` of its scan."""
    a, b = (0.0, 1.0 / rows) if direction == "down" else ((rows - 1.0) / rows, -1.0 / rows)
    p_y = (q_y + c[0] + u[0] * a) / (1.0 - u[0] * b)
    p_x = q_x + c[1] + u[1] * (a + b * p_y)
    return p_y, p_x


def add_frames(
    stack, shifts, drift, *, frame_interval: float = 1.0, scan_direction: str = "down"
) -> tuple[np.ndarray, np.ndarray]:
    """One tilt's frames ``(n_frames, rows, cols)`` moved to where the specimen was at the
    middle of their scans, the drift's scan distortion undone, and added.

    ``shifts`` ``(n_frames, 2)``: where the specimen was at each frame's start (mean 0);
    ``drift`` ``(2,)``: its drift over one frame period [px, (row, col)]. Each frame is
    resampled by cubic splines; where a frame did not record a pixel (the drift moved it out of
    the field) the frame's nearest recorded pixel stands in, so that every pixel of the sum is
    the counts of all the frames (scaling up the frames that did record it would amplify their
    noise, at the edges, into what looks like an object beside the particle). Returns the image
    (in the frames' units, added) and how many frames recorded each pixel.
    """
    m, rows, cols = stack.shape
    q_y, q_x = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64),
                           indexing="ij")  # fmt: skip
    u = np.asarray(drift, np.float64) / frame_interval
    if scan_direction == "none":
        u = np.zeros(2)
    ref = u / 2.0  # the specimen at the middle of the scans (the shifts' mean is 0)
    total = np.zeros((rows, cols))
    cover = np.zeros((rows, cols), np.int16)
    for k in range(m):
        p_y, p_x = _source_pixels(q_y, q_x, shifts[k] - ref, u, scan_direction, rows)
        cover += (p_y >= -0.5) & (p_y <= rows - 0.5) & (p_x >= -0.5) & (p_x <= cols - 0.5)
        total += ndimage.map_coordinates(np.asarray(stack[k], np.float64), [p_y, p_x], order=3,
                                         mode="nearest")  # fmt: skip
    return total, cover


def register_frames(
    frames,
    *,
    frame_interval: float = 1.0,
    scan_direction: str = "down",
    upsample: int = 100,
    progress=None,
    cancel=None,
) -> FrameRegistration:
    """Register each tilt's frames, undo the drift's scan distortion and sum them.

    Parameters
    ----------
    frames : array, shape (n_tilts, n_frames, rows, cols)
        Several scans of each tilt, in the order they were recorded.
    frame_interval : float
        The time from one frame's start to the next's over the time a frame's scan takes
        (rows of the image times the line time): 1 for frames scanned back to back, more with
        a pause between them or for frames cut from a taller scan.
    scan_direction : {"down", "up", "none"}
        The order the rows were scanned in: ``"down"`` (row 0 first, as DM, Velox and TIFF
        images are stored), ``"up"``, or ``"none"`` to register by shifts only (no scan
        distortion correction).
    upsample : int
        Registration precision, ``1 / upsample`` of a pixel.

    Raises
    ------
    ValueError
        For a stack that is not 4D, one frame per tilt, a blank frame, an unknown scan
        direction, a frame interval below 1, or frames moved by more than a quarter of the
        image (not frames of one tilt).
    """
    f = np.asarray(frames)
    if f.ndim != 4:
        raise ValueError(
            f"frames must be a 4D stack (n_tilts, n_frames, rows, cols), not shape {f.shape}"
        )
    n, m, rows, cols = f.shape
    if m < 2:
        raise ValueError(
            f"{m} frame per tilt: nothing to register; give the series as (n_tilts, rows, cols)"
        )
    if scan_direction not in SCAN_DIRECTIONS:
        raise ValueError(
            f"scan_direction {scan_direction!r} is not one of {', '.join(SCAN_DIRECTIONS)}"
        )
    if not np.isfinite(frame_interval) or frame_interval < 1.0:
        raise ValueError(
            f"frame_interval {frame_interval} is below 1: a frame cannot start before the "
            "previous one's scan has ended (1 = frames scanned back to back)"
        )
    flat = np.ptp(f.reshape(n, m, -1), axis=2) == 0
    if flat.any():
        i, k = (int(v) for v in np.argwhere(flat)[0])
        raise ValueError(
            f"frame {k} of image {i} is blank (every pixel the same): remove that image or "
            "frame, or check the file (a failed acquisition or export)"
        )
    # per tilt: the frames in double, their FFTs, the moved copies and the splines
    check_memory(m * rows * cols * 8 * 8, "registering one tilt's frames")
    t = np.arange(m, dtype=np.float64)
    limit = MAX_FRAME_SHIFT_FRACTION * min(rows, cols)
    measured = np.zeros((n, m, 2))
    notes: list[str] = []
    for i in range(n):  # every tilt's frames placed first: their scatter is the series'
        check_cancel(cancel, "the frames' registration")
        stack = np.asarray(f[i], np.float64)
        total = stack.sum(0)
        box = _particle_window(total) or (slice(None), slice(None))
        inside, vacuum = stack[(slice(None), *box)], _vacuum_plane(total)[box]
        measured[i] = frame_shifts(inside, upsample=upsample, vacuum=vacuum)
        # each frame's counts over the vacuum in the particle's window (a linear measure: noise
        # does not bias it; the whole field of a large scan would add its vacuum's noise)
        signal = np.sum(inside - vacuum[None] / m, axis=(1, 2))
        typical = float(np.median(signal))
        odd = np.nonzero(np.abs(signal - typical) > FRAME_SIGNAL_NOTE * max(typical, 1e-12))[0]
        if len(odd):
            notes.append(
                f"image {i}: frame(s) {odd.tolist()} carry "
                f"{', '.join(f'{v / typical:.0%}' for v in signal[odd])} of the signal of the "
                "median frame (a beam current that changed, a blanked scan?)"
            )
        far = float(np.ptp(measured[i], axis=0).max())  # the farthest two, on either axis
        if far > limit:
            raise ValueError(
                f"the frames of image {i} are up to {far:.0f} px apart, more than a quarter of "
                "the image: they do not look like frames of one tilt (check the stack's order: "
                "(n_tilts, n_frames, rows, cols)), or leave that image out"
            )
        report(progress, i + 1, 2 * n, f"frames of image {i + 1}/{n} placed")
    coef = np.stack([np.polyfit(t, measured[i], 1) for i in range(n)])  # (n, 2, 2)
    steady = coef[:, 0, None, :] * t[None, :, None] + coef[:, 1, None, :]
    rss = np.sum((measured - steady) ** 2, axis=(1, 2))
    nonlinear = np.sqrt(rss / m) if m > 2 else np.zeros(n)
    # the places' scatter about steady drifts, one axis, pooled over the tilts by the median
    # (a tilt with a jump does not set it): chi-square with 2 (m - 2) degrees of freedom
    dof = 2 * (m - 2)
    scatter = float(np.sqrt(np.median(rss / dof) / (1 - 2 / (9 * dof)) ** 3)) if m > 2 else 0.0
    drift_se = scatter / float(np.sqrt(np.sum((t - t.mean()) ** 2)))
    jump_px = max(DRIFT_NONLINEARITY_NOTE_PX, DRIFT_SIGNIFICANCE_K * scatter)
    out = np.empty((n, rows, cols), np.float32)
    shifts = np.zeros((n, m, 2))
    drift = coef[:, 0, :].copy()
    uncovered = 0
    unregistered = []
    for i in range(n):
        check_cancel(cancel, "the frames' registration")
        stack = np.asarray(f[i], np.float64)
        if nonlinear[i] > jump_px:  # a jump: each frame where it registered
            s = measured[i]
            notes.append(
                f"image {i}: the frames depart {nonlinear[i]:.2f} px from a steady drift (a "
                "jump or a changing drift): each frame placed where it registered, the scan "
                "distortion undone at the mean rate"
            )
        elif np.hypot(*drift[i]) <= DRIFT_SIGNIFICANCE_K * drift_se:  # no drift shows
            s, drift[i] = None, 0.0
            unregistered.append(i)
        else:  # the steady drift's line averages the places' noise
            s = steady[i] - steady[i].mean(0)
        if s is None:  # as recorded: no resampling at all (its places stay 0)
            out[i] = stack.sum(0)
        else:
            shifts[i] = s
            img, cover = add_frames(stack, s, drift[i], frame_interval=frame_interval,
                                    scan_direction=scan_direction)  # fmt: skip
            uncovered += int((cover < m).sum())
            out[i] = img
        report(progress, n + i + 1, 2 * n, f"frames of image {i + 1}/{n} added")
    if unregistered and scatter > DRIFT_NONLINEARITY_NOTE_PX / 2:
        notes.append(
            f"the frames' places scatter by {scatter:.2f} px about steady drifts (too few "
            f"counts per frame to place them better): {len(unregistered)} of {n} images, "
            f"whose drift is within {DRIFT_SIGNIFICANCE_K:g} standard errors "
            f"({DRIFT_SIGNIFICANCE_K * drift_se:.2f} px per frame) of none, added as recorded"
        )
    return FrameRegistration(
        out, shifts, drift, nonlinear, scan_direction, float(frame_interval), uncovered, notes,
        scatter, unregistered, is_counts(f),
    )  # fmt: skip
