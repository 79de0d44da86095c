"""Quiet tests: sarcube's own code raises no warnings; each filtered third-party warning says why."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

from conftest import make_pair_cube
from sarcube.datacube import schema, store

ROOT = Path(__file__).resolve().parents[1]
OWN_PACKAGES = ("sarcube", "datacube", "models", "pipelines", "catalogs")


def test_every_filter_targets_a_third_party_module_and_gives_its_reason():
    text = (ROOT / "pyproject.toml").read_text()
    filters = tomllib.loads(text)["tool"]["pytest"]["ini_options"]["filterwarnings"]
    lines = [line.strip() for line in text.splitlines()]
    for entry in filters:
        action, _message, _category, module = (entry.split(":") + ["", "", "", ""])[:4]
        assert action == "ignore" and module, f"{entry!r}: name the module the warning comes from"
        assert module.split(".")[0] not in OWN_PACKAGES, f"{entry!r}: fix our own warnings at their source"
        # the reason: a comment above the entry (one comment may cover the entries right below it)
        at = next(
            i for i, line in enumerate(lines) if line.startswith('"ignore') and module in line and entry[7:20] in line
        )
        while lines[at - 1].startswith('"ignore'):
            at -= 1
        assert lines[at - 1].startswith("#"), f"{entry!r} has no comment saying why it is filtered"


def test_own_code_draws_quicklooks_and_series_without_warnings(tmp_path):
    """The drawing and burning paths of sarcube (affine `@`, no deprecated calls) warn about nothing."""
    from pyproj import Transformer

    from sarcube.pipelines.quicklook import quicklook_figure
    from sarcube.pipelines.timeseries import plot_timeseries
    from test_export import _write_pred

    path = tmp_path / "c.zarr"
    store.write_cube(make_pair_cube(ny=48, nx=64), path)
    _write_pred(path)
    ds = schema.open_cube(path)
    lon, lat = Transformer.from_crs(ds.rio.crs, "EPSG:4326", always_xy=True).transform(
        float(ds[schema.X].values[5]), float(ds[schema.Y].values[5])
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quicklook_figure(ds, pair=0, pred="hand")
        plot_timeseries(ds, lon, lat, pred="hand")
    own = [w for w in caught if str(ROOT) in str(w.filename) and ".venv" not in str(w.filename)]
    assert not own, [f"{w.filename}:{w.lineno}: {w.message}" for w in own]
