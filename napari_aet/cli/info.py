"""``napari-aet info``: what a file holds."""

from __future__ import annotations

from pathlib import Path

from ..io import (
    file_notes,
    is_atom_model_file,
    is_mat_volume,
    read_atoms,
    read_each_series,
    read_volume,
)


def add_info(sub) -> None:
    p = sub.add_parser("info", help="describe a tilt-series, atom or .mat reconstruction file")
    p.add_argument("path", type=Path)
    p.add_argument("--dataset", default=None, help="HDF5 dataset path of the tilt series")
    p.set_defaults(func=cmd_info)


def cmd_info(args) -> int:
    if is_atom_model_file(args.path):
        m = read_atoms(args.path)
        print(f"{args.path}: atom model, {m.n_atoms} atoms")
        print(f"  features: {', '.join(m.features.columns) or 'none'}")
        return 0
    if args.path.suffix.lower() == ".mat" and is_mat_volume(args.path):
        vol, vx, meta = read_volume(args.path, dataset=args.dataset)
        print(f"{args.path}: reconstruction {vol.shape} (z, y, x), from {meta['file']['layout']} "
              f"variable {meta['file']['variable']!r}")  # fmt: skip
        print(f"  voxel size: {f'{vx:g} A' if vx else 'unknown (give --voxel-size)'}")
        return 0
    series = read_each_series(args.path, dataset=args.dataset, keep_frames=True)
    if len(series) > 1:  # GENFIRE's file of several series: each described
        print(
            f"{args.path}: {len(series)} tilt series turned about the beam between them "
            "(GENFIRE's Euler angles); `run` and `recon` take two as a dual-axis series, "
            "--phi-group K reads one"
        )
    for k, (phi, ts) in enumerate(series):
        if phi is not None:
            print(f"phi group {k} (phi {phi:+.1f} deg):")
        _describe_series(args.path, ts)
    return 0


def _describe_series(path, ts) -> None:
    """What ``info`` prints about a tilt series read from ``path``."""
    print(f"{path}: tilt series {ts.data.shape} ({ts.metadata.get('format')})")
    if fr := ts.metadata.get("frames"):
        print(
            f"  frames: {fr['frames_per_tilt']} per tilt, {fr['layout']}; align and run "
            "register and add them (--scan-direction, --frame-interval)"
        )
    px = (
        f"{ts.pixel_size_A:g} A ({ts.metadata.get('pixel_size_source')})"
        if ts.pixel_size_A
        else "unknown"
    )
    print(f"  pixel size: {px}")
    if ts.angles_deg is None:
        print(
            "  angles: unknown (none in the file and no sidecar .tlt/.rawtlt/.txt/.mdoc beside it)"
        )
    else:
        a = ts.angles_deg
        src = ts.metadata.get("angles_source")
        print(f"  angles: {len(a)} from {a.min():g} to {a.max():g} deg ({src})")
    if ts.data.ndim == 3:
        from ..align import dead_lines_reason, dead_scan_lines

        for i, bands in dead_scan_lines(ts.data).items():
            print(f"  image {i}: {dead_lines_reason(bands)}; align and run leave it out")
    if gf := ts.metadata.get("genfire"):
        print(f"  geometry: {gf['note']}")
    if mic := ts.metadata.get("microscope"):
        if (axis := mic.get("tilt_axis_deg_in_header")) is not None:
            print(
                f"  tilt axis in the microscope's metadata: {axis:g} deg (its own convention; "
                "align estimates the axis from the images, or give --tilt-axis)"
            )
        if det := mic.get("detector"):
            print(f"  detector: {det}")
    for note in file_notes(ts.metadata):  # what reading noted (GENFIRE's: the geometry line)
        if note != (gf or {}).get("note"):
            print(f"  note: {note}")
