"""Cropping a tilt series to its particle before alignment: a small particle drifting in a
large field of vacuum, at low counts."""

import json

import numpy as np
import pytest

from napari_aet.align import align_tilt_series, particle_crop
from napari_aet.cli import main
from napari_aet.io import TiltSeries, write_tilt_series
from napari_aet.simulate import (
    STUDY_DOSE_PER_IMAGE_E_PER_A2,
    build_structure,
    simulate_tilt_series,
)
from napari_aet.workflows import AlignSettings, SeriesSource, run_align

PX = 0.358
ANGLES = np.linspace(-70, 70, 11)
FIELD = 320


@pytest.fixture(scope="module")
def drifting():
    """A 14-A fcc particle's 128-px series (a third of the study's dose, over a background of
    1 count), each image placed whole in a 320-px field of vacuum counts at a known,
    drifting position (up to 60 px from the field's centre)."""
    atoms = build_structure("fcc", radius_A=14, shape_px=(128, 128), pixel_size_A=PX, seed=3)
    sim = simulate_tilt_series(
        atoms,
        ANGLES,
        shape_px=(128, 128),
        seed=1,
        dose_e_per_A2=STUDY_DOSE_PER_IMAGE_E_PER_A2 / 3,
        background_counts=1,
    )
    rng = np.random.default_rng(5)
    n = len(ANGLES)
    corners = np.stack([np.linspace(40, 150, n), np.linspace(130, 70, n)], axis=1).astype(int)
    corners += rng.integers(-6, 7, corners.shape)
    field = rng.poisson(1.0, (n, FIELD, FIELD)).astype(np.float32)
    for i, (r, c) in enumerate(corners):
        field[i, r : r + 128, c : c + 128] = sim.data[i]
    # each image's particle, noise-free: its footprint and centre in the field
    clean = simulate_tilt_series(
        atoms, ANGLES, shape_px=(128, 128), dose_e_per_A2=None, seed=1
    ).data
    footprints = [np.argwhere(img > 0.01 * img.max()) for img in clean]  # in the 128-px image
    rr, cc = np.mgrid[0:128, 0:128]
    centres = np.array(
        [[(img * rr).sum() / img.sum(), (img * cc).sum() / img.sum()] for img in clean]
    )
    return field, centres + corners, footprints, corners, sim


def test_the_box_holds_the_particle_in_every_image(drifting):
    field, centres, footprints, corners, _ = drifting
    crop, why = particle_crop(field)
    assert crop is not None, why
    side = crop.box_px
    assert side % 8 == 0 and side <= 0.75 * FIELD
    diameter_px = 2 * 14 / PX
    assert side >= diameter_px + 2 * 24  # the particle and its margin of vacuum
    box_centres = crop.corners_px + side // 2
    np.testing.assert_allclose(box_centres, centres, atol=2.0)  # each image's own box
    for box, at, pixels in zip(crop.corners_px, corners, footprints, strict=True):
        inside = pixels + at - box  # the whole particle, 16 px or more from the box's edges
        assert inside.min() >= 16 and inside.max() < side - 16
    assert crop.apply(field).shape == (len(ANGLES), side, side)
    assert "cropped the 320 x 320 images" in why


def test_one_box_for_a_series_that_arrives_aligned(drifting):
    field, _, footprints, _, sim = drifting
    crop, why = particle_crop(field, per_image=False)
    assert crop is None and "need" in why  # one box for 60 px of drift: more than 3/4
    aligned = np.random.default_rng(1).poisson(1.0, field.shape).astype(np.float32)
    aligned[:, 150:278, 40:168] = sim.data  # registered: the same place in every image
    crop, why = particle_crop(aligned, per_image=False)
    assert crop is not None, why
    assert (crop.corners_px == crop.corners_px[0]).all()  # the registration is kept
    inside = np.concatenate(footprints) + [150, 40] - crop.corners_px[0]
    assert inside.min() >= 16 and inside.max() < crop.box_px - 16


def test_an_object_across_the_box_edge_widens_the_box(drifting):
    field, centres, footprints, corners, _ = drifting
    crop, _ = particle_crop(field)
    half = crop.box_px // 2
    rr, cc = np.mgrid[0:FIELD, 0:FIELD]
    beside = field.copy()
    far = field.copy()
    signal = field.sum(axis=(1, 2)) - FIELD**2 * 1.0  # the particle's counts above the vacuum
    for i, (r, c) in enumerate(centres):
        # a neighbour (a tenth of the particle's signal) right on the box's edge; another
        # one well outside it
        blob = np.exp(-((rr - r) ** 2 + (cc - c - half) ** 2) / (2 * 5.0**2))
        beside[i] += 0.1 * signal[i] / blob.sum() * blob * (blob > 1e-3)
        c_far = c - half - 40 if c - half - 40 > 40 else c + half + 40  # not in the strips
        blob = np.exp(-((rr - r) ** 2 + (cc - c_far) ** 2) / (2 * 5.0**2))
        far[i] += 0.1 * signal[i] / blob.sum() * blob * (blob > 1e-3)
    # in a 512-px field, so that the widened box still fits under the 3/4 bar
    pad = 96
    rng = np.random.default_rng(2)
    big = rng.poisson(1.0, (len(field), FIELD + 2 * pad, FIELD + 2 * pad)).astype(np.float32)
    big[:, pad:-pad, pad:-pad] = beside
    wide, why = particle_crop(big)
    assert wide is not None, why
    assert wide.box_px > crop.box_px  # widened to hold the neighbour whole
    box_centre = wide.corners_px[:, 1] + wide.box_px // 2
    neighbour = centres[:, 1] + half + pad
    assert (np.abs(neighbour - box_centre) + 3 * 5.0 < wide.box_px / 2).all()
    same, _ = particle_crop(far)  # an object beyond the box leaves it as it was
    assert same.box_px == crop.box_px


def test_a_tilted_background_is_vacuum_and_a_filled_field_is_not(drifting):
    field, centres, footprints, corners, _ = drifting
    rng = np.random.default_rng(3)
    tilt = 3.0 * np.arange(FIELD) / FIELD  # 1 to 4 counts of background across the field
    tilted = field + rng.poisson(tilt, field.shape).astype(np.float32)
    crop, why = particle_crop(tilted)
    assert crop is not None, why
    for box, at, pixels in zip(crop.corners_px, corners, footprints, strict=True):
        inside = pixels + at - box
        assert inside.min() >= 16 and inside.max() < crop.box_px - 16
    # something bright along a side of the field (a thick support's edge): that strip is
    # not vacuum, and the images stay whole
    support = field.copy()
    support[:, :, :40] += rng.poisson(4.0, support[:, :, :40].shape)
    crop, why = particle_crop(support)
    assert crop is None and "outer strips are not vacuum" in why


def test_what_is_not_cropped(drifting):
    field, _, _, _, sim = drifting
    crop, why = particle_crop(sim.data)  # the particle fills the 128-px images
    assert crop is None and "not cropped" in why and "need" in why
    noise = np.random.default_rng(0).poisson(1.0, (5, 320, 320)).astype(np.float32)
    crop, why = particle_crop(noise)  # vacuum only
    assert crop is None and why.startswith("no particle stands out in image(s) [0, 1, 2, 3, 4]")
    flat = field[:5].copy()
    flat[2] = 1.0  # one flat image: nothing stands out there
    crop, why = particle_crop(flat)
    assert crop is None and why.startswith("no particle stands out in image(s) [2]")
    crop, why = particle_crop(field, box_px=FIELD + 8)
    assert crop is None and "does not fit" in why


def test_the_cropped_series_aligns_as_the_whole_field_does(drifting):
    field, *_ = drifting
    res = align_tilt_series(
        field, ANGLES, pixel_size_A=PX, crop="auto", tilt_axis=None, projection_matching=False
    )
    rec = res.steps["crop"]
    assert rec["applied"] and res.data.shape == (len(ANGLES), rec["box_px"], rec["box_px"])
    whole = align_tilt_series(
        field, ANGLES, pixel_size_A=PX, crop=None, tilt_axis=None, projection_matching=False
    )
    assert whole.data.shape == field.shape and "crop" not in whole.steps
    # the same particle positions in the field: the box's centre plus its shifts
    corners = np.asarray(rec["corners_px_row_col"])
    in_field = corners + rec["box_px"] // 2 + res.shifts_px
    np.testing.assert_allclose(in_field, FIELD // 2 + whole.shifts_px, atol=1.0)


def test_crop_settings_and_the_record(drifting, tmp_path):
    field, *_ = drifting
    assert AlignSettings().crop_value() == "auto"
    assert AlignSettings(crop="none").crop_value() is None
    assert AlignSettings(crop="192").crop_value() == 192
    with pytest.raises(ValueError, match="16 or more"):
        AlignSettings(crop="8").crop_value()
    path = tmp_path / "field.h5"
    write_tilt_series(path, TiltSeries(field, ANGLES, PX, "field", {}))
    out = tmp_path / "aligned"
    rc = main(["-q", "align", str(path), "--out", str(out), "--no-projection-matching",
               "--denoise", "none", "--tilt-axis", "none", "--crop", "192"])  # fmt: skip
    assert rc == 0
    rec = json.loads((out / "alignment.json").read_text())
    assert rec["crop"]["box_px"] == 192 and rec["crop"]["image_shape"] == [FIELD, FIELD]
    # the stage's notes (run.log, the widget's status) say what was cut
    settings = AlignSettings(projection_matching=False, tilt_axis="none", denoise="none")
    res = run_align(SeriesSource(str(path)), settings, tmp_path / "auto")
    assert any(n.startswith("crop: cropped the 320 x 320 images") for n in res.notes)


def test_a_dual_axis_runs_second_series_gets_the_first_ones_box(drifting, tmp_path):
    from napari_aet.workflows import RunLayout, RunSettings
    from napari_aet.workflows.pipeline import _run_stage

    field, *_, sim = drifting
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    write_tilt_series(first, TiltSeries(field, ANGLES, PX, "a", {}))
    # the second series alone would get a wider box: its images magnified 1.5x
    from scipy.ndimage import zoom

    wide = np.random.default_rng(4).poisson(1.0, (len(ANGLES), 640, 640)).astype(np.float32)
    wide[:, 250:442, 300:492] = zoom(sim.data, (1, 1.5, 1.5), order=1)
    assert particle_crop(wide)[0].box_px > particle_crop(field)[0].box_px
    write_tilt_series(second, TiltSeries(wide, ANGLES, PX, "b", {}))
    align = AlignSettings(projection_matching=False, tilt_axis="none", denoise="none")
    lay = RunLayout(tmp_path / "run")
    _run_stage("align", lay, RunSettings(align=align), SeriesSource(str(first)), None, None,
               second=SeriesSource(str(second)))  # fmt: skip
    rec1 = json.loads((lay.stage_dir("align") / "alignment.json").read_text())
    rec2 = json.loads((lay.stage_dir("align") / "second" / "alignment.json").read_text())
    assert rec1["crop"]["applied"] and rec2["crop"]["box_px"] == rec1["crop"]["box_px"]
    assert rec2["crop"]["image_shape"] == [640, 640]
