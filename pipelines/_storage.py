"""Where cubes live: local folders or object storage (``s3://bucket/path/cube.zarr``) through fsspec.

Credentials and endpoints come, as for every AWS tool, from the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``,
``AWS_PROFILE``...) or ``~/.aws/config``; ``--storage-options`` passes fsspec
options on top (a JSON object, or ``@file.json``), e.g.
``'{"endpoint_url": "https://minio.local:9000", "anon": false}'``. The options
only ever travel to fsspec: no step writes them into a cube's attrs, its
history, a run folder or a log line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sarcube.errors import InputError

#: the one CLI spelling of the option
OPTION = "--storage-options"


def parse_storage_options(text: str | None) -> dict[str, Any] | None:
    """``--storage-options`` (a JSON object or ``@file.json``) as a dict; None when not given."""
    if text is None or not text.strip():
        return None
    source = "--storage-options"
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            text = path.read_text()
        except OSError as err:
            raise InputError(f"{OPTION} file {str(path)!r} cannot be read ({err.strerror}): check the path") from err
        source = f"{OPTION} file {str(path)!r}"
    try:
        options = json.loads(text)
    except ValueError as err:
        # the text may hold a secret: name the position, never echo it
        raise InputError(
            f"{source} is not valid JSON (at character {err.pos}): pass an object like '{{\"anon\": true}}'"
        ) from err
    if not isinstance(options, dict):
        raise InputError(f"{source} must be a JSON object like '{{\"anon\": true}}', not a {type(options).__name__}")
    return options


def _callback(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, Any] | None:
    return parse_storage_options(value)


def storage_options_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--storage-options`` (parsed to a dict, or None) to a click command as ``storage_options``."""
    return click.option(
        OPTION, "storage_options", metavar="JSON", default=None, callback=_callback,
        help="fsspec options for an object-store cube (JSON or @file.json); credentials default to the AWS env/config.",
    )(command)


__all__ = ["OPTION", "parse_storage_options", "storage_options_option"]
