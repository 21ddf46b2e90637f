"""Run the original GENFIRE package (Pryor et al., `genfire` 1.1.11 on PyPI) on a saved series.

Executed by bench_genfire.py inside its own virtual environment; never imported by napari-aet.
Usage: python _genfire_original_runner.py IN.npz OUT.npz
IN.npz holds `projections` (n, rows, cols), `angles_deg` (n,), `iterations`, `oversampling`,
`radius`. OUT.npz gets the central volume, timings and peak memory.
"""

import resource
import sys
import time
import types

import matplotlib
import numpy as np

matplotlib.use("Agg")
matplotlib.use = lambda *a, **k: None  # genfire asks for Qt5Agg at import; no GUI here
sys.modules["genfire.gui"] = types.ModuleType("genfire.gui")  # its Qt GUI is not needed

import genfire.reconstruct as rec  # noqa: E402
import genfire.utility  # noqa: E402, F401


class _StampedOut:
    """Timestamps genfire's 'Iteration number' prints to get per-iteration durations."""

    def __init__(self, stream):
        self.stream = stream
        self.stamps = []

    def write(self, text):
        if "Iteration number" in text:
            self.stamps.append(time.perf_counter())
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


class _NoFigure:
    DisplayFigureON = False
    reconstructionDisplayWindowSize = (0, 0, 0)


def main(inp, out):
    d = np.load(inp)
    proj = d["projections"].astype(np.float64)  # (n, rows, cols)
    angles = d["angles_deg"]
    iterations = int(d["iterations"])
    oversampling = int(d["oversampling"])
    radius = float(d["radius"])
    n = proj.shape[1]
    # genfire wants (X, Y, n_projections) and tilts about its second axis Y: our columns are X,
    # our rows (the tilt axis) are Y.
    proj = np.transpose(proj, (2, 1, 0))
    padded = n * oversampling
    pad = (padded - n) // 2
    support = np.pad(np.ones((n, n, n)), pad, mode="constant")
    proj = np.pad(proj, ((pad, pad), (pad, pad), (0, 0)), mode="constant")
    eul = np.zeros((len(angles), 3))
    eul[:, 1] = angles
    t0 = time.perf_counter()
    measured = rec.fillInFourierGrid(proj, eul, radius, True, True)
    t_grid = time.perf_counter() - t0
    measured = np.fft.ifftshift(measured)
    half = measured[:, :, : measured.shape[-1] // 2 + 1]
    indicators = np.ones_like(half, dtype=float)
    stamped = _StampedOut(sys.stdout)
    sys.stdout = stamped
    t0 = time.perf_counter()
    outp = rec.reconstruct(
        iterations,
        np.zeros_like(support),
        np.fft.fftshift(support),
        half,
        indicators,
        np.array([-999, -999, -999, -999]),
        [],
        [],
        _NoFigure(),
        True,
        True,
    )
    sys.stdout = stamped.stream
    t_it = (time.perf_counter() - t0) / iterations
    gaps = np.diff(np.asarray(stamped.stamps))
    t_med = float(np.median(gaps)) if len(gaps) else t_it
    vol = outp["reconstruction"]  # genfire returns it centred (fftshifted)
    c = padded // 2
    h = n // 2
    vol = vol[c - h : c + h, c - h : c + h, c - h : c + h]
    vol = np.transpose(vol, (2, 1, 0))  # genfire's (X, Y, Z) -> our (z, y, x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    np.savez(
        out,
        volume=vol.astype(np.float32),
        t_grid=t_grid,
        t_iter=t_med,
        t_iter_mean=t_it,
        peak_bytes=peak,
        errors=outp["errK"],
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
