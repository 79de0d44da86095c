"""Inference in tiles: :func:`~sarcube.models.inference.predict_bands` in column panels of a storage chunk.

A band of the scene's full width grows with the area's side; a panel's tiles
do not. Each panel runs the windows touching it on its own input columns (plus
a window of halo) and blends them exactly as a full-width band would; the maps
of windows straddling two panels are handed to the next panel, so each window
runs once. Nothing here reads files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from sarcube.errors import InputError
from sarcube.models.device import autocast_context
from sarcube.models.inference import (
    DIHEDRAL_TRANSFORMS,
    IDENTITY,
    MaskedProbabilityFn,
    ProbabilityFn,
    TilingPlan,
    mirror_index,
    spline_profile,
    tta_predict,
)

#: real rows [y0, y1) and columns [x0, x1) of the scene's input channels -> (C, [T,] y1 - y0, x1 - x0) float tensor
TileReader = Callable[[int, int, int, int], torch.Tensor]


def predict_tiles(
    probability_fn: ProbabilityFn | MaskedProbabilityFn,
    read: TileReader,
    height: int,
    width: int,
    window: int,
    *,
    band_rows: int,
    tile_cols: int,
    tta: bool = True,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """:func:`predict_bands` in column panels of ``tile_cols``: yields ``(y0, x0, tile)``, tiles of ``band_rows``
    x ``tile_cols`` (the last ones smaller), panel by panel from the left, each top to bottom.

    Each panel runs the windows that touch it and reads only their input columns, so memory is a tile plus a
    window of halo, not a band of the scene's width; the maps of windows that straddle two panels are kept for
    the next one (a column of windows: memory grows with the height alone), so each window runs once. Each tile
    equals that part of :func:`predict_bands`' bands bit for bit (the same window maps blended in the same
    order) when the network's output for a window does not depend on the other windows of its batch.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    if band_rows < 1 or tile_cols < 1:
        raise InputError(f"band_rows={band_rows}, tile_cols={tile_cols} must be positive")
    plan = TilingPlan(height, width, window)
    transforms = DIHEDRAL_TRANSFORMS if tta else IDENTITY
    per_pass = max(1, batch_size // len(transforms))
    s, w = plan.stride, plan.window
    profile = spline_profile(w, device=device)

    # Summed 1-D weights over the windows covering each real row / column (for the normalisation).
    def coverage(length: int, n: int) -> torch.Tensor:
        total = torch.zeros(length, device=device)
        for k in range(n):
            a = plan.start(k)
            lo, hi = max(a, 0), min(a + w, length)
            total[lo:hi] += profile[lo - a : hi - a]
        return total

    row_cover, col_cover = coverage(height, plan.rows), coverage(width, plan.cols)
    # Real rows each window row reads (mirrored), and the lowest row any later window row still needs.
    needed = [mirror_index(torch.arange(plan.start(k), plan.start(k) + w), height) for k in range(plan.rows)]
    highs = [int(n.max()) for n in needed]
    keep_from = [int(n.min()) for n in needed]
    for k in range(plan.rows - 2, -1, -1):
        keep_from[k] = min(keep_from[k], keep_from[k + 1])
    needed = [n.to(device) for n in needed]
    def window_cols(x0: int, x1: int) -> tuple[int, int]:
        """The window columns touching real columns [x0, x1) (all of them for a full-width panel)."""
        j0 = max(0, (x0 + plan.pad - w) // s + 1) if x0 > 0 else 0
        return j0, (min(plan.cols, -(-(x1 + plan.pad) // s)) if x1 < width else plan.cols)

    handoff: dict[tuple[int, int], torch.Tensor] = {}  # (window row, column) -> maps the next panel needs too
    done_before = 0
    for x0 in range(0, width, tile_cols):
        x1 = min(x0 + tile_cols, width)
        j0, j1 = window_cols(x0, x1)
        next_j0 = window_cols(x1, min(x1 + tile_cols, width))[0] if x1 < width else j1
        panel = _Panel(plan, profile, needed, highs, keep_from, row_cover, col_cover[x0:x1], (j0, j1), (x0, x1),
                       read, band_rows, device)

        def progress(n: int, before: int = done_before) -> None:
            if on_batch is not None:
                on_batch(before + n)

        for y0, tile in panel.run(probability_fn, transforms, per_pass, progress, handoff, next_j0):
            yield y0, x0, tile
        done_before += panel.windows_run


class _Panel:
    """One column panel of :func:`predict_tiles`: windows ``cols`` (j0, j1) blended into real columns ``out``."""

    def __init__(self, plan, profile, needed, highs, keep_from, row_cover, col_cover, cols, out, read, band_rows,
                 device) -> None:
        self.plan, self.needed, self.highs, self.keep_from = plan, needed, highs, keep_from
        self.row_cover, self.col_cover, self.read, self.band_rows, self.device = (
            row_cover, col_cover, read, band_rows, device)
        (self.j0, self.j1), (self.x0, self.x1) = cols, out
        w, s = plan.window, plan.stride
        self.weight_cols = (profile[:, None] * profile[None, :]).reshape(1, w * w, 1)
        # mirrored columns [j0 s, (j1 - 1) s + w) the windows cover; their real columns and the span read
        self.span = (self.j1 - 1 - self.j0) * s + w
        strip = mirror_index(torch.arange(self.j0 * s - plan.pad, self.j0 * s - plan.pad + self.span), plan.width)
        self.c0, self.c1 = int(strip.min()), int(strip.max()) + 1
        self.strip_cols = (strip - self.c0).to(device)

    def run(
        self, probability_fn, transforms, per_pass, on_batch, handoff, next_j0
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Tiles top to bottom; window maps in ``handoff`` (row, column) are reused, those of columns >= ``next_j0``
        are left there for the next panel."""
        plan, device, band_rows = self.plan, self.device, self.band_rows
        height, s, w = plan.height, plan.stride, plan.window
        width = self.x1 - self.x0
        ncols = self.j1 - self.j0
        pinned = device.type == "cuda"
        buf = torch.zeros(0, device=device)  # input rows [buf0, next_read) on the device
        buf0 = next_read = 0
        nodata: dict[int, torch.Tensor] = {}  # band start -> NaN mask of that band's inputs (when any)

        def window_strip(k: int) -> torch.Tensor:
            """Input of window row k: (C, [T,] w, span), rows and columns mirrored at the edges."""
            nonlocal buf, buf0, next_read
            while next_read <= self.highs[k]:
                y1 = min(next_read + band_rows, height)
                block = self.read(next_read, y1, self.c0, self.c1).float()
                if block.shape[-2:] != (y1 - next_read, self.c1 - self.c0):
                    raise InputError(
                        f"input rows {next_read}..{y1}, columns {self.c0}..{self.c1} came back as "
                        f"{tuple(block.shape)}, expected (C, [T,] {y1 - next_read}, {self.c1 - self.c0})"
                    )
                if pinned:
                    block = block.pin_memory()
                block = block.to(device, non_blocking=True)
                missing = torch.isnan(block).flatten(0, -3).any(dim=0)[:, self.x0 - self.c0 : self.x1 - self.c0]
                if bool(missing.any()):
                    nodata[next_read] = missing
                buf = block if next_read == 0 else torch.cat([buf, block], dim=-2)
                next_read = y1
            drop = self.keep_from[k] - buf0
            if drop > 0:
                buf = buf[..., drop:, :]
                buf0 += drop
            return buf[..., self.needed[k] - buf0, :][..., self.strip_cols]

        # Blended sums over real rows [acc0, acc0 + len(acc)) of the panel's columns.
        acc = torch.zeros(band_rows + 2 * w, width, device=device)
        acc0 = emitted = completed = 0
        lead = self.x0 + plan.pad - self.j0 * s  # the panel's first column in the fold's output

        def blend_window_row(k: int, maps: torch.Tensor) -> None:
            """Overlap-add a row of window predictions (cols, w, w) into the accumulator."""
            nonlocal acc
            a = plan.start(k)
            lo, hi = max(a, 0), min(a + w, height)
            if hi - acc0 > acc.shape[0]:
                acc = torch.cat([acc, torch.zeros(hi - acc0 - acc.shape[0], width, device=device)])
            patches = maps.reshape(ncols, w * w).T.unsqueeze(0) * self.weight_cols  # (1, w*w, cols)
            row = F.fold(patches, output_size=(w, self.span), kernel_size=(w, w), stride=(1, s))[0, 0]
            acc[lo - acc0 : hi - acc0] += row[lo - a : hi - a, lead : lead + width]

        def finished_bands(final_rows: int) -> Iterator[tuple[int, torch.Tensor]]:
            nonlocal acc, acc0, emitted
            while emitted < height and min(emitted + band_rows, height) <= final_rows:
                y1 = min(emitted + band_rows, height)
                n = y1 - emitted
                band = acc[:n] / (self.row_cover[emitted:y1, None] * self.col_cover[None, :])
                missing = nodata.pop(emitted, None)
                if missing is not None:
                    band = band.masked_fill(missing, float("nan"))
                yield emitted, band.cpu()
                acc = torch.cat([acc[n:], torch.zeros(n, width, device=device)])
                acc0 += n
                emitted = y1

        pending: list[tuple[int, int, torch.Tensor]] = []  # (window row, column, chip)
        row_maps: dict[int, dict[int, torch.Tensor]] = {}
        self.windows_run = 0

        def keep(k: int, j: int, m: torch.Tensor) -> None:
            row_maps.setdefault(k, {})[j] = m
            if j >= next_j0:
                handoff[(k, j)] = m

        def blend_done() -> Iterator[tuple[int, torch.Tensor]]:
            # Window rows with every column done are blended; rows above the next window row are final.
            nonlocal completed
            while len(row_maps.get(completed, ())) == ncols:
                maps = row_maps.pop(completed)
                blend_window_row(completed, torch.stack([maps[j] for j in sorted(maps)]))
                completed += 1
                yield from finished_bands(height if completed == plan.rows else max(plan.start(completed), 0))

        def run_batch() -> Iterator[tuple[int, torch.Tensor]]:
            chips = torch.nan_to_num(torch.stack([c for _, _, c in pending]), nan=0.0)
            with torch.inference_mode(), autocast_context(device):
                maps = tta_predict(probability_fn, chips, transforms)
            for (k, j, _), m in zip(pending, maps, strict=True):
                keep(k, j, m)
            self.windows_run += len(pending)
            pending.clear()
            if on_batch is not None:
                on_batch(self.windows_run)
            yield from blend_done()

        for k in range(plan.rows):
            strip = None
            for j in range(self.j0, self.j1):
                m = handoff.pop((k, j), None)
                if m is not None:  # run by the panel to the left
                    keep(k, j, m)
                    yield from blend_done()
                    continue
                strip = window_strip(k) if strip is None else strip
                c = (j - self.j0) * s
                pending.append((k, j, strip[..., c : c + w]))
                if len(pending) >= per_pass:
                    yield from run_batch()
        if pending:
            yield from run_batch()


__all__ = ["TileReader", "predict_tiles"]
