"""`sarcube quicklook`: change composite with outlines, slope and PAR panels (pipelines/quicklook.py)."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
from conftest import make_pair_cube
from sarcube.datacube import schema, store
from sarcube.pipelines.cli import main
from sarcube.pipelines.quicklook import LABEL_COLOUR, PRED_COLOUR, _nice_length_m, quicklook
from test_export import _write_pred

from sarcube.errors import InputError, MissingVariableError


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
