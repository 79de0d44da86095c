"""A small Zenodo-deposit-API-compatible server on 127.0.0.1 for the tests.

Speaks the subset sarcube uses, with Zenodo's JSON shapes: create/get/update
a deposition, bucket PUT/DELETE, deposition file DELETE, publish and
``actions/newversion`` (files inherited by the draft). It checks the bearer
token, logs every request (method, path, query, body size) and can be told
to misbehave: fail a file PUT N times, answer 429 once with Retry-After or
X-RateLimit-Reset. Runs in a daemon thread; use it as a context manager
(it stops itself on exit, and with the interpreter).
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass
class Logged:
    method: str
    path: str
    query: str
    body_bytes: int
    status: int = 0


@dataclass
class Deposition:
    id: int
    bucket: str
    concept: int
    metadata: dict[str, Any] = field(default_factory=dict)
    #: key -> bytes
    files: dict[str, bytes] = field(default_factory=dict)
    file_ids: dict[str, str] = field(default_factory=dict)
    submitted: bool = False
    doi: str | None = None
    draft_of_next: int | None = None


class ZenodoServer:
    """State and controls of the fake Zenodo; ``url`` is its base URL."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.log: list[Logged] = []
        self.depositions: dict[int, Deposition] = {}
        self.buckets: dict[str, int] = {}
        self._next_id = 1000
        self.lock = threading.Lock()
        #: key -> how many more PUTs of it fail with HTTP 500
        self.fail_puts: dict[str, int] = {}
        #: (method, path prefix) -> headers of a 429 answered once
        self.rate_limit_once: dict[tuple[str, str], dict[str, str]] = {}
        #: status of a successful "create deposition" (Zenodo says 201; compatible servers may say 200)
        self.create_status = 201
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="zenodo-test-server", daemon=True)

    def __enter__(self) -> ZenodoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- state helpers --
    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def create(self, concept: int | None = None) -> Deposition:
        dep_id = self.new_id()
        bucket = uuid.uuid4().hex
        dep = Deposition(id=dep_id, bucket=bucket, concept=concept or dep_id)
        self.depositions[dep_id] = dep
        self.buckets[bucket] = dep_id
        return dep

    def requests(self, method: str | None = None, contains: str = "") -> list[Logged]:
        return [r for r in self.log if (method is None or r.method == method) and contains in r.path]

    def as_json(self, dep: Deposition) -> dict[str, Any]:
        base = f"{self.url}/api/deposit/depositions/{dep.id}"
        links = {
            "self": base,
            "html": f"{self.url}/deposit/{dep.id}",
            "publish": f"{base}/actions/publish",
            "newversion": f"{base}/actions/newversion",
            "files": f"{base}/files",
        }
        if not dep.submitted:
            links["bucket"] = f"{self.url}/api/files/{dep.bucket}"
        else:
            links["record_html"] = f"{self.url}/records/{dep.id}"
        if dep.draft_of_next:
            links["latest_draft"] = f"{self.url}/api/deposit/depositions/{dep.draft_of_next}"
        metadata = dict(dep.metadata)
        metadata["prereserve_doi"] = {"doi": f"10.5072/zenodo.{dep.id}", "recid": dep.id}
        return {
            "id": dep.id,
            "conceptrecid": str(dep.concept),
            "doi": dep.doi or "",
            "submitted": dep.submitted,
            "state": "done" if dep.submitted else "unsubmitted",
            "metadata": metadata,
            "links": links,
            "files": [
                {
                    "id": dep.file_ids[key],
                    "filename": key,
                    "filesize": len(data),
                    "checksum": hashlib.md5(data).hexdigest(),
                    "links": {"self": f"{base}/files/{dep.file_ids[key]}"},
                }
                for key, data in sorted(dep.files.items())
            ],
        }


REQUIRED_METADATA = ("upload_type", "title", "creators", "description")


def _handler(server: ZenodoServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            server.log[-1].status = status

        def _error(self, status: int, message: str, errors: list[dict[str, str]] | None = None) -> None:
            body: dict[str, Any] = {"status": status, "message": message}
            if errors:
                body["errors"] = errors
            self._send(status, body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            body = self._body()
            path = unquote(parts.path)
            with server.lock:
                server.log.append(Logged(self.command, path, parts.query, len(body)))
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self._error(
                        401, "The server could not verify that you are authorized to access the URL requested."
                    )
                for (method, prefix), headers in list(server.rate_limit_once.items()):
                    if method == self.command and path.startswith(prefix):
                        del server.rate_limit_once[(method, prefix)]
                        return self._send(429, {"status": 429, "message": "Too many requests"}, headers)
                return self._route(path, body)

        def _route(self, path: str, body: bytes) -> None:
            seg = [s for s in path.split("/") if s]
            m = self.command
            if seg[:3] == ["api", "deposit", "depositions"]:
                if len(seg) == 3 and m == "POST":
                    return self._send(server.create_status, server.as_json(server.create()))
                dep = server.depositions.get(int(seg[3])) if len(seg) > 3 and seg[3].isdigit() else None
                if dep is None:
                    return self._error(404, "PID does not exist.")
                if len(seg) == 4 and m == "GET":
                    return self._send(200, server.as_json(dep))
                if len(seg) == 4 and m == "PUT":
                    if dep.submitted:
                        return self._error(403, "Deposition is published: edit it first.")
                    metadata = json.loads(body or b"{}").get("metadata", {})
                    missing = [k for k in REQUIRED_METADATA if not metadata.get(k)]
                    if missing:
                        return self._error(
                            400,
                            "Validation error.",
                            [{"field": f"metadata.{k}", "message": "Field is required."} for k in missing],
                        )
                    metadata.pop("prereserve_doi", None)
                    dep.metadata = metadata
                    return self._send(200, server.as_json(dep))
                if len(seg) == 6 and seg[4] == "files" and m == "DELETE":
                    key = next((k for k, i in dep.file_ids.items() if i == seg[5]), None)
                    if key is None or dep.submitted:
                        return self._error(
                            404 if key is None else 403,
                            "File does not exist." if key is None else "Deposition is published.",
                        )
                    del dep.files[key], dep.file_ids[key]
                    return self._send(204)
                if len(seg) == 6 and seg[4] == "actions" and m == "POST":
                    if seg[5] == "publish":
                        if dep.submitted:
                            return self._error(400, "Deposition is already published.")
                        missing = [k for k in REQUIRED_METADATA if not dep.metadata.get(k)]
                        if missing or not dep.files:
                            return self._error(
                                400,
                                "Validation error.",
                                [
                                    {
                                        "field": "metadata" if missing else "files",
                                        "message": "Missing metadata or files.",
                                    }
                                ],
                            )
                        dep.submitted = True
                        dep.doi = f"10.5072/zenodo.{dep.id}"
                        return self._send(202, server.as_json(dep))
                    if seg[5] == "newversion":
                        if not dep.submitted:
                            return self._error(400, "Only published depositions can have new versions.")
                        if dep.draft_of_next is None or server.depositions[dep.draft_of_next].submitted:
                            draft = server.create(concept=dep.concept)
                            draft.files = dict(dep.files)
                            draft.file_ids = {k: uuid.uuid4().hex for k in dep.files}
                            draft.metadata = {k: v for k, v in dep.metadata.items() if k != "doi"}
                            dep.draft_of_next = draft.id
                        return self._send(201, server.as_json(dep))
                return self._error(405, "Method not allowed.")
            if seg[:2] == ["api", "files"] and len(seg) >= 4:
                dep_id = server.buckets.get(seg[2])
                dep = server.depositions.get(dep_id) if dep_id else None
                if dep is None:
                    return self._error(404, "Bucket does not exist.")
                if dep.submitted:
                    return self._error(403, "Bucket is locked (record published).")
                key = "/".join(seg[3:])
                if m == "PUT":
                    if server.fail_puts.get(key, 0) > 0:
                        server.fail_puts[key] -= 1
                        return self._error(500, "Internal server error.")
                    dep.files[key] = body
                    dep.file_ids[key] = uuid.uuid4().hex
                    return self._send(
                        201, {"key": key, "size": len(body), "checksum": "md5:" + hashlib.md5(body).hexdigest()}
                    )
                if m == "DELETE":
                    if key not in dep.files:
                        return self._error(404, "Object does not exist.")
                    del dep.files[key], dep.file_ids[key]
                    return self._send(204)
            return self._error(404, "Not found.")

        do_GET = do_POST = do_PUT = do_DELETE = _dispatch

    return Handler
