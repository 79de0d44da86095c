"""Secrets and local paths kept out of logs, error messages and published files.

One home for every redactor, from the mildest to the strictest:

- :func:`strip_query`: an href without its query string (SAS tokens live there),
  before it is logged or stored in a cube;
- :func:`redact`: every query string and signing parameter removed from a text (logs,
  error messages), and :class:`RedactQueries`, the same as a logging filter: the CLI puts
  it on its log handler, so every record is cleaned, third-party ones included;
- :func:`redact_secret`: one known secret (an API token) masked wherever it appears;
- :func:`sanitize_text` / :func:`sanitize`: what published metadata may say: no
  credentials (``user:key@``) or signing query strings on URLs, and local absolute
  paths cut to their base name.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: what a masked secret reads as
MASK = "***"

_QUERY = re.compile(r"\?[^\s'\"]*")
#: signing parameters of Azure SAS, AWS/GCS presigned URLs and bearer tokens, wherever they appear
_SIGNED_PARAM = re.compile(
    r"(?i)(?<![\w-])(sig|signature|se|st|sp|sv|sr|spr|skoid|sktid|skt|ske|sks|skv|x-amz-[a-z-]+|x-goog-[a-z-]+"
    r"|awsaccesskeyid|expires|key-pair-id|policy|token|access_token|security-token)=[^&\s'\"<>]+"
)
_URL = re.compile(
    r"\b((?:https?|s3|gs|az|abfs|abfss)://)([^\s\"'<>/?#@]+@)?([^\s\"'<>?#]+)(\?[^\s\"'<>#]*)?(#[^\s\"'<>]*)?"
)
_FILE_URL = re.compile(r"\bfile://(?=/|[A-Za-z]:)")
# A directory component may hold single spaces (``/data/my files/x.tif``) but neither starts nor ends with one,
# nor starts with "-" (``--out /a/b --k 2``); the last component of a path stops at the first space.
_INNER = r"[^\s/\\\"'<>|*?-](?:[^\n/\\\"'<>|*?]{0,80}?[^\s/\\\"'<>|*?])?"
_LAST = r"[^\s/\"',;()\[\]{}<>|*?]*"
_POSIX_PATH = re.compile(rf"(?<![\w.~:/\\-])(?:~|/{_INNER})(?:/{_INNER})*/{_LAST}")
_WINDOWS_PATH = re.compile(rf"\b[A-Za-z]:\\(?:{_INNER}\\)*[^\s\\\"',;()\[\]{{}}<>|*?]*")
#: a whole string that is one local path, whatever its characters
_WHOLE_PATH = re.compile(r"^\s*(?:file://|~/|/[^/\n]+/|[A-Za-z]:\\)[^\n]*$")


def strip_query(href: str) -> str:
    """``href`` without query string or fragment (SAS tokens live there)."""
    parts = urlsplit(href)
    if not parts.scheme or len(parts.scheme) == 1:  # a local path (or a Windows drive)
        return href.split("?", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def redact(text: str) -> str:
    """``text`` with every query string and signing parameter removed (for logs and error messages)."""
    return _SIGNED_PARAM.sub(lambda m: f"{m.group(1)}={MASK}", _QUERY.sub("", text))


def redact_secret(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` masked (nothing to mask when ``secret`` is empty)."""
    return str(text).replace(secret, MASK) if secret else str(text)


class RedactQueries(logging.Filter):
    """Strip query strings and signing parameters (SAS tokens, presigned URLs) from log records.

    On a handler it cleans every record the handler emits, third-party ones included: the message is
    rendered with its arguments, then redacted, and so is the text of an attached traceback.
    """

    _traceback = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it itself, keep what we can
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _basename(path: str) -> str:
    parts = [p for p in re.split(r"[\\/]", path) if p]
    return parts[-1] if parts else ""


def sanitize_text(text: str) -> str:
    """``text`` without credentials and signing query strings on URLs, local absolute paths cut to base names.

    A string that is one local path as a whole loses its folders whatever their characters; inside free
    text, folder names may hold spaces (``/home/Jane Doe/my data/cube.zarr`` becomes ``cube.zarr``).
    """
    text = _URL.sub(lambda m: m.group(1) + m.group(3), text)
    if _WHOLE_PATH.match(text) and "://" not in text.removeprefix("file://"):
        return _basename(text.strip().removeprefix("file://"))
    text = _FILE_URL.sub("", text)
    text = _POSIX_PATH.sub(lambda m: _basename(m.group(0)), text)
    return _WINDOWS_PATH.sub(lambda m: _basename(m.group(0)), text)


def _sanitize_json_text(text: str) -> str | None:
    """A JSON-encoded attribute (``stac_items``) sanitized value by value; None when ``text`` is not JSON."""
    if not text.lstrip().startswith(("[", "{")):
        return None
    try:
        decoded = json.loads(text)
    except ValueError:
        return None
    clean = sanitize(decoded)
    return text if clean == decoded else json.dumps(clean, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def sanitize(value: Any) -> Any:
    """:func:`sanitize_text` applied to every string in a JSON-like value (and inside JSON-encoded strings)."""
    if isinstance(value, str):
        as_json = _sanitize_json_text(value)
        return sanitize_text(value) if as_json is None else as_json
    if isinstance(value, Mapping):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize(v) for v in value]
    return value


__all__ = [
    "MASK",
    "RedactQueries",
    "redact",
    "redact_secret",
    "sanitize",
    "sanitize_text",
    "strip_query",
]
