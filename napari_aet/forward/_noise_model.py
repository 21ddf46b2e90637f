"""The pixel noise model of the atom-model fit (:func:`napari_aet.forward.refine_atomic_model`'s
``weighting``): a variance that grows linearly with the model's signal, fitted to the
residuals, and the weights it gives."""

from __future__ import annotations

#: How the fit may weigh the pixels: plain least squares, or by the inverse of the fitted
#: noise variance.
WEIGHTINGS = ("uniform", "variance")

#: The variance model's floor, as a fraction of the mean pixel variance: no pixel weighs more
#: than this many times the average. A fitted background variance below it (no noise where
#: there is no signal: a simulation without background, a denoiser's output) means uniform
#: weights: the floor would set them, not the data (on a simulated Pt-Ni alloy without
#: background, weights spread 90 : 1 by the floor moved a faint Ni atom 1.35 A).
MIN_VARIANCE_FRACTION = 0.1


def _variance_weights(fitted, bias, data, torch):
    """Per-pixel weights ``1 / var`` (mean 1) for a noise variance that grows linearly with the
    model's signal ``s = max(fitted - bias, 0)``: ``var = a * s + b``, fitted by least squares
    to the squared residuals. Counts (Poisson: ``var = signal + background``, whatever scale
    or low-pass was applied, up to a factor) give ``a > 0``; noise that does not grow with
    the signal gives ``a = 0`` and uniform weights, as does a background without noise
    (``b`` below the floor, :data:`MIN_VARIANCE_FRACTION`). The squared residuals are
    averaged in bins of ``s`` first, so the fit weighs every signal level, not only the many
    empty pixels. Returns ``(weights, info)``; ``weights`` is None for uniform ones."""
    signal = (fitted - bias[:, None, None]).clamp_min(0)
    sig = signal.flatten()
    r2 = ((data - fitted) ** 2).flatten()
    edges = torch.quantile(
        sig[:: max(1, sig.numel() // 200_000)],
        torch.linspace(0, 1, 33, device=sig.device, dtype=sig.dtype),
    )
    idx = torch.bucketize(sig, edges[1:-1])
    count = torch.bincount(idx, minlength=32).to(sig.dtype)
    ok = count > 0
    xs = torch.bincount(idx, weights=sig, minlength=32)[ok] / count[ok]
    ys = torch.bincount(idx, weights=r2, minlength=32)[ok] / count[ok]
    mean_var = float(r2.mean())
    info = {"mean_variance": mean_var}
    if len(xs) < 3 or float(xs.max() - xs.min()) <= 0:
        return None, {**info, "a": 0.0, "b": mean_var, "note": "no signal range: uniform"}
    design = torch.stack([xs, torch.ones_like(xs)], dim=1).double()
    a, b = (float(v) for v in torch.linalg.lstsq(design, ys.double()[:, None]).solution[:, 0])
    if not a > 0:
        return None, {**info, "a": a, "b": b, "note": "noise does not grow with the signal"}
    if b < MIN_VARIANCE_FRACTION * mean_var:
        # no measurable noise where there is no signal (a simulation without background, a
        # denoiser's output): the floor, not the data, would set the weights there
        return None, {**info, "a": a, "b": b, "note": "no background noise: uniform"}
    var = (a * signal + b).clamp_min(MIN_VARIANCE_FRACTION * mean_var)
    w = 1.0 / var
    w = w / w.mean()
    info.update({"a": a, "b": b, "weight_max": float(w.max()), "weight_min": float(w.min())})
    return w, info
