"""Option ranges of the `napari-aet` commands, checked before any work (outputs replace the
previous ones only when a command succeeds: see :func:`._common.run_staged`)."""

from __future__ import annotations

import math

from ..core.elements import split_elements


def element_spec(text: str) -> str:
    """An ``--element`` value: one chemical symbol, or several for an alloy (``Pt,Ni``),
    returned comma-separated in the given order with the symbols capitalised; a ValueError
    that names the option for anything else."""
    try:
        return ",".join(split_elements(text))
    except ValueError as err:
        raise ValueError(f"--element {text}: {err}") from err


#: Physical or sensible range of every numeric option, by its ``dest`` (the same meaning in
#: every command that has it), with the unit and what the value means; checked before any work.
OPTION_RANGES: dict[str, tuple[float, float, str]] = {
    "pixel_size": (0.01, 50.0, "A per pixel (0.358 A is typical for AET)"),
    "voxel_size": (0.01, 50.0, "A per voxel"),
    "radius": (0.0, 1e4, "a radius"),
    "vacancies": (0.0, 0.99, "a fraction of atoms"),
    "jitter": (0.0, 2.0, "A of thermal displacement"),
    "size": (16, 4096, "pixels"),
    "blur": (0.0, 5.0, "A of Gaussian broadening"),
    "dose": (0.0, 1e12, "electrons per A^2; 0 = no noise"),
    "angle_error": (0.0, 10.0, "degrees"),
    "shift_error": (0.0, 100.0, "pixels"),
    "tilt_axis_angle": (-180.0, 180.0, "degrees"),
    "second_axis_rotation": (-360.0, 360.0, "degrees (in-plane turn of the second series)"),
    "lowpass": (0.0, 100.0, "A (0 = off)"),
    "lowpass_edge": (0.0, 1.0, "a fraction of Nyquist"),
    "rounds": (0, 100, "rounds"),
    "recon_iterations": (1, 100000, "GENFIRE iterations"),
    "iterations": (1, 100000, "iterations"),
    "oversampling": (1.0, 8.0, "times the grid"),
    "rfree": (0.0, 0.5, "a fraction of Fourier points held out (0 = off)"),
    "smooth": (0.0, 5.0, "A"),
    "min_distance": (0.5, 10.0, "A between atoms"),
    "lattice_constant": (1.5, 8.0, "A (an fcc metal's lattice constant)"),
    "cutoff": (1.0, 10.0, "A"),
    "tile": (16, 1024, "voxels"),
    "overlap": (0, 512, "voxels"),
    "dpi": (30, 1200, "dots per inch"),
    "energy": (10.0, 3000.0, "keV"),
    "semiangle": (0.1, 200.0, "mrad"),
    "frozen_phonons": (1, 1000, "configurations"),
    "slice_thickness": (0.1, 50.0, "A"),
    "potential_sampling": (0.005, 1.0, "A"),
    "workers": (0, 1024, "processes; train: 0 = in this process"),
    "epochs": (1, 100000, "epochs"),
    "batch": (1, 4096, "samples"),
    "lr": (1e-8, 1.0, "learning rate"),
    "dropout": (0.0, 0.95, "a fraction"),
    "val_fraction": (0.0, 0.9, "a fraction"),
    "generate": (0, 10**7, "samples"),
    "box": (16, 1024, "voxels"),
    "crop": (8, 1024, "voxels"),
    "depth": (1, 8, "levels"),
    "width": (1, 1024, "channels"),
}


def check_option_ranges(args) -> None:
    """Refuse a numeric option outside its range (:data:`OPTION_RANGES`), naming the option,
    the range and its unit, before any work starts."""
    for dest, (lo, hi, what) in OPTION_RANGES.items():
        value = getattr(args, dest, None)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not (math.isfinite(value) and lo <= value <= hi):
            opt = "--" + dest.replace("_", "-")
            raise ValueError(f"{opt} {value:g} is out of range: give {lo:g} to {hi:g} ({what})")
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise ValueError(f"--threads {threads}: give at least 1 (default: the CPUs available)")
    if args.command == "run" and getattr(args, "workers", 1) < 1:
        raise ValueError(f"--workers {args.workers}: a batch needs at least 1 worker process")
    element = getattr(args, "element", None)
    if isinstance(element, str):
        args.element = element_spec(element)
    tilt_axis = getattr(args, "tilt_axis", None)
    if isinstance(tilt_axis, str) and tilt_axis not in ("estimate", "none"):
        try:
            t = float(tilt_axis)
        except ValueError:
            t = None
        if t is None or not (math.isfinite(t) and -180 <= t <= 180):
            raise ValueError(
                f"--tilt-axis {tilt_axis}: give 'estimate', 'none' or an in-plane angle of "
                "-180 to 180 degrees"
            )
