"""Archives: zip == directory store, STAC and datasheet contents, verify, metadata validation."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from conftest import make_pair_cube
from sarcube.datacube import archive, schema, staging, store
from sarcube.errors import InputError, VerifyError
from sarcube.pipelines import cli
from sarcube.pipelines.publish import publish
from sarcube.pipelines.verify import verify

CREATOR = "Doe, Jane;University of Bern;0000-0002-1825-0097"


def _add_features(path: Path) -> None:
    """A terrain layer and one pair of differences, through the store's real write path."""
    ds = schema.open_cube(path)
    ny, nx = ds.sizes[schema.Y], ds.sizes[schema.X]
    store.add_variables(
        path, {schema.SLOPE: schema.make_variable(schema.SLOPE, np.linspace(0, 45, ny * nx).reshape(ny, nx))}
    )
    times = ds[schema.TIME].values
    coords = schema.pair_coords([times[0]], [times[2]], [15])
    diff = ds[schema.VV].isel({schema.TIME: 2}).values - ds[schema.VV].isel({schema.TIME: 0}).values
    pyx = (schema.PAIR, schema.Y, schema.X)
    store.add_variables(
        path, {schema.VV_DIFF: schema.make_variable(schema.VV_DIFF, diff[None], pyx)}, new_coords=coords
    )


@pytest.fixture
def featured_cube(tiny_cube):
    _add_features(tiny_cube)
    return tiny_cube


def _publish(cube: Path, out: Path, **kw):
    return publish(
        cube,
        out,
        title="Tiny avalanche cube",
        creators=[CREATOR, "Roe, Richard"],
        keywords=["SAR", "avalanche"],
        version="1.0",
        related=["10.5281/zenodo.123:isDerivedFrom"],
        publication_date="2026-01-15",
        progress=False,
        **kw,
    )


def test_published_zip_equals_directory_store_and_verifies(featured_cube, tmp_path):
    (featured_cube / staging.STAGING_GROUP).mkdir()  # what an interrupted write leaves: not part of the cube
    (featured_cube / staging.STAGING_GROUP / "zarr.json").write_text("{}")
    (featured_cube / ".DS_Store").write_bytes(b"\0")
    out = tmp_path / "pub"
    result = _publish(featured_cube, out)
    zip_path = out / "tiny.zarr.zip"
    assert result.archive == zip_path
    assert {p.relative_to(out).as_posix() for p in result.files} == {
        "tiny.zarr.zip", "README.md", "metadata.json", "MD5SUMS", "stac/collection.json", "stac/tiny.json",
    }
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
    assert infos[0].filename == "zarr.json"
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
    assert not any(i.filename.startswith((staging.STAGING_GROUP, ".")) for i in infos)
    assert {i.filename for i in infos} >= {"zarr.json", f"{schema.VV}/zarr.json", f"{schema.VV}/c/0/0/0"}

    # the archive opens lazily with plain xarray + zarr, and with open_cube, and equals the directory store
    plain = xr.open_zarr(zarr.storage.ZipStore(zip_path, mode="r"), decode_coords="all")
    cube = schema.open_cube(zip_path)
    assert cube[schema.VV].chunks is not None  # dask: lazy
    assert cube.rio.crs.to_epsg() == 32632
    source = schema.open_cube(featured_cube)
    xr.testing.assert_identical(cube.load(), source.load())
    for name in (schema.VV, schema.SLOPE, schema.VV_DIFF):
        np.testing.assert_array_equal(plain[name].values, source[name].values)

    report = verify(out)
    assert set(report.md5_checked) == {
        "tiny.zarr.zip",
        "README.md",
        "metadata.json",
        "stac/collection.json",
        "stac/tiny.json",
    }
    assert set(report.stac_checked) == {"tiny.zarr.zip", "README.md"}
    assert schema.VV_DIFF in report.variables

    # same cube, same bytes: uploads can resume by md5
    md5 = archive.read_md5sums(out)["tiny.zarr.zip"]
    _publish(featured_cube, tmp_path / "again")
    assert archive.read_md5sums(tmp_path / "again")["tiny.zarr.zip"] == md5


def test_built_cube_publishes_and_reopens(tmp_path):
    """A cube made by `sarcube build` from a local STAC catalog, end to end."""
    from sarcube.pipelines.build import build
    from stac_server import write_test_catalog

    cat = write_test_catalog(tmp_path / "catalog")
    cube = build(cat.aoi, cat.start, cat.end, tmp_path / "built.zarr", catalog=str(cat.root))
    out = tmp_path / "pub"
    _publish(cube, out)
    report = verify(out)
    assert report.cubes == ("built.zarr.zip",)
    plain = xr.open_zarr(zarr.storage.ZipStore(out / "built.zarr.zip", mode="r"), decode_coords="all")
    source = schema.open_cube(cube)
    for name in source.data_vars:
        np.testing.assert_array_equal(plain[name].values, source[name].values)
    item = json.loads((out / "stac" / "built.json").read_text())
    ids = [e["id"] for e in schema.decode_json_attr(source, schema.ATTR_STAC_ITEMS)]
    assert item["properties"]["sarcube:source_items"] == ids
    assert str(tmp_path) not in (out / "README.md").read_text()


def test_full_contract_cube_round_trips(tmp_path):
    """Pairs, terrain, PAR and uint8 labels (255 = unknown) survive the zip unchanged."""
    path = tmp_path / "pairs.zarr"
    store.write_cube(make_pair_cube(), path)
    out = tmp_path / "pub"
    _publish(path, out)
    xr.testing.assert_identical(schema.open_cube(out / "pairs.zarr.zip").load(), schema.open_cube(path).load())
    variables = json.loads((out / "stac" / "pairs.json").read_text())["properties"]["cube:variables"]
    assert variables[schema.LABEL]["dimensions"] == [schema.PAIR, schema.Y, schema.X]
    assert "nodata" not in variables[schema.LABEL] and variables[schema.PAR]["unit"] == "degree"
    assert variables[schema.ACTIVITY_TIME]["type"] == "auxiliary"
    readme = (out / "README.md").read_text()
    assert "Reference/activity pairs" in readme and f"`{schema.LABEL}`" in readme
    verify(out)


def test_stac_item_describes_the_cube(featured_cube, tmp_path):
    out = tmp_path / "pub"
    _publish(featured_cube, out)
    item = json.loads((out / "stac" / "tiny.json").read_text())
    collection = json.loads((out / "stac" / "collection.json").read_text())
    props = item["properties"]
    dims = props["cube:dimensions"]
    assert (
        dims[schema.X]["type"] == "spatial"
        and dims[schema.X]["step"] == 20.0
        and dims[schema.X]["reference_system"] == 32632
    )
    assert dims[schema.Y]["step"] == -20.0
    assert dims[schema.TIME]["type"] == "temporal" and len(dims[schema.TIME]["values"]) == 4
    assert dims[schema.PAIR]["values"] == [0]
    variables = props["cube:variables"]
    for name in (schema.VV, schema.DEM, schema.SLOPE, schema.VV_DIFF):
        assert variables[name]["unit"] == schema.VARIABLES[name].units
        assert variables[name]["nodata"] == "nan"
        assert variables[name]["description"] == schema.VARIABLES[name].description
    assert variables[schema.VV_DIFF]["dimensions"] == [schema.PAIR, schema.Y, schema.X]
    assert props["sar:polarizations"] == ["VV", "VH"] and props["sar:frequency_band"] == "C"
    assert props["sarcube:orbit_states"] == [schema.ORBIT_ASCENDING, schema.ORBIT_DESCENDING]
    assert props["sarcube:source_items"] == [f"item-{i}" for i in range(4)]
    assert props["proj:code"] == "EPSG:32632" and props["proj:shape"] == [24, 32]
    md5 = archive.read_md5sums(out)
    asset = item["assets"]["zarr-zip"]
    assert asset["href"] == "../tiny.zarr.zip"
    assert asset["file:checksum"] == "d510" + md5["tiny.zarr.zip"]
    assert asset["file:size"] == (out / "tiny.zarr.zip").stat().st_size
    assert any("datacube" in e for e in item["stac_extensions"])
    assert collection["license"] == "cc-by-4.0"
    assert collection["summaries"]["sat:relative_orbit"] == [15, 66]

    readme = (out / "README.md").read_text()
    for name in (schema.VV, schema.SLOPE, schema.VV_DIFF):
        assert f"`{name}`" in readme
    assert "| dB |" in readme and "EPSG:32632" in readme
    assert 'zarr.storage.ZipStore("tiny.zarr.zip", mode="r")' in readme and "open_cube" in readme
    assert "Doe, Jane; Roe, Richard (2026). Tiny avalanche cube (Version 1.0)" in readme

    meta = json.loads((out / "metadata.json").read_text())
    assert meta["upload_type"] == "dataset" and meta["license"] == "cc-by-4.0"
    assert meta["creators"][0] == {
        "name": "Doe, Jane",
        "affiliation": "University of Bern",
        "orcid": "0000-0002-1825-0097",
    }
    assert meta["related_identifiers"] == [{"identifier": "10.5281/zenodo.123", "relation": "isDerivedFrom"}]
    assert meta["publication_date"] == "2026-01-15" and meta["keywords"] == ["SAR", "avalanche"]
    assert meta["description"].startswith("<p>")


def test_flipped_byte_fails_verify_naming_the_file(featured_cube, tmp_path, capsys):
    out = tmp_path / "pub"
    _publish(featured_cube, out)
    zip_path = out / "tiny.zarr.zip"
    data = bytearray(zip_path.read_bytes())
    data[len(data) // 2] ^= 0x01
    zip_path.write_bytes(bytes(data))
    with pytest.raises(VerifyError, match=r"tiny\.zarr\.zip.*md5"):
        verify(out)
    assert cli.main(["verify", str(out)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tiny.zarr.zip" in err

    # a flipped byte in a metadata file is caught too, by name
    _publish(featured_cube, tmp_path / "pub2")
    readme = tmp_path / "pub2" / "README.md"
    readme.write_text(readme.read_text().replace("Grid", "Grix"))
    with pytest.raises(VerifyError, match="README.md"):
        verify(tmp_path / "pub2")


def test_verify_checks_sha256_stac_checksums(tiny_cube, tmp_path):
    import hashlib

    out = tmp_path / "pub"
    _publish(tiny_cube, out)
    item_rel = f"{archive.STAC_DIR}/tiny.json"
    readme_sha = hashlib.sha256((out / archive.README_MD).read_bytes()).hexdigest()

    def rewrite_readme_checksum(checksum: str) -> None:
        item = json.loads((out / item_rel).read_text())
        (asset,) = (a for a in item["assets"].values() if a["href"].endswith(archive.README_MD))
        asset["file:checksum"] = checksum
        (out / item_rel).write_text(json.dumps(item))
        md5 = archive.read_md5sums(out)
        md5[item_rel] = archive.md5_file(out / item_rel)
        archive.write_md5sums(out, md5)

    rewrite_readme_checksum(archive.MULTIHASH_SHA256 + readme_sha)
    assert archive.README_MD in verify(out).stac_checked
    rewrite_readme_checksum(archive.MULTIHASH_SHA256 + "0" * 64)
    with pytest.raises(VerifyError, match=r"README\.md.*file:checksum"):
        verify(out)


def test_verify_cli_passes(featured_cube, tmp_path, capsys):
    _publish(featured_cube, tmp_path / "pub")
    assert cli.main(["verify", str(tmp_path / "pub")]) == 0
    assert "OK" in capsys.readouterr().out


def test_unsafe_zip_member_is_refused_not_extracted(featured_cube, tmp_path):
    out = tmp_path / "deep" / "pub"
    _publish(featured_cube, out)
    with zipfile.ZipFile(out / "tiny.zarr.zip", "a") as zf:
        zf.writestr("../escaped.txt", "x")
    shutil.rmtree(out / "stac")
    md5 = {rel: archive.md5_file(out / rel) for rel in ("tiny.zarr.zip", "README.md", "metadata.json")}
    archive.write_md5sums(out, md5)
    with pytest.raises(VerifyError, match=r"unsafe path"):
        verify(out)
    assert not (tmp_path / "deep" / "escaped.txt").exists()


def test_archive_has_no_local_paths_or_signed_urls(tiny_cube, tmp_path):
    signed = "https://example.blob.core.windows.net/s1/a/vv.tif?st=2024&se=2025&sig=SECRETSIGNATURE"
    with_credentials = "https://reader:SECRETPASSWORD@stac.example.com/api/items/a/vh.tif"
    store.update_attrs(
        tiny_cube,
        {
            schema.ATTR_CATALOG: str(tmp_path / "catalogs" / "demo" / "catalog.json"),
            schema.ATTR_STAC_ITEMS: schema.encode_json_attr(
                [{"id": "item-0", "assets": {"vv": signed, "vh": with_credentials}}]
            ),
            schema.ATTR_HISTORY: f"2026-01-01T00:00:00Z sarcube build --out {tiny_cube}",
        },
    )
    out = tmp_path / "pub"
    _publish(tiny_cube, out)
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert str(tmp_path).encode() not in data, path
            assert b"SECRETSIGNATURE" not in data and b"sig=" not in data and b"SECRETPASSWORD" not in data, path
    cube = schema.open_cube(out / "tiny.zarr.zip")
    assert cube.attrs[schema.ATTR_CATALOG] == "catalog.json"
    items = schema.decode_json_attr(cube, schema.ATTR_STAC_ITEMS)
    assert items[0]["assets"]["vv"] == signed.split("?")[0]
    assert items[0]["assets"]["vh"] == "https://stac.example.com/api/items/a/vh.tif"
    verify(out)
    # the cube itself is untouched
    assert schema.open_cube(tiny_cube).attrs[schema.ATTR_CATALOG].startswith(str(tmp_path))


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"creators": ["Jane Doe"]}, r"--creator 'Jane Doe'.*Family, Given"),
        ({"creators": ["Doe, Jane;Bern;0000-0002-1825-0098"]}, r"ORCID '0000-0002-1825-0098'.*check digit"),
        ({"creators": []}, r"no --creator"),
        ({"license": "cc-by-5.0"}, r"--license 'cc-by-5.0'"),
        ({"related": ["10.5281/zenodo.1:derivedFromThat"]}, r"relation 'derivedFromThat'"),
        ({"related": ["not-an-id:cites"]}, r"identifier 'not-an-id'"),
        ({"publication_date": "15.01.2026"}, r"ISO date"),
        ({"title": "  "}, r"--title"),
    ],
)
def test_metadata_errors_are_one_liners(tiny_cube, tmp_path, override, match):
    kw = dict(
        title="Tiny", creators=[CREATOR], license="cc-by-4.0", related=(), publication_date="2026-01-15", progress=False
    )
    kw.update(override)
    with pytest.raises(InputError, match=match) as info:
        publish(tiny_cube, tmp_path / "pub", **kw)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "pub").exists()  # validated before anything is written


def test_publish_needs_a_finished_local_store(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(InputError, match="cannot be read") as info:  # an object-store cube is downloaded first
        publish("s3://bucket/cube.zarr", tmp_path / "pub", title="T", creators=[CREATOR],
                storage_options={"config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}})
    assert "\n" not in str(info.value)
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(InputError, match="no root zarr.json"):
        publish(tmp_path / "empty.zarr", tmp_path / "pub", title="T", creators=[CREATOR])


def test_publish_cli_writes_archive(tiny_cube, tmp_path, capsys):
    desc = tmp_path / "about.md"
    desc.write_text("# About\n\nA **tiny** cube for `tests`.\n\n- one\n- two\n")
    out = tmp_path / "pub"
    code = cli.main([
        "publish", str(tiny_cube), "--out", str(out), "--title", "Tiny", "--creator", CREATOR,
        "--description", str(desc), "--keywords", "sar,avalanche", "--related", "https://doi.org/10.5281/zenodo.7:cites",
    ])
    assert code == 0, capsys.readouterr().err
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["description"].startswith("<h2>About</h2>") and "<strong>tiny</strong>" in meta["description"]
    assert "<li>one</li>" in meta["description"]
    assert meta["keywords"] == ["sar", "avalanche"]
    assert meta["related_identifiers"] == [{"identifier": "10.5281/zenodo.7", "relation": "cites"}]
    verify(out)
    assert cli.main(["publish", str(tiny_cube), "--out", str(out), "--title", "T", "--creator", "Nobody"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_no_local_path_survives_whatever_its_characters(tmp_path):
    """Folders with spaces, commas and brackets: none of their names reach README, STAC, metadata or the zip."""
    from conftest import make_tiny_cube

    secret_dirs = ("Jane Doe", "my data (2024), final", "S1 catalog")
    home = tmp_path / secret_dirs[0] / secret_dirs[1]
    catalog_json = home / secret_dirs[2] / "catalog.json"
    ds = make_tiny_cube()
    items = [{"id": f"item-{i}", "assets": {schema.VV: f"{home}/{secret_dirs[2]}/item-{i}/vv.tif"}} for i in range(4)]
    ds.attrs.update(
        {
            schema.ATTR_CATALOG: str(catalog_json),
            schema.ATTR_STAC_ITEMS: schema.encode_json_attr(items),
            schema.ATTR_HISTORY: f"2026-01-01T00:00:00Z sarcube build --catalog {catalog_json} --out {home}/t.zarr "
                                 "--crs utm",
        }
    )
    cube = home / "tiny.zarr"
    store.write_cube(ds, cube)
    _add_features(cube)
    out = tmp_path / "pub"
    _publish(cube, out)
    texts = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file() and p.suffix != ".zip"}
    with zipfile.ZipFile(out / "tiny.zarr.zip") as zf:
        texts.update({m: zf.read(m).decode() for m in zf.namelist() if m.endswith("zarr.json")})
    leaks = [(name, d) for name, text in texts.items() for d in (*secret_dirs, str(tmp_path)) if d in text]
    assert not leaks, leaks
    assert "catalog.json" in texts["README.md"] and "vv.tif" in json.dumps(texts["zarr.json"])
