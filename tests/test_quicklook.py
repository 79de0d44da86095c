"""`sarcube quicklook`: change composite with outlines, slope and PAR panels (pipelines/quicklook.py)."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from conftest import make_pair_cube
from sarcube.datacube import schema, store
from sarcube.errors import InputError, MissingVariableError
from sarcube.pipelines.cli import main
from sarcube.pipelines.quicklook import LABEL_COLOUR, PRED_COLOUR, _nice_length_m, quicklook
from test_export import _write_pred


def _has_colour(png: np.ndarray, hex_colour: str, tol: float = 0.06) -> bool:
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool((np.abs(png[..., :3] - rgb).max(axis=-1) < tol).any())


@pytest.fixture
def debris_cube(tmp_path):
    ds = make_pair_cube(ny=48, nx=64)
    label = ds[schema.LABEL].values
    label[:] = schema.LABEL_NO
    label[0, 20:30, 25:40] = schema.LABEL_YES
    ds[schema.VV].values[2, 20:30, 25:40] += 8.0  # brighter debris at pair 0's activity time
    path = tmp_path / "debris.zarr"
    store.write_cube(ds, path)
    return path


def test_quicklook_draws_composite_outlines_and_panels(debris_cube, tmp_path):
    _write_pred(debris_cube)
    out = quicklook(debris_cube, tmp_path / "ql.png", pair=0, pred="hand")
    png = mpimg.imread(out)
    assert png.shape[0] > 800 and png.shape[1] > 1000  # four readable panels
    assert _has_colour(png, LABEL_COLOUR) and _has_colour(png, PRED_COLOUR)
    # The debris shows green in the composite: green clearly above red somewhere.
    assert ((png[..., 1] - png[..., 0]) > 0.3).any()


def test_quicklook_without_prediction_or_terrain(tmp_path):
    ds = make_pair_cube(ny=30, nx=30).drop_vars([schema.SLOPE, schema.PAR])
    path = tmp_path / "bare.zarr"
    store.write_cube(ds, path)
    png = mpimg.imread(quicklook(path, tmp_path / "bare.png", pair=1))
    assert not _has_colour(png, PRED_COLOUR)
    assert png.shape[1] < 1000  # one panel only


def test_quicklook_bad_inputs(debris_cube, tmp_path):
    with pytest.raises(InputError, match="--pair 7"):
        quicklook(debris_cube, tmp_path / "x.png", pair=7)
    with pytest.raises(MissingVariableError, match="sarcube predict"):
        quicklook(debris_cube, tmp_path / "x.png", pred="nothing")
    with pytest.raises(InputError, match=".png"):
        quicklook(debris_cube, tmp_path / "x.jpg")
    assert main(["quicklook", str(debris_cube), "--pair", "0", "--out", str(tmp_path / "cli.png")]) == 0
    assert (tmp_path / "cli.png").stat().st_size > 10_000


def test_scale_bar_lengths_are_round():
    assert _nice_length_m(640.0) == 100.0
    assert _nice_length_m(5_000.0) == 1000.0
    assert _nice_length_m(30_000.0) == 5000.0


# --- what a forecaster reads at a glance (issue 16, item 10) ---------------------------------

def _texts(fig) -> str:
    return " | ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def test_composite_key_zoom_inset_and_par_label(tmp_path):
    from sarcube.pipelines.quicklook import NO_DATA_KEY, quicklook_figure

    ds = make_pair_cube(ny=128, nx=128)
    label = ds[schema.LABEL].values
    label[:] = schema.LABEL_NO
    label[0, 90:100, 20:35] = schema.LABEL_YES
    ds[schema.VV].values[2, 90:100, 20:35] += 8.0
    ds[schema.PAR].values[:5] = -3.0  # below every release cell in reach
    path = tmp_path / "big.zarr"
    store.write_cube(ds, path)
    _write_pred(path)
    fig = quicklook_figure(schema.open_cube(path), pair=0, pred="hand")
    text = _texts(fig)
    # the R/G/B key, black areas explained
    assert "green: brighter on the activity date: new debris" in text and "magenta: darker: wet snow" in text
    assert NO_DATA_KEY in text and "radar shadow" in text
    # a zoomed inset on the largest detection (the hand prediction's 20-pixel object), inside the composite panel
    composite = fig.axes[0]
    insets = [a for a in composite.child_axes if a.get_title().startswith("zoom: largest detection")]
    assert len(insets) == 1
    x0, x1 = insets[0].get_xlim()
    assert (x1 - x0) < 0.25 * (composite.get_xlim()[1] - composite.get_xlim()[0])
    # PAR's colour bar says what a negative angle means
    assert "negative" in text and "below" in text
    # avalanches: slope and PAR next to composite and prediction
    titles = [a.get_title() for a in fig.axes]
    assert "slope angle" in titles and "potential angle of reach (PAR)" in titles


def test_panels_fit_the_hazard(tmp_path):
    from sarcube.pipelines.quicklook import infer_hazard, quicklook_figure

    ds = make_pair_cube(ny=32, nx=32)
    landslide = ds.assign_coords(schema.orbit_coords([66], schema.RELATIVE_ORBIT))
    for name in (schema.VV_BEFORE, schema.VV_AFTER):
        mean = ds[schema.VV].isel({schema.TIME: 0}).values[None]
        landslide[name] = schema.make_variable(name, mean, (schema.ORBIT, schema.Y, schema.X))
    assert infer_hazard(landslide) == "landslide"
    titles = [" ".join(a.get_title().split()) for a in quicklook_figure(landslide).axes]
    assert "slope angle" in titles and "potential angle of reach (PAR)" not in titles
    assert any("mean VV before" in t for t in titles)

    # a glacier cube: static labels over a monthly series, composite winter against summer
    nt = 10
    glacier = ds.drop_vars([v for v in ds.data_vars if schema.PAIR in ds[v].dims]).drop_dims(schema.PAIR)
    glacier = glacier.isel({schema.TIME: [0] * nt})
    months = [f"2020-{m:02d}" for m in (10, 11, 12)] + [f"2021-{m:02d}" for m in range(1, 8)]
    times = np.array([f"{m}-15T05:00" for m in months], dtype="datetime64[ns]")
    glacier = glacier.assign_coords({schema.TIME: times, schema.RELATIVE_ORBIT: (schema.TIME, [66] * nt)})
    glacier[schema.LABEL] = schema.make_variable(schema.LABEL, np.zeros((32, 32), dtype="uint8"), schema.SPATIAL_DIMS)
    assert infer_hazard(glacier) == "glacier"
    fig = quicklook_figure(glacier)
    titles = [" ".join(a.get_title().split()) for a in fig.axes]  # wrapped titles, one line each
    assert "elevation" in titles and "potential angle of reach (PAR)" not in titles and "slope angle" not in titles
    assert any("winter (Dec-Feb)" in t and "summer (Jul-Aug)" in t for t in titles)
    assert "glacier, season" in fig._suptitle.get_text()


def test_subsampled_scenes_say_every_2nd_pixel(tmp_path):
    from sarcube.pipelines.quicklook import ordinal, quicklook_figure

    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 112)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "112th"]
    fig = quicklook_figure(make_pair_cube(ny=6, nx=1001).drop_vars([schema.SLOPE, schema.PAR]), pair=0)
    assert "shown every 2nd pixel" in fig._suptitle.get_text()
