"""`sarcube timeseries`: VV/VH at a point over time, per orbit, with label and prediction events marked."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
from pyproj import Transformer

from conftest import TINY_CRS, make_pair_cube
from sarcube.datacube import schema, store
from sarcube.datacube.grid import parse_point, pixel_at
from sarcube.errors import InputError
from sarcube.pipelines.cli import main
from sarcube.pipelines.timeseries import PRED_COLOUR, point_events, timeseries
from test_export import _write_pred


def _lonlat(ds, row: int, col: int) -> tuple[float, float]:
    x, y = ds[schema.X].values[col], ds[schema.Y].values[row]
    return Transformer.from_crs(TINY_CRS, "EPSG:4326", always_xy=True).transform(x, y)


@pytest.fixture
def event_cube(tmp_path):
    ds = make_pair_cube(ny=24, nx=32)
    label = ds[schema.LABEL].values
    label[:] = schema.LABEL_NO
    label[0, 5:7, 4:7] = schema.LABEL_YES  # pair 0 is labelled at (6, 5); the hand prediction detects it
    path = tmp_path / "events.zarr"
    store.write_cube(ds, path)
    _write_pred(path)
    return path


def test_point_events_and_the_picture(event_cube, tmp_path):
    ds = schema.open_cube(event_cube)
    lon, lat = _lonlat(ds, 6, 5)
    assert pixel_at(ds, lon, lat) == (6, 5)
    events = point_events(ds, 6, 5, "pred_hand")
    ref, act = ds[schema.REFERENCE_TIME].values[0], ds[schema.ACTIVITY_TIME].values[0]
    assert events["labelled"] == [(ref, act)]
    assert [(r, a) for r, a, _ in events["detected"]] == [(ref, act)] and events["detected"][0][2] == pytest.approx(0.9)
    quiet = point_events(ds, 20, 30, "pred_hand")
    assert quiet["labelled"] == [] and quiet["detected"] == []

    args = ["--point", f"{lon:.7f},{lat:.7f}", "--pred", "hand", "--out", str(tmp_path / "ts.png")]
    assert main(["timeseries", str(event_cube), *args]) == 0
    png = mpimg.imread(tmp_path / "ts.png")
    assert png.shape[0] > 500 and png.shape[1] > 900
    blue = np.array([int(PRED_COLOUR[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    assert (np.abs(png[..., :3] - blue).max(axis=-1) < 0.05).any()  # the detection triangles are drawn


def test_points_outside_or_malformed_are_refused(event_cube, tmp_path, capsys):
    with pytest.raises(InputError, match="outside the cube"):
        timeseries(event_cube, "0.0,0.0", tmp_path / "x.png")
    with pytest.raises(InputError, match="LON,LAT"):
        parse_point("9.0;46.0")
    with pytest.raises(InputError, match="latitude"):
        parse_point("46.0,190.0")
    with pytest.raises(InputError, match=".png"):
        timeseries(event_cube, "9.0,46.0", tmp_path / "x.jpg")
    assert main(["timeseries", str(event_cube), "--point", "0,0", "--out", str(tmp_path / "x.png")]) == 2
    assert "outside the cube" in capsys.readouterr().err
