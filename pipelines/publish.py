"""``sarcube publish CUBE --out DIR``: a citable archive of a cube, optionally uploaded to Zenodo.

Writes ``<name>.zarr.zip``, ``README.md`` (datasheet), ``stac/``,
``metadata.json`` (Zenodo deposition metadata) and ``MD5SUMS`` into DIR
(:mod:`sarcube.datacube.archive`). With ``upload`` it creates a deposition
(or a new version of one), puts the files into its bucket, sets the metadata
and publishes only when asked (:mod:`sarcube.datacube.archive.zenodo`). The token
comes from ``ZENODO_TOKEN`` only. Re-running resumes: the deposition id is
kept in ``DIR/.zenodo-deposition.json`` and files whose md5 already matches
are skipped.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from sarcube.datacube import archive, schema, zarrio
from sarcube.datacube.archive import zenodo
from sarcube.datacube.retry import RetryPolicy
from sarcube.errors import InputError, PublishError, ZenodoError
from sarcube.pipelines._storage import storage_options_option

log = logging.getLogger(__name__)

#: where a folder remembers its deposition between runs (never uploaded; holds no token)
STATE_FILE = ".zenodo-deposition.json"


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish` wrote and, when uploading, where it went."""

    out_dir: Path
    archive: Path
    files: tuple[Path, ...]
    metadata: dict[str, Any]
    deposition_id: int | None = None
    doi: str | None = None
    html_url: str | None = None
    published: bool = False
    uploaded: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()


def _description_text(description: str | Path | None) -> str:
    if description is None:
        return ""
    path = Path(description)
    if isinstance(description, Path) or (
        len(str(description)) < 4096
        and "\n" not in str(description)
        and path.suffix.lower() in (".md", ".txt", ".markdown")
    ):
        if not path.is_file():
            raise InputError(f"--description {str(description)!r} does not exist: give a markdown file")
        return path.read_text()
    return str(description)


def _default_description(ds: Any, title: str) -> str:
    s = schema.summarize(ds)
    names = ", ".join(f"`{v[0]}` ({v[3]})" for v in s.variables)
    period = (
        f"{s.time_range[0][:10]} to {s.time_range[1][:10]}"
        if s.time_range
        else f"{ds.attrs.get(schema.ATTR_START, '?')} to {ds.attrs.get(schema.ATTR_END, '?')}"
    )
    return (
        f"{title}: a Sentinel-1 SAR backscatter and terrain datacube (Zarr v3, zipped) on a "
        f"{s.resolution[0]:g} m grid in {s.crs}, {period}, {len(s.acquisitions)} acquisitions.\n\n"
        f"Variables: {names}.\n\n"
        f"Built with sarcube {ds.attrs.get(schema.ATTR_VERSION, '')}; README.md is the datasheet "
        "(units, grid, dates, lineage, how to open it in Python)."
    )


def _read_state(out_dir: Path) -> dict[str, Any]:
    path = out_dir / STATE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


def _write_state(out_dir: Path, state: dict[str, Any]) -> None:
    """Write the state whole or not at all: a torn file would make the next run start a second draft."""
    partial = out_dir / (STATE_FILE + ".partial")
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.replace(out_dir / STATE_FILE)


def _deposition_for(
    client: zenodo.ZenodoClient, out_dir: Path, zenodo_url: str, new_version_of: int | None
) -> dict[str, Any]:
    """The draft to fill: the one this folder started (resume), a new version's draft, or a new deposition."""
    state = _read_state(out_dir)
    deposition = None
    if (
        state.get("zenodo_url") == zenodo_url
        and state.get("new_version_of") == new_version_of
        and state.get("deposition_id")
    ):
        try:
            deposition = client.get_deposition(state["deposition_id"])
        except ZenodoError as err:
            if getattr(err, "status", None) != 404:
                raise
            log.warning(
                "deposition %s of %s is gone (deleted draft?); starting a new one", state["deposition_id"], out_dir
            )
    if deposition is not None:
        if zenodo.is_published(deposition):
            raise PublishError(
                f"deposition {deposition['id']} made from {str(out_dir)!r} is already published "
                f"(DOI {zenodo.deposition_doi(deposition)}): pass --new-version-of {deposition['id']} to publish a new "
                "version"
            )
        log.info("resuming deposition %s", deposition["id"])
        return deposition
    if new_version_of is not None:
        deposition = client.new_version(new_version_of)
    else:
        deposition = client.create_deposition()
    _write_state(
        out_dir, {"zenodo_url": zenodo_url, "new_version_of": new_version_of, "deposition_id": deposition["id"]}
    )
    return deposition


@contextmanager
def _local_copy(cube: str | Path, out_dir: Path, storage_options: Mapping[str, Any] | None) -> Iterator[Path]:
    """The cube as a local store: itself, or a download of an object-store cube (beside ``out_dir``, removed after)."""
    text = str(cube)
    if "://" not in text or text.startswith("file://"):
        yield archive.local_store(cube)
        return
    try:
        found = zarrio.exists(cube, storage_options)
    except Exception as err:  # no credentials, no endpoint, no bucket: botocore's errors are not all OSErrors
        raise InputError(
            f"cube {text!r} cannot be read ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}): "
            "check the URL and the credentials (AWS_* environment, ~/.aws/config or --storage-options)"
        ) from err
    if not found:
        raise InputError(f"cube {text!r} has no root zarr.json: build one with `sarcube build` or check the URL")
    fs, root = zarrio.fs_and_root(cube, storage_options)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=out_dir))
    local = scratch / Path(root).name  # same base name: the archive is named after the cube
    try:
        log.info("downloading %s to zip it", text)
        fs.get(root, str(local), recursive=True)
        yield archive.local_store(local)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def publish(
    cube: str | Path,
    out_dir: str | Path,
    *,
    title: str,
    creators: Sequence[str],
    description: str | Path | None = None,
    license: str = archive.DEFAULT_LICENSE,
    keywords: Sequence[str] = (),
    version: str | None = None,
    related: Sequence[str] = (),
    upload: bool = False,
    zenodo_url: str = zenodo.ZENODO_URL,
    publish: bool = False,
    new_version_of: int | None = None,
    publication_date: str | None = None,
    progress: bool = True,
    retry: RetryPolicy = RetryPolicy(),
    storage_options: Mapping[str, Any] | None = None,
) -> PublishResult:
    """Write the archive of ``cube`` into ``out_dir`` and, with ``upload``, put it on Zenodo.

    ``creators`` are ``"Family, Given[;affiliation[;orcid]]"``; ``description``
    a markdown file (or text); ``related`` ``"IDENTIFIER:relation"``. The token
    is read from ``ZENODO_TOKEN``; ``retry`` is how the upload retries
    429/5xx answers and lost connections. A cube on object storage is
    downloaded next to the archive first (the zip is written from local files).
    """
    out_dir = Path(out_dir)
    with _local_copy(cube, out_dir, storage_options) as local:
        return _publish(local, out_dir, title=title, creators=creators, description=description, license=license,
                        keywords=keywords, version=version, related=related, upload=upload, zenodo_url=zenodo_url,
                        publish=publish, new_version_of=new_version_of, publication_date=publication_date,
                        progress=progress, retry=retry)


def _publish(
    cube: Path,
    out_dir: Path,
    *,
    title: str,
    creators: Sequence[str],
    description: str | Path | None,
    license: str,
    keywords: Sequence[str],
    version: str | None,
    related: Sequence[str],
    upload: bool,
    zenodo_url: str,
    publish: bool,
    new_version_of: int | None,
    publication_date: str | None,
    progress: bool,
    retry: RetryPolicy,
) -> PublishResult:
    if (publish or new_version_of is not None) and not upload:
        raise InputError(f"--publish and --new-version-of need --upload: add it (with the token in {zenodo.TOKEN_ENV})")
    token = os.environ.get(zenodo.TOKEN_ENV, "") if upload else ""
    if upload and not token.strip():
        raise InputError(
            f"--upload needs a Zenodo token in {zenodo.TOKEN_ENV}: create one at "
            f"{zenodo_url.rstrip('/')}/account/settings/applications/tokens/new with deposit:write and deposit:actions"
        )
    if new_version_of is not None and int(new_version_of) <= 0:
        raise InputError(f"--new-version-of {new_version_of!r} is not a deposition id (a positive integer)")

    ds = schema.open_cube(cube)
    text = _description_text(description) or _default_description(ds, title or "")
    citation = archive.Citation.build(
        title=title,
        creators=creators,
        description=text,
        license=license,
        keywords=keywords,
        version=version,
        related=related,
        publication_date=publication_date,
    )
    client = zenodo.ZenodoClient(zenodo_url, token, retry=retry, progress=progress) if upload else None

    def write(doi: str | None, rezip: bool) -> archive.ArchiveFiles:
        cited = replace(citation, doi=doi)
        return archive.write_archive(cube, out_dir, citation=cited, progress=progress, rezip=rezip)

    written = write(None, rezip=True)
    result = dict(out_dir=out_dir, archive=written.zip_path, metadata=archive.deposition_metadata(citation))
    if client is None:
        return PublishResult(files=_paths(written), **result)

    with client:
        files = zenodo.local_files(out_dir, _with_md5sums(written))
        zenodo.check_limits([(f.key, f.size) for f in files])  # before any request
        deposition = _deposition_for(client, out_dir, client.base_url, new_version_of)
        try:
            doi = zenodo.deposition_doi(deposition)
            if doi:  # the datasheet and metadata cite the pre-reserved DOI
                written = write(doi, rezip=False)
            files = zenodo.local_files(out_dir, _with_md5sums(written))
            synced = zenodo.sync_files(client, deposition, files)
            meta = archive.deposition_metadata(citation)
            if doi:
                meta["prereserve_doi"] = True  # keep the DOI the datasheet cites
            deposition = client.update_metadata(deposition, meta)
            published = False
            if publish:
                deposition = client.publish(deposition)
                published = True
                doi = zenodo.deposition_doi(deposition) or doi
        except ZenodoError as err:  # the draft stays; the same command picks it up from STATE_FILE
            raise ZenodoError(f"{err}; rerun the same command to resume deposition {deposition['id']}") from err
        links = deposition.get("links", {})
        return PublishResult(
            files=_paths(written),
            deposition_id=int(deposition["id"]),
            doi=doi,
            html_url=links.get("record_html") or links.get("html"),
            published=published,
            uploaded=tuple(synced.uploaded),
            skipped=tuple(synced.skipped),
            deleted=tuple(synced.deleted),
            **{**result, "metadata": meta},
        )


def _with_md5sums(written: archive.ArchiveFiles) -> dict[str, str]:
    md5 = dict(written.md5)
    md5[archive.MD5SUMS] = archive.md5_file(written.folder / archive.MD5SUMS)
    return dict(sorted(md5.items(), key=lambda kv: (not kv[0].endswith(archive.ARCHIVE_SUFFIX), kv[0])))


def _paths(written: archive.ArchiveFiles) -> tuple[Path, ...]:
    return tuple(written.folder / rel for rel in archive.archive_file_list(written.folder))


@click.command("publish")
@click.argument("cube", type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the archive files.")
@click.option("--title", required=True, help="Title of the dataset.")
@click.option(
    "--creator",
    "creators",
    multiple=True,
    required=True,
    help="'Family, Given[;affiliation[;orcid]]' (repeat for each creator).",
)
@click.option(
    "--description",
    type=click.Path(dir_okay=False),
    default=None,
    help="Markdown file describing the dataset (default: generated from the cube).",
)
@click.option(
    "--license", "license_id", default=archive.DEFAULT_LICENSE, show_default=True,
    help="Licence id as Zenodo spells it.",
)
@click.option("--keywords", multiple=True, help="Keywords (repeat, or comma-separated).")
@click.option("--version", "version", default=None, help="Version of the dataset (e.g. 1.0).")
@click.option(
    "--related",
    multiple=True,
    help="Related work as IDENTIFIER:relation, e.g. 10.5281/zenodo.123:isDerivedFrom (repeat).",
)
@click.option("--upload", is_flag=True, help=f"Upload to Zenodo (token from {zenodo.TOKEN_ENV}).")
@click.option(
    "--zenodo-url",
    default=zenodo.ZENODO_URL,
    show_default=True,
    help=f"Zenodo instance, e.g. {zenodo.SANDBOX_URL} for tests.",
)
@click.option(
    "--publish",
    "do_publish",
    is_flag=True,
    help="Publish the deposition after uploading (mints the DOI; cannot be undone).",
)
@click.option(
    "--new-version-of", type=int, default=None, help="Deposition id of a published record: upload as its new version."
)
@storage_options_option
def command(
    cube: str,
    out_dir: str,
    title: str,
    creators: tuple[str, ...],
    description: str | None,
    license_id: str,
    keywords: tuple[str, ...],
    version: str | None,
    related: tuple[str, ...],
    upload: bool,
    zenodo_url: str,
    do_publish: bool,
    new_version_of: int | None,
    storage_options: dict[str, Any] | None,
) -> None:
    """Write CUBE as a citable archive (zip, STAC, datasheet, checksums) into --out; optionally upload it to Zenodo."""
    result = publish(
        cube, out_dir, title=title, creators=list(creators), description=Path(description) if description else None,
        license=license_id, keywords=keywords, version=version, related=related, upload=upload,
        zenodo_url=zenodo_url, publish=do_publish, new_version_of=new_version_of, storage_options=storage_options,
    )
    click.echo(f"wrote {len(result.files)} files into {result.out_dir} (archive {result.archive.name})")
    if result.deposition_id is not None:
        state = "published" if result.published else "draft (not published; rerun with --publish)"
        click.echo(
            f"deposition {result.deposition_id}: {state}; DOI {result.doi}; uploaded {len(result.uploaded)}, unchanged "
            f"{len(result.skipped)}"
        )
        if result.html_url:
            click.echo(result.html_url)
