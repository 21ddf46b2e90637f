"""What every command shares: the terminal progress bar, the tilt-series options, running a
workflow into a staged ``--out`` folder and printing what it did."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..align import SCAN_DIRECTIONS
from ..core.files import staged_folder
from ..workflows import SeriesSource, VolumeSource, parse_image_indices


class Bar:
    """tqdm progress bar behind the stages' ``progress(done, total, message)`` callback."""

    def __init__(self, desc: str, quiet: bool):
        self.desc = desc
        self.quiet = quiet
        self.bar = None

    def __call__(self, done: int, total: int, message: str = "") -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if self.bar is None or self.bar.total != total:
            if self.bar is not None:  # a new phase (e.g. gridding, then iterations)
                self.bar.close()
            self.bar = tqdm(total=total, desc=self.desc, unit="step", file=sys.stderr)
        self.bar.n = done
        if message:
            self.bar.set_postfix_str(message, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def add_series_input(p, *, positional: bool = True) -> None:
    """The tilt-series argument and the options that say what its file lacks."""
    if positional:
        p.add_argument("tilts", type=Path, help="tilt series (TIFF, MRC, HDF5, NPY, MATLAB .mat)")
    p.add_argument(
        "--angles",
        default=None,
        help="angles file (.tlt/.rawtlt/.txt/.mdoc/.mat) or list/range [deg]; default: from "
        "the file (HDF5, .mat, an MRC extended header) or its sidecar (.tlt, SerialEM .mdoc)",
    )
    p.add_argument(
        "--pixel-size", type=float, default=None, help="pixel size [A]; default: from the file"
    )
    p.add_argument("--dataset", default=None, help="HDF5 dataset / .mat variable of the series")
    p.add_argument("--fill-nans", action="store_true", help="replace NaN pixels by image medians")
    p.add_argument(
        "--exclude-images",
        type=image_indices,
        default=(),
        metavar="I,J,...",
        help="leave these images out (their index in the file, 0 = the first; e.g. an image "
        "the alignment names as out of focus)",
    )
    p.add_argument(
        "--scan-direction",
        choices=SCAN_DIRECTIONS,
        default="down",
        help="a file of several frames per tilt (4D, or each angle repeated): the order the "
        "rows were scanned in, to undo the drift's scan distortion ('down': row 0 first, as "
        "DM, Velox and TIFF images are stored; 'none': register the frames by shifts only)",
    )
    p.add_argument(
        "--phi-group",
        type=int,
        default=None,
        metavar="K",
        help="a GENFIRE file that merges tilt series turned about the beam between them: read "
        "the K-th (0 = the one holding the file's first image; --exclude-images then counts "
        "its images); without it, run and recon take a file of two as a dual-axis series",
    )
    p.add_argument(
        "--frame-interval",
        type=float,
        default=1.0,
        help="several frames per tilt: a frame period over one frame's scan time (1: frames "
        "scanned back to back; more with a pause between frames or for frames cut from a "
        "taller scan)",
    )


def crop_option(p, default: str) -> None:
    """``--crop``: cut the images to a box around the particle before alignment."""
    p.add_argument(
        "--crop",
        default=default,
        metavar="auto|none|PX",
        help="cut each image to a square box around the particle before aligning: 'auto' "
        "(default) when the particle and a margin need at most 3/4 of the images (a "
        "1,024-px image of a 40-A particle: about 190 px; GENFIRE's memory grows as the "
        "side cubed), 'none', or the box's side in pixels",
    )


def image_indices(text: str) -> tuple[int, ...]:
    """``"12,15"`` -> ``(12, 15)`` (argparse type of ``--exclude-images``)."""
    try:
        values = parse_image_indices(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one image index, e.g. 12")
    return values


def series_source(args, path=None) -> SeriesSource:
    return SeriesSource(
        str(path if path is not None else args.tilts),
        angles=args.angles,
        pixel_size_A=args.pixel_size,
        dataset=args.dataset,
        fill_nans=getattr(args, "fill_nans", False),
        exclude=tuple(getattr(args, "exclude_images", ()) or ()),
        scan_direction=getattr(args, "scan_direction", "down"),
        frame_interval=getattr(args, "frame_interval", 1.0),
        phi_group=getattr(args, "phi_group", None),
    )


#: Files whose angles may be GENFIRE's Euler triplets (a .mat or .npy stack, or an angles
#: file beside or given): the ones :func:`merged_as_dual_axis` reads to look.
_EULER_SUFFIXES = (".mat", ".npy", ".txt")


def merged_as_dual_axis(source: SeriesSource, second: SeriesSource | None):
    """A GENFIRE-convention file that merges two tilt series turned about the beam between
    them, given without ``--second-axis`` or ``--phi-group``: its first series as the run's,
    the other as the second axis (``(source, second, note)``; as given otherwise). A file of
    more than two is refused, naming ``--phi-group``."""
    from ..io import MergedSeriesError, read_tilt_series

    angles = str(source.angles or "")
    if (
        second is not None
        or source.phi_group is not None
        or not (
            Path(source.path).suffix.lower() in _EULER_SUFFIXES
            or Path(angles).suffix.lower() in _EULER_SUFFIXES
        )
    ):
        return source, second, None
    try:
        read_tilt_series(source.path, dataset=source.dataset, angles=source.angles,
                         pixel_size_A=source.pixel_size_A, keep_frames=True,
                         nan_policy="fill")  # fmt: skip
    except MergedSeriesError as err:
        if len(err.groups) != 2:
            raise ValueError(
                f"{err}. A dual-axis run takes two: choose the series with --phi-group K, or "
                "the pair with --phi-group K and --second-axis FILE"
            ) from None
        a, b = (f"phi {p:+.1f} deg, {len(g)} images" for p, g in zip(err.phi_deg, err.groups,
                                                                    strict=True))  # fmt: skip
        note = (
            f"{Path(source.path).name} merges two tilt series turned about the beam ({a}; "
            f"{b}): run as a dual-axis series, each aligned on its own and both reconstructed "
            "together (the second's in-plane turn measured from its images)"
        )
        first = replace(source, phi_group=0)
        return first, replace(source, phi_group=1, exclude=()), note
    except Exception:  # noqa: BLE001 - any other reading problem is the run's to report
        pass
    return source, second, None


def add_volume_input(p) -> None:
    p.add_argument("tomogram", type=Path, help="tomogram (HDF5 from 'recon', MRC or TIFF)")
    p.add_argument("--dataset", default=None, help="HDF5 dataset (default 'tomogram')")
    p.add_argument("--voxel-size", type=float, default=None, help="voxel size [A]")


def volume_source(args) -> VolumeSource:
    return VolumeSource(str(args.tomogram), args.dataset, args.voxel_size)


def run_staged(args, desc: str, workflow, *inputs) -> int:
    """Run ``workflow(*inputs, out, progress)`` into a staging folder that replaces ``--out``
    only when it succeeds, then print its summary, notes and files (unless ``-q``)."""
    final = Path(args.out)
    with Bar(desc, args.quiet) as bar, staged_folder(final) as tmp:
        res = workflow(*inputs, tmp, bar)
    report(args, res, final)
    return 0


def report(args, res, folder: Path | None = None) -> None:
    """Print a workflow's summary line, its notes (to stderr) and the files it wrote."""
    if args.quiet:
        return
    if res.message:
        print(res.message)
    for note in res.notes:
        print(f"  note: {note}", file=sys.stderr)
    if res.written and folder is not None:
        shown = [str(folder / w) for w in res.written[:1]] + [Path(w).name for w in res.written[1:]]
        print("  wrote " + ", ".join(shown))


def parse_formats(text: str, option: str) -> tuple[str, ...]:
    """A comma list of figure formats (png, svg, pdf), refused with the option's name."""
    formats = tuple(s.strip() for s in text.split(",") if s.strip())
    if not formats or set(formats) - {"png", "svg", "pdf"}:
        raise ValueError(f"{option} {text!r}: choose among png, svg, pdf (comma list)")
    return formats


def check_dpi(dpi: int, option: str) -> int:
    """A figure resolution in the range the figures stage accepts, refused with the option's
    name (at parse time, so that a long run does not fail at its last stage)."""
    if not 30 <= dpi <= 1200:
        raise ValueError(f"{option} {dpi}: give 30 to 1200 (300 is print quality)")
    return dpi


def element_option(p, default: str, uses: str) -> None:
    """``--element``: the sample's element(s) and what this command uses it for."""
    p.add_argument(
        "--element",
        default=default,
        metavar="SYMBOL[,SYMBOL]",
        help=f"the sample's element, or several for an alloy, e.g. Pt,Ni (default {default}): "
        f"{uses}",
    )


def second_axis_options(p) -> None:
    """The second series of a dual-axis acquisition (``recon`` and ``run``)."""
    p.add_argument(
        "--second-axis",
        type=Path,
        default=None,
        metavar="FILE",
        help="dual-axis: the second tilt series (same size and pixel size); its in-plane turn "
        "is measured and both are reconstructed together",
    )
    p.add_argument(
        "--second-axis-angles",
        default=None,
        help="the second series' tilt angles (file or list/range [deg]); default: from its "
        "file or sidecar",
    )
    p.add_argument(
        "--second-axis-rotation",
        type=float,
        default=None,
        metavar="DEG",
        help="the second series' in-plane turn [deg] when known (refined against its images "
        "all the same); default: measured from the untilted images",
    )


def second_axis_source(args) -> SeriesSource | None:
    """The second series' source (read like the first, its own angles), or None."""
    if getattr(args, "second_axis", None) is None:
        return None
    if not Path(args.second_axis).exists():
        raise FileNotFoundError(f"--second-axis {args.second_axis}: no such file")
    return replace(
        series_source(args, args.second_axis), angles=args.second_axis_angles, exclude=()
    )


def structure_option(p, default: str) -> None:
    """``--structure``: crystal labels by the layering, or forced either way."""
    p.add_argument(
        "--structure",
        default=default,
        choices=["auto", "crystalline", "amorphous"],
        help="'auto': crystal labels when the atoms form close-packed layers, else g(r), "
        "coordination and Voronoi motifs; 'amorphous' or 'crystalline' forces one",
    )


def device_option(p) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
