"""``napari-aet compare``: one atom model against another (a traced model against a published
one, two runs, a run against a simulation's truth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..analysis import compare_models
from ..io import read_atoms


def add_compare(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="compare two atom models: common atoms, identification error, RMSD, hand",
    )
    p.add_argument("reference", type=Path, help="the reference model (.csv .xyz .h5 .mat)")
    p.add_argument("test", type=Path, help="the model to score against it")
    p.add_argument(
        "--register",
        choices=("rigid", "translation", "none"),
        default="rigid",
        help="overlay the test model first: from each quarter and half turn, a translation and "
        "a small rotation (default), a translation, or nothing (the same frame, e.g. a "
        "GENFIRE series read in its convention beside the group's model)",
    )
    p.add_argument(
        "--radius", type=float, default=1.0, help="largest distance of a pair [A] (default 1)"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="write the pairs and their offsets (.csv)"
    )
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    if not args.radius > 0:
        raise ValueError(f"--radius must be a positive distance in A, got {args.radius}")
    ref, test = read_atoms(args.reference), read_atoms(args.test)
    r = compare_models(ref.positions, test.positions, register=args.register,
                       radius_A=args.radius)  # fmt: skip
    off = r["mean_offset_A"]
    print(f"{args.test.name} against {args.reference.name} (register: {args.register}, "
          f"pairs within {args.radius:g} A)")  # fmt: skip
    print(f"  atoms: {r['n_reference']} reference, {r['n_test']} test, {r['n_common']} common")
    print(f"  missed: {r['missed']}, extra: {r['extra']}, identification error "
          f"{r['identification_error_pct']:.2f} %")  # fmt: skip
    print(f"  RMSD of the common atoms: {100 * r['rmsd_A']:.1f} pm; mean offset (z, y, x) "
          f"{', '.join(f'{v:+.3f}' for v in off)} A")  # fmt: skip
    if args.register == "rigid":
        print(f"  rotation applied: {r['rotation_deg']:.2f} deg")
    if r["mirror"]:
        print(
            f"  hand: the test model mirrored through {r['mirror']} pairs {r['mirror_n_common']} "
            f"atoms against {r['n_common']}: the two are of opposite hands (a tilt sign read "
            "the other way, or one model's axes reversed)"
        )
    if args.out is not None:
        c = r["comparison"]
        rows = np.column_stack([c.pairs, c.deviations_A, np.linalg.norm(c.deviations_A, axis=1)])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(args.out, rows, delimiter=",", fmt=["%d", "%d", "%.5f", "%.5f", "%.5f", "%.5f"],
                   header="reference_index,test_index,dz_A,dy_A,dx_A,distance_A",
                   comments="")  # fmt: skip
        print(f"  pairs: {args.out}")
    return 0
