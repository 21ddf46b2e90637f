"""``napari-aet figures``: every figure of a finished run and an HTML report, headless."""

from __future__ import annotations

from pathlib import Path

from ..figures import RUN_FIGURES
from ..workflows import FiguresSettings, run_figures
from ._common import Bar, check_dpi, parse_formats

D = FiguresSettings()


def add_figures(sub) -> None:
    p = sub.add_parser(
        "figures",
        help="publication figures and an HTML report of a finished run",
        description="Draw the figures of a `napari-aet run` output folder (or a folder with "
        "atoms.csv and analysis.json) into DIR/figures and write DIR/report.html. Figures: "
        + ", ".join(RUN_FIGURES)
        + ". A figure whose data the run lacks is skipped with the reason.",
    )
    p.add_argument("run_dir", type=Path, metavar="DIR", help="run output folder")
    p.add_argument("--out", type=Path, default=None, help="figures folder (default DIR/figures)")
    p.add_argument("--only", default=None, help="comma-separated figure names")
    p.add_argument("--formats", default=",".join(D.formats), help="comma-separated: png, svg, pdf")
    p.add_argument("--dpi", type=int, default=D.dpi, help="PNG resolution")
    p.add_argument(
        "--strain-component", default=D.strain_component, help="exx, eyy, ezz, exy, exz, eyz"
    )
    p.add_argument("--layer", type=int, default=None, help="middle layer of the [111] panel")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.set_defaults(func=cmd_figures)


def cmd_figures(args) -> int:
    only = tuple(s.strip() for s in args.only.split(",")) if args.only else None
    formats = parse_formats(args.formats, "--formats")
    settings = FiguresSettings(
        figures=only,
        formats=formats,
        dpi=check_dpi(args.dpi, "--dpi"),
        strain_component=args.strain_component,
        center_layer=args.layer,
        report=not args.no_report,
    )
    with Bar("figures", args.quiet) as bar:
        res = run_figures(args.run_dir, settings, args.out, bar)
    if not args.quiet:
        print(res.message)
        for note in res.notes:
            print(f"  {note}")
        if res.record.get("report"):
            print(f"  report: {res.record['report']}")
    return 0


def add_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark script of the source checkout (benchmarks/bench_NAME.py)",
        description="Run benchmarks/bench_NAME.py with this Python; the table it prints goes "
        "to docs/benchmarks.md with the machine. The scripts ship with the source repository, "
        "not with the installed package. Arguments after NAME go to the script.",
    )
    p.add_argument("name", nargs="?", default=None, help="benchmark name (see --list)")
    p.add_argument("--list", action="store_true", help="list the benchmarks")
    p.add_argument("script_args", nargs="*", help="arguments for the script (after --)")
    p.set_defaults(func=cmd_bench)


def _benchmarks_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "benchmarks"


def cmd_bench(args) -> int:
    import subprocess
    import sys

    folder = _benchmarks_dir()
    if not folder.is_dir():
        raise FileNotFoundError(
            "the benchmark scripts ship with the source repository (benchmarks/); run from a "
            "clone of napari-aet"
        )
    names = sorted(p.stem[len("bench_") :] for p in folder.glob("bench_*.py"))
    if args.list or args.name is None:
        print("\n".join(names))
        return 0
    if args.name not in names:
        raise ValueError(f"no benchmark {args.name!r}; choose one of {', '.join(names)}")
    cmd = [sys.executable, f"bench_{args.name}.py", *args.script_args]
    return subprocess.call(cmd, cwd=folder)
