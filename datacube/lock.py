"""One writer per cube: a lock beside the store, held by a whole writing step.

Every writing step (``build``, ``features``, ``add-layer``, ``predict``) holds
:func:`writer` on its cube from its first read of what to write to its last
attribute update, and every write in :mod:`~sarcube.datacube.store` and
:mod:`~sarcube.datacube.staging` takes it too (a no-op inside a step that holds
it), so two processes never interleave their writes nor lose each other's
attribute updates (read-modify-write under the lock).

The lock lives beside the store, ``<cube>.lock``, so removing or replacing the
store (``build --overwrite``) never removes a lock that is held; it exists
only while held and holds its owner (host, pid, verb, time) as JSON:

- local disk: an ``fcntl.flock`` on that file. The kernel drops it when the
  holder exits, however it exits, so a local lock is never stale (a file
  left by a killed holder is simply locked by the next writer).
- object storage (any fsspec URL but ``file://``): an object created only if
  absent (S3 ``If-None-Match: *``), holding the owner (host, pid, verb, time,
  token). The holder rewrites its time every :data:`HEARTBEAT_S`; a lock not
  refreshed for :data:`STALE_S` belongs to a process that died and is taken
  over (one taker wins through a second create-if-absent object). Clocks of
  the writing hosts are assumed to agree to well within :data:`STALE_S`.

A second writer stops with :class:`~sarcube.errors.CubeLockedError` naming the
holder, or waits up to ``wait_s`` seconds for it (``--wait`` in the CLI). The
lock is per process: nested :func:`writer` calls of one process (threads
included) share one lock. The DDP ranks of one multi-process ``predict`` write
under the lock their launcher (or rank 0) holds, through :func:`joined`.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sarcube.datacube import zarrio
from sarcube.errors import CubeLockedError

log = logging.getLogger(__name__)

#: suffix of the lock file / object beside a store
LOCK_SUFFIX = ".lock"
#: how often a holder polls a busy lock while it waits
POLL_S = 0.2
#: object-store locks: how often the holder refreshes its time, and when an unrefreshed lock is stale
HEARTBEAT_S = 20.0
STALE_S = 120.0
#: the step named in a lock taken by a plain store write (outside any step)
DEFAULT_VERB = "a sarcube write"

F = TypeVar("F", bound=Callable[..., Any])

_held: dict[str, _Held] = {}
_registry_lock = threading.RLock()


class _Held:
    """A lock this process holds: its release, and how many nested :func:`writer` calls use it."""

    def __init__(self, release: Any, owner: dict[str, Any]) -> None:
        self.release, self.owner, self.depth = release, owner, 1


def lock_path(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The filesystem and the path of ``path``'s lock (``<store>.lock``, beside it)."""
    fs, root = zarrio.fs_and_root(path, storage_options)
    return fs, f"{root}{LOCK_SUFFIX}"


def _is_local(fs: Any) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def _owner(verb: str) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "verb": verb,
        "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "token": uuid.uuid4().hex,
    }


def describe_owner(owner: Mapping[str, Any] | None) -> str:
    """``sarcube predict (pid 123 on host, since 2024-01-01T10:00:00Z)``, or a plain phrase when unknown."""
    if not owner:
        return "another process"
    pid, host, since = (owner.get(key, "?") for key in ("pid", "host", "time"))
    return f"{owner.get('verb', DEFAULT_VERB)} (pid {pid} on {host}, since {since})"


def _parse_owner(raw: bytes | str) -> dict[str, Any] | None:
    try:
        owner = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


# --- local disk: flock ------------------------------------------------------------

def _try_flock(path: str, owner: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    """Take the flock on ``path``: (release, None) when taken, (None, the holder's owner) when busy.

    The holder removes the file before it unlocks, so the file exists exactly
    while the lock is held; a lock taken on a file removed meanwhile is retried.
    """
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # a refusal names the lock file (the CLI says the fix)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = _parse_owner(os.pread(fd, 4096, 0))
            finally:
                os.close(fd)
            return None, holder
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed this file before unlocking: lock the new one
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(owner).encode(), 0)

    def release() -> None:
        try:
            os.unlink(path)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    return release, None


# --- object storage: a create-if-absent object with a heartbeat ----------------------

def _read_object(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        return _parse_owner(fs.cat_file(path))
    except FileNotFoundError:
        return None


def _age_s(owner: Mapping[str, Any]) -> float:
    try:
        stamp = dt.datetime.strptime(str(owner["time"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except (KeyError, ValueError):
        return float("inf")  # unreadable: treated as a dead holder's
    return (dt.datetime.now(dt.UTC) - stamp).total_seconds()


def _create(fs: Any, path: str, owner: Mapping[str, Any]) -> bool:
    """Write ``owner`` to ``path`` only if nothing is there; False when something is."""
    fs.invalidate_cache(path)
    try:
        fs.pipe_file(path, json.dumps(dict(owner)).encode(), mode="create")
    except FileExistsError:
        return False
    return True


def _dead_here(holder: dict[str, Any]) -> bool:
    """The holder ran on this host and its process is gone (killed): its lock need not age to be taken."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def _try_object(fs: Any, path: str, owner: dict[str, Any], stale_s: float) -> tuple[Any, dict[str, Any] | None]:
    """Take the lock object: (release, None) when taken, (None, the holder's owner) when busy."""
    if not _create(fs, path, owner):
        holder = _read_object(fs, path)
        if holder is None:  # released meanwhile: try again at the next poll
            return None, None
        if _age_s(holder) < stale_s and not _dead_here(holder):
            return None, holder
        # Stale (or its holder, on this host, is gone): only the process that creates the takeover object for
        # this holder's token may replace it.
        takeover = f"{path}.takeover-{holder.get('token', 'unknown')}"
        if not _create(fs, takeover, owner):
            return None, holder
        try:
            if _read_object(fs, path) != holder:
                return None, _read_object(fs, path)
            log.warning("taking over the stale writer lock of %s at %s", describe_owner(holder), path)
            fs.rm_file(path)
            if not _create(fs, path, owner):
                return None, _read_object(fs, path)
        finally:
            fs.rm_file(takeover)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(min(HEARTBEAT_S, stale_s / 3)):
            current = _read_object(fs, path)
            if current is None or current.get("token") != owner["token"]:
                log.error("the writer lock %s was taken over by %s", path, describe_owner(current))
                return
            owner["time"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            fs.pipe_file(path, json.dumps(owner).encode())

    beat = threading.Thread(target=heartbeat, name=f"sarcube-lock {path}", daemon=True)
    beat.start()

    def release() -> None:
        stop.set()
        beat.join()
        current = _read_object(fs, path)
        if current is not None and current.get("token") == owner["token"]:
            fs.rm_file(path)

    return release, None


@contextmanager
def writer(
    path: str | Path,
    verb: str = DEFAULT_VERB,
    *,
    wait_s: float = 0.0,
    storage_options: Mapping[str, Any] | None = None,
    stale_s: float = STALE_S,
) -> Iterator[dict[str, Any]]:
    """Hold the writer lock of the cube at ``path`` (it need not exist yet); yields the owner record.

    ``verb`` names the step in another writer's error message (``sarcube
    predict``). A held lock raises :class:`CubeLockedError` at once, or after
    ``wait_s`` seconds of polling.
    """
    fs, where = lock_path(path, storage_options)
    key = f"{fs.protocol}:{where}"
    with _registry_lock:
        held = _held.get(key)
        if held is not None:
            held.depth += 1
    if held is None:
        held = _acquire(fs, where, verb, wait_s, stale_s, path)
        with _registry_lock:
            _held[key] = held
    try:
        yield held.owner
    finally:
        with _registry_lock:
            held.depth -= 1
            last = held.depth == 0
            if last:
                del _held[key]
        if last:
            held.release()


def _acquire(fs: Any, where: str, verb: str, wait_s: float, stale_s: float, path: str | Path) -> _Held:
    owner = _owner(verb)
    deadline = time.monotonic() + max(0.0, wait_s)
    waited = False
    while True:
        if _is_local(fs):
            Path(where).parent.mkdir(parents=True, exist_ok=True)
            release, holder = _try_flock(where, owner)
        else:
            release, holder = _try_object(fs, where, owner, stale_s)
        if release is not None:
            return _Held(release, owner)
        if time.monotonic() >= deadline:
            hint = (
                "wait for it to finish, or rerun with --wait SECONDS"
                if not waited
                else f"still busy after --wait {wait_s:g}"
            )
            raise CubeLockedError(f"cube {str(path)!r} is being written by {describe_owner(holder)}: {hint}")
        if not waited:
            log.warning("cube %s is being written by %s: waiting up to %g s", path, describe_owner(holder), wait_s)
            waited = True
        time.sleep(POLL_S)


def _current_owner(fs: Any, where: str) -> dict[str, Any] | None:
    """The owner record in the lock at ``where`` (None when nobody holds it)."""
    if _is_local(fs):
        try:
            return _parse_owner(Path(where).read_bytes())
        except FileNotFoundError:
            return None
    return _read_object(fs, where)


@contextmanager
def joined(path: str | Path, token: str, storage_options: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Write under the writer lock another process of the same run holds (its owner ``token``); yields the owner.

    The DDP ranks of one ``sarcube predict`` write their regions under the lock
    of the process that launched them (or of rank 0 under ``torchrun``): one
    writer per cube still, in several processes. The holder must hold the lock
    for as long as the joined processes write; a lock not held under ``token``
    raises :class:`CubeLockedError`. Inside, every :func:`writer` on ``path`` is a no-op.
    """
    fs, where = lock_path(path, storage_options)
    key = f"{fs.protocol}:{where}"
    owner = _current_owner(fs, where)
    if owner is None or owner.get("token") != token:
        raise CubeLockedError(
            f"cube {str(path)!r}: the writer lock this process was to write under is held by "
            f"{describe_owner(owner) if owner else 'nobody'}, not by its run; rerun the step"
        )
    with _registry_lock:
        if key in _held:
            raise CubeLockedError(f"cube {str(path)!r}: this process already holds its writer lock")
        _held[key] = _Held(lambda: None, owner)
    try:
        yield owner
    finally:
        with _registry_lock:
            _held.pop(key, None)


def locked(func: F) -> F:
    """Run ``func`` (a store write with ``path`` and ``storage_options`` parameters) under :func:`writer`.

    A lazy write (``compute=False``) writes its chunks after the lock is
    released: a step computing one holds :func:`writer` around both.
    """
    signature = inspect.signature(func)

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind_partial(*args, **kwargs).arguments
        with writer(arguments["path"], storage_options=arguments.get("storage_options")):
            return func(*args, **kwargs)

    return run  # type: ignore[return-value]


def writing_step(verb: str, path: str = "cube") -> Callable[[F], F]:
    """Run a writing step under :func:`writer` on its ``path`` parameter, waiting up to its ``wait_s`` parameter.

    The step declares ``wait_s`` itself (documented, with its default); this
    only reads it, with ``storage_options`` when the step has one.
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            with writer(
                arguments[path],
                verb,
                wait_s=float(arguments["wait_s"]),
                storage_options=arguments.get("storage_options"),
            ):
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate


def holds(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True when this process holds the writer lock of ``path``."""
    fs, where = lock_path(path, storage_options)
    with _registry_lock:
        return f"{fs.protocol}:{where}" in _held


__all__ = ["HEARTBEAT_S", "LOCK_SUFFIX", "STALE_S", "describe_owner", "holds", "joined", "lock_path", "locked",
           "writer", "writing_step"]
