"""Upload through the Zenodo REST API, against a Zenodo-compatible server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest

from sarcube.datacube import archive, schema, store
from sarcube.datacube.archive import zenodo
from sarcube.datacube.retry import RetryPolicy
from sarcube.errors import InputError, PublishError, ZenodoError
from sarcube.pipelines import cli
from sarcube.pipelines.publish import STATE_FILE, publish
from sarcube.pipelines.verify import verify
from zenodo_server import ZenodoServer

TOKEN = "zenodo-secret-token-3f9a7c51e2"
CREATOR = "Doe, Jane;University of Bern;0000-0002-1825-0097"
ZIP_KEY = "tiny.zarr.zip"
KEYS = {ZIP_KEY, "README.md", "metadata.json", "MD5SUMS", "stac_collection.json", "stac_tiny.json"}


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(zenodo.TOKEN_ENV, TOKEN)
    with ZenodoServer(TOKEN) as srv:
        yield srv


@pytest.fixture
def waits():
    return []


def _publish(cube, out, server, waits, **kw):
    retry = RetryPolicy(retries=2, backoff_s=0.5, sleep=waits.append)
    return publish(
        cube,
        out,
        title="Tiny cube",
        creators=[CREATOR],
        version=kw.pop("version", "1.0"),
        upload=True,
        zenodo_url=server.url,
        progress=False,
        retry=retry,
        **kw,
    )


def _order(server, *needles):
    """Index in the request log of the first request matching each (method, path fragment)."""
    out = []
    for method, fragment in needles:
        out.append(next(i for i, r in enumerate(server.log) if r.method == method and fragment in r.path))
    return out


def test_full_upload_flow(tiny_cube, tmp_path, server, waits):
    out = tmp_path / "pub"
    result = _publish(tiny_cube, out, server, waits, publish=True)
    dep = server.depositions[result.deposition_id]
    assert dep.submitted and result.published
    assert result.doi == f"10.5072/zenodo.{dep.id}"
    assert set(dep.files) == KEYS and set(result.uploaded) == KEYS
    md5 = archive.read_md5sums(out)
    assert hashlib.md5(dep.files[ZIP_KEY]).hexdigest() == md5[ZIP_KEY]
    assert dep.files["stac_tiny.json"] == (out / "stac" / "tiny.json").read_bytes()
    # the datasheet and metadata cite the DOI reserved at creation
    assert f"https://doi.org/{result.doi}" in dep.files["README.md"].decode()
    assert json.loads(dep.files["metadata.json"])["doi"] == result.doi
    assert dep.metadata["title"] == "Tiny cube" and dep.metadata["creators"][0]["orcid"] == "0000-0002-1825-0097"
    assert dep.metadata["upload_type"] == "dataset" and dep.metadata["version"] == "1.0"
    create, first_put, metadata, publish_ = _order(
        server,
        ("POST", "/api/deposit/depositions"),
        ("PUT", "/api/files/"),
        ("PUT", f"/api/deposit/depositions/{dep.id}"),
        ("POST", "/actions/publish"),
    )
    assert create < first_put < metadata < publish_
    assert all(
        not any(r.path.endswith(k) for k in KEYS - {ZIP_KEY}) for r in server.log[: first_put + 1]
    )  # the zip goes first
    assert not waits
    verify(out)  # the DOI rewrite kept the folder consistent
    download = tmp_path / "download"  # what a reader gets from the record: flat names
    download.mkdir()
    for key, data in dep.files.items():
        (download / key).write_bytes(data)
    report = verify(download)
    assert "stac/tiny.json" in report.md5_checked and ZIP_KEY in report.stac_checked


def test_draft_then_publish_on_rerun(tiny_cube, tmp_path, server, waits):
    out = tmp_path / "pub"
    first = _publish(tiny_cube, out, server, waits)
    assert not first.published and not server.depositions[first.deposition_id].submitted
    n_put = len(server.requests("PUT", "/api/files/"))
    second = _publish(tiny_cube, out, server, waits, publish=True)
    assert second.deposition_id == first.deposition_id and second.published
    assert set(second.skipped) == KEYS and not second.uploaded
    assert len(server.requests("PUT", "/api/files/")) == n_put
    assert len(server.requests("POST", "/api/deposit/depositions")) - len(server.requests("POST", "/actions/")) == 1
    with pytest.raises(PublishError, match=rf"already published.*--new-version-of {first.deposition_id}"):
        _publish(tiny_cube, out, server, waits)


def test_deleted_draft_starts_a_new_deposition(tiny_cube, tmp_path, server, waits):
    out = tmp_path / "pub"
    first = _publish(tiny_cube, out, server, waits)
    del server.depositions[first.deposition_id]  # the draft was discarded on the website
    second = _publish(tiny_cube, out, server, waits)
    assert second.deposition_id != first.deposition_id
    assert set(server.depositions[second.deposition_id].files) == KEYS
    assert json.loads((out / STATE_FILE).read_text())["deposition_id"] == second.deposition_id


def test_resume_after_failed_file(tiny_cube, tmp_path, server, waits):
    out = tmp_path / "pub"
    server.fail_puts["README.md"] = 3  # more failures than the client retries
    with pytest.raises(ZenodoError, match=r"upload README\.md.*HTTP 500") as info:
        _publish(tiny_cube, out, server, waits)
    assert "\n" not in str(info.value)
    assert waits == [0.5, 1.0]  # exponential backoff between the tries
    dep_id = json.loads((out / STATE_FILE).read_text())["deposition_id"]
    assert ZIP_KEY in server.depositions[dep_id].files
    zip_puts = len(server.requests("PUT", ZIP_KEY))

    result = _publish(tiny_cube, out, server, waits, publish=True)
    assert result.deposition_id == dep_id
    assert ZIP_KEY in result.skipped and "README.md" in result.uploaded
    assert len(server.requests("PUT", ZIP_KEY)) == zip_puts  # not sent again
    assert set(server.depositions[dep_id].files) == KEYS and server.depositions[dep_id].submitted


def test_final_failure_names_the_deposition_to_resume(tiny_cube, tmp_path, server, waits):
    out = tmp_path / "pub"
    server.fail_puts["README.md"] = 9
    with pytest.raises(ZenodoError) as info:
        _publish(tiny_cube, out, server, waits)
    dep_id = json.loads((out / STATE_FILE).read_text())["deposition_id"]
    assert str(info.value).endswith(f"rerun the same command to resume deposition {dep_id}")


def test_any_success_status_is_accepted(tiny_cube, tmp_path, server, waits):
    server.create_status = 200  # a Zenodo-compatible server (InvenioRDM, a proxy) that says 200, not 201
    result = _publish(tiny_cube, tmp_path / "pub", server, waits, publish=True)
    assert [r.status for r in server.requests("POST", "/api/deposit/depositions")][:1] == [200]
    assert result.published and set(server.depositions[result.deposition_id].files) == KEYS


def test_retry_after_is_capped_and_said(server, waits, caplog):
    server.rate_limit_once[("POST", "/api/deposit/depositions")] = {"Retry-After": "86400"}
    client = zenodo.ZenodoClient(server.url, TOKEN, retry=RetryPolicy(retries=2, sleep=waits.append), progress=False)
    with caplog.at_level("WARNING"):
        client.create_deposition()
    assert waits == [RetryPolicy().max_wait_s] == [300.0]
    assert "asks to wait 86400 s (Retry-After); waiting at most 300 s" in caplog.text


def test_new_version_replaces_inherited_files(tiny_cube, tmp_path, server, waits):
    v1 = _publish(tiny_cube, tmp_path / "v1", server, waits, publish=True)
    server.depositions[v1.deposition_id].files["old-notes.txt"] = b"stale"
    server.depositions[v1.deposition_id].file_ids["old-notes.txt"] = "f-old"
    slope = schema.make_variable(schema.SLOPE, np.full((24, 32), 20.0))
    store.add_variables(tiny_cube, {schema.SLOPE: slope})

    v2 = _publish(
        tiny_cube, tmp_path / "v2", server, waits, publish=True, new_version_of=v1.deposition_id, version="2.0"
    )
    assert v2.deposition_id != v1.deposition_id and v2.published
    assert len(server.requests("POST", f"/{v1.deposition_id}/actions/newversion")) == 1
    draft = server.depositions[v2.deposition_id]
    assert draft.concept == server.depositions[v1.deposition_id].concept
    assert set(draft.files) == KEYS  # the stale inherited file is gone
    assert "old-notes.txt" in v2.deleted and ZIP_KEY in v2.deleted and ZIP_KEY in v2.uploaded
    assert hashlib.md5(draft.files[ZIP_KEY]).hexdigest() == archive.read_md5sums(tmp_path / "v2")[ZIP_KEY]
    assert draft.metadata["version"] == "2.0"
    assert v2.doi == f"10.5072/zenodo.{draft.id}" != v1.doi
    # the published first version is unchanged
    old = server.depositions[v1.deposition_id]
    assert hashlib.md5(old.files[ZIP_KEY]).hexdigest() == archive.read_md5sums(tmp_path / "v1")[ZIP_KEY]


def _client(server, waits):
    return zenodo.ZenodoClient(
        server.url, TOKEN, retry=RetryPolicy(retries=2, backoff_s=0.5, sleep=waits.append), progress=False
    )


def test_rate_limit_honours_retry_after(server, waits):
    server.rate_limit_once[("POST", "/api/deposit/depositions")] = {"Retry-After": "7"}
    deposition = _client(server, waits).create_deposition()
    assert waits == [7.0]
    assert [r.status for r in server.requests("POST", "/api/deposit/depositions")] == [429, 201]
    assert deposition["id"] in server.depositions


def test_rate_limit_honours_ratelimit_reset(tmp_path, server, waits):
    client = _client(server, waits)
    deposition = client.create_deposition()
    path = tmp_path / "a.txt"
    path.write_text("hello")
    reset = int(time.time()) + 30
    server.rate_limit_once[("PUT", "/api/files/")] = {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset),
    }
    answer = client.upload_file(deposition, zenodo.LocalFile("a.txt", path, 5, archive.md5_file(path)))
    assert answer["checksum"] == "md5:" + archive.md5_file(path)
    assert len(waits) == 1 and 27.0 <= waits[0] <= 30.0
    assert [r.status for r in server.requests("PUT", "/api/files/")] == [429, 201]


def test_limits_checked_before_any_request(tmp_path, server):
    client = zenodo.ZenodoClient(server.url, TOKEN, retry=RetryPolicy(retries=0), progress=False)
    deposition = client.create_deposition()
    server.log.clear()
    files = []
    for i in range(zenodo.MAX_FILES + 1):
        path = tmp_path / f"f{i:03d}.txt"
        path.write_text(str(i))
        files.append(zenodo.LocalFile(path.name, path, path.stat().st_size, archive.md5_file(path)))
    with pytest.raises(ZenodoError, match=r"101 files exceed Zenodo's 100 files per record"):
        zenodo.sync_files(client, deposition, files)
    big = tmp_path / "big.zarr.zip"
    with big.open("wb") as f:  # sparse: 50 GB + 1 byte of size, no disk used
        f.truncate(zenodo.MAX_BYTES + 1)
    huge = [zenodo.LocalFile(big.name, big, big.stat().st_size, "0" * 32)]
    with pytest.raises(
        ZenodoError, match=r"50\.0 GB of files exceed Zenodo's 50 GB per record \(largest: big\.zarr\.zip\)"
    ):
        zenodo.sync_files(client, deposition, huge)
    assert server.log == []


def test_token_never_leaks(tiny_cube, tmp_path, server, capsys):
    out = tmp_path / "pub"
    code = cli.main(
        [
            "-vv",
            "publish",
            str(tiny_cube),
            "--out",
            str(out),
            "--title",
            "T",
            "--creator",
            CREATOR,
            "--upload",
            "--zenodo-url",
            server.url,
            "--publish",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "DEBUG" in captured.err  # the log was on
    texts = [captured.out, captured.err] + [f"{r.path}?{r.query}" for r in server.log]
    assert all(TOKEN not in t for t in texts)
    for path in out.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
            assert str(tmp_path).encode() not in path.read_bytes(), path
    for dep in server.depositions.values():
        assert TOKEN not in json.dumps(dep.metadata) and all(TOKEN.encode() not in d for d in dep.files.values())
    # a refused token: the error names the fix, not the token
    with ZenodoServer("another-token") as other:
        with pytest.raises(ZenodoError, match=r"HTTP 401.*ZENODO_TOKEN") as info:
            publish(
                tiny_cube,
                tmp_path / "pub2",
                title="T",
                creators=[CREATOR],
                upload=True,
                zenodo_url=other.url,
                progress=False,
            )
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)


def test_upload_needs_token_and_safe_url(tiny_cube, tmp_path, server, monkeypatch):
    monkeypatch.delenv(zenodo.TOKEN_ENV)
    with pytest.raises(InputError, match="ZENODO_TOKEN"):
        publish(
            tiny_cube,
            tmp_path / "pub",
            title="T",
            creators=[CREATOR],
            upload=True,
            zenodo_url=server.url,
            progress=False,
        )
    with pytest.raises(InputError, match="need --upload"):
        publish(tiny_cube, tmp_path / "pub", title="T", creators=[CREATOR], publish=True, progress=False)
    with pytest.raises(InputError, match="https"):
        zenodo.ZenodoClient("http://zenodo.example.org", TOKEN)
    assert server.log == []


def test_metadata_parsing():
    assert archive.orcid_is_valid("0000-0002-1825-0097") and archive.orcid_is_valid("0000-0001-5109-3700")
    assert not archive.orcid_is_valid("0000-0002-1825-0096") and not archive.orcid_is_valid("0000-0002-1825")
    c = archive.Creator.parse(" Doe ,  Jane ;; https://orcid.org/0000-0002-1825-0097")
    assert c == archive.Creator("Doe, Jane", None, "0000-0002-1825-0097")
    r = archive.RelatedIdentifier.parse("https://doi.org/10.5281/zenodo.99:isderivedfrom")
    assert r == archive.RelatedIdentifier("10.5281/zenodo.99", "isDerivedFrom")
    assert archive.RelatedIdentifier.parse("arXiv:2101.00001:cites").identifier == "arXiv:2101.00001"
    assert (
        archive.markdown_to_html("a <b>\n\n```\nx < 1\n```")
        == "<p>a &lt;b&gt;</p>\n<pre><code>\nx &lt; 1\n</code></pre>"
    )


def test_unreachable_server_retries_then_says_so(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    client = zenodo.ZenodoClient(
        f"http://127.0.0.1:{port}", TOKEN, retry=RetryPolicy(retries=2, backoff_s=0.25, sleep=waits.append, timeout_s=2)
    )
    with pytest.raises(ZenodoError, match=r"create deposition: cannot reach .* after 3 tries.*rerun to resume") as info:
        client.create_deposition()
    assert waits == [0.25, 0.5] and TOKEN not in str(info.value)


class _Answer:
    """What ZenodoClient reads of a requests.Response: status, JSON body, text."""

    def __init__(self, status_code, body, text=""):
        self.status_code, self._body, self.text = status_code, body, text

    def json(self):
        if self._body is None:
            raise ValueError("no JSON")
        return self._body


def test_error_messages_from_any_answer_body():
    client = zenodo.ZenodoClient("http://127.0.0.1:1", TOKEN)
    err = client._error(
        "set metadata",
        _Answer(
            400, {"message": "Validation error", "errors": [{"field": "metadata.title", "messages": ["Required."]}]}
        ),
    )
    assert str(err) == "set metadata: HTTP 400 Validation error metadata.title: Required." and err.status == 400
    err = client._error("upload", _Answer(502, ["gateway", TOKEN], f'["gateway", "{TOKEN}"]'))
    assert "HTTP 502" in str(err) and TOKEN not in str(err)
    assert "ZENODO_TOKEN" in str(client._error("get", _Answer(401, None, "<html>denied</html>")))
