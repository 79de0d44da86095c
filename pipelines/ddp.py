"""Start N torch DDP ranks on this machine through torch's elastic launcher (what ``torchrun`` runs).

``sarcube train --nproc N`` is ``torchrun --standalone --nproc-per-node N``
around the same function: each rank runs it with ``RANK``/``WORLD_SIZE`` set
and :func:`sarcube.models.distributed.init` joins the process group. Across
nodes, run ``torchrun`` itself (README, "Scaling out"). :func:`cube_writer`
is the cube's one writer lock for all ranks of a writing step (``predict``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarcube.datacube import lock
from sarcube.errors import CubeLockedError, InputError, SarcubeError

if TYPE_CHECKING:
    from sarcube.models.distributed import Ranks

#: OMP threads per rank when the caller set none (torchrun's default too: ranks share the cores)
OMP_THREADS_ENV = "OMP_NUM_THREADS"


def launch(nproc: int, entrypoint: Callable[..., Any], *args: Any) -> dict[int, Any]:
    """Run ``entrypoint(*args)`` on ``nproc`` local ranks (rendezvous on a free loopback port); rank -> result.

    ``entrypoint`` and ``args`` must pickle (the ranks are spawned processes).
    A rank that raises fails the launch with its error's message.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if int(nproc) < 1:
        raise InputError(f"--nproc {nproc}: give a number of processes >= 1")
    caller_threads = os.environ.get(OMP_THREADS_ENV)
    os.environ.setdefault(OMP_THREADS_ENV, "1")  # the agent hands it to the ranks
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=int(nproc), run_id=str(uuid.uuid4()),
        rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, start_method="spawn",
    )
    try:
        return elastic_launch(config, _recorded)(entrypoint, *args)
    except ChildFailedError as err:
        raise _rank_error(_failure_message(err)) from err
    finally:
        if caller_threads is None:  # the caller's own later subprocesses keep their default
            os.environ.pop(OMP_THREADS_ENV, None)


def _failure_message(err: Any) -> str:
    """The first line of the first failed rank's error (its recorded exception, or how it died)."""
    first = err.get_first_failure()[1] if err.failures else None
    message = first.message if first is not None else ""
    if isinstance(message, dict):  # recorded by _recorded: {"message": "ValueError: ...", "extraInfo": ...}
        message = message.get("message", "")
    lines = [line for line in str(message or err).splitlines() if line.strip()]
    return lines[0] if lines else "see its output above"


def _rank_error(message: str) -> SarcubeError:
    """The launcher's error for a rank's first error line ``Name: text``: the same sarcube error class (so
    the CLI exits with its code, e.g. 2 for bad input), else a :class:`SarcubeError`."""
    from sarcube import errors

    name, sep, text = message.partition(": ")
    kind = getattr(errors, name, None) if sep else None
    if isinstance(kind, type) and issubclass(kind, SarcubeError):
        try:
            return kind(f"a DDP rank failed: {text}")
        except TypeError:  # a class with its own constructor
            pass
    return SarcubeError(f"a DDP rank failed: {message}")


def _recorded(entrypoint: Callable[..., Any], *args: Any) -> Any:
    """``entrypoint(*args)`` in a rank, an exception recorded for the launcher (its message names the error)."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(entrypoint)(*args)


@contextmanager
def cube_writer(
    ranks: Ranks,
    cube: str | Path,
    verb: str,
    *,
    token: str | None = None,
    wait_s: float = 0.0,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """Hold the cube's one writer lock for every rank of a writing step.

    One process takes :func:`lock.writer` as any step does. Ranks started by
    :func:`launch` get the ``token`` of the lock their launcher holds (until
    they all exit) and join it. Under ``torchrun`` (no token) rank 0 takes the
    lock, waiting up to ``wait_s``, and sends its token to the others, which
    join it; a refusal stops every rank with rank 0's message; rank 0 lets go
    only after every rank is done (a barrier at the end).
    """
    from sarcube.models import distributed

    if not ranks.distributed:
        with lock.writer(cube, verb, wait_s=wait_s, storage_options=storage_options):
            yield
        return
    with ExitStack() as stack:
        if token is None:
            refusal = None
            if ranks.is_main:
                try:
                    held = lock.writer(cube, verb, wait_s=wait_s, storage_options=storage_options)
                    token = stack.enter_context(held)["token"]
                except CubeLockedError as err:
                    refusal = str(err)
            token, refusal = distributed.from_main(ranks, lambda: (token, refusal))
            if refusal is not None:
                raise CubeLockedError(refusal)
        if not lock.holds(cube, storage_options):
            stack.enter_context(lock.joined(cube, str(token), storage_options))
        yield
        distributed.barrier(ranks)


__all__ = ["cube_writer", "launch"]
