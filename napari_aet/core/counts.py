"""Counts from a detector's own units: the Poisson-Gaussian noise model of a tilt series.

An ADF detector read through an amplifier and a digitiser does not give counted electrons:
it gives ``z = g * n + z0 + e``, ``n`` the electrons (Poisson), ``g`` the gain, ``z0`` an
offset and ``e`` read noise of variance ``s**2``. Whatever the three are, the variance is
linear in the mean, ``var z = a * E[z] + b`` with ``a = g`` and ``b = s**2 - g * z0`` (Foi et
al. 2008, the model behind the generalised Anscombe transform that the study's denoising
used, Makitalo & Foi 2013). Then ``c = z / a + b / a**2`` has a variance equal to its mean:
counts, with the read noise folded in. That is what the align stage's dose rule, its
Anscombe transform, the coarse shifts' replicate error and the refine stage's Poisson
replicates need, and what a series scaled, offset or background-subtracted by its
microscope's software no longer shows as integers.

The estimate needs no flat region of the images (an atomic-resolution image has little):

* ``r = K * z`` with ``K = d (x) d / 70``, ``d = (1, -4, 6, -4, 1)``, a fourth difference
  along rows and columns with unit noise gain. White noise passes with its variance; the
  atoms' images, blurred over pixels by the probe and the atoms' vibration, barely do; a
  constant offset of a scan line does not at all.
* ``E[r**2] = a * m + b`` with ``m = K**2 * E[z]`` (``K**2`` sums to 1): the noise's
  variance where ``r`` is taken.
* ``a`` is the instrumental-variable slope of ``r**2`` on ``m_K = K**2 * z``, with the mean
  of a ring of pixels around the 5 x 5 support as the instrument: ``m_K``'s noise shares
  pixels with ``r``, the ring's does not, so neither the noise in ``m_K`` (which flattens a
  plain regression) nor the pixels' third moments bias it. ``b`` follows from the means.
* The covariances are taken within each image and pooled (images with their own offsets
  or normalisation); each image's ``b`` is measured where it is dimmest; see
  :func:`estimate_noise_model`.
* The standard error of ``a`` is a jackknife over the images.

Measured on independent (abTEM) series of a twinned Pt dumbbell, 128 px of 0.358 A, pure
Poisson counts: ``a`` came out 0.87, 1.07 and 1.14 at 5, 17 and 50 counts on the brightest
column (1 is right): what is left of the atoms' images in ``r`` raises it at high counts, the
images' few bright pixels make it noisy at low counts. Scaled, offset and read noise added
(gain 37.3, offset 1000, read noise 20 and 60) the same to within 0.05. Good enough for what
uses it (a dose rule at 100 counts, Poisson replicates), not a detector calibration.

A series resampled before it arrives (aligned elsewhere: sub-pixel shifts, a turn) has its
noise correlated between neighbouring pixels, and ``r`` passes only part of its variance
(0.57 after cubic shifts, 0.38 after linear ones): the slope above is that part. Where the
fourth differences' neighbour correlation says so, the noise's autocorrelation is measured
where the images are dimmest (lags up to 3 px, :func:`_noise_acf`) and gain and offset
variance are divided by the fraction ``sum K K' acf`` that ``r`` passes (:func:`_pass_factor`):
the slope of the whole variance on the mean, what makes the converted series' variance its
mean. On the independent dumbbell and polyhedron series (128 px, a tenth of the study's
counts to the study's) that came out 0.91-1.20 of the truth after cubic shifts and turns and
0.91-1.19 after linear shifts, against 0.88-1.14 for the same series unresampled (the atoms'
leak); linear shifts at a third of the counts or fewer leave the gain known to only 25 %, and
such a series is still refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: The noise model is used only when its gain is known to this relative standard error.
MAX_GAIN_REL_ERROR = 0.2
#: Counts at the brightest pixels (99.9th percentile) above which a converted series is left
#: in its units: its noise (under 3 % of the signal there) matters to no step, and the
#: "gain" of a series without noise (denoised, simulated) is the atoms' images' leak into the
#: noise estimate, which gives meaningless counts.
MAX_COUNTS = 1000.0

#: The correlation of neighbouring fourth differences of white noise: sum(d_i d_i+1) / sum(d^2).
WHITE_CORRELATION = -0.8
#: How far above :data:`WHITE_CORRELATION` the measured correlation may be: a series
#: resampled before (sub-pixel shifts, a rotation; -0.75 on the independent dumbbell, whose
#: white noise gave -0.795 to -0.805), or smeared along the scan by a slow detector, has
#: lost high-frequency noise, and its gain would come out several times low (0.13 of the
#: truth after random linear-interpolation shifts, 0.51 after cubic).
MAX_CORRELATION_SHIFT = 0.03

#: The lags [px] of the noise's autocorrelation measured when it is not white (a resampled
#: series): cubic interpolation correlates neighbours 1-2 px apart (about +0.12 and -0.06
#: after sub-pixel shifts and a 3-degree turn), linear interpolation 1 px apart.
ACF_LAGS = 3
_LOCAL_MEAN = 15  # the window [px] of the local mean that the autocorrelation's deviations are from

_D = np.array([1.0, -4.0, 6.0, -4.0, 1.0])
_K = np.outer(_D, _D) / 70.0  # sum of squares 1: white noise passes with its variance
_K2 = _K**2  # sums to 1
_HALF = 2  # half the support of K
_RING = 5  # half-width of the instrument's ring (outside K's support)
_TILE = 32  # the blocks of an image's jackknife [px]
_MIN_TILES = 9  # fewer blocks give no error to judge an image's own gain by (its own gain
# is then not used: 3 images of 64 px, 4 blocks each, took equal gains for 0.8-1.1 of theirs)


@dataclass(frozen=True)
class NoiseModel:
    """``var z = gain * E[z] + offset_variance`` (the series' gain, common to its images, and
    the median image's offset variance); ``gain_se`` the gain's standard error;
    ``image_gain`` and ``image_offset_variance`` each image's (what :meth:`to_counts` uses:
    the common gain unless the images' gains differ beyond their errors, as after a
    normalisation of each image); ``noise_correlation`` the correlation of the fourth
    differences ``r`` with their right and lower neighbours where the images are dimmest
    (-0.8 for white noise)."""

    gain: float
    offset_variance: float
    gain_se: float
    n_images: int
    noise_correlation: tuple[float, float] = (WHITE_CORRELATION, WHITE_CORRELATION)
    image_gain: tuple[float, ...] = ()
    image_offset_variance: tuple[float, ...] = ()
    #: correlated noise only: the noise's autocorrelation (lags -:data:`ACF_LAGS` ..
    #: +:data:`ACF_LAGS` along rows and columns, 1 at lag 0) and the fraction of its variance
    #: that the fourth difference passes, by which gain and offset variance were divided
    noise_acf: tuple[tuple[float, ...], ...] | None = None
    pass_factor: float | None = None

    @property
    def white(self) -> bool:
        """Whether the noise is white (pixel by pixel) to :data:`MAX_CORRELATION_SHIFT`."""
        return bool(max(self.noise_correlation) <= WHITE_CORRELATION + MAX_CORRELATION_SHIFT)

    @property
    def correlated(self) -> bool:
        """Whether the noise is correlated between neighbouring pixels (resampled, smeared
        along the scan) and its gain was corrected for what the fourth difference misses of
        it (:attr:`pass_factor`)."""
        return not self.white and self.pass_factor is not None

    @property
    def reliable(self) -> bool:
        """Whether the gain is positive, known to :data:`MAX_GAIN_REL_ERROR`, and measured on
        white noise (:attr:`white`) or corrected for its correlation (:attr:`correlated`),
        and every image's gain is positive."""
        a = self.gain
        return bool(
            np.isfinite(a)
            and a > 0
            and self.gain_se <= MAX_GAIN_REL_ERROR * a
            and (self.white or self.correlated)
            and all(np.isfinite(g) and g > 0 for g in self.image_gain)
        )

    def _per_image(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.image_gain and len(self.image_gain) == n:
            a = np.asarray(self.image_gain, np.float64)[:, None, None]
            b = np.asarray(self.image_offset_variance, np.float64)[:, None, None]
            return a, b
        return np.float64(self.gain), np.float64(self.offset_variance)

    def to_counts(self, data) -> np.ndarray:
        """``data / gain + offset_variance / gain**2``, image by image: variance equal to the
        mean."""
        arr = np.asarray(data, np.float64)
        a, b = self._per_image(len(arr))
        return (arr / a + b / a**2).astype(np.float32)

    def as_dict(self) -> dict:
        return {**asdict(self), "reliable": self.reliable}


def _moments(img: np.ndarray) -> tuple:
    """``r**2``, ``m_K`` and the ring's mean at every pixel whose windows fit in the image
    and stay clear of constant patches (the zero-filled edges of a shifted image), and the
    sums ``(r**2, r r_right, r r_below)`` over the dimmest quarter of those pixels (by the
    ring's mean: the least signal) for the noise's correlation, with that quarter's count
    and sums of ``r**2`` and ``m_K`` (for the offset variance), and each pixel's tile of
    :data:`_TILE` pixels (for the standard errors)."""
    from scipy import ndimage

    img = np.asarray(img, np.float64)
    r = ndimage.correlate(img, _K, mode="reflect")
    mk = ndimage.correlate(img, _K2, mode="reflect")
    big, small = 2 * _RING + 1, 2 * _HALF + 1
    box_big = ndimage.uniform_filter(img, big, mode="reflect") * big**2
    box_small = ndimage.uniform_filter(img, small, mode="reflect") * small**2
    ring = (box_big - box_small) / (big**2 - small**2)
    # a constant 3 x 3 patch is a fill (a shifted image's empty edge), not data: no window
    # may reach it (its step would pass K)
    flat = ndimage.maximum_filter(img, 3) == ndimage.minimum_filter(img, 3)
    near = ndimage.maximum_filter(flat, 2 * (_RING + 1) + 1)
    inner = (slice(_RING, -_RING), slice(_RING, -_RING))
    keep = ~near[inner]
    r, mk, ring = r[inner], mk[inner], ring[inner]
    lag = np.zeros(6)
    if keep.any():
        dim = keep & (ring <= np.quantile(ring[keep], 0.25))
        right = dim[:, :-1] & keep[:, 1:]
        below = dim[:-1, :] & keep[1:, :]
        lag = np.array(
            [
                (r[:, :-1] ** 2)[right].sum(),
                (r[:, :-1] * r[:, 1:])[right].sum(),
                (r[:-1, :] * r[1:, :])[below].sum() * right.sum() / max(below.sum(), 1),
                dim.sum(),
                (r**2)[dim].sum(),
                mk[dim].sum(),
            ]
        )
    rows, cols = np.nonzero(keep)
    ncols = -(-keep.shape[1] // _TILE)
    tile = (rows // _TILE) * ncols + cols // _TILE
    return (r**2)[keep], mk[keep], ring[keep], lag, tile


def _within(sums: np.ndarray) -> np.ndarray:
    """``(cov(r**2, z), cov(m, z))`` (as sums about the block's own means) from summed
    moments ``(..., 6)``: ``(n, S_r2, S_m, S_z, S_r2z, S_mz)``, the instrument ``z``."""
    n, s_r2, s_m, s_z, s_r2z, s_mz = np.moveaxis(np.asarray(sums, np.float64), -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([s_r2z - s_r2 * s_z / n, s_mz - s_m * s_z / n], axis=-1)


def _ratio(c_r2z, c_mz) -> float:
    return float(c_r2z / c_mz) if c_mz > 0 else float("nan")


def _jackknife_se(values: np.ndarray) -> float:
    v = np.asarray(values, np.float64)
    if len(v) < 2 or not np.all(np.isfinite(v)):
        return float("inf")
    return float(np.sqrt((len(v) - 1) / len(v) * np.sum((v - v.mean()) ** 2)))


def estimate_noise_model(data) -> NoiseModel:
    """The Poisson-Gaussian noise model ``var z = a * E[z] + b`` of a tilt series
    ``(n_images, rows, cols)``, measured from the images themselves (see the module).

    The slope is fitted within each image (covariances about the image's own means, pooled
    over the images), so that images with their own offsets (a drifting detector offset, a
    background subtracted image by image) do not mix levels; each image has its own ``b``.
    Each image's own slope is fitted too (its standard error a jackknife over blocks of
    :data:`_TILE` pixels; images of at least 3 x 3 blocks, series of at least 5); when they
    scatter beyond their errors (chi-square above ``n + 3 sqrt(2 n)``: images normalised one
    by one, a drifting beam current), each image gets its slope shrunk toward the common one
    by the scatter beyond the errors (an empirical-Bayes estimate), else the common slope.

    Raises
    ------
    ValueError
        For images smaller than 16 x 16 pixels or a series of fewer than 2 images (the
        common gain's standard error is a jackknife over the images).
    """
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"expected a tilt series (n_images, rows, cols); got shape {arr.shape}")
    if len(arr) < 2 or min(arr.shape[1:]) < 16:
        raise ValueError(
            f"the noise model needs at least 2 images of 16 x 16 pixels; got {arr.shape}"
        )
    n = len(arr)
    tiles, lags = [], []
    for img in arr:
        r2, mk, z, lag, tile = _moments(img)
        nt = int(tile.max()) + 1 if tile.size else 1
        weights = (np.ones_like(r2), r2, mk, z, r2 * z, mk * z)
        tiles.append(np.stack([np.bincount(tile, w, minlength=nt) for w in weights], axis=1))
        lags.append(lag)
    dims = np.asarray(lags)[:, 3:]  # per image: the dim quarter's count, S_r2, S_m
    lags = np.sum(lags, axis=0)
    corr = (float(lags[1] / lags[0]), float(lags[2] / lags[0])) if lags[0] > 0 else (0.0, 0.0)
    totals = np.array([t.sum(axis=0) for t in tiles])
    if totals[:, 0].sum() < 1000:  # (nearly) every pixel a fill: nothing to measure
        return NoiseModel(float("nan"), float("nan"), float("inf"), n, corr)
    w = _within(totals)  # per image
    ok = totals[:, 0] > 0
    c = np.nansum(w[ok], axis=0)
    a = _ratio(*c)
    jack = [_ratio(*(c - w[i])) if ok[i] else a for i in range(n)]
    se = _jackknife_se(np.array(jack))
    # each image's own slope and its error (a jackknife over its blocks)
    a_i = np.array([_ratio(*w[i]) if ok[i] else np.nan for i in range(n)])
    se_i = np.full(n, np.inf)
    for i, t in enumerate(tiles):
        if ok[i] and len(t) >= _MIN_TILES:
            rest = _within(totals[i][None, :] - t)
            se_i[i] = _jackknife_se(np.array([_ratio(*x) for x in rest]))
    gains = np.full(n, a)
    fine = np.isfinite(a_i) & np.isfinite(se_i) & (se_i > 0)
    if np.isfinite(a) and fine.sum() >= 5:
        dev = a_i[fine] - a
        chi2 = float(np.sum(dev**2 / se_i[fine] ** 2))
        k = int(fine.sum())
        if chi2 > k + 3.0 * np.sqrt(2.0 * k):
            tau2 = max(0.0, float(np.mean(dev**2) - np.mean(se_i[fine] ** 2)))
            gains[fine] = a + tau2 / (tau2 + se_i[fine] ** 2) * dev
    # each image's offset variance where it is dimmest (its background, mostly): there the
    # atoms' images leak nothing into r, which the image's mean r**2 holds (a few tenths of
    # a count, varying with what the image shows)
    with np.errstate(invalid="ignore", divide="ignore"):
        offsets = (dims[:, 1] - gains * dims[:, 2]) / dims[:, 0]
    ok = ok & (dims[:, 0] > 0)
    finite = ok & np.isfinite(offsets)  # a gain that could not be measured gives NaN
    offsets = np.where(ok, offsets, np.median(offsets[finite]) if finite.any() else np.nan)
    acf, factor = None, None
    if max(corr) > WHITE_CORRELATION + MAX_CORRELATION_SHIFT:
        # correlated noise: the fourth difference passes only the fraction ``factor`` of its
        # variance (``sum K K' acf``), of the gain and of the offset variance alike
        acf = _noise_acf(arr)
        if acf is not None:
            factor = _pass_factor(acf)
            if not (0.05 < factor <= 1.5):  # not a resampling's correlation: left uncorrected
                acf, factor = None, None
        if factor is not None:
            a, se, gains, offsets = a / factor, se / factor, gains / factor, offsets / factor
    return NoiseModel(
        gain=a,
        offset_variance=float(np.median(offsets[np.isfinite(offsets)]))
        if np.isfinite(offsets).any()
        else float("nan"),
        gain_se=se,
        n_images=n,
        noise_correlation=corr,
        image_gain=tuple(float(g) for g in gains),
        image_offset_variance=tuple(float(b) for b in offsets),
        noise_acf=None if acf is None else tuple(tuple(float(v) for v in row) for row in acf),
        pass_factor=factor,
    )


def _noise_acf(arr) -> np.ndarray | None:
    """The noise's autocorrelation, ``(2 L + 1, 2 L + 1)`` for lags up to :data:`ACF_LAGS`
    (1 at lag 0), pooled over the images where each is dimmest (its lowest quarter by the
    mean of the 11 x 11 pixels about it, the box that holds the fourth differences' ring):
    deviations from the local mean of that quarter's pixels within 15, pairs of pixels both in
    it and clear of constant patches and of the image's frame (zero-filled edges), less the
    level of the outermost lags. None where too few pixels are left."""
    from scipy import ndimage

    lags = ACF_LAGS
    size = 2 * lags + 1
    total = np.zeros((size, size))
    pairs = np.zeros((size, size))
    for img in np.asarray(arr, np.float64):
        ring = ndimage.uniform_filter(img, 2 * _RING + 1, mode="reflect")
        flat = ndimage.maximum_filter(img, 3) == ndimage.minimum_filter(img, 3)
        ok = ~ndimage.maximum_filter(flat, 2 * (_RING + 1) + 1)
        # and clear of the frame that the local mean reaches past: a shifted image's
        # zero-filled edge less than 3 pixels wide is no flat patch, but its step is
        frame = _LOCAL_MEAN // 2 + 1
        ok[:frame] = ok[-frame:] = False
        ok[:, :frame] = ok[:, -frame:] = False
        if ok.sum() < 100:
            continue
        dim = ok & (ring <= np.quantile(ring[ok], 0.25))
        # the local mean of the dim pixels alone: a particle's bright pixels in the window
        # would put every dim pixel beside it low together, a correlation at every lag
        w = ndimage.uniform_filter(dim.astype(np.float64), _LOCAL_MEAN, mode="reflect")
        local = ndimage.uniform_filter(np.where(dim, img, 0.0), _LOCAL_MEAN, mode="reflect")
        d = np.where(dim, img - local / np.maximum(w, 1e-12), 0.0)
        for dy in range(-lags, lags + 1):
            for dx in range(-lags, lags + 1):
                moved = np.roll(d, (-dy, -dx), axis=(0, 1))
                both = dim & np.roll(dim, (-dy, -dx), axis=(0, 1))
                total[dy + lags, dx + lags] += (d * moved)[both].sum()
                pairs[dy + lags, dx + lags] += both.sum()
    if pairs.min() < 1000 or total[lags, lags] <= 0:
        return None
    acf = total / pairs
    acf /= acf[lags, lags]
    # a local mean of few pixels takes its share out of every pair alike (-0.03 to -0.05 at
    # every lag on white noise): the outermost lags, past an interpolation's reach (cubic:
    # +0.02 at 3 px), set that level
    outer = np.ones_like(acf, bool)
    outer[1:-1, 1:-1] = False
    level = float(np.median(acf[outer]))
    return (acf - level) / (1.0 - level)


def _pass_factor(acf: np.ndarray) -> float:
    """``E[r**2] / var z`` for noise of autocorrelation ``acf``: the sum over pairs of the
    fourth difference's taps of their weights' product times the noise's correlation at
    their lag (1 for white noise)."""
    from scipy.signal import correlate2d

    kk = correlate2d(_K, _K, mode="full")  # K's own autocorrelation, lags -4 .. 4
    lags = acf.shape[0] // 2
    h = kk.shape[0] // 2
    m = min(lags, h)
    return float(np.sum(kk[h - m : h + m + 1, h - m : h + m + 1]
                        * acf[lags - m : lags + m + 1, lags - m : lags + m + 1]))  # fmt: skip


def _subsample(arr) -> np.ndarray:
    """At most about 128 x 128 pixels of each image (every k-th row and column)."""
    return arr[:, :: max(1, arr.shape[1] // 128), :: max(1, arr.shape[2] // 128)]


#: Integer images are taken for counts unless their measured gain (variance over mean) is
#: further from 1 than this and than :data:`COUNTS_GAIN_SE` of its standard errors ...
COUNTS_GAIN_TOLERANCE = 0.25
#: ... (a detector's integer units: a 16-bit ADC's gain of 10-20 over an offset of thousands,
#: an 8-bit export scaled to its range).
COUNTS_GAIN_SE = 5.0


def _integers(arr) -> bool:
    """Whether the images are non-negative integers (on :func:`_subsample`'s pixels)."""
    sample = _subsample(arr)
    return bool(np.all(sample >= 0) and np.allclose(sample, np.round(sample)))


def is_counts(data) -> bool:
    """Whether a series is raw counts: non-negative integers (judged on a subsample of at most
    about 128 x 128 pixels per image) whose noise is that of counts: where the images' own
    noise measures a gain (:func:`estimate_noise_model` on the middle 128 x 128 pixels of
    each), it must be 1 (within :data:`COUNTS_GAIN_TOLERANCE` or :data:`COUNTS_GAIN_SE`
    standard errors). A detector's integer units (a 16-bit ADC of gain 20 over an offset of
    2,000 measured 20.2 +- 0.2; Poisson counts 1.01 +- 0.01) are then converted by
    :func:`as_counts` as any other detector's units are."""
    arr = np.asarray(data)
    if not _integers(arr):
        return False
    stack = arr.reshape(-1, *arr.shape[-2:]) if arr.ndim >= 3 else arr[None]
    rows, cols = stack.shape[1:]
    if len(stack) < 2 or min(rows, cols) < 16:
        return True
    r0, c0 = max(0, rows // 2 - 64), max(0, cols // 2 - 64)
    middle = np.asarray(stack[:, r0 : r0 + 128, c0 : c0 + 128], np.float64)
    model = estimate_noise_model(middle)
    if not (model.reliable and np.isfinite(model.gain)):
        return True  # too few counts to tell: integers are taken at their word
    off = abs(model.gain - 1.0)
    return bool(off <= COUNTS_GAIN_TOLERANCE or off <= COUNTS_GAIN_SE * model.gain_se)


def as_counts(data) -> tuple[np.ndarray | None, dict]:
    """A tilt series in counts, and what was done: ``(counts or None, info)``.

    Integer, non-negative images are counts already (returned as they are). Any other series
    is converted with its measured noise model (:func:`estimate_noise_model`,
    :meth:`NoiseModel.to_counts`) when the gain is known well enough
    (:attr:`NoiseModel.reliable`) and the brightest pixels come to at most
    :data:`MAX_COUNTS`; otherwise None (a series already denoised or simulated without noise
    has too little noise for counts to mean anything). ``info``:
    ``units`` ("counts", "counts equivalent" or "unknown"), the noise model, ``why``.
    """
    arr = np.asarray(data)
    if is_counts(arr):
        return arr, {"units": "counts"}
    what = (
        "the images are integers but their noise is not that of counts"
        if _integers(arr)
        else "the images are not integer counts"
    )
    try:
        model = estimate_noise_model(arr)
    except ValueError as err:
        return None, {"units": "unknown", "why": str(err)}
    info = {"noise_model": model.as_dict()}
    if np.isfinite(model.gain) and model.gain > 0 and not model.white and not model.correlated:
        cx, cy = model.noise_correlation
        info.update(
            units="unknown",
            why=(
                f"{what} and their noise is not white "
                f"(neighbour correlation {cx:+.2f} / {cy:+.2f} against -0.80: resampled, or "
                f"smeared along the scan): no gain measured, treated as intensities"
            ),
        )
        return None, info
    if not model.reliable:
        info.update(
            units="unknown",
            why=(
                f"{what} and their noise does not give a gain "
                f"(gain {model.gain:.4g} +- {model.gain_se:.2g}): treated as intensities"
            ),
        )
        return None, info
    counts = model.to_counts(arr)
    peak = float(np.percentile(_subsample(counts), 99.9))
    if peak > MAX_COUNTS:
        info.update(
            units="unknown",
            why=(
                f"{what} and have little noise ({peak:.3g} counts "
                f"equivalent at the brightest pixels): treated as intensities"
            ),
        )
        return None, info
    why = (
        f"{what}: converted with their measured noise model "
        f"(variance = {model.gain:.4g} x mean {model.offset_variance:+.4g}; gain known to "
        f"{100 * model.gain_se / model.gain:.0f} %)"
    )
    if model.correlated:
        cx, cy = model.noise_correlation
        why += (
            f"; their noise is correlated between neighbouring pixels (resampled, or smeared "
            f"along the scan: fourth differences correlated {cx:+.2f} / {cy:+.2f} against "
            f"-0.80), so the gain was divided by the {model.pass_factor:.2f} of its variance "
            f"that the fourth difference passes (the noise's own autocorrelation)"
        )
    info.update(units="counts equivalent", why=why, correlated=model.correlated)
    return counts, info
