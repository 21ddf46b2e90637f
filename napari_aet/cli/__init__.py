"""The ``napari-aet`` command line: one module per command group, each turning its options into
a stage's settings (:mod:`napari_aet.workflows`), running the workflow and printing what it
did. Headless, no Qt."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..core.progress import Cancelled
from ..core.threads import set_threads
from ._safety import check_option_ranges
from .align import add_align
from .analyze import add_analyze, add_precision, add_validate
from .augment import add_augment, add_train
from .compare import add_compare
from .figures import add_bench, add_figures
from .info import add_info
from .recon import add_recon
from .run import add_run
from .simulate import add_simulate
from .trace import add_refine, add_trace


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-aet",
        description="Atomic electron tomography: tilt series to 3D atomic structure, headless.",
    )
    parser.add_argument("--version", action="version", version=f"napari-aet {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (
        add_simulate,
        add_align,
        add_recon,
        add_trace,
        add_analyze,
        add_augment,
        add_train,
        add_refine,
        add_validate,
        add_precision,
        add_figures,
        add_bench,
        add_run,
        add_info,
        add_compare,
    ):
        add(sub)
    for command in sub.choices.values():
        command.add_argument(
            "--threads",
            type=int,
            default=None,
            metavar="N",
            help="CPU threads for torch, the FFTs and BLAS (default: the CPUs this process may "
            "use: its affinity mask and cgroup CPU quota, not the host's count)",
        )
    return parser


_NEGATIVE_VALUE_OPTIONS = ("--angles", "--tilt-axis-angle", "--tilt-axis")


def _join_negative_values(argv: list[str]) -> list[str]:
    """Let ``--angles -70:70:7`` work: argparse would read ``-70:70:7`` as an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if (
            a in _NEGATIVE_VALUE_OPTIONS
            and i + 1 < len(argv)
            and argv[i + 1][:1] == "-"
            and (argv[i + 1][1:2].isdigit() or argv[i + 1][1:2] == ".")
        ):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    """Run one ``napari-aet`` command; returns the exit code (0 ok, 1 error, 2 usage, 130
    cancelled). A failed command leaves the previous contents of ``--out`` as they were."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_join_negative_values(argv))
    args.argv = argv  # the exact command, for provenance
    if args.command is None:
        parser.print_help()
        return 2
    try:
        check_option_ranges(args)
        # an explicit count is used as given; otherwise only lowered to what the process may
        # use (a user's OMP_NUM_THREADS stays)
        set_threads(args.threads, only_lower=args.threads is None)
        return int(args.func(args) or 0)
    except (KeyboardInterrupt, Cancelled):
        print(
            f"napari-aet {args.command}: cancelled; partial outputs removed, earlier results kept",
            file=sys.stderr,
        )
        return 130
    except (ValueError, KeyError, FileNotFoundError, OSError, MemoryError, RuntimeError) as err:
        # StageFailed (a RuntimeError) lands here too: finished stages are kept
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"napari-aet {args.command}: error: {msg}", file=sys.stderr)
        return 1


__all__ = ["build_parser", "main"]
