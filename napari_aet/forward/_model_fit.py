"""Joint refinement of an atom model and the tilt-series geometry against the measured images.

An atom model traced from a tomogram is a far better reference for the images than the
tomogram itself (no missing-wedge artifacts), but it inherits the tomogram's distortions: a
model traced at wrong angles is a little wrong in just the way that makes the wrong angles
look right. Refining the atom positions together with each image's tilt angle and shift, by
least squares on every pixel of every image, removes that bias: each atom is seen in all
images, each image's angle by all atoms, and only the gauge freedoms (the mean angle, the
object's position) are left undetermined, and fixed.

The image model is ``b_i + s_i * (sum_a w_a g_0(p - P_i(r_a) - d_i)) * g_e * (1 + sum_k
c_k g_k)``: each atom splatted as a narrow Gaussian ``g_0`` (:data:`SPLAT_SIGMA_A`) with its
own amplitude ``w_a`` (so a false atom can fade), then one Fourier-space convolution with a
Gaussian of fitted width ``e`` and fitted shoulders ``g_k`` (:data:`TAIL_WIDTHS_A`),
projected at angle ``theta_i + delta_i`` (:func:`napari_aet.forward.project_positions`'s
convention), displaced by the image's offset ``d_i``, scaled and offset per image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.device import resolve_device
from ..core.geometry import images_and_angles
from ..core.memory import check_memory
from ..core.progress import check_cancel, report
from ._model_errors import _amplitude_sigmas, _axis_sigma, _calibrated, _geometry_sigmas
from ._noise_model import WEIGHTINGS, _variance_weights
from ._projection import rotation_center_A, split_object_translation
from ._splat import _Renderer

#: Widths [A] of the Gaussian shoulders the image model adds to each atom's Gaussian core.
TAIL_WIDTHS_A = (0.5, 1.0, 2.0)
#: Width [A] of the narrow Gaussians atoms are splatted as (at least 0.7 px); the rest of the
#: core's width is fitted as a convolution. Finely sampled ADF images of heavy atoms are as
#: sharp as ~0.2 A (abTEM's Lobato potentials and a 300 keV probe at 0.195 A pixels fit 0.21 A):
#: a floor above that leaves a misfit that biases the angles (0.3 A here: twice the angle
#: scatter on aligned series).
SPLAT_SIGMA_A = 0.15
#: The joint stage stops early when a block of 10 L-BFGS iterations moves no angle by more
#: than this [deg] and no offset by more than :data:`CONVERGED_PX` [px]; ``iterations`` is
#: the most it runs.
CONVERGED_DEG = 0.002
CONVERGED_PX = 0.005
#: ... or, where that is larger, by this fraction of the median standard error of the angles
#: (offsets) at the first block's state: a series whose angles are known to 0.1 deg need not
#: be iterated to 0.002 deg (at low counts the fits ran to the limit every time).
CONVERGED_FRACTION = 0.05


@dataclass
class ModelRefinementResult:
    """Refined atom model and geometry.

    Attributes
    ----------
    positions_A : ndarray of shape (n_atoms, 3)
        Refined ``(z, y, x)`` positions [A] in the volume frame.
    amplitudes : ndarray of shape (n_atoms,)
        Refined per-atom amplitudes (image units; a false atom tends to 0).
    angles_deg : ndarray of shape (n_images,)
        Refined tilt angles [degrees] (their mean equals the input's mean).
    angle_corrections_deg : ndarray of shape (n_images,)
    offsets_px : ndarray of shape (n_images, 2)
        ``(d_row, d_col)`` [pixels] by which each image's content sits from the refined model's
        projection, in the frame of the images given (gauge-free: zero mean along the axis, no
        part explained by a translation of the object).
    sigma_A : float
        Fitted width of the atoms' image [A] (with ``per_image_width``, the images' widths'
        geometric mean in the core's extra width).
    image_sigma_A : ndarray of shape (n_images,)
        Each image's fitted atom width [A] (all ``sigma_A`` without ``per_image_width``).
    image_scale, image_offset : ndarray of shape (n_images,)
    image_correlation : ndarray of shape (n_images,)
        Normalized correlation of each image with the refined model's image of it.
    residual : list of float
        Relative residual ``||model - data|| / ||data||`` after each block of iterations.
    angle_sigma_deg : ndarray of shape (n_images,)
        Standard error of each image's refined angle [degrees]: how far the residual (noise
        and whatever the image model misses, with its spatial correlation) could move it
        (:func:`_geometry_sigmas`). None unless ``calibrate_sigmas``.
    offset_sigma_px : ndarray of shape (n_images, 2)
        The same for each image's ``(d_row, d_col)`` offset [pixels].
    model_images : ndarray of shape (n_images, rows, cols)
        The refined model's image of each image (scale and background included), in the frame
        of the images given; None unless ``return_images``. ``images - model_images`` is what
        the model does not explain (missed atoms show there).
    amplitude_sigma : ndarray of shape (n_atoms,)
        Standard error of each atom's amplitude (same units as ``amplitudes``): the sandwich
        estimate ``sqrt(sum J^2 r^2) / sum J^2`` over every pixel of every image, ``J`` the
        atom's own image and ``r`` the residual, so Poisson noise (strongest on the atoms)
        and what the image model misses both count; the overlap with neighbouring atoms is
        not (an underestimate where columns overlap). None unless ``amplitude_sigmas``.
    axis_correction_deg : float
        With ``refine_axis``: the in-plane turn [degrees] of every image about its centre
        pixel that the images show (the tilt axis is not quite vertical in them): the images
        given are those of ``apply_alignment(raw, tilt_axis_angle_deg=a)``, then ``a`` plus
        this aligns them (counter-clockwise as displayed, like the tilt-axis angle).
    axis_sigma_deg : float
        Its standard error (the larger of the stationary and the local sandwich
        estimates, every other unknown held: a lower bound). None unless ``refine_axis``.
    weighting : dict
        With ``weighting="variance"``: the fitted noise model ``var = a * signal + b``
        (``a``, ``b``) and the spread of the weights; empty otherwise.
    image_variance : ndarray of shape (n_images,)
        Variance of each image given, over its pixels (what
        :func:`~napari_aet.forward.why_untrusted` takes the noise's share of).
    """

    positions_A: np.ndarray
    amplitudes: np.ndarray
    angles_deg: np.ndarray
    angle_corrections_deg: np.ndarray
    offsets_px: np.ndarray
    sigma_A: float
    image_scale: np.ndarray
    image_offset: np.ndarray
    image_correlation: np.ndarray
    residual: list = field(default_factory=list)
    angle_sigma_deg: np.ndarray | None = None
    offset_sigma_px: np.ndarray | None = None
    model_images: np.ndarray | None = None
    amplitude_sigma: np.ndarray | None = None
    axis_correction_deg: float = 0.0
    axis_sigma_deg: float | None = None
    weighting: dict = field(default_factory=dict)
    image_variance: np.ndarray | None = None
    image_sigma_A: np.ndarray | None = None


def _fix_gauge(positions_A, angles_deg, corrections_deg, offsets_px, pixel_size_A, rows, cols):
    """The same images with the gauges fixed: zero-mean angle corrections (the model rotated
    about the tilt axis instead), zero-mean row offsets and no column offsets that a
    translation of the object explains (the model translated instead)."""

    m = float(corrections_deg.mean())
    da = corrections_deg - m
    center = rotation_center_A((rows, cols), pixel_size_A)
    d = positions_A - center
    c, s = np.cos(np.deg2rad(m)), np.sin(np.deg2rad(m))
    z = -d[:, 2] * s + d[:, 0] * c
    x = d[:, 2] * c + d[:, 0] * s
    off = offsets_px.copy()
    ty = off[:, 0].mean()
    off[:, 0] -= ty
    off[:, 1], (tx, tz) = split_object_translation(off[:, 1], angles_deg + da)
    moved = np.column_stack(
        [z + tz * pixel_size_A, d[:, 1] + ty * pixel_size_A, x + tx * pixel_size_A]
    )
    return moved + center, da, off


def refine_atomic_model(
    images,
    angles_deg,
    positions_A,
    *,
    pixel_size_A: float,
    refine_positions: bool = True,
    refine_angles: bool = True,
    refine_offsets: bool = True,
    refine_axis: bool = False,
    sigma_A: float = 0.5,
    iterations: int = 200,
    max_angle_change_deg: float = 2.0,
    calibrate_sigmas: bool = False,
    return_images: bool = False,
    amplitude_sigmas: bool = False,
    weighting: str = "uniform",
    per_image_width: bool = False,
    pixel_weights=None,
    restraint=None,
    device: str = "auto",
    progress=None,
    cancel=None,
) -> ModelRefinementResult:
    """Refine atom positions, per-image tilt angles and offsets against aligned images.

    Least squares over every pixel (L-BFGS, automatic differentiation with torch, GPU when
    there is one), in stages: the image model with the geometry held, then the offsets, then
    everything. The gauges are left free while optimising and fixed on the result, by
    rotating and translating the model: angle corrections have zero mean (a common offset is
    a rotation of the model), offsets along the tilt axis have zero mean and column offsets
    have no part ``tx cos(theta) + tz sin(theta)`` (a translation of the model).

    Parameters
    ----------
    images : ndarray of shape (n_images, rows, cols)
        Background-free images in the aligned frame (tilt axis vertical through the centre
        column), as :func:`align_tilt_series` returns them.
    angles_deg : array-like of shape (n_images,)
        Current tilt angles [degrees].
    positions_A : ndarray of shape (n_atoms, 3)
        Starting ``(z, y, x)`` atom positions [A] in the volume frame, e.g. traced from a
        tomogram of these images.
    pixel_size_A : float
        Pixel size [A].
    refine_positions, refine_angles, refine_offsets : bool
        Which unknowns move. The atoms' amplitudes, the width and the per-image scale and
        offset are always fitted.
    refine_axis : bool
        Also fit one in-plane turn of all images about their centre pixel
        (:attr:`ModelRefinementResult.axis_correction_deg`): what is left of the tilt axis's
        angle after the images were turned by an estimate of it. Thousands of atoms measure it
        far better than the images' common line (:func:`estimate_tilt_axis_angle`).
    sigma_A : float
        Starting width of an atom's image core [A] (probe, thermal motion and filtering).
    iterations : int
        Most L-BFGS iterations of the joint stage; it stops earlier when the geometry has
        converged (:data:`CONVERGED_DEG`, :data:`CONVERGED_PX`).
    max_angle_change_deg : float
        Bound on each angle correction; a larger one means the model and images disagree.
    calibrate_sigmas : bool
        Estimate the per-image standard errors of the angles and offsets, calibrated with
        one parametric bootstrap replicate (the fitted images plus noise with the residual's
        power spectrum, refitted): one more fit of the last stage.
    return_images : bool
        Also return the refined model's images (:attr:`ModelRefinementResult.model_images`).
    amplitude_sigmas : bool
        Also return each atom's amplitude standard error
        (:attr:`ModelRefinementResult.amplitude_sigma`).
    weighting : {"uniform", "variance"}
        ``"uniform"``: plain least squares. ``"variance"``: after the image model's first
        stages, each pixel is weighted by the inverse of a noise variance that grows linearly
        with the model's signal, ``var = a * signal + b``, fitted to the squared residuals
        (counts: ``a`` near the counts' scale, ``b`` the background's variance; images whose
        noise does not grow with the signal get ``a = 0``, i.e. uniform weights, and so do
        images without noise where there is no signal, ``b`` below
        :data:`~napari_aet.forward._noise_model.MIN_VARIANCE_FRACTION` of the mean), then the
        geometry is fitted by weighted least squares
        (:func:`~napari_aet.forward._noise_model._variance_weights`).
    per_image_width : bool
        Let each image's atom width differ from the common one (a nuisance, like its scale;
        :attr:`ModelRefinementResult.image_sigma_A`): the probe's focus drifts over a tilt
        series, and a series resampled before it reached napari-aet (shifted by
        interpolation) blurs each image by its own sub-pixel shift. A common width then
        leaves a per-image misfit that pulls the angles (an exact series blurred by 0-1.2 px
        per image: 0.37 deg RMS with one width, 0.004 with one per image; a resampled Poisson
        series of a small Pt particle, exact angles: 0.16 deg RMS of bias, 0.105). But a wrong
        angle blurs the columns too: the two trade. The alignment refits a round with it when
        the angles of a fit with one width ran to their bound again after a held round
        (:func:`napari_aet.align._model_rounds._round_fit`).
    restraint : BondRestraint, optional
        Bond-length restraints of the positions in the last stage
        (:func:`napari_aet.forward.bond_restraint`): each bond's deviation from its target in
        units of the restraint's ``sigma_A`` costs, squared, what one pixel's squared residual
        of the noise's size does (the residual's mean square after the image model's
        stages), a Bayesian prior on the images' own scale. The residual reported is the
        images'.
    pixel_weights : array, optional
        Fixed weights of each pixel's squared residual (broadcast to the images; 0 leaves a
        pixel out: every atom still rendered, e.g. the fit of one slab's rows). The fit only:
        standard errors, correlations and the reported residual count every pixel.
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    ModelRefinementResult
    """
    import torch

    img, ang0 = images_and_angles(images, angles_deg)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, not {weighting!r}")
    pos0 = np.asarray(positions_A, np.float64)
    if pos0.ndim != 2 or pos0.shape[1] != 3 or len(pos0) == 0:
        raise ValueError(f"positions_A must be a non-empty (n_atoms, 3) array; got {pos0.shape}")
    if not np.all(np.isfinite(img)) or not np.all(np.isfinite(pos0)):
        raise ValueError("images and positions must be finite (no NaN or inf)")
    if pixel_size_A <= 0 or sigma_A <= 0:
        raise ValueError("pixel_size_A and sigma_A must be positive")
    if restraint is not None and len(restraint.pairs) and np.max(restraint.pairs) >= len(pos0):
        raise ValueError(
            f"the restraint's bonds index {int(np.max(restraint.pairs)) + 1} atoms but the model "
            f"has {len(pos0)}: build it from these positions (forward.bond_restraint)"
        )
    n, rows, cols = img.shape
    # atoms are splatted as narrow Gaussians in a small window; all further broadening (the
    # fitted core width and the shoulders) is one convolution in Fourier space, so no width
    # is cut off by the window
    splat_A = max(SPLAT_SIGMA_A, 0.7 * pixel_size_A)
    radius = int(np.ceil(3.5 * splat_A / pixel_size_A))
    k = 2 * radius + 1
    # the splat values, their indices and the autograd copies (~6 arrays of n*N*K*K)
    check_memory(n * len(pos0) * k * k * 4 * 8, what="atomic-model refinement")
    dev = resolve_device(device)
    f32 = torch.float32
    data = torch.as_tensor(img, dtype=f32, device=dev)
    ren = _Renderer((rows, cols), pixel_size_A, radius, torch, dev)
    theta0 = torch.as_tensor(np.deg2rad(ang0), dtype=f32, device=dev)

    # every unknown is ``start + step * u`` with ``u`` optimised: ``step`` (one per group, from
    # a stochastic estimate of the Gauss-Newton diagonal) makes the problem well conditioned,
    # although one angle moves thousands of atoms and one position moves one atom
    splat_px = splat_A / pixel_size_A
    extra_A = np.sqrt(max(sigma_A**2 - splat_A**2, 0.1**2))
    log_sigma0 = float(np.log(extra_A / pixel_size_A))
    fr = torch.fft.fftfreq(rows, device=dev)[:, None]
    fc = torch.fft.rfftfreq(cols, device=dev)[None, :]
    f2 = (fr**2 + fc**2).to(f32)
    tails_hat = torch.stack(
        [
            torch.exp(-2 * np.pi**2 * (w / pixel_size_A) ** 2 * (fr**2 + fc**2))
            for w in TAIL_WIDTHS_A
        ]
    ).to(f32)
    pos_t = torch.as_tensor(pos0, dtype=f32, device=dev)
    groups = {
        "pos": (len(pos0), 3),
        "angle": (n,),
        "offset": (n, 2),
        "amp": (len(pos0),),
        "scale": (n,),
        "bias": (n,),
        "sigma": (),
        "tails": (len(TAIL_WIDTHS_A),),
    }
    if per_image_width:
        groups["blur"] = (n,)
    if refine_axis:
        groups["axis"] = ()
    moving = {
        "pos": refine_positions,
        "angle": refine_angles,
        "offset": refine_offsets,
        "axis": refine_axis,
    }
    u = {
        g: torch.zeros(shape, dtype=f32, device=dev, requires_grad=True)
        for g, shape in groups.items()
    }
    step = {g: 1.0 for g in groups}

    def unknowns():
        pos = pos_t + step["pos"] * u["pos"]
        dang = step["angle"] * u["angle"]
        off = step["offset"] * u["offset"]
        return pos, dang, off

    def geometry(dang, off):
        # gauges are left free while optimising (flat directions cost L-BFGS nothing, slow
        # collective modes of thousands of atoms would) and fixed on the result
        # the bound holds each image's correction relative to their mean: the mean is a gauge
        # (a turn of the model), free to drift, and bounding it too let the drift saturate the
        # bound, where every angle's gradient vanishes (a fit at 1.2 counts per pixel froze
        # every angle that way and reported no correction at all)
        common = dang.mean()
        da = common + max_angle_change_deg * torch.tanh((dang - common) / max_angle_change_deg)
        return theta0 + torch.deg2rad(da), off, da

    def widths():
        """The core's extra width [px]: common, or per image (``(n, 1, 1)``) with a
        zero-mean log deviation (the gauge: the common width is their geometric mean). (One
        width per image and axis fitted a resampled series no better.)"""
        common = log_sigma0 + step["sigma"] * u["sigma"]
        if not per_image_width:
            return torch.exp(common)
        d = step["blur"] * u["blur"]
        return torch.exp(common + d - d.mean())[:, None, None]

    def broaden(imgs, extra_px, tails):
        """The splatted images convolved with the core's extra width and the shoulders:
        ``g(extra) * (1 + sum_k w_k g(s_k))``, in Fourier space."""
        kern = torch.exp(-2 * np.pi**2 * extra_px**2 * f2)
        kern = kern * (1.0 + tails[:, None, None].mul(tails_hat).sum(dim=0))
        return torch.fft.irfft2(torch.fft.rfft2(imgs) * kern, s=(rows, cols))

    def axis_rad(extra=0.0):
        if not refine_axis:
            return None
        return torch.deg2rad(step["axis"] * u["axis"] + extra)

    def model(extra_deg=None, extra_off=None, extra_axis_deg=0.0):
        pos, dang, off = unknowns()
        th, o, _ = geometry(dang, off)
        if extra_deg is not None:  # a small step of every angle (or offset): derivatives
            th = th + torch.deg2rad(extra_deg)
        if extra_off is not None:
            o = o + extra_off
        row, col = ren.coords(pos, th, o, axis_rad(extra_axis_deg))
        amp = a0 * (1.0 + step["amp"] * u["amp"])
        imgs = broaden(ren.render(row, col, amp, splat_px), widths(), step["tails"] * u["tails"])
        ls = step["scale"] * u["scale"]
        scale = torch.exp(ls - ls.mean())
        return scale[:, None, None] * imgs + (bias0 + step["bias"] * u["bias"])[:, None, None]

    # linear start: one amplitude for all atoms and an offset per image
    with torch.no_grad():
        pos, dang, off = unknowns()
        th, o, _ = geometry(dang, off)
        row, col = ren.coords(pos, th, o)
        base = broaden(
            ren.render(row, col, torch.ones(len(pos0), device=dev), splat_px),
            torch.tensor(np.exp(log_sigma0), dtype=f32, device=dev),
            torch.zeros(len(TAIL_WIDTHS_A), dtype=f32, device=dev),
        )
        bm = base.mean(dim=(1, 2))
        dm = data.mean(dim=(1, 2))
        bc = base - bm[:, None, None]
        a0 = float((bc * (data - dm[:, None, None])).sum() / (bc**2).sum().clamp_min(1e-12))
        if not a0 > 0:
            raise ValueError(
                "the atom model does not match the images (no positive correlation): check "
                "that the positions come from a tomogram of these images, in the same frame"
            )
        bias0 = dm - a0 * bm
    norm = float((data**2).sum())
    gen = torch.Generator(device=dev).manual_seed(0)
    diag = {g: 0.0 for g in groups}
    probes = 4
    for _ in range(probes):
        v = torch.randint(0, 2, data.shape, generator=gen, device=dev).to(f32) * 2 - 1
        grads = torch.autograd.grad((model() * v).sum(), [u[g] for g in groups])
        for g, gr in zip(groups, grads, strict=True):
            diag[g] += float((gr**2).mean()) / probes
    for g in groups:
        step[g] = float(np.sqrt(norm / (2.0 * diag[g]))) if diag[g] > 0 else 1.0
    # stages: the image model alone (profile, amplitudes, per-image scale and offset) with
    # the geometry held, then the offsets, then everything. Letting angles move while the
    # profile is still wrong sends them where they compensate for the profile instead.
    nuisance = ["amp", "scale", "bias", "sigma", "tails"] + (["blur"] if per_image_width else [])
    stages = [
        (nuisance, 10),
        (nuisance + (["offset"] if refine_offsets else []), 10),
        ([g for g in groups if moving.get(g, True)], iterations),
    ]
    residual = []
    total = sum(max(1, int(np.ceil(it / 10))) for _, it in stages)
    done = 0
    fixed = None
    if pixel_weights is not None:
        fixed = torch.as_tensor(pixel_weights, dtype=f32, device=dev).expand_as(data)
    weights = fixed  # per-pixel (weighting="variance": mean 1, from the last stage on)
    weight_info: dict = {}
    bond_penalty = None  # the last stage's bond-length restraints (``restraint``)

    def geometry_now():
        """The angle corrections (with the axis turn, when it moves) [deg] and offsets."""
        with torch.no_grad():
            _, dang, off = unknowns()
            da = geometry(dang, off)[2].clone()
            if refine_axis:
                da = torch.cat([da, (step["axis"] * u["axis"]).reshape(1)])
            return da, off.clone()

    def tolerance():
        """Convergence tolerances (deg, px) at the current state (:data:`CONVERGED_FRACTION`)."""
        with torch.no_grad():
            sa, so = _geometry_sigmas(model, data, n, torch)
        return (
            max(CONVERGED_DEG, CONVERGED_FRACTION * float(np.median(sa))),
            max(CONVERGED_PX, CONVERGED_FRACTION * float(np.median(so))),
        )

    def run_stages(stage_list, target, log=True):
        nonlocal done
        for names, its in stage_list:
            watch = "angle" in names or "offset" in names or "axis" in names
            last = geometry_now() if watch else None
            tol_now = None
            opt = torch.optim.LBFGS(
                [u[g] for g in names],
                lr=1.0,
                max_iter=10,
                history_size=20,
                line_search_fn="strong_wolfe",
            )

            def closure(opt=opt, restrain=bond_penalty is not None and "pos" in names):
                opt.zero_grad()
                sq = (model() - target) ** 2
                loss = (sq if weights is None else weights * sq).sum() / norm
                if restrain:
                    loss = loss + bond_penalty() / norm
                loss.backward()
                return loss

            for _ in range(max(1, int(np.ceil(its / 10)))):
                check_cancel(cancel, "atomic-model refinement")
                loss = opt.step(closure)
                if log:
                    if weights is not None or bond_penalty is not None:  # the images'
                        with torch.no_grad():
                            loss = ((model() - target) ** 2).sum() / norm
                    residual.append(float(np.sqrt(float(loss.detach()))))
                    done += 1
                    report(progress, done, total, f"model refinement: residual {residual[-1]:.4f}")
                if watch and its > 10:
                    # converged geometry: stop (60 iterations can leave angles 0.1 deg short)
                    now = geometry_now()
                    moved_deg = float((now[0] - last[0]).abs().max())
                    moved_px = float((now[1] - last[1]).abs().max())
                    last = now
                    if tol_now is None:  # after the first block: near the fit already
                        tol_now = tolerance()
                    elif moved_deg < tol_now[0] and moved_px < tol_now[1]:
                        break

    run_stages(stages[:-1], data)
    if restraint is not None and refine_positions and len(restraint.pairs):
        # the restraints' prior on the images' scale: a bond sigma_A off its target costs
        # what one pixel's noise variance does (the residual's, after the image model)
        with torch.no_grad():
            noise_var = float(((model() - data) ** 2).mean())
        bonds_of = restraint.penalty_of(torch, dev, f32)

        def bond_penalty():
            return noise_var * bonds_of(unknowns()[0])

    if weighting == "variance":
        with torch.no_grad():
            bias_now = bias0 + step["bias"] * u["bias"]
            weights, weight_info = _variance_weights(model(), bias_now, data, torch)
            weights = weights if fixed is None else weights * fixed
    run_stages(stages[-1:], data)
    if done < total:  # stopped early: converged
        done = total
        report(progress, done, total, f"model refinement: converged, residual {residual[-1]:.4f}")
    replicate = None
    if calibrate_sigmas and (refine_angles or refine_offsets):
        # one parametric bootstrap replicate: the fitted images plus noise with the
        # residual's own power spectrum, refitted from the fit; how far it moves each image's
        # geometry calibrates the per-image standard errors (_geometry_sigmas holds the atoms)
        with torch.no_grad():
            fitted = model()
            r_hat = torch.fft.rfft2(fitted - data)
            phase = torch.rand(r_hat.shape, generator=gen, device=dev) * (2 * np.pi)
            noise = torch.fft.irfft2(r_hat.abs() * torch.exp(1j * phase), s=(rows, cols))
            saved = {g: u[g].detach().clone() for g in groups}
            _, _, da_fit = geometry(*unknowns()[1:])
            off_fit = unknowns()[2].clone()
        run_stages(stages[-1:], fitted + noise, log=False)
        with torch.no_grad():
            _, _, da_rep = geometry(*unknowns()[1:])
            replicate = (
                (da_rep - da_fit).cpu().numpy().astype(np.float64),
                (unknowns()[2] - off_fit).cpu().numpy().astype(np.float64),
            )
            if refine_axis:
                axis_moved = float(step["axis"] * (u["axis"] - saved["axis"]))
            for g in groups:
                u[g].copy_(saved[g])
    with torch.no_grad():
        pos, dang, off = unknowns()
        _, o, da = geometry(dang, off)
        ls = step["scale"] * u["scale"]
        scale = torch.exp(ls - ls.mean())
        amp = a0 * (1.0 + step["amp"] * u["amp"])
        extra_px = float(torch.exp(log_sigma0 + step["sigma"] * u["sigma"]))
        sigma_px = float(np.hypot(splat_px, extra_px))
        image_sigma_px = np.hypot(splat_px, widths().cpu().numpy().reshape(-1)) * np.ones(n)
        bias = bias0 + step["bias"] * u["bias"]
        fit = model() - bias[:, None, None]
        fc = fit - fit.mean(dim=(1, 2), keepdim=True)
        dc = data - data.mean(dim=(1, 2), keepdim=True)
        ncc = (fc * dc).sum(dim=(1, 2)) / torch.sqrt(
            (fc**2).sum(dim=(1, 2)) * (dc**2).sum(dim=(1, 2))
        ).clamp_min(1e-30)
        angle_sigma = offset_sigma = None
        images_out = (fit + bias[:, None, None]).cpu().numpy() if return_images else None
        if calibrate_sigmas:  # six more model evaluations: only for a caller that uses them
            angle_sigma, offset_sigma = _geometry_sigmas(model, data, n, torch)
        amp_sigma = None
        if amplitude_sigmas:
            # one atom's own image (amplitude 1, scale 1) through the same splat and broadening
            r0, c0 = rows // 2, cols // 2
            one = broaden(
                ren.render(
                    torch.full((1, 1), float(r0), device=dev),
                    torch.full((1, 1), float(c0), device=dev),
                    torch.ones(1, device=dev),
                    splat_px,
                ),
                torch.exp(log_sigma0 + step["sigma"] * u["sigma"]),
                step["tails"] * u["tails"],
            )[0]
            row, col = ren.coords(pos, geometry(dang, off)[0], o, axis_rad())
            amp_sigma = (
                _amplitude_sigmas(data - model(), one, (r0, c0), row, col, scale, torch)
                .cpu()
                .numpy()
                .astype(np.float64)
            )
        axis_deg, axis_sigma = 0.0, None
        if refine_axis:
            axis_deg = float(step["axis"] * u["axis"])
            axis_sigma = _axis_sigma(model, data, torch)
    if replicate is not None:
        before = angle_sigma
        angle_sigma, offset_sigma = _calibrated(
            angle_sigma, offset_sigma, *replicate, refine_angles, refine_offsets
        )
        if refine_axis:
            # the axis is coupled to the angles and the atoms, which the linearised error
            # holds: widen it as the replicate widened the angles', and never below how far
            # the replicate moved it (a fit from a noisy start: 1.00 to 1.11 deg between 60
            # and 100 iterations while the held error said 0.007)
            c = float(np.median(angle_sigma / np.maximum(before, 1e-12))) if refine_angles else 1
            axis_sigma = max(axis_sigma * c, abs(axis_moved))
    positions, da_np, offsets = _fix_gauge(
        pos.cpu().numpy().astype(np.float64),
        ang0,
        da.cpu().numpy().astype(np.float64),
        o.cpu().numpy().astype(np.float64),
        pixel_size_A,
        rows,
        cols,
    )
    return ModelRefinementResult(
        positions_A=positions,
        amplitudes=amp.cpu().numpy().astype(np.float64),
        angles_deg=ang0 + da_np,
        angle_corrections_deg=da_np,
        offsets_px=offsets,
        sigma_A=sigma_px * pixel_size_A,
        image_sigma_A=image_sigma_px * pixel_size_A,
        image_scale=scale.cpu().numpy().astype(np.float64),
        image_offset=bias.cpu().numpy().astype(np.float64),
        image_correlation=ncc.cpu().numpy().astype(np.float64),
        image_variance=(dc**2).mean(dim=(1, 2)).cpu().numpy().astype(np.float64),
        residual=residual,
        angle_sigma_deg=angle_sigma,
        offset_sigma_px=offset_sigma,
        model_images=images_out,
        amplitude_sigma=amp_sigma,
        axis_correction_deg=axis_deg,
        axis_sigma_deg=axis_sigma,
        weighting=weight_info,
    )
