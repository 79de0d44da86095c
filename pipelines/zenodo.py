"""Zenodo deposition metadata and a small client of the Zenodo REST API.

Metadata (:class:`DepositionMetadata`) is parsed from what a person types
(``"Family, Given;affiliation;orcid"``, ``"10.5281/zenodo.1:isDerivedFrom"``)
and validated before any request. :class:`ZenodoClient` speaks the deposit
API (create/get/update a deposition, PUT files to its bucket, publish,
``actions/newversion``), retries 429 and 5xx answers with exponential backoff
and honours ``Retry-After`` / ``X-RateLimit-Reset``. :func:`sync_files` makes
a deposition hold exactly a list of local files, skipping those whose md5
already matches (so an interrupted upload resumes) and replacing inherited
ones (new versions).

The token travels in the ``Authorization`` header only, is sent only to the
host of ``base_url``, and never appears in a message, log line or file.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from sarcube.datacube import archive
from sarcube.datacube.redaction import redact_secret
from sarcube.datacube.retry import RETRY_STATUSES, RetryPolicy, server_wait_s
from tqdm.auto import tqdm

from sarcube.errors import InputError, ZenodoError

log = logging.getLogger(__name__)

ZENODO_URL = "https://zenodo.org"
SANDBOX_URL = "https://sandbox.zenodo.org"
TOKEN_ENV = "ZENODO_TOKEN"
#: Zenodo's per-record limits
MAX_FILES = 100
MAX_BYTES = 50 * 1000**3
UPLOAD_TYPE = "dataset"
ACCESS_RIGHT = "open"
DEFAULT_LICENSE = "cc-by-4.0"
UPLOAD_BLOCK_BYTES = 1024 * 1024

#: licence ids Zenodo accepts (its vocabulary is SPDX ids in lower case); the open data and code ones
LICENSES = frozenset({
    "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-4.0",
    "cc-by-3.0", "cc-by-sa-3.0", "cc0-1.0", "odc-by-1.0", "odbl-1.0", "pddl-1.0",
    "mit", "apache-2.0", "bsd-2-clause", "bsd-3-clause", "gpl-3.0-only", "gpl-3.0-or-later",
    "lgpl-3.0-or-later", "mpl-2.0", "eupl-1.2", "etalab-2.0", "ogl-uk-3.0",
})

#: relation types Zenodo accepts for related_identifiers (DataCite)
RELATION_TYPES = (
    "isCitedBy", "cites", "isSupplementTo", "isSupplementedBy", "isContinuedBy", "continues",
    "isDescribedBy", "describes", "hasMetadata", "isMetadataFor", "isNewVersionOf",
    "isPreviousVersionOf", "isPartOf", "hasPart", "isReferencedBy", "references",
    "isDocumentedBy", "documents", "isCompiledBy", "compiles", "isVariantFormOf",
    "isOriginalFormOf", "isIdenticalTo", "isAlternateIdentifier", "isReviewedBy", "reviews",
    "isDerivedFrom", "isSourceOf", "requires", "isRequiredBy", "isObsoletedBy", "obsoletes",
)

_CREATOR_HELP = "expected 'Family, Given[;affiliation[;orcid]]', e.g. 'Doe, Jane;University of Bern;0000-0002-1825-0097'"
_DOI = re.compile(r"10\.\d{4,9}/\S+")
_ORCID = re.compile(r"\d{4}-\d{4}-\d{4}-\d{3}[\dX]")


# --- metadata --------------------------------------------------------------------------

def orcid_is_valid(orcid: str) -> bool:
    """True for a well-formed ORCID iD whose ISO 7064 11,2 check digit is right."""
    if not _ORCID.fullmatch(orcid):
        return False
    digits = orcid.replace("-", "")
    total = 0
    for ch in digits[:-1]:
        total = (total + int(ch)) * 2
    check = (12 - total % 11) % 11
    return digits[-1] == ("X" if check == 10 else str(check))


@dataclass(frozen=True)
class Creator:
    """One creator as Zenodo wants it."""

    #: "Family, Given"
    name: str
    affiliation: str | None = None
    #: bare ORCID iD (0000-0002-1825-0097)
    orcid: str | None = None

    @classmethod
    def parse(cls, text: str) -> Creator:
        """From ``"Family, Given[;affiliation[;orcid]]"``; :class:`InputError` naming the entry otherwise."""
        parts = [p.strip() for p in str(text).split(";")]
        if len(parts) > 3:
            raise InputError(f"--creator {text!r}: too many ';' fields; {_CREATOR_HELP}")
        name = parts[0]
        family, sep, given = name.partition(",")
        if not sep or not family.strip() or not given.strip() or "," in given:
            raise InputError(f"--creator {text!r}: name must be 'Family, Given'; {_CREATOR_HELP}")
        name = f"{family.strip()}, {given.strip()}"
        affiliation = parts[1] if len(parts) > 1 and parts[1] else None
        orcid = None
        if len(parts) > 2 and parts[2]:
            orcid = re.sub(r"^(https?://)?orcid\.org/", "", parts[2]).upper()
            if not orcid_is_valid(orcid):
                raise InputError(f"--creator {text!r}: ORCID {parts[2]!r} is not a valid iD (format 0000-0000-0000-000X, check digit ISO 7064 11,2)")
        return cls(name=name, affiliation=affiliation, orcid=orcid)

    def to_zenodo(self) -> dict[str, str]:
        out = {"name": self.name}
        if self.affiliation:
            out["affiliation"] = self.affiliation
        if self.orcid:
            out["orcid"] = self.orcid
        return out


@dataclass(frozen=True)
class RelatedIdentifier:
    """A related work: identifier (DOI, URL or arXiv id) and DataCite relation."""

    identifier: str
    relation: str

    @classmethod
    def parse(cls, text: str) -> RelatedIdentifier:
        """From ``"IDENTIFIER:relation"`` (e.g. ``10.5281/zenodo.123:isDerivedFrom``)."""
        identifier, sep, relation = str(text).strip().rpartition(":")
        if not sep or not identifier or not relation:
            raise InputError(f"--related {text!r}: expected IDENTIFIER:relation, e.g. 10.5281/zenodo.123:isDerivedFrom")
        by_lower = {r.lower(): r for r in RELATION_TYPES}
        if relation.lower() not in by_lower:
            raise InputError(f"--related {text!r}: relation {relation!r} is not one Zenodo accepts; use one of {', '.join(RELATION_TYPES)}")
        identifier = re.sub(r"^(https?://(dx\.)?doi\.org/|doi:)", "", identifier, flags=re.IGNORECASE)
        if not (_DOI.fullmatch(identifier) or re.fullmatch(r"https?://\S+\.\S+", identifier) or re.fullmatch(r"arXiv:\S+", identifier, re.IGNORECASE)):
            raise InputError(f"--related {text!r}: identifier {identifier!r} is not a DOI (10.xxxx/...), URL or arXiv id")
        return cls(identifier=identifier, relation=by_lower[relation.lower()])

    def to_zenodo(self) -> dict[str, str]:
        return {"identifier": self.identifier, "relation": self.relation}


def markdown_to_html(text: str) -> str:
    """Zenodo wants HTML descriptions: headings, lists, code blocks, paragraphs, inline code/bold/links."""
    def inline(line: str) -> str:
        line = html.escape(line, quote=False)
        line = re.sub(r"`([^`]+)`", r"<code>\1</code>", line)
        line = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", line)
        return re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r'<a href="\2">\1</a>', line)

    out: list[str] = []
    paragraph: list[str] = []
    in_list = in_code = False

    def flush() -> None:
        nonlocal in_list
        if paragraph:
            out.append("<p>" + " ".join(paragraph) + "</p>")
            paragraph.clear()
        if in_list:
            out.append("</ul>")
            in_list = False

    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("```"):
            flush()
            out.append("</code></pre>" if in_code else "<pre><code>")
            in_code = not in_code
            continue
        if in_code:
            out.append(html.escape(line, quote=False))
            continue
        heading = re.match(r"(#{1,6})\s+(.*)", line)
        bullet = re.match(r"\s*[-*]\s+(.*)", line)
        if heading:
            flush()
            level = min(len(heading.group(1)) + 1, 6)
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif bullet:
            if paragraph:
                out.append("<p>" + " ".join(paragraph) + "</p>")
                paragraph.clear()
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{inline(bullet.group(1))}</li>")
        elif not line.strip():
            flush()
        else:
            if in_list:
                flush()
            paragraph.append(inline(line.strip()))
    flush()
    if in_code:
        out.append("</code></pre>")
    return "\n".join(out)


@dataclass(frozen=True)
class DepositionMetadata:
    """Zenodo deposition metadata, validated (build it with :meth:`build`)."""

    title: str
    creators: tuple[Creator, ...]
    #: HTML (Zenodo renders it on the record page)
    description: str
    license: str
    publication_date: str
    keywords: tuple[str, ...] = ()
    version: str | None = None
    related: tuple[RelatedIdentifier, ...] = ()
    upload_type: str = UPLOAD_TYPE
    access_right: str = ACCESS_RIGHT

    @classmethod
    def build(
        cls,
        *,
        title: str,
        creators: Sequence[str],
        description: str,
        license: str = DEFAULT_LICENSE,
        keywords: Sequence[str] = (),
        version: str | None = None,
        related: Sequence[str] = (),
        publication_date: str | None = None,
    ) -> DepositionMetadata:
        """Parse and validate what a person typed; :class:`InputError` names the first bad field.

        ``description`` is markdown (converted to HTML).
        """
        title = (title or "").strip()
        if not title:
            raise InputError("--title is empty: give the dataset a title, e.g. --title 'Avalanche cube, Davos, winter 2024'")
        creators, keywords, related = ([v] if isinstance(v, str) else list(v) for v in (creators, keywords, related))
        if not creators:
            raise InputError(f"no --creator given: add at least one; {_CREATOR_HELP}")
        parsed = tuple(Creator.parse(c) for c in creators)
        license_id = (license or "").strip().lower()
        if license_id not in LICENSES:
            raise InputError(f"--license {license!r} is not a licence id Zenodo accepts here; use one of {', '.join(sorted(LICENSES))}")
        if publication_date is None:
            publication_date = dt.datetime.now(dt.UTC).date().isoformat()
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(publication_date)):
            raise InputError(f"publication date {publication_date!r} is not an ISO date (YYYY-MM-DD)")
        try:
            dt.date.fromisoformat(str(publication_date))
        except ValueError as err:
            raise InputError(f"publication date {publication_date!r} is not a real date ({err})") from err
        words: list[str] = []
        for kw in keywords:
            for word in str(kw).split(","):
                word = word.strip()
                if word and word not in words:
                    words.append(word)
        description = (description or "").strip()
        if not description:
            raise InputError("--description is empty: give a markdown file describing the dataset, or leave it out for the default")
        version = str(version).strip() if version else None
        return cls(
            title=title,
            creators=parsed,
            description=markdown_to_html(description),
            license=license_id,
            publication_date=str(publication_date),
            keywords=tuple(words),
            version=version or None,
            related=tuple(RelatedIdentifier.parse(r) for r in related),
        )

    def citation(self, description: str, doi: str | None = None) -> archive.Citation:
        """The archive's :class:`~sarcube.datacube.archive.Citation` (``description`` as markdown, not HTML)."""
        return archive.Citation(
            title=self.title,
            creators=tuple(c.name for c in self.creators),
            license=self.license,
            publication_date=self.publication_date,
            version=self.version,
            doi=doi,
            keywords=self.keywords,
            description=description,
        )

    def to_zenodo(self) -> dict[str, Any]:
        """The ``metadata`` object of a deposition."""
        out: dict[str, Any] = {
            "upload_type": self.upload_type,
            "title": self.title,
            "creators": [c.to_zenodo() for c in self.creators],
            "description": self.description,
            "access_right": self.access_right,
            "license": self.license,
            "publication_date": self.publication_date,
        }
        if self.keywords:
            out["keywords"] = list(self.keywords)
        if self.version:
            out["version"] = self.version
        if self.related:
            out["related_identifiers"] = [r.to_zenodo() for r in self.related]
        return out


# --- files and limits ----------------------------------------------------------------------

@dataclass(frozen=True)
class LocalFile:
    """A file to put on a record: its key (name on Zenodo), path, size and md5."""

    key: str
    path: Path
    size: int
    md5: str


def check_limits(files: Sequence[tuple[str, int]], *, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES) -> None:
    """Raise :class:`ZenodoError` when (key, size) files exceed a record's file count or total size."""
    if len(files) > max_files:
        raise ZenodoError(f"{len(files)} files exceed Zenodo's {max_files} files per record: zip them into fewer files first")
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

    def __init__(self, base_url: str, token: str, *, retry: RetryPolicy = RetryPolicy(), progress: bool = True) -> None:
        import requests

        parts = urlsplit(str(base_url).rstrip("/"))
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme not in ("https", "http") or not parts.hostname or (parts.scheme == "http" and not loopback):
            raise InputError(f"--zenodo-url {base_url!r} must be an https URL (e.g. {ZENODO_URL} or {SANDBOX_URL}); plain http only on 127.0.0.1")
        if not token or not token.strip():
            raise InputError(f"no Zenodo token: set {TOKEN_ENV} to a personal access token with the deposit:write and deposit:actions scopes")
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
            raise ZenodoError(f"the server pointed to {parts.scheme}://{parts.netloc}, not {self.base_url}: refusing to send the token there")
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
                    f"{e.get('field', '?')}: {' '.join(map(str, e.get('messages') or [e.get('message', '')]))}" for e in errors if isinstance(e, Mapping)
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
        expected: Sequence[int] = (200, 201, 202, 204),
    ) -> Any:
        """One API call with retries on 429/5xx/connection errors; :class:`ZenodoError` on refusal."""
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
                    bar = tqdm(total=file.stat().st_size, unit="B", unit_scale=True, desc=f"upload {file.name}", disable=None if self.progress else True, leave=False)
                    body = _ProgressReader(file, bar)
                response = self._session.request(method, url, headers=headers, json=json, data=body, timeout=self.retry.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as err:
                if attempt >= self.retry.retries:
                    raise ZenodoError(f"{what}: cannot reach {self.base_url} after {attempt + 1} tries ({type(err).__name__}); check --zenodo-url and the network, then rerun to resume") from None
                wait = self.retry.delay_s(attempt)
                log.warning("%s: %s, retry %d/%d in %.1f s", what, type(err).__name__, attempt + 1, self.retry.retries, wait)
                self.retry.sleep(wait)
                continue
            finally:
                if body is not None:
                    body.close()
                if bar is not None:
                    bar.close()
            if response.status_code in RETRY_STATUSES and attempt < self.retry.retries:
                wait = self.retry.delay_s(attempt, server_wait_s(response, time.time()))
                log.warning("%s: HTTP %d, retry %d/%d in %.1f s", what, response.status_code, attempt + 1, self.retry.retries, wait)
                self.retry.sleep(wait)
                continue
            if response.status_code not in expected:
                raise self._error(what, response)
            log.debug("%s: HTTP %d", what, response.status_code)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, response: Any, what: str) -> dict[str, Any]:
        try:
            return response.json()
        except ValueError:
            raise ZenodoError(f"{what}: the server answered HTTP {response.status_code} without JSON; is --zenodo-url a Zenodo server?") from None

    # -- the deposit API --
    def create_deposition(self) -> dict[str, Any]:
        """A new empty deposition (its DOI pre-reserved)."""
        what = "create deposition"
        return self._json(self.request("POST", "api/deposit/depositions", json={}, what=what, expected=(201,)), what)

    def get_deposition(self, deposition_id: int | str) -> dict[str, Any]:
        what = f"get deposition {deposition_id}"
        return self._json(self.request("GET", f"api/deposit/depositions/{deposition_id}", what=what, expected=(200,)), what)

    def update_metadata(self, deposition: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
        """Set the deposition's metadata (replaces it)."""
        what = f"set metadata of deposition {deposition['id']}"
        url = deposition.get("links", {}).get("self") or f"api/deposit/depositions/{deposition['id']}"
        return self._json(self.request("PUT", url, json={"metadata": dict(metadata)}, what=what, expected=(200,)), what)

    def upload_file(self, deposition: Mapping[str, Any], local: LocalFile) -> dict[str, Any]:
        """PUT one file into the deposition's bucket; checks the md5 the server computed."""
        bucket = deposition.get("links", {}).get("bucket")
        if not bucket:
            raise ZenodoError(f"deposition {deposition.get('id')} has no bucket link: it is published or locked; make a new version")
        what = f"upload {local.key} to deposition {deposition['id']}"
        answer = self._json(self.request("PUT", f"{bucket}/{quote(local.key)}", file=local.path, what=what, expected=(200, 201)), what)
        checksum = str(answer.get("checksum", "")).removeprefix("md5:")
        if checksum and checksum != local.md5:
            raise ZenodoError(f"{what}: the server got md5 {checksum}, the file has {local.md5}: the upload was corrupted, rerun to retry")
        return answer

    def delete_file(self, deposition: Mapping[str, Any], remote: Mapping[str, Any]) -> None:
        """Remove a file from a draft (e.g. one inherited from the previous version)."""
        name = remote.get("filename") or remote.get("key")
        url = remote.get("links", {}).get("self")
        if not url:
            url = f"{deposition['links']['bucket']}/{quote(str(name))}"
        self.request("DELETE", url, what=f"delete {name} from deposition {deposition['id']}", expected=(200, 204))

    def publish(self, deposition: Mapping[str, Any]) -> dict[str, Any]:
        """Publish the deposition (mints the DOI; files can no longer change)."""
        what = f"publish deposition {deposition['id']}"
        url = deposition.get("links", {}).get("publish") or f"api/deposit/depositions/{deposition['id']}/actions/publish"
        return self._json(self.request("POST", url, what=what, expected=(200, 202)), what)

    def new_version(self, deposition_id: int | str) -> dict[str, Any]:
        """The draft of a new version of a published deposition (files inherited from it)."""
        what = f"new version of deposition {deposition_id}"
        answer = self._json(self.request("POST", f"api/deposit/depositions/{deposition_id}/actions/newversion", what=what, expected=(200, 201)), what)
        draft_url = answer.get("links", {}).get("latest_draft")
        if not draft_url:
            raise ZenodoError(f"{what}: the answer has no latest_draft link; is {deposition_id} a published deposition?")
        return self._json(self.request("GET", draft_url, what=f"get draft of {deposition_id}", expected=(200,)), what)


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
        LocalFile(key=archive.flat_name(rel), path=folder / rel, size=(folder / rel).stat().st_size, md5=digest)
        for rel, digest in md5.items()
    ]


__all__ = [
    "LICENSES",
    "MAX_BYTES",
    "MAX_FILES",
    "RELATION_TYPES",
    "SANDBOX_URL",
    "TOKEN_ENV",
    "ZENODO_URL",
    "Creator",
    "DepositionMetadata",
    "LocalFile",
    "RelatedIdentifier",
    "SyncResult",
    "ZenodoClient",
    "check_limits",
    "deposition_doi",
    "is_published",
    "local_files",
    "markdown_to_html",
    "orcid_is_valid",
    "sync_files",
]
