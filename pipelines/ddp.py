"""Start N torch DDP ranks on this machine through torch's elastic launcher (what ``torchrun`` runs).

``sarcube train --nproc N`` is ``torchrun --standalone --nproc-per-node N``
around the same function: each rank runs it with ``RANK``/``WORLD_SIZE`` set
and :func:`sarcube.models.distributed.init` joins the process group. Across
nodes, run ``torchrun`` itself (README, "Scaling out").
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

from sarcube.errors import InputError, SarcubeError

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
        return elastic_launch(config, entrypoint)(*args)
    except ChildFailedError as err:
        first = next(iter(err.failures.values()), None)
        message = first.message if first is not None and isinstance(first.message, str) else str(err)
        raise SarcubeError(f"a DDP rank failed: {message.splitlines()[0] if message else err}") from err
    finally:
        if caller_threads is None:  # the caller's own later subprocesses keep their default
            os.environ.pop(OMP_THREADS_ENV, None)


__all__ = ["launch"]
