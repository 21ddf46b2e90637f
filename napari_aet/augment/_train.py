"""Training of the U-Net on HDF5 shards: validation split, checkpoints, resume, learning curve."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.device import resolve_device
from ..core.files import replace_when_done
from ..core.progress import check_cancel, report
from ._model import UNet3D
from ._weights import load_weights, save_weights


@dataclass
class TrainResult:
    """What :func:`train_unet` made.

    Attributes
    ----------
    weights_path : Path
        The weights of the epoch with the lowest validation loss.
    history : dict
        ``epoch``, ``train_loss``, ``val_loss``, ``seconds`` per finished epoch.
    settings : dict
    """

    weights_path: Path
    history: dict
    settings: dict = field(default_factory=dict)


class _Samples:
    """Random access to the samples of a set of shards (read lazily, one sample at a time)."""

    def __init__(self, sets):
        import h5py

        self.index = []
        self.voxel_size_A = None
        self.set_settings = []  # each set's generator settings (its first shard's)
        self.set_sizes = []
        if sets and not isinstance(sets[0], (list, tuple)):
            sets = [sets]  # one set of shards
        for shards in sets:
            n0 = len(self.index)
            self._read_set(h5py, shards)
            self.set_sizes.append(len(self.index) - n0)
        if not self.index:
            raise ValueError("no training samples found")

    def _read_set(self, h5py, shards) -> None:
        for j, p in enumerate(shards):
            with h5py.File(p, "r") as h5:
                if "input" not in h5 or "target" not in h5:
                    raise ValueError(f"{p} is not a training shard (no input/target datasets)")
                vs = float(h5.attrs["voxel_size_A"])
                if j == 0:
                    self.set_settings.append(json.loads(h5.attrs["settings"]))
                if self.voxel_size_A is None:
                    self.voxel_size_A = vs
                elif abs(vs - self.voxel_size_A) > 1e-6:
                    raise ValueError(
                        f"{p} has voxels of {vs} A, the others {self.voxel_size_A} A: one "
                        "training, one sampling"
                    )
                self.index += [(str(p), i) for i in range(h5["input"].shape[0])]

    @property
    def data_settings(self):
        """The provenance's ``data``: the set's settings, or a list of them for several sets."""
        return self.set_settings[0] if len(self.set_settings) == 1 else list(self.set_settings)

    def __len__(self):
        return len(self.index)

    def get(self, k: int, crop: int, rng: np.random.Generator | None):
        import h5py

        path, i = self.index[k]
        with h5py.File(path, "r") as h5:
            n = h5["input"].shape[1:]
            if rng is None:  # validation: central crop
                lo = [(s - crop) // 2 for s in n]
            else:
                lo = [int(rng.integers(0, s - crop + 1)) for s in n]
            sl = (i, *(slice(a, a + crop) for a in lo))
            x = h5["input"][sl].astype(np.float32)
            y = h5["target"][sl].astype(np.float32)
        if rng is not None:
            # flips keep the missing wedge (symmetric tilt range about the y axis); axis swaps
            # would not, so none are used
            for ax in range(3):
                if rng.random() < 0.5:
                    x, y = np.flip(x, ax), np.flip(y, ax)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _split(sizes, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation samples of sets of ``sizes`` samples (one int: one set),
    numbered one set after the other: the last ``val_fraction`` of each set is held out, so
    that every set is validated on."""
    train, val = [], []
    start = 0
    for n in np.atleast_1d(sizes).astype(int):
        n_val = max(1, int(round(n * val_fraction))) if n > 1 else 0
        train.append(np.arange(start, start + n - n_val))
        val.append(np.arange(start + n - n_val, start + n))
        start += n
    return np.concatenate(train), np.concatenate(val)


def _validation_losses(model, samples, val_idx, crop_px: int, dev) -> list[float]:
    """The MSE of ``model`` on the central ``crop_px`` crop of each validation sample."""
    model.eval()
    out = []
    with torch.no_grad():
        for k in val_idx:
            x, y = samples.get(int(k), crop_px, None)
            pred = model(torch.from_numpy(x[None, None]).to(dev))
            target = torch.from_numpy(y[None, None]).to(dev)
            out.append(float(torch.nn.functional.mse_loss(pred, target)))
    return out


def _check_crop(crop_px: int, model) -> None:
    """A crop the network can take: a multiple of ``2 ** depth`` voxels."""
    if crop_px % model.multiple:
        raise ValueError(
            f"crop_px must be a multiple of {model.multiple} for depth {model.config['depth']}"
        )


def _check_sampling(meta: dict, samples, what: str) -> None:
    """Weights (``meta`` from :func:`load_weights`) of the training set's voxel size."""
    if abs(meta["voxel_size_A"] - samples.voxel_size_A) > 1e-6:
        raise ValueError(
            f"{what} {meta['source']} were trained at {meta['voxel_size_A']} A voxels, the "
            f"training set has {samples.voxel_size_A} A: use a set of their sampling"
        )


def validation_loss(
    data, weights, *, val_fraction: float = 0.1, crop_px: int = 64, device: str = "cpu"
) -> dict:
    """The validation loss of ``weights`` on a training set's held-out samples.

    It scores the samples and crops that :func:`train_unet` holds out and scores with the same
    ``val_fraction`` and ``crop_px`` (the last samples; central crops), so that weights trained
    elsewhere (the shipped ones, an earlier fine-tune) are compared with a new training on
    equal terms.

    Parameters
    ----------
    data : path or list of paths
        The training-set folder (HDF5 shards), several, or one shard.
    weights : str or path
        A shipped name (``"fcc"``, ``"amorphous"``) or a ``weights.pt``.

    Returns
    -------
    dict
        ``weights`` (the file), ``mean`` and ``per_sample`` (MSE), ``n_val``, ``crop_px``.
    """
    dev = resolve_device(device)
    samples = _Samples(_find_shards(data))
    _, val_idx = _split(samples.set_sizes, val_fraction)
    if not len(val_idx):
        raise ValueError(f"{data} holds one sample: nothing is held out to validate on")
    model, meta = load_weights(weights, device=dev)
    _check_sampling(meta, samples, "weights")
    _check_crop(crop_px, model)
    losses = _validation_losses(model, samples, val_idx, crop_px, dev)
    return {
        "weights": str(meta["source"]),
        "mean": float(np.mean(losses)),
        "per_sample": losses,
        "n_val": int(len(val_idx)),
        "crop_px": int(crop_px),
    }


def _find_shards(data) -> list[list[Path]]:
    """The training sets in ``data``, each a list of shards: a folder of ``shard-*.h5`` is
    one set; shard files given one by one form one set together; a list may mix folders."""
    items = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    sets, loose = [], []
    for item in items:
        d = Path(item)
        if d.is_dir():
            shards = sorted(d.glob("shard-*.h5"))
            if not shards:
                raise FileNotFoundError(
                    f"no training shards (shard-*.h5) in {d}; make them with `napari-aet "
                    "train --generate N` or napari_aet.augment.generate_training_set"
                )
            sets.append(shards)
        else:
            loose.append(d)
    if loose:
        sets.append(loose)
    if not sets:
        raise FileNotFoundError(
            f"no training shards (shard-*.h5) in {data}; make them with `napari-aet train "
            "--generate N` or napari_aet.augment.generate_training_set"
        )
    return sets


def _save_checkpoint(path: Path, payload: dict) -> None:

    replace_when_done(path, lambda tmp: torch.save(payload, tmp))


def plot_learning_curve(history: dict, path) -> Path:
    """Training and validation loss per epoch (log scale) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=150)
    ax.semilogy(history["epoch"], history["train_loss"], "o-", color="tab:blue", label="training")
    ax.semilogy(history["epoch"], history["val_loss"], "o-", color="tab:red", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE loss")
    ax.set_title("U-Net learning curve")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def train_unet(
    data,
    out_dir,
    *,
    epochs: int = 20,
    batch_size: int = 2,
    crop_px: int = 64,
    learning_rate: float = 2e-4,
    depth: int = 3,
    width: int = 16,
    dropout: float = 0.1,
    val_fraction: float = 0.1,
    steps_per_epoch: int | None = None,
    device: str = "auto",
    mixed_precision: bool = True,
    seed: int = 0,
    resume: bool = True,
    init_weights=None,
    provenance: dict | None = None,
    progress=None,
    cancel=None,
) -> TrainResult:
    """Train the U-Net (MSE, Adam) on training shards; checkpoint each epoch, resumable.

    Parameters
    ----------
    data : path or list of paths
        A folder of ``shard-*.h5`` (from :func:`generate_training_set`), several folders
        (training sets of other elements or structures, trained on together; each set's last
        ``val_fraction`` is held out) or the shard files.
    out_dir : path
        Gets ``checkpoint.pt`` (every epoch), ``weights.pt`` (best validation loss),
        ``history.json`` and ``learning_curve.png``.
    epochs : int
        Total epochs (a resumed run continues up to this number).
    batch_size, crop_px : int
        Samples per step and side of the random training crops [voxels] (a multiple of
        ``2 ** depth``).
    learning_rate : float
        Adam learning rate (the study: 2e-4).
    depth, width, dropout
        U-Net shape (:class:`UNet3D`).
    val_fraction : float
        Fraction of the samples held out for validation (the last ones).
    steps_per_epoch : int, optional
        Optimiser steps per epoch; default one pass over the training samples.
    device : {"auto", "cpu", "cuda"}
    mixed_precision : bool
        float16 autocast with loss scaling on CUDA (ignored on the CPU).
    seed : int
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` when it exists with the same settings.
    init_weights : str or path, optional
        Start from these weights (a shipped name or a ``weights.pt`` of the same depth and
        width) instead of random ones: fine-tuning, e.g. the shipped weights on data from
        another forward model. Recorded in the settings with the source's own command.
    provenance : dict, optional
        Extra facts stored in the weights (e.g. the command line).
    progress, cancel
        Progress per step and cancel flag (a cancelled run keeps its last checkpoint).
    """

    dev = resolve_device(device)
    sets = _find_shards(data)
    samples = _Samples(sets)
    n = len(samples)
    train_idx, val_idx = _split(samples.set_sizes, val_fraction)
    if len(train_idx) == 0:
        raise ValueError(f"{n} sample(s) leave none for training; generate more")
    model = UNet3D(depth=depth, width=width, dropout=dropout)
    _check_crop(crop_px, model)
    init = None
    if init_weights is not None:
        src, meta = load_weights(init_weights)
        cfg = {k: meta["config"].get(k) for k in ("depth", "width")}
        if cfg != {"depth": depth, "width": width}:
            raise ValueError(
                f"init_weights {meta['source']} have depth {cfg['depth']} and width "
                f"{cfg['width']}, not {depth} and {width}: give the same --depth and --width"
            )
        _check_sampling(meta, samples, "init_weights")
        model.load_state_dict(src.state_dict())
        init = {"source": meta["source"], "command": meta["provenance"].get("command")}
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    amp = bool(mixed_precision and dev.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "crop_px": crop_px,
        "learning_rate": learning_rate,
        "depth": depth,
        "width": width,
        "dropout": dropout,
        "val_fraction": val_fraction,
        "steps_per_epoch": steps_per_epoch,
        "seed": seed,
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "mixed_precision": amp,
        "device": str(dev),
        "init_weights": init,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    history = {"epoch": [], "train_loss": [], "val_loss": [], "seconds": []}
    start = 0
    best = np.inf
    rng = np.random.default_rng(seed)
    same = ("depth", "width", "crop_px", "batch_size", "learning_rate", "n_train", "n_val")
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if all(ck["settings"].get(k) == settings[k] for k in same):
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            history = ck["history"]
            start = len(history["epoch"])
            best = min(history["val_loss"], default=np.inf)
            rng.bit_generator.state = ck["rng"]
        else:
            raise ValueError(
                f"{ckpt_path} was made with other settings; use another output folder or "
                "resume=False (--no-resume) to start over"
            )
    steps = steps_per_epoch or max(1, len(train_idx) // batch_size)
    total = (epochs - start) * steps
    done = 0
    torch.manual_seed(seed + start)
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        model.train()
        losses = []
        order = rng.permutation(train_idx)
        for s in range(steps):
            check_cancel(cancel, "training")
            pick = [order[(s * batch_size + j) % len(order)] for j in range(batch_size)]
            xs, ys = zip(*(samples.get(int(k), crop_px, rng) for k in pick), strict=True)
            x = torch.from_numpy(np.stack(xs)[:, None]).to(dev)
            y = torch.from_numpy(np.stack(ys)[:, None]).to(dev)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=amp):
                loss = torch.nn.functional.mse_loss(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss.detach()))
            done += 1
            report(progress, done, total, f"epoch {epoch + 1}/{epochs} loss {losses[-1]:.4g}")
        vl = _validation_losses(model, samples, val_idx, crop_px, dev)
        val = float(np.mean(vl)) if vl else float(np.mean(losses))
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(float(np.mean(losses)))
        history["val_loss"].append(val)
        history["seconds"].append(time.perf_counter() - t0)
        prov = {
            **(provenance or {}),
            "training": settings,
            "data": samples.data_settings,
            "shards": [str(p) for shards in sets for p in shards],
            "epochs_done": epoch + 1,
            "final_train_loss": history["train_loss"][-1],
            "final_val_loss": val,
        }
        if val <= best:
            best = val
            save_weights(
                out / "weights.pt",
                model,
                voxel_size_A=samples.voxel_size_A,
                provenance={**prov, "best_epoch": epoch + 1},
            )
        _save_checkpoint(
            ckpt_path,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "history": history,
                "settings": settings,
                "rng": rng.bit_generator.state,
            },
        )
        (out / "history.json").write_text(json.dumps(history, indent=2))
        plot_learning_curve(history, out / "learning_curve.png")
    return TrainResult(out / "weights.pt", history, settings)
