"""What microscope software writes beside the images: tilt angles and pixel size from the
extended header of an MRC file (Thermo Fisher / FEI and SerialEM) and from SerialEM's
``.mdoc`` autodoc.

A tilt series straight from the microscope rarely comes with an IMOD ``.tlt``: Thermo
Fisher's Tomography and Velox write each image's stage tilt into the MRC file's extended header
(the FEI/Agard layout of 128 bytes of floats per image, or the MRC2014 ``FEI1``/``FEI2``
metadata blocks), SerialEM writes it into its own extended header (``SERI``: a short per image,
the angle times 100) and into the ``.mdoc`` text file it keeps next to the stack
(``tilt.mrc.mdoc``). Each reader here returns what it found, or None, and never guesses: an
extended header whose angles are all the same (an image series that is not a tilt series) or
whose pixel size is not a plausible number gives nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: a pixel size read from a header is believed between these [A]
_PLAUSIBLE_PIXEL_A = (1e-3, 1e3)


@dataclass
class MicroscopeMetadata:
    """Tilt angles, pixel size and whatever else a microscope file says, and where from."""

    source: str
    angles_deg: np.ndarray | None = None
    pixel_size_A: float | None = None
    extra: dict = field(default_factory=dict)


def varying_angles(angles) -> np.ndarray | None:
    """``angles`` as float64 if they are finite and not all the same (a tilt series), else
    None. One image's angle is kept as it is (a folder of one file per tilt judges the files'
    angles together)."""
    a = np.asarray(angles, np.float64).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)) or (a.size > 1 and np.ptp(a) < 1e-3):
        return None
    return a


def _plausible_pixel(value_A) -> float | None:
    v = float(value_A)
    lo, hi = _PLAUSIBLE_PIXEL_A
    return round(v, 6) if np.isfinite(v) and lo < v < hi else None


def mrc_extended_metadata(mrc, n_images: int) -> MicroscopeMetadata | None:
    """Angles and pixel size from the extended header of an open :mod:`mrcfile` file of
    ``n_images`` images: ``FEI1``/``FEI2`` (through mrcfile's indexed header), SerialEM's
    ``SERI``, or the older FEI/Agard layout (``nint = 0``, ``nreal = 32``: 32 floats per
    image, the alpha tilt first [deg], the pixel size 12th [m]). None when the file has no
    extended header or it says nothing usable."""
    header = mrc.header
    ext = mrc.extended_header
    if ext is None or ext.nbytes == 0:
        return None
    exttyp = bytes(header.exttyp).strip(b"\0 ").upper()
    order = header.nx.dtype.str[0]  # "<" or ">": the file's byte order
    extra2 = bytes(header.extra2)
    nint = int(np.frombuffer(extra2[16:18], order + "i2")[0])
    nreal = int(np.frombuffer(extra2[18:20], order + "i2")[0])
    raw = np.frombuffer(bytes(ext.tobytes()), np.uint8)
    if exttyp in (b"FEI1", b"FEI2"):
        return _fei_metadata(mrc, exttyp.decode(), n_images)
    if exttyp == b"SERI" or (exttyp != b"AGAR" and nint > 0 and nreal & 1 and nint < 128):
        return _serialem_metadata(raw, nint, nreal, order, n_images)
    if exttyp in (b"AGAR", b"") and nint == 0 and nreal == 32 and raw.size >= 128 * n_images:
        rec = np.frombuffer(raw[: 128 * n_images].tobytes(), order + "f4").reshape(n_images, 32)
        angles = varying_angles(rec[:, 0])
        px = _plausible_pixel(np.median(rec[:, 11]) * 1e10)
        if angles is None and px is None:
            return None
        tilt_axis = float(np.median(rec[:, 10]))
        extra = {"tilt_axis_deg_in_header": tilt_axis} if np.isfinite(tilt_axis) else {}
        return MicroscopeMetadata("MRC extended header (FEI/Agard)", angles, px, extra)
    return None


def _fei_metadata(mrc, kind: str, n_images: int) -> MicroscopeMetadata | None:
    try:
        rec = mrc.indexed_extended_header
    except Exception:  # noqa: BLE001 - a malformed block is a header without metadata
        return None
    if rec is None or len(rec) < n_images:
        return None
    rec = rec[:n_images]
    names = rec.dtype.names or ()
    angles = varying_angles(rec["Alpha tilt"]) if "Alpha tilt" in names else None
    px = None
    if "Pixel size X" in names:
        px = _plausible_pixel(np.median(np.asarray(rec["Pixel size X"], np.float64)) * 1e10)
    if angles is None and px is None:
        return None
    extra = {}
    if "Tilt axis angle" in names:
        extra["tilt_axis_deg_in_header"] = float(np.median(rec["Tilt axis angle"]))
    if "STEM Detector name" in names:
        name = bytes(rec["STEM Detector name"][0]).split(b"\0")[0].decode("latin-1").strip()
        if name:
            extra["detector"] = name
    return MicroscopeMetadata(f"MRC extended header ({kind})", angles, px, extra)


def _serialem_metadata(raw, nbytes: int, flags: int, order: str, n_images: int):
    """SerialEM's extended header: ``nbytes`` per image, the shorts ``flags`` names in
    IMOD's order, the tilt angle times 100 first when flag 1 is set."""
    if nbytes < 2 or raw.size < nbytes * n_images or not flags & 1:
        return None
    per = raw[: nbytes * n_images].reshape(n_images, nbytes)[:, :2]
    angles = varying_angles(np.frombuffer(per.tobytes(), order + "i2") / 100.0)
    if angles is None:
        return None
    return MicroscopeMetadata("MRC extended header (SerialEM)", angles)


def read_mdoc(path: str | Path) -> MicroscopeMetadata:
    """A SerialEM ``.mdoc`` autodoc: each image's ``TiltAngle`` by its ``[ZValue = k]``
    section, the ``PixelSpacing`` [A] and the tilt axis angle of its title lines.

    Raises
    ------
    ValueError
        If the file has no image sections, or an image has no tilt angle.
    """
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        raise OSError(f"could not read {path}: {err}") from err
    glob: dict[str, str] = {}
    sections: dict[int, dict[str, str]] = {}
    current = glob
    tilt_axis = None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        m = re.fullmatch(r"\[\s*(\w+)\s*=\s*(.*?)\s*\]", line)
        if m:
            key, value = m.groups()
            if key == "ZValue":
                try:
                    current = sections.setdefault(int(value), {})
                except ValueError:
                    raise ValueError(f"{path}: bad section [{key} = {value}]") from None
            elif key == "T":
                axis = re.search(r"Tilt axis angle\s*=\s*(-?[\d.]+)", value)
                if axis:
                    tilt_axis = float(axis.group(1))
                current = glob
            else:  # [FrameSet = k], [MontSection = k]: not an image of the stack
                current = {}
            continue
        if "=" in line:
            key, value = (s.strip() for s in line.split("=", 1))
            current[key] = value
    if not sections:
        raise ValueError(f"{path}: no [ZValue = ...] sections; is it a SerialEM tilt-series .mdoc?")
    n = max(sections) + 1
    missing = [k for k in range(n) if "TiltAngle" not in sections.get(k, {})]
    if missing:
        raise ValueError(
            f"{path}: images {missing[:5]} have no TiltAngle; give the angles with --angles"
        )
    angles = np.array([float(sections[k]["TiltAngle"].split()[0]) for k in range(n)])
    px = None
    spacing = glob.get("PixelSpacing") or sections[0].get("PixelSpacing")
    if spacing:
        px = _plausible_pixel(float(spacing.split()[0]))
    extra = {} if tilt_axis is None else {"tilt_axis_deg_in_header": tilt_axis}
    return MicroscopeMetadata(f"{path.name} (SerialEM .mdoc)", angles, px, extra)
