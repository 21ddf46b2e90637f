"""``napari-aet augment`` and ``napari-aet train`` (the U-Net, headless)."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from .. import __version__
from ..align import LOW_COUNTS
from ..augment import (
    TRAINING_DENOISE,
    TRAINING_STRUCTURES,
    TrainingDataSettings,
    generate_training_set,
    structure_names,
    train_unet,
    validation_loss,
)
from ..workflows import AugmentSettings, run_augment
from ._common import Bar, add_volume_input, device_option, element_option, run_staged, volume_source

D = AugmentSettings()


def add_augment(sub) -> None:
    p = sub.add_parser(
        "augment",
        help="clean a tomogram with the 3D U-Net (shipped or own weights)",
        description="Apply the U-Net to a tomogram in overlapping tiles (GPU when present). "
        "The input is resampled to the network's voxel size and normalised (background 0, "
        "atom peak 1) automatically. Writes tomogram_augmented.h5 (same grid and voxel size "
        "as the input) and figures/augment_slices.png into --out.",
    )
    add_volume_input(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    element_option(
        p, "Pt", "picks the 'auto' weights; a note when the weights never saw an element"
    )
    p.add_argument(
        "--weights",
        default=D.weights,
        help="'auto' (default: 'alloy' for several --element, else 'fcc'), 'fcc', "
        "'amorphous' or 'alloy' (shipped) or a weights.pt from 'napari-aet train'",
    )
    p.add_argument("--tile", type=int, default=D.tile_px, help="tile side [voxels]")
    p.add_argument("--overlap", type=int, default=D.overlap_px, help="tile overlap [voxels]")
    device_option(p)
    p.set_defaults(func=cmd_augment)


def cmd_augment(args) -> int:
    settings = AugmentSettings(
        weights=args.weights,
        element=args.element,
        tile_px=args.tile,
        overlap_px=args.overlap,
        device=args.device,
    )
    src = volume_source(args)
    return run_staged(args, "U-Net", lambda out, bar: run_augment(src, settings, out, bar))


def add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="generate U-Net training data (Dask) and train the U-Net",
        description="Generate simulated training pairs (GENFIRE tomograms of random fcc, "
        "twinned, hcp, bcc, multiply twinned or amorphous particles and their Gaussian-atom "
        "targets) into --data as HDF5 shards, "
        "then train the U-Net into --out (checkpoint.pt every epoch, weights.pt of the best "
        "validation loss, history.json, learning_curve.png, provenance.json). Both steps "
        "resume where they stopped.",
    )
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        nargs="+",
        help="training-set folder (shards); several folders (e.g. other elements) are "
        "trained on together, each validated on its last --val-fraction",
    )
    p.add_argument("--out", type=Path, default=None, help="training output folder")
    p.add_argument("--generate", type=int, default=0, metavar="N", help="make N samples first")
    p.add_argument(
        "--structure",
        default="fcc",
        type=_structures,
        help="single fcc crystals, fcc with random twins and stacking faults (faulted), hcp "
        "or bcc crystals, decahedra or icosahedra (multiply twinned), amorphous particles "
        "(random packings) or metallic glasses (those packings quenched: the first shell at "
        "the bond); every one at the bond of --lattice-constant (a / sqrt 2); several as a "
        "comma list, one drawn per sample (e.g. fcc,fcc,faulted,hcp,bcc: a name twice, twice "
        "as often)",
    )
    p.add_argument(
        "--bond-scale-max",
        type=float,
        default=0.0,
        help="each sample's lattice scaled by a factor drawn from 1 +- this (e.g. 0.05: bonds "
        "5 %% shorter to 5 %% longer), so that the network knows more than one spacing",
    )
    p.add_argument(
        "--reversal-rate-max",
        type=float,
        default=0.2,
        help="faulted: the largest chance per (111) layer that the stacking reverses (a twin "
        "or a fault), drawn per sample from [0, this]",
    )
    p.add_argument("--box", type=int, default=96, help="sample side [voxels]")
    p.add_argument("--pixel-size", type=float, default=0.358, help="voxel size [A]")
    p.add_argument("--radius-min", type=float, default=6.0, help="particle radius min [A]")
    p.add_argument("--radius-max", type=float, default=11.0, help="particle radius max [A]")
    element_option(p, "Pt", "the training particles' element")
    p.add_argument("--lattice-constant", type=float, default=3.912, help="[A]")
    p.add_argument("--gen-iterations", type=int, default=100, help="GENFIRE iterations")
    p.add_argument(
        "--forward-models",
        default="project",
        help="forward models drawn per sample, comma list of 'project' (Kirkland, Gaussian "
        "blur) and 'independent' (abTEM: Lobato, aberrated probe); default project",
    )
    p.add_argument(
        "--peak-counts",
        type=float,
        nargs=2,
        default=None,
        metavar=("LOW", "HIGH"),
        help="mean counts at the brightest column, drawn log-uniformly per sample (the "
        "study's dose gives 30-60); default: the study's dose in e/A^2 (project model only)",
    )
    p.add_argument(
        "--background-max",
        type=float,
        default=0.0,
        help="with --peak-counts: a uniform background of up to this many counts per pixel, "
        "subtracted after the Poisson draw",
    )
    p.add_argument(
        "--lowpass",
        type=float,
        default=None,
        metavar="INV_A",
        help="low-pass the images as the align stage does (its default: 2.08 1/A diameter)",
    )
    p.add_argument("--random-orientation", action="store_true", help="turn each particle at random")
    p.add_argument(
        "--denoise",
        default="none",
        choices=TRAINING_DENOISE,
        help="with --peak-counts: 'dose' denoises each sample's images by the align stage's dose "
        f"rule (BM3D below {LOW_COUNTS:g} counts at the brightest column), as napari-aet run does",
    )
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
    p.add_argument(
        "--init",
        default=None,
        metavar="WEIGHTS",
        help="start from these weights (a shipped name or a weights.pt): fine-tuning",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--evaluate",
        nargs="+",
        default=None,
        metavar="WEIGHTS",
        help="instead of training: the validation loss of these weights (shipped names or "
        "weights.pt files) on --data's held-out samples, as training scores them (the same "
        "--val-fraction and --crop): to compare new weights with the shipped ones",
    )
    p.set_defaults(func=cmd_train)


def _structures(text: str) -> str:
    """``--structure``: one of the training structures or a comma list of them."""
    names = structure_names(text)
    bad = [n for n in names if n not in TRAINING_STRUCTURES]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"unknown structure {', '.join(bad) or repr(text)}; choose from "
            + ", ".join(TRAINING_STRUCTURES)
            + " (several as a comma list)"
        )
    return ",".join(names)


def cmd_train(args) -> int:

    command = "napari-aet " + " ".join(shlex.quote(a) for a in args.argv)
    if args.generate and len(args.data) > 1:
        raise ValueError(
            "--generate makes one training set: give one --data folder (generate each set "
            "on its own, then train on the folders together)"
        )
    if args.generate:
        settings = TrainingDataSettings(
            structure=args.structure,
            element=args.element,
            lattice_constant_A=args.lattice_constant,
            box_px=args.box,
            pixel_size_A=args.pixel_size,
            radius_min_A=args.radius_min,
            radius_max_A=args.radius_max,
            reversal_rate_max=args.reversal_rate_max,
            bond_scale_max=args.bond_scale_max,
            iterations=args.gen_iterations,
            forward_models=tuple(m.strip() for m in args.forward_models.split(",") if m.strip()),
            peak_counts=tuple(args.peak_counts) if args.peak_counts else None,
            background_max_counts=args.background_max,
            lowpass_diameter_inv_A=args.lowpass,
            random_orientation=args.random_orientation,
            denoise=args.denoise,
            device="cpu" if args.device == "auto" and args.scheduler else args.device,
        )
        with Bar("training data", args.quiet) as bar:
            generate_training_set(
                args.data[0],
                n_samples=args.generate,
                settings=settings,
                seed=args.data_seed,
                scheduler=args.scheduler,
                n_workers=args.workers,
                progress=bar,
            )
    if args.evaluate:
        return _evaluate(args)
    if args.out is None:
        return 0
    with Bar("training", args.quiet) as bar:
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
            init_weights=args.init,
            provenance={"command": command, "napari_aet_version": __version__},
            progress=bar,
        )
    h = res.history
    best = min(range(len(h["val_loss"])), key=h["val_loss"].__getitem__)
    manifests = [
        json.loads((d / "manifest.json").read_text()) if (d / "manifest.json").exists() else str(d)
        for d in args.data
    ]
    info = {
        "command": command,
        "napari_aet_version": __version__,
        "data": manifests[0] if len(manifests) == 1 else manifests,
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


def _evaluate(args) -> int:
    """``napari-aet train --evaluate W [W ...]``: each weights' validation loss on --data."""
    rows = [
        validation_loss(
            args.data, w, val_fraction=args.val_fraction, crop_px=args.crop, device=args.device
        )
        for w in args.evaluate
    ]
    print(
        f"validation loss (MSE, central {args.crop}-voxel crops) on the {rows[0]['n_val']} "
        f"held-out samples of {', '.join(map(str, args.data))}:"
    )
    for name, r in zip(args.evaluate, rows, strict=True):
        each = " ".join(f"{v:.3g}" for v in r["per_sample"])
        print(f"  {name}: {r['mean']:.4g}  (per sample: {each})")
    return 0
