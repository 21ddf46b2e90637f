"""``napari-aet augment`` and ``napari-aet train`` (the U-Net, headless)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from . import __version__
from .cli import _Bar, _read_tomogram


def add_augment(sub) -> None:
    p = sub.add_parser(
        "augment",
        help="clean a tomogram with the 3D U-Net (shipped or own weights)",
        description="Apply the U-Net to a tomogram in overlapping tiles (GPU when present). "
        "The input is resampled to the network's voxel size and normalised (background 0, "
        "atom peak 1) automatically. Writes tomogram_augmented.h5 (same grid and voxel size "
        "as the input) and figures/augment_slices.png into --out.",
    )
    p.add_argument("tomogram", type=Path, help="tomogram (HDF5 from 'recon', MRC or TIFF)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--element",
        default=None,
        help="the data's element: a note when the weights were trained on another",
    )
    p.add_argument(
        "--weights",
        default="fcc",
        help="'fcc' or 'amorphous' (shipped) or a weights.pt from 'napari-aet train'",
    )
    p.add_argument("--dataset", default=None, help="HDF5 dataset (default 'tomogram')")
    p.add_argument("--voxel-size", type=float, default=None, help="voxel size [A]")
    p.add_argument("--tile", type=int, default=96, help="tile side [voxels]")
    p.add_argument("--overlap", type=int, default=16, help="tile overlap [voxels]")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=_cmd_augment)


def _cmd_augment(args) -> int:
    from .augment import augment_volume
    from .figures import volume_slices_figure
    from .io import write_volume

    vol, vx, prov_in = _read_tomogram(args)
    with _Bar("U-Net", args.quiet) as bar:
        res = augment_volume(
            vol,
            voxel_size_A=vx,
            weights=args.weights,
            element=args.element,
            tile_px=args.tile,
            overlap_px=args.overlap,
            device=args.device,
            progress=bar,
        )
    prov = {
        "napari_aet_version": __version__,
        "command": "augment",
        "input": str(args.tomogram),
        **res.settings,
        "seconds": res.seconds,
        "tomogram_provenance": prov_in,
    }
    out: Path = args.out
    path = write_volume(out / "tomogram_augmented.h5", res.volume, voxel_size_A=vx, provenance=prov)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    volume_slices_figure(
        {"GENFIRE": vol, "U-Net": res.volume}, voxel_size_A=vx, title="Central slices"
    ).savefig(out / "figures" / "augment_slices.png", dpi=150)
    (out / "augment.json").write_text(json.dumps(prov, indent=2, default=str))
    if not args.quiet:
        print(f"augmented {vol.shape} in {res.seconds:.1f} s on {res.settings['device']}")
        print(f"  wrote {path}")
        for note in res.settings.get("notes", []):
            print(f"  note: {note}")
    return 0


def add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="generate U-Net training data (Dask) and train the U-Net",
        description="Generate simulated training pairs (GENFIRE tomograms of random fcc or "
        "amorphous particles and their Gaussian-atom targets) into --data as HDF5 shards, "
        "then train the U-Net into --out (checkpoint.pt every epoch, weights.pt of the best "
        "validation loss, history.json, learning_curve.png, provenance.json). Both steps "
        "resume where they stopped.",
    )
    p.add_argument("--data", required=True, type=Path, help="training-set folder (shards)")
    p.add_argument("--out", type=Path, default=None, help="training output folder")
    p.add_argument("--generate", type=int, default=0, metavar="N", help="make N samples first")
    p.add_argument("--structure", default="fcc", choices=["fcc", "amorphous"])
    p.add_argument("--box", type=int, default=96, help="sample side [voxels]")
    p.add_argument("--pixel-size", type=float, default=0.358, help="voxel size [A]")
    p.add_argument("--radius-min", type=float, default=6.0, help="particle radius min [A]")
    p.add_argument("--radius-max", type=float, default=11.0, help="particle radius max [A]")
    p.add_argument("--element", default="Pt")
    p.add_argument("--lattice-constant", type=float, default=3.912, help="[A]")
    p.add_argument("--gen-iterations", type=int, default=100, help="GENFIRE iterations")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    p.add_argument("--workers", type=int, default=None, help="LocalCluster workers (0: none)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--crop", type=int, default=64, help="training crop side [voxels]")
    p.add_argument("--steps", type=int, default=None, help="steps per epoch")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from .augment import TrainingDataSettings, generate_training_set, train_unet

    command = "napari-aet " + " ".join(shlex.quote(a) for a in args.argv)
    if args.generate:
        settings = TrainingDataSettings(
            structure=args.structure,
            element=args.element,
            lattice_constant_A=args.lattice_constant,
            box_px=args.box,
            pixel_size_A=args.pixel_size,
            radius_min_A=args.radius_min,
            radius_max_A=args.radius_max,
            iterations=args.gen_iterations,
            device="cpu" if args.device == "auto" and args.scheduler else args.device,
        )
        with _Bar("training data", args.quiet) as bar:
            generate_training_set(
                args.data,
                n_samples=args.generate,
                settings=settings,
                seed=args.data_seed,
                scheduler=args.scheduler,
                n_workers=args.workers,
                progress=bar,
            )
    if args.out is None:
        return 0
    with _Bar("training", args.quiet) as bar:
        res = train_unet(
            args.data,
            args.out,
            epochs=args.epochs,
            batch_size=args.batch,
            crop_px=args.crop,
            learning_rate=args.lr,
            depth=args.depth,
            width=args.width,
            dropout=args.dropout,
            val_fraction=args.val_fraction,
            steps_per_epoch=args.steps,
            device=args.device,
            seed=args.seed,
            resume=not args.no_resume,
            provenance={"command": command, "napari_aet_version": __version__},
            progress=bar,
        )
    h = res.history
    best = min(range(len(h["val_loss"])), key=h["val_loss"].__getitem__)
    manifest = args.data / "manifest.json"
    info = {
        "command": command,
        "napari_aet_version": __version__,
        "data": json.loads(manifest.read_text()) if manifest.exists() else str(args.data),
        "training": res.settings,
        "epochs_done": len(h["epoch"]),
        "best_epoch": h["epoch"][best],
        "final_train_loss": h["train_loss"][-1],
        "final_val_loss": h["val_loss"][-1],
        "best_val_loss": h["val_loss"][best],
        "training_seconds": float(sum(h["seconds"])),
    }
    (args.out / "provenance.json").write_text(json.dumps(info, indent=2))
    if not args.quiet:
        print(
            f"trained {info['epochs_done']} epochs; best validation loss "
            f"{info['best_val_loss']:.4g} (epoch {info['best_epoch']})"
        )
        print(f"  wrote {res.weights_path}, learning_curve.png, provenance.json")
    return 0
