"""Retries with exponential backoff: one schedule for asset reads, STAC requests and Zenodo uploads.

A failed try is retried after ``backoff_s * 2**attempt`` seconds (attempt 0
first), unless an HTTP server says how long to wait (``Retry-After``,
``X-RateLimit-Reset``), and never longer than a policy's ``max_wait_s``.
:func:`retry` runs an action under that schedule (asset reads);
:class:`RetryPolicy` carries it into an HTTP client (the Zenodo client), which
also asks :func:`server_wait_s`. ``$SARCUBE_RETRY_BACKOFF_S`` overrides the
first delay of reads and STAC requests (0 in tests).
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sarcube.datacube.redaction import redact
from sarcube.errors import InputError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: HTTP answers worth retrying: rate limited, or a server error that may pass
RETRY_STATUSES = (429, 500, 502, 503, 504)
#: asset reads: attempts and the first backoff delay (doubled each time)
READ_ATTEMPTS = 4
READ_BACKOFF_S = 0.5
#: environment variable overriding the first backoff delay of reads and STAC requests (e.g. 0 in tests)
RETRY_BACKOFF_ENV = "SARCUBE_RETRY_BACKOFF_S"


def retry_backoff_s(default: float = READ_BACKOFF_S) -> float:
    """First retry delay: ``$SARCUBE_RETRY_BACKOFF_S`` or ``default``."""
    try:
        return float(os.environ.get(RETRY_BACKOFF_ENV, default))
    except ValueError as err:
        raise InputError(f"{RETRY_BACKOFF_ENV}={os.environ[RETRY_BACKOFF_ENV]!r} is not a number of seconds") from err


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry (429, 5xx and connection errors for an HTTP client)."""

    #: retries after the first try
    retries: int = 5
    #: first wait, doubled each retry, unless the server says how long (Retry-After, X-RateLimit-Reset)
    backoff_s: float = 2.0
    #: longest single wait, whatever the server asks (a Retry-After of hours is capped, and logged)
    max_wait_s: float = 300.0
    #: connect/read timeout of one request
    timeout_s: float = 120.0
    #: the function that waits (tests pass a recorder)
    sleep: Callable[[float], Any] = time.sleep

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff_s < 0 or self.max_wait_s < 0 or self.timeout_s <= 0:
            raise InputError(f"{self!r}: retries, backoff_s and max_wait_s must be >= 0 and timeout_s > 0")

    def delay_s(self, attempt: int, asked_s: float | None = None) -> float:
        """Seconds to wait after failed try ``attempt`` (0 first): ``asked_s`` if the server said, else the backoff."""
        return min(asked_s if asked_s is not None else self.backoff_s * 2**attempt, self.max_wait_s)


def retry(
    action: Callable[[], T],
    *,
    retry_on: tuple[type[BaseException], ...],
    attempts: int = READ_ATTEMPTS,
    backoff_s: float = READ_BACKOFF_S,
    what: str = "request",
) -> T:
    """Call ``action`` until it succeeds, sleeping ``backoff_s * 2**k`` between tries.

    Re-raises the last error after ``attempts`` tries.
    """
    policy = RetryPolicy(retries=attempts - 1, backoff_s=backoff_s, max_wait_s=math.inf)
    for attempt in range(attempts):
        try:
            return action()
        except retry_on as err:
            if attempt == attempts - 1:
                raise
            delay = policy.delay_s(attempt)
            log.warning(
                "%s failed (%s); retry %d/%d in %.1f s", what, redact(str(err)), attempt + 1, attempts - 1, delay
            )
            policy.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def server_wait_s(response: Any, now: float) -> float | None:
    """Seconds an HTTP answer asks us to wait (Retry-After, or X-RateLimit-Reset when the quota is spent)."""
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(retry_after)
                return max(0.0, when.timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = response.headers.get("X-RateLimit-Reset")
    remaining = response.headers.get("X-RateLimit-Remaining")
    if reset and (response.status_code == 429 or remaining == "0"):
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            return None
    return None


__all__ = [
    "READ_ATTEMPTS",
    "READ_BACKOFF_S",
    "RETRY_BACKOFF_ENV",
    "RETRY_STATUSES",
    "RetryPolicy",
    "retry",
    "retry_backoff_s",
    "server_wait_s",
]
