"""A small client of the Zenodo REST API: the archive's I/O adapter for uploads.

:class:`ZenodoClient` speaks the deposit API (create/get/update a
deposition, PUT files to its bucket, publish,
``actions/newversion``), retries 429 and 5xx answers with exponential backoff
and honours ``Retry-After`` / ``X-RateLimit-Reset``. :func:`sync_files` makes
a deposition hold exactly a list of local files, skipping those whose md5
already matches (so an interrupted upload resumes) and replacing inherited
ones (new versions). What a deposition is told about the dataset comes from
:mod:`~sarcube.datacube.archive.zenodo_metadata`.

The token travels in the ``Authorization`` header only, is sent only to the
host of ``base_url``, and never appears in a message, log line or file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from tqdm.auto import tqdm

from sarcube.datacube.archive.layout import flat_name
from sarcube.datacube.redaction import redact_secret
from sarcube.datacube.retry import RETRY_STATUSES, RetryPolicy, server_wait_s
from sarcube.errors import InputError, ZenodoError
from sarcube.progress import bar_disable

log = logging.getLogger(__name__)

ZENODO_URL = "https://zenodo.org"
SANDBOX_URL = "https://sandbox.zenodo.org"
TOKEN_ENV = "ZENODO_TOKEN"
#: Zenodo's per-record limits
MAX_FILES = 100
MAX_BYTES = 50 * 1000**3
UPLOAD_BLOCK_BYTES = 1024 * 1024


# --- files and limits ----------------------------------------------------------------------

@dataclass(frozen=True)
class LocalFile:
    """A file to put on a record: its key (name on Zenodo), path, size and md5."""

    key: str
    path: Path
    size: int
    md5: str


def check_limits(
    files: Sequence[tuple[str, int]], *, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES
) -> None:
    """Raise :class:`ZenodoError` when (key, size) files exceed a record's file count or total size."""
    if len(files) > max_files:
        raise ZenodoError(
            f"{len(files)} files exceed Zenodo's {max_files} files per record: zip them into fewer files first"
        )
    total = sum(int(size) for _, size in files)
    if total > max_bytes:
        biggest = max(files, key=lambda f: f[1])[0]
        raise ZenodoError(
            f"{total / 1e9:.1f} GB of files exceed Zenodo's {max_bytes / 1e9:g} GB per record (largest: {biggest}): "
            "split the cube by area or time, or ask Zenodo support for a quota increase"
        )


# --- the client --------------------------------------------------------------------------

class _ProgressReader:
    """A file that updates a progress bar as requests streams it (sized, so Content-Length is set)."""

    def __init__(self, path: Path, bar: Any) -> None:
        self._file = path.open("rb")
        self._size = path.stat().st_size
        self._bar = bar

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        block = self._file.read(n if n and n > 0 else UPLOAD_BLOCK_BYTES)
        self._bar.update(len(block))
        return block

    def __iter__(self) -> Iterator[bytes]:
        while block := self.read(UPLOAD_BLOCK_BYTES):
            yield block

    def close(self) -> None:
        self._file.close()


class ZenodoClient:
    """Deposit API of one Zenodo instance (``https://zenodo.org``, the sandbox, or a compatible server).

    ``retry`` shapes the retry schedule (``backoff_s * 2**attempt`` unless the
    server says how long to wait); ``progress`` shows a bar per uploaded file.
    """

    def __init__(
        self, base_url: str, token: str, *, retry: RetryPolicy = RetryPolicy(), progress: bool = True
    ) -> None:
        import requests

        parts = urlsplit(str(base_url).rstrip("/"))
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme not in ("https", "http") or not parts.hostname or (parts.scheme == "http" and not loopback):
            raise InputError(
                f"--zenodo-url {base_url!r} must be an https URL (e.g. {ZENODO_URL} or {SANDBOX_URL}); "
                "plain http only on 127.0.0.1"
            )
        if not token or not token.strip():
            raise InputError(
                f"no Zenodo token: set {TOKEN_ENV} to a personal access token "
                "with the deposit:write and deposit:actions scopes"
            )
        self.base_url = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
        self._origin = (parts.scheme, parts.netloc)
        self._token = token.strip()
        self.retry = retry
        self.progress = progress
        self._session = requests.Session()
        self._session.trust_env = False  # no .netrc credentials or proxies picked up behind our back

    def __repr__(self) -> str:
        return f"ZenodoClient({self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ZenodoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --
    def _url(self, path_or_url: str) -> str:
        url = path_or_url if "://" in path_or_url else f"{self.base_url}/{path_or_url.lstrip('/')}"
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self._origin:
            raise ZenodoError(
                f"the server pointed to {parts.scheme}://{parts.netloc}, not {self.base_url}: "
                "refusing to send the token there"
            )
        return url

    def _error(self, what: str, response: Any) -> ZenodoError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, Mapping):
            detail = str(body.get("message", ""))
            errors = body.get("errors") or []
            if isinstance(errors, list) and errors:
                detail += " " + "; ".join(
                    f"{e.get('field', '?')}: {' '.join(map(str, e.get('messages') or [e.get('message', '')]))}"
                    for e in errors
                    if isinstance(e, Mapping)
                )
        else:  # not JSON, or JSON that is not Zenodo's error object
            detail = response.text[:200]
        hint = {
            401: f"the token in {TOKEN_ENV} is missing, wrong or expired",
            403: f"the token in {TOKEN_ENV} lacks the deposit:write/deposit:actions scopes, or the record is not yours",
            404: "no such deposition on this server (check the id and --zenodo-url: sandbox and zenodo.org differ)",
        }.get(response.status_code, "")
        message = f"{what}: HTTP {response.status_code} {detail.strip()}".strip()
        if hint:
            message += f" ({hint})"
        error = ZenodoError(redact_secret(" ".join(message.split()), self._token))
        error.status = response.status_code  # type: ignore[attr-defined]
        return error

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        what: str,
        json: Any = None,
        file: Path | None = None,
    ) -> Any:
        """One API call with retries on 429/5xx/connection errors; :class:`ZenodoError` on refusal.

        Any 2xx answer is success (Zenodo-compatible servers differ: 200 or 201 on create). A server's
        ``Retry-After`` is honoured up to ``retry.max_wait_s``, and said so when it asks for longer.
        """
        import requests

        url = self._url(path_or_url)
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if file is not None:
            headers["Content-Type"] = "application/octet-stream"
        for attempt in range(self.retry.retries + 1):
            body = None
            bar = None
            try:
                if file is not None:
                    bar = tqdm(
                        total=file.stat().st_size, unit="B", unit_scale=True, desc=f"upload {file.name}",
                        disable=bar_disable(not self.progress), leave=False,
                    )
                    body = _ProgressReader(file, bar)
                response = self._session.request(
                    method, url, headers=headers, json=json, data=body, timeout=self.retry.timeout_s
                )
            except (requests.ConnectionError, requests.Timeout) as err:
                if attempt >= self.retry.retries:
                    raise ZenodoError(
                        f"{what}: cannot reach {self.base_url} after {attempt + 1} tries ({type(err).__name__}); "
                        "check --zenodo-url and the network, then rerun to resume"
                    ) from None
                wait = self.retry.delay_s(attempt)
                log.warning(
                    "%s: %s, retry %d/%d in %.1f s", what, type(err).__name__, attempt + 1, self.retry.retries, wait
                )
                self.retry.sleep(wait)
                continue
            finally:
                if body is not None:
                    body.close()
                if bar is not None:
                    bar.close()
            if response.status_code in RETRY_STATUSES and attempt < self.retry.retries:
                asked = server_wait_s(response, time.time())
                wait = self.retry.delay_s(attempt, asked)
                if asked is not None and asked > wait:
                    log.warning(
                        "%s: the server asks to wait %.0f s (Retry-After); waiting at most %.0f s", what, asked, wait
                    )
                log.warning(
                    "%s: HTTP %d, retry %d/%d in %.1f s",
                    what, response.status_code, attempt + 1, self.retry.retries, wait,
                )
                self.retry.sleep(wait)
                continue
            if not 200 <= response.status_code < 300:
                raise self._error(what, response)
            log.debug("%s: HTTP %d", what, response.status_code)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, response: Any, what: str) -> dict[str, Any]:
        try:
            return response.json()
        except ValueError:
            raise ZenodoError(
                f"{what}: the server answered HTTP {response.status_code} without JSON; "
                "is --zenodo-url a Zenodo server?"
            ) from None

    # -- the deposit API --
    def create_deposition(self) -> dict[str, Any]:
        """A new empty deposition (its DOI pre-reserved)."""
        what = "create deposition"
        return self._json(self.request("POST", "api/deposit/depositions", json={}, what=what), what)

    def get_deposition(self, deposition_id: int | str) -> dict[str, Any]:
        what = f"get deposition {deposition_id}"
        answer = self.request("GET", f"api/deposit/depositions/{deposition_id}", what=what)
        return self._json(answer, what)

    def update_metadata(self, deposition: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
        """Set the deposition's metadata (replaces it)."""
        what = f"set metadata of deposition {deposition['id']}"
        url = deposition.get("links", {}).get("self") or f"api/deposit/depositions/{deposition['id']}"
        return self._json(self.request("PUT", url, json={"metadata": dict(metadata)}, what=what), what)

    def upload_file(self, deposition: Mapping[str, Any], local: LocalFile) -> dict[str, Any]:
        """PUT one file into the deposition's bucket; checks the md5 the server computed."""
        bucket = deposition.get("links", {}).get("bucket")
        if not bucket:
            raise ZenodoError(
                f"deposition {deposition.get('id')} has no bucket link: it is published or locked; make a new version"
            )
        what = f"upload {local.key} to deposition {deposition['id']}"
        sent = self.request("PUT", f"{bucket}/{quote(local.key)}", file=local.path, what=what)
        answer = self._json(sent, what)
        checksum = str(answer.get("checksum", "")).removeprefix("md5:")
        if checksum and checksum != local.md5:
            raise ZenodoError(
                f"{what}: the server got md5 {checksum}, the file has {local.md5}: "
                "the upload was corrupted, rerun to retry"
            )
        return answer

    def delete_file(self, deposition: Mapping[str, Any], remote: Mapping[str, Any]) -> None:
        """Remove a file from a draft (e.g. one inherited from the previous version)."""
        name = remote.get("filename") or remote.get("key")
        url = remote.get("links", {}).get("self")
        if not url:
            url = f"{deposition['links']['bucket']}/{quote(str(name))}"
        self.request("DELETE", url, what=f"delete {name} from deposition {deposition['id']}")

    def publish(self, deposition: Mapping[str, Any]) -> dict[str, Any]:
        """Publish the deposition (mints the DOI; files can no longer change)."""
        what = f"publish deposition {deposition['id']}"
        url = deposition.get("links", {}).get("publish")
        url = url or f"api/deposit/depositions/{deposition['id']}/actions/publish"
        return self._json(self.request("POST", url, what=what), what)

    def new_version(self, deposition_id: int | str) -> dict[str, Any]:
        """The draft of a new version of a published deposition (files inherited from it)."""
        what = f"new version of deposition {deposition_id}"
        url = f"api/deposit/depositions/{deposition_id}/actions/newversion"
        answer = self._json(self.request("POST", url, what=what), what)
        draft_url = answer.get("links", {}).get("latest_draft")
        if not draft_url:
            raise ZenodoError(
                f"{what}: the answer has no latest_draft link; is {deposition_id} a published deposition?"
            )
        return self._json(self.request("GET", draft_url, what=f"get draft of {deposition_id}"), what)


# --- helpers over depositions -----------------------------------------------------------------

def deposition_doi(deposition: Mapping[str, Any]) -> str | None:
    """The DOI of a deposition: minted (published) or pre-reserved (draft)."""
    if deposition.get("doi"):
        return str(deposition["doi"])
    reserved = deposition.get("metadata", {}).get("prereserve_doi") or {}
    return str(reserved["doi"]) if isinstance(reserved, Mapping) and reserved.get("doi") else None


def is_published(deposition: Mapping[str, Any]) -> bool:
    return bool(deposition.get("submitted")) or deposition.get("state") == "done"


def _remote_md5(remote: Mapping[str, Any]) -> str:
    return str(remote.get("checksum", "")).removeprefix("md5:")


@dataclass
class SyncResult:
    """What :func:`sync_files` did, by file key."""

    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def sync_files(client: ZenodoClient, deposition: Mapping[str, Any], files: Sequence[LocalFile]) -> SyncResult:
    """Make the draft hold exactly ``files``: skip those whose md5 matches, replace the rest, drop others."""
    check_limits([(f.key, f.size) for f in files])
    result = SyncResult()
    remote = {str(f.get("filename") or f.get("key")): f for f in deposition.get("files", [])}
    wanted = {f.key for f in files}
    for name, entry in remote.items():
        if name not in wanted:
            client.delete_file(deposition, entry)
            result.deleted.append(name)
    for local in files:
        entry = remote.get(local.key)
        if entry is not None and _remote_md5(entry) == local.md5:
            log.info("%s already on deposition %s (md5 matches), skipped", local.key, deposition["id"])
            result.skipped.append(local.key)
            continue
        if entry is not None:
            client.delete_file(deposition, entry)
            result.deleted.append(local.key)
        client.upload_file(deposition, local)
        log.info("uploaded %s (%d B) to deposition %s", local.key, local.size, deposition["id"])
        result.uploaded.append(local.key)
    return result


def local_files(folder: Path, md5: Mapping[str, str]) -> list[LocalFile]:
    """LocalFiles for relative paths with known md5; Zenodo keys are flat (``stac/a.json`` -> ``stac_a.json``)."""
    return [
        LocalFile(key=flat_name(rel), path=folder / rel, size=(folder / rel).stat().st_size, md5=digest)
        for rel, digest in md5.items()
    ]


__all__ = [
    "MAX_BYTES",
    "MAX_FILES",
    "SANDBOX_URL",
    "TOKEN_ENV",
    "ZENODO_URL",
    "LocalFile",
    "SyncResult",
    "ZenodoClient",
    "check_limits",
    "deposition_doi",
    "is_published",
    "local_files",
    "sync_files",
]
