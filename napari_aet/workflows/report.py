"""The figures and the HTML report of a finished run folder (``napari-aet figures``, the run's
last stage)."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.files import replace_when_done, staged_folder
from ..figures import make_figures, write_html_report
from ..io import read_atoms, read_tilt_series
from ._common import StageResult
from .layout import RunLayout
from .settings import FiguresSettings


def load_run(run_dir) -> dict:
    """The data of a run folder that the figures need (see
    :func:`napari_aet.figures.make_figures`)."""
    lay = RunLayout(run_dir)
    atoms = lay.find_atoms()
    if atoms is None:
        raise FileNotFoundError(
            f"no atoms.csv in {lay.root} (or its analyze/ folder): point at a `napari-aet run` "
            "output folder, or run `napari-aet analyze` first"
        )
    d: dict = {"run": lay.root, "atoms": read_atoms(atoms)}
    analysis = lay.find_analysis()
    d["analysis"] = json.loads(analysis.read_text()) if analysis else {}
    if lay.projections.exists() and lay.aligned_series.exists():
        import h5py

        with h5py.File(lay.projections, "r") as h5:
            d["calculated"] = h5["calculated"][()]
            d["angles_deg"] = h5["angles_deg"][()]
            d["pixel_size_A"] = float(h5.attrs["pixel_size_A"])
        d["measured"] = read_tilt_series(lay.aligned_series).data
    if lay.rfactor.exists():
        d["rfactor"] = json.loads(lay.rfactor.read_text())
    record = lay.file("align", "record")
    if record.exists():
        d["alignment"] = json.loads(record.read_text())
    return d


def run_summary(run_dir) -> dict:
    """The run's ``analysis.json`` (with the mean R-factor when the validation ran)."""
    lay = RunLayout(run_dir)
    path = lay.find_analysis()
    summary = json.loads(path.read_text()) if path else {}
    if "r_factor_mean" not in summary and lay.rfactor.exists():
        summary["r_factor_mean"] = json.loads(lay.rfactor.read_text())["r_mean"]
    return summary


def make_run_figures(run_dir, out_dir=None, **kwargs) -> dict:
    """Write the figures of a finished run (``napari-aet run`` or ``analyze`` + ``validate``)
    into ``out_dir`` (default ``run_dir/figures``). Keywords as
    :func:`napari_aet.figures.make_figures`."""
    lay = RunLayout(run_dir)
    return make_figures(load_run(lay.root), Path(out_dir) if out_dir else lay.figures, **kwargs)


def run_figures(
    run_dir, settings: FiguresSettings, out=None, progress=None, cancel=None
) -> StageResult:
    """Every figure of a run folder, drawn into a staging folder that replaces ``out``
    (default ``RUN/figures``) only when all are drawn, and ``RUN/report.html``."""
    lay = RunLayout(run_dir)
    if not lay.root.is_dir():
        raise FileNotFoundError(f"{lay.root} is not a folder; pass a run output folder")
    s = settings
    bad = sorted(set(s.formats) - {"png", "svg", "pdf"})
    if bad or not s.formats:
        raise ValueError(f"formats {','.join(s.formats)!r}: choose among png, svg, pdf")
    if not 30 <= s.dpi <= 1200:
        raise ValueError(f"dpi {s.dpi}: give 30 to 1200 (300 is print quality)")
    final = Path(out) if out else lay.figures
    with staged_folder(final) as tmp:
        res = make_run_figures(
            lay.root,
            tmp,
            figures=list(s.figures) if s.figures else None,
            formats=list(s.formats),
            dpi=s.dpi,
            strain_component=s.strain_component,
            center_layer=s.center_layer,
            progress=progress,
        )
    res["out_dir"] = str(final)
    res["written"] = {
        k: [str(final / Path(q).relative_to(tmp)) for q in v] for k, v in res["written"].items()
    }
    notes = [f"skipped {name}: {why}" for name, why in res["skipped"].items()]
    if s.report:
        summary = run_summary(lay.root)
        replace_when_done(
            lay.report,
            lambda t: write_html_report(t, res, summary, run_dir=lay.root),
        )
        res["report"] = str(lay.report)
    msg = f"wrote {len(res['written'])} figures to {final}"
    written = [q for v in res["written"].values() for q in v]
    return StageResult("figures", res, written, msg, notes)
