"""Secrets and local paths kept out of logs, error messages and published files.

One home for every redactor, from the mildest to the strictest:

- :func:`strip_query`: an href without its query string (SAS tokens live there),
  before it is logged or stored in a cube;
- :func:`redact`: every query string removed from a text (logs, error messages),
  and :class:`RedactQueries`, the same as a logging filter for third-party loggers;
- :func:`redact_secret`: one known secret (an API token) masked wherever it appears;
- :func:`sanitize_text` / :func:`sanitize`: what published metadata may say: no
  credentials (``user:key@``) or signing query strings on URLs, and local absolute
  paths cut to their base name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: what a masked secret reads as
MASK = "***"

_QUERY = re.compile(r"\?[^\s'\"]*")
_URL = re.compile(
    r"\b((?:https?|s3|gs|az|abfs|abfss)://)([^\s\"'<>/?#@]+@)?([^\s\"'<>?#]+)(\?[^\s\"'<>#]*)?(#[^\s\"'<>]*)?"
)
_FILE_URL = re.compile(r"\bfile://[^\s\"'<>]+")
_POSIX_PATH = re.compile(r"(?<![\w.~:/\\-])/[^\s/\"',;()\[\]{}]+(?:/[^\s/\"',;()\[\]{}]*)+")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\[^\s\"',;]+")


def strip_query(href: str) -> str:
    """``href`` without query string or fragment (SAS tokens live there)."""
    parts = urlsplit(href)
    if not parts.scheme or len(parts.scheme) == 1:  # a local path (or a Windows drive)
        return href.split("?", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def redact(text: str) -> str:
    """``text`` with every query string removed (for logs and error messages)."""
    return _QUERY.sub("", text)


def redact_secret(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` masked (nothing to mask when ``secret`` is empty)."""
    return str(text).replace(secret, MASK) if secret else str(text)


class RedactQueries(logging.Filter):
    """Strip query strings (SAS tokens) from the records of a third-party logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        record.msg = redact(str(record.msg))
        return True


def _basename(path: str) -> str:
    parts = [p for p in re.split(r"[\\/]", path) if p]
    return parts[-1] if parts else ""


def sanitize_text(text: str) -> str:
    """``text`` without credentials and signing query strings on URLs, local absolute paths cut to base names."""
    text = _URL.sub(lambda m: m.group(1) + m.group(3), text)
    text = _FILE_URL.sub(lambda m: _basename(m.group(0)[len("file://"):]), text)
    text = _POSIX_PATH.sub(lambda m: _basename(m.group(0)), text)
    return _WINDOWS_PATH.sub(lambda m: _basename(m.group(0)), text)


def sanitize(value: Any) -> Any:
    """:func:`sanitize_text` applied to every string in a JSON-like value."""
    if isinstance(value, str):
        return sanitize_text(value)
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
