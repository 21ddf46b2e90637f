"""Shared helpers of the benchmark scripts."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """CPU model and core count, for the tables in docs/benchmarks.md."""
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def sample_series_and_tomogram(
    tomogram=None,
    *,
    iterations: int = 100,
    oversampling: float = 2.0,
    interpolation: str = "fft",
    device: str = "auto",
):
    """The built-in sample, its aligned series (true atoms at the nominal angles, seed 11) and a
    GENFIRE tomogram of it: loaded from ``tomogram`` (.npy) when that exists, else
    reconstructed (and saved there when a path is given)."""
    import numpy as np

    from napari_aet.recon import genfire
    from napari_aet.simulate import simulate_tilt_series, twinned_pt_nanodumbbell

    s = twinned_pt_nanodumbbell()
    sim = simulate_tilt_series(s.truth.atoms, s.angles_deg, seed=11)
    if tomogram is not None and tomogram.exists():
        return s, sim, np.load(tomogram)
    vol = genfire(
        sim.data,
        s.angles_deg,
        iterations=iterations,
        oversampling=oversampling,
        interpolation=interpolation,
        device=device,
    ).volume
    if tomogram is not None:
        np.save(tomogram, vol)
    return s, sim, vol


def score_against_truth(truth, positions) -> dict:
    """``positions`` against the ``truth`` after a rigid registration, with one-to-one matching
    within 1 A: missed and false atoms, identification error [%] and RMSD [pm]."""
    from napari_aet.analysis import compare_atom_models, register_rigid

    moved, _ = register_rigid(truth, positions)
    c = compare_atom_models(truth, moved, radius_A=1.0)
    return {
        "missed": c.n_reference - c.n_common,
        "false": c.n_test - c.n_common,
        "error": 100 * c.identification_error,
        "rmsd": 100 * c.rmsd_A,
    }


def truth_and_run(folder):
    """A finished ``bench_independent.py`` case folder's truth and its run's atoms laid on
    it: ``(truth table, truth positions, run model, registered run positions, pairs)``, the
    table with ``z, y, x`` (and an alloy's ``element``), the run rigidly registered onto the
    truth and its atoms paired one to one within 1 A (``pairs``: truth index, run index)."""
    from pathlib import Path

    import pandas as pd

    from napari_aet.analysis import compare_atom_models, register_rigid
    from napari_aet.io import read_atoms

    folder = Path(folder)
    table = pd.read_csv(folder / "truth.csv")
    truth = table[["z", "y", "x"]].to_numpy(float)
    run = read_atoms(folder / "run" / "atoms.csv")
    moved, _ = register_rigid(truth, run.positions)
    return table, truth, run, moved, compare_atom_models(truth, moved).pairs
