"""Where tensors run: the CUDA GPU when there is one, the CPU otherwise."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from sarcube.errors import InputError


def pick_device(prefer: str | None = None) -> torch.device:
    """The device to run on.

    ``prefer=None`` (or ``"auto"``): ``cuda`` when a GPU is visible, else ``cpu``.
    ``"cpu"``, ``"cuda"`` or ``"cuda:K"`` ask for one; asking for CUDA without a GPU
    raises :class:`~sarcube.errors.InputError`.
    """
    if prefer is None or prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(prefer)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device {prefer!r}: not a torch device; use auto, cpu, cuda or cuda:K") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {prefer!r}: no CUDA GPU is visible; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {prefer!r}: only {torch.cuda.device_count()} CUDA device(s); use cuda:0..")
    elif device.type != "cpu":
        raise InputError(f"device {prefer!r}: sarcube runs on cpu or cuda; use auto, cpu, cuda or cuda:K")
    return device


def autocast_context(device: torch.device | str) -> AbstractContextManager:
    """bf16 autocast on CUDA (halves activation memory, tensor cores); no-op on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()
