"""The torch seam over :mod:`sarcube.datacube.chips` (like xbatcher's ``loaders/torch.py``).

:class:`ChipStream` is an ``IterableDataset`` that yields ready *batches*:
each DataLoader worker takes a disjoint shard of the blocks
(``torch.utils.data.get_worker_info``), reads each block once
(:func:`~sarcube.datacube.chips.batches.load_block`, the next block on a reader
thread meanwhile), mixes its chips through a
shuffle buffer and cuts batches from the blocks in memory
(:func:`~sarcube.datacube.chips.batches.gather_batch`); augmentation runs in the
worker, per chip, with the same transform on inputs and labels. Use it with
``DataLoader(stream, batch_size=None)`` (see :func:`make_loader`), which
prefetches in the workers and pins memory for CUDA.

:class:`ChipDataset` is the map-style twin (one chip per index, read on its
own): handy for inspection, slow for training.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from sarcube.datacube import chips, schema
from sarcube.datacube.chips.batches import LoadedBlock, gather_batch, load_block
from sarcube.models.augment import Augmenter
from sarcube.models.config import AugmentConfig

#: a batch: inputs (B, C, [T,] H, W) float32, labels (B, H, W) uint8, chip ids (B,) int64
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
#: a chip in the shuffle buffer: its loaded block, its origin in the block, its chip id
Chip = tuple[LoadedBlock, int, int, int]


#: glibc ``mallopt`` parameters (malloc.h) and the values a streaming process uses
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_HEAP_TRIM_BYTES = 256 * 2**20
_HEAP_TOP_PAD_BYTES = 64 * 2**20
_MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's maximum on 64-bit
_heap_kept = False


def keep_block_memory() -> None:
    """Let this process reuse freed block buffers instead of returning them to the OS (glibc only).

    Each block decodes into fresh multi-MB arrays; by default glibc maps them
    afresh and unmaps them when freed, so every block page-faults ~13 MB in again
    (measured: ~28k faults, a third of an epoch of benchmarks/chips.py). Keeping up
    to ``_HEAP_TRIM_BYTES`` of freed heap makes the next block reuse warm pages.
    A no-op elsewhere (macOS, Windows, musl) and after the first call.
    """
    global _heap_kept
    if _heap_kept:
        return
    _heap_kept = True
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _HEAP_TRIM_BYTES)
        libc.mallopt(_M_TOP_PAD, _HEAP_TOP_PAD_BYTES)
    except (OSError, AttributeError):
        pass  # not glibc: the allocator keeps its own policy


def open_for_reading(cube: str | Path, storage_options: Mapping[str, Any] | None = None) -> Any:
    """The cube with lazy backend arrays (no dask): a window read decodes just its chunks."""
    return schema.open_cube(cube, chunks=None, validate=False, storage_options=storage_options)


class ChipStream(IterableDataset):
    """Batches of chips streamed block by block from a cube.

    Parameters
    ----------
    cube : path of the cube (each worker opens it itself)
    resolved : input channels (``chips.resolve_channels``)
    mean, std : per-channel normalisation (training split)
    blocks : the blocks to read (``chips.blocks``); chip ids follow their order
    size : chip side, pixels
    batch_size : chips per batch
    shuffle : shuffle block order and chips (through a buffer of ``shuffle_buffer`` chips)
    augment : augmentation (None = none); with ``train=False`` only the centre crop applies
    seed : base seed; batches depend only on (seed, epoch, number of workers)
    drop_singletons : skip a last batch of one chip (BatchNorm cannot train on it)
    storage_options : fsspec options of an object-store cube

    Under DDP, :meth:`set_ranks` gives each rank its own blocks (each shuffled
    epoch's block order dealt out over ranks x loader workers): the ranks' chip
    sets are disjoint and together cover the epoch.
    """

    def __init__(
        self,
        cube: str | Path,
        resolved: chips.ResolvedChannels,
        mean: Sequence[float],
        std: Sequence[float],
        blocks: Sequence[chips.Block],
        size: int,
        *,
        batch_size: int = 16,
        shuffle: bool = True,
        shuffle_buffer: int = 1024,
        augment: AugmentConfig | None = None,
        train: bool = True,
        seed: int = 0,
        drop_singletons: bool = False,
        storage_options: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.cube = str(cube)
        self.storage_options = dict(storage_options) if storage_options else None
        self.rank, self.world_size = 0, 1
        self.resolved = resolved
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.blocks = list(blocks)
        self.size = int(size)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.shuffle_buffer = max(int(shuffle_buffer), self.batch_size)
        self.augmenter = Augmenter(augment, train=train) if augment is not None else None
        self.seed = int(seed)
        self.drop_singletons = drop_singletons
        self.epoch = 0
        counts = np.array([b.oy.size for b in self.blocks], dtype=np.int64)
        self._first_id = np.concatenate([[0], np.cumsum(counts)])
        self._ds: Any = None
        self._cache = chips.StaticCache()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_ds"] = None  # each worker opens its own handle
        state["_cache"] = chips.StaticCache()
        return state

    @property
    def n_chips(self) -> int:
        return int(self._first_id[-1])

    def __len__(self) -> int:
        """Batches per epoch (upper bound with several workers)."""
        return max(1, -(-self.n_chips // self.batch_size)) if self.n_chips else 0

    def set_epoch(self, epoch: int) -> None:
        """Reseed shuffling and augmentation for ``epoch`` (call before iterating)."""
        self.epoch = int(epoch)

    def set_ranks(self, rank: int, world_size: int) -> None:
        """Stream only rank ``rank``'s share of the blocks (of ``world_size`` DDP ranks)."""
        self.rank, self.world_size = int(rank), int(world_size)

    def _dataset(self) -> Any:
        if self._ds is None:
            self._ds = open_for_reading(self.cube, self.storage_options)
        return self._ds

    def _block_order(self) -> np.ndarray:
        order = np.arange(len(self.blocks))
        if self.shuffle:
            np.random.default_rng([self.seed, self.epoch]).shuffle(order)
        return order

    def _shard(self) -> tuple[list[int], int]:
        """This loader worker's blocks and its id among all ranks' workers (rank-major)."""
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        shard_id, n_shards = self.rank * nw + wid, self.world_size * nw
        return self._block_order()[shard_id::n_shards].tolist(), shard_id

    def batches_in_epoch(self, num_workers: int = 0) -> int:
        """Batches this rank's loader (with ``num_workers`` workers) yields in the current epoch."""
        nw = max(1, int(num_workers))
        order, total = self._block_order(), 0
        for wid in range(nw):
            shard = order[self.rank * nw + wid :: self.world_size * nw]
            n = int(sum(self.blocks[b].oy.size for b in shard))
            total += -(-n // self.batch_size) - int(self.drop_singletons and n % self.batch_size == 1)
        return total

    def _chips(self, shard: list[int]) -> Iterator[Chip]:
        """Chips of the shard's blocks, each block read once, the next one read while this one's chips go out.

        A chip refers to its loaded block (sliding-window views made once per
        block), so cutting a batch is one gather per block and channel. One
        reader thread decodes block k+1 (zarr, blosc) while the caller cuts
        and normalises block k's chips (the numba gather releases the GIL);
        every block load runs on that thread, so the static cache has one user.
        """
        if not shard:
            return
        ds = self._dataset()

        def load(b: int) -> LoadedBlock:
            return load_block(ds, self.resolved, self.blocks[b], self.size, self._cache)

        with ThreadPoolExecutor(1, thread_name_prefix="sarcube-blocks") as reader:
            pending = reader.submit(load, shard[0])
            for k, b in enumerate(shard):
                loaded = pending.result()
                if k + 1 < len(shard):
                    pending = reader.submit(load, shard[k + 1])
                block, first = self.blocks[b], int(self._first_id[b])
                for i in range(block.oy.size):
                    yield loaded, int(block.oy[i]), int(block.ox[i]), first + i

    def __iter__(self) -> Iterator[Batch]:
        keep_block_memory()
        shard, wid = self._shard()
        rng = np.random.default_rng([self.seed, self.epoch, wid, 1])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        pool: list[Chip] = []
        for item in self._chips(shard):
            pool.append(item)
            if len(pool) >= (self.shuffle_buffer if self.shuffle else self.batch_size):
                yield self._batch(pool, rng, gen)
        while pool:
            if len(pool) == 1 and self.drop_singletons:
                return
            yield self._batch(pool, rng, gen)

    def _batch(self, pool: list[Chip], rng: np.random.Generator, gen: torch.Generator) -> Batch:
        n = min(self.batch_size, len(pool))
        if self.shuffle:
            picked = []
            for _ in range(n):  # swap-remove random entries
                j = int(rng.integers(len(pool)))
                pool[j], pool[-1] = pool[-1], pool[j]
                picked.append(pool.pop())
        else:
            picked, pool[:] = pool[:n], pool[n:]
        x, y = gather_batch([(block, y0, x0) for block, y0, x0, _ in picked], self.mean, self.std)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        ids = torch.tensor([p[3] for p in picked], dtype=torch.int64)
        if self.augmenter is not None and (self.augmenter.train or self.augmenter.config.crop):
            pairs = [self.augmenter(xt[i], yt[i], gen) for i in range(n)]
            xt = torch.stack([p[0] for p in pairs])
            yt = torch.stack([p[1] for p in pairs])
        return xt, yt, ids


class ChipDataset(Dataset):
    """Map-style chips: index -> (inputs, labels), each read from the cube on its own."""

    def __init__(
        self,
        cube: str | Path,
        resolved: chips.ResolvedChannels,
        mean: Sequence[float],
        std: Sequence[float],
        table: chips.ChipTable,
        storage_options: Mapping[str, Any] | None = None,
    ):
        self.cube = str(cube)
        self.storage_options = dict(storage_options) if storage_options else None
        self.resolved = resolved
        self.mean, self.std = tuple(mean), tuple(std)
        self.table = table
        self._ds: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ds": None}

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._ds is None:
            self._ds = open_for_reading(self.cube, self.storage_options)
        t = self.table
        pair = None if t.pair[i] < 0 else int(t.pair[i])
        window = (int(t.y0[i]), int(t.y0[i]) + t.size, int(t.x0[i]), int(t.x0[i]) + t.size)
        x = chips.assemble(self._ds, self.resolved, pair, window, self.mean, self.std)
        y = chips.read_labels(self._ds, pair, window)
        return torch.from_numpy(x), torch.from_numpy(y)


def make_loader(
    stream: ChipStream, *, num_workers: int = 0, pin_memory: bool | None = None, prefetch_factor: int = 4
) -> DataLoader:
    """A DataLoader over a :class:`ChipStream` (batches come ready: ``batch_size=None``)."""
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    kwargs: dict[str, Any] = {"batch_size": None, "num_workers": num_workers, "pin_memory": pin}
    if num_workers > 0:
        kwargs["prefetch_factor"] = prefetch_factor
    return DataLoader(stream, **kwargs)


__all__ = ["Batch", "ChipDataset", "ChipStream", "make_loader", "open_for_reading"]
