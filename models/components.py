"""Connected components of a mask read tile by tile: memory for one tile and one row of ids, not the image.

Each tile is labelled alone (``scipy.ndimage.label``, 8- or 4-connected as
:func:`sarcube.models.metrics.connected_components`); components that touch
across a tile border (including diagonally across a corner with
8-connectivity) are merged with a union-find over the tiles' provisional ids.
Tiles come in raster order of a regular grid (:func:`tile_windows`); only the
bottom row of ids of the previous tile row and the right column of the
previous tile are kept to find those contacts. What is kept per component
(bounding box, first pixel in raster order, pixel count, flags such as "holds
a labelled pixel") is reduced over the merged provisional ids, so the objects
and their properties equal those of labelling the whole image at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sarcube.models.metrics import IGNORE_LABEL, structure

#: a window of an image: (y0, y1, x0, x1), ends exclusive
TileWindow = tuple[int, int, int, int]


def tile_windows(height: int, width: int, tile: int) -> list[TileWindow]:
    """The ``tile`` x ``tile`` windows (the last ones shorter) covering an image, in raster order."""
    return [
        (y0, min(y0 + tile, height), x0, min(x0 + tile, width))
        for y0 in range(0, height, tile)
        for x0 in range(0, width, tile)
    ]


class TiledComponents:
    """Connected components of a ``(height, width)`` mask given tile by tile (module docstring).

    ``add(window, mask, flags)`` labels one tile; ``flags`` are masks of the tile
    (e.g. "positive and labelled"), and a component's flag ``i`` is set when any of
    its pixels is in ``flags[i]``. After the last tile, :meth:`objects` returns the
    merged components in the order ``ndimage.label`` numbers them on the whole
    image (by their first pixel in raster order).
    """

    def __init__(self, height: int, width: int, connectivity: int = 8, n_flags: int = 0) -> None:
        self.structure = structure(connectivity)
        self.diagonal = connectivity == 8
        self.width = width
        self.n_flags = n_flags
        # per provisional id (0: background): parent, first pixel (flat index), pixel count, box, flag bits
        self._parent = [np.zeros(1, dtype=np.int64)]
        self._first = [np.zeros(1, dtype=np.int64)]
        self._count = [np.zeros(1, dtype=np.int64)]
        self._box = [np.zeros((1, 4), dtype=np.int64)]
        self._flags = [np.zeros(1, dtype=np.int64)]
        self._n = 0
        self._above = np.zeros(width, dtype=np.int64)  # ids of the row above the current tile row
        self._below = np.zeros(width, dtype=np.int64)  # ids of the current tile row's bottom row
        self._left: np.ndarray | None = None  # ids of the column left of the current tile
        self._row_y0 = -1
        self._pairs: list[np.ndarray] = []

    def add(self, window: TileWindow, mask: np.ndarray, flags: Sequence[np.ndarray] = ()) -> None:
        """Label one tile (tiles in raster order, each tile row at the same rows)."""
        from scipy import ndimage

        y0, y1, x0, x1 = window
        if y0 != self._row_y0:  # a new tile row: its top touches the previous row's bottom
            self._above, self._below = self._below, np.zeros(self.width, dtype=np.int64)
            self._row_y0, self._left = y0, None
        ids, n = ndimage.label(mask, structure=self.structure)
        ids = ids.astype(np.int64)
        gid = np.where(ids > 0, ids + self._n, 0)
        flat = (np.arange(y0, y1)[:, None] * self.width + np.arange(x0, x1)[None, :])
        first = np.full(n + 1, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, ids.ravel(), flat.ravel())
        count = np.bincount(ids.ravel(), minlength=n + 1)
        box = np.zeros((n + 1, 4), dtype=np.int64)
        for k, sl in enumerate(ndimage.find_objects(ids), start=1):
            if sl is not None:
                box[k] = (sl[0].start + y0, sl[0].stop + y0, sl[1].start + x0, sl[1].stop + x0)
        bits = np.zeros(n + 1, dtype=np.int64)
        for i, f in enumerate(flags):
            bits[np.unique(ids[f & (ids > 0)])] |= 1 << i
        self._parent.append(np.arange(self._n + 1, self._n + n + 1, dtype=np.int64))
        self._first.append(first[1:])
        self._count.append(count[1:])
        self._box.append(box[1:])
        self._flags.append(bits[1:])
        self._n += n
        shifts = (-1, 0, 1) if self.diagonal else (0,)
        if y0 > 0:  # the tile's top row against the row above (x0-1 .. x1 with diagonals)
            top = gid[0]
            for d in shifts:
                lo, hi = max(0, -(x0 + d)), min(top.size, self.width - (x0 + d))
                self._pairs.append(np.stack([top[lo:hi], self._above[x0 + d + lo : x0 + d + hi]], 1))
        if x0 > 0 and self._left is not None:  # its left column against the previous tile's right column
            col = gid[:, 0]
            for d in shifts:
                lo, hi = max(0, -d), min(col.size, col.size - d)
                self._pairs.append(np.stack([col[lo:hi], self._left[lo + d : hi + d]], 1))
        self._below[x0:x1] = gid[-1]
        self._left = gid[:, -1]

    def _roots(self) -> np.ndarray:
        """Root of every provisional id after merging the contacts."""
        parent = np.concatenate(self._parent)
        pairs = np.concatenate(self._pairs) if self._pairs else np.zeros((0, 2), dtype=np.int64)
        pairs = np.unique(pairs[(pairs[:, 0] > 0) & (pairs[:, 1] > 0)], axis=0)

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for a, b in pairs.tolist():
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        while True:  # every id straight to its root
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                return parent
            parent = nxt

    def objects(self) -> dict[str, np.ndarray]:
        """The merged components, numbered as on the whole image: ``first`` (flat index of the first pixel),
        ``count`` (pixels), ``box`` (y0, y1, x0, x1), ``flags`` (bits), ``root`` (provisional id -> object
        index, -1 for the background)."""
        roots = self._roots()
        first = np.concatenate(self._first)
        count, box, flags = (np.concatenate(a) for a in (self._count, self._box, self._flags))
        uniq, inverse = np.unique(roots[1:], return_inverse=True)
        m = uniq.size
        out_first = np.full(m, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(out_first, inverse, first[1:])
        order = np.argsort(out_first, kind="stable")
        rank = np.empty(m, dtype=np.int64)
        rank[order] = np.arange(m)
        index = rank[inverse]
        out_box = np.zeros((m, 4), dtype=np.int64)
        out_box[:, [0, 2]] = np.iinfo(np.int64).max
        np.minimum.at(out_box[:, 0], index, box[1:, 0])
        np.maximum.at(out_box[:, 1], index, box[1:, 1])
        np.minimum.at(out_box[:, 2], index, box[1:, 2])
        np.maximum.at(out_box[:, 3], index, box[1:, 3])
        out_flags = np.zeros(m, dtype=np.int64)
        np.bitwise_or.at(out_flags, index, flags[1:])
        return {
            "first": out_first[order],
            "count": np.bincount(index, weights=count[1:], minlength=m).astype(np.int64),
            "box": out_box,
            "flags": out_flags,
            "root": np.r_[-1, index],
        }


def box_cover(boxes: np.ndarray, window: TileWindow) -> np.ndarray:
    """(rows, cols) bool of ``window``: covered by any of ``boxes`` (N, 4: y0, y1, x0, x1), by 2-D prefix sums."""
    y0, y1, x0, x1 = window
    h, w = y1 - y0, x1 - x0
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    b = b[(b[:, 0] < y1) & (b[:, 1] > y0) & (b[:, 2] < x1) & (b[:, 3] > x0)]
    r0, r1 = np.clip(b[:, 0] - y0, 0, h), np.clip(b[:, 1] - y0, 0, h)
    c0, c1 = np.clip(b[:, 2] - x0, 0, w), np.clip(b[:, 3] - x0, 0, w)
    diff = np.zeros((h + 1, w + 1), dtype=np.int64)
    np.add.at(diff, (r0, c0), 1)
    np.add.at(diff, (r0, c1), -1)
    np.add.at(diff, (r1, c0), -1)
    np.add.at(diff, (r1, c1), 1)
    return diff.cumsum(0).cumsum(1)[:h, :w] > 0


class TiledObjects:
    """Object TP/FN/FP and bounding-box IoU counts of one image given tile by tile (the rules of
    :mod:`sarcube.models.metrics`): :meth:`add` every tile (positive mask, label), then :meth:`box_counts` every
    tile again (the boxes are known once every object is whole)."""

    def __init__(self, height: int, width: int, connectivity: int = 8) -> None:
        self.truth = TiledComponents(height, width, connectivity, n_flags=1)  # flag: hit by a positive pixel
        self.pred = TiledComponents(height, width, connectivity, n_flags=2)  # flags: touching, counted
        self._objects: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None

    def add(self, window: TileWindow, positive: np.ndarray, label: np.ndarray) -> None:
        truth = label == 1
        hit = positive & truth
        self.truth.add(window, truth, [hit])
        self.pred.add(window, positive, [hit, positive & (label != IGNORE_LABEL)])

    def _done(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        if self._objects is None:
            self._objects = (self.truth.objects(), self.pred.objects())
        return self._objects

    def counts(self) -> dict[str, int]:
        """tp (labelled objects hit), fn (missed), fp (predicted objects touching none, not all on label 255)."""
        truth, pred = self._done()
        tp = int(np.count_nonzero(truth["flags"] & 1))
        fp = int(np.count_nonzero((pred["flags"] & 2) & ~((pred["flags"] & 1) << 1)))
        return {"tp": tp, "fn": int(truth["flags"].size) - tp, "fp": fp}

    def box_counts(self, window: TileWindow, label: np.ndarray) -> tuple[int, int]:
        """(intersection, union) of the labelled and predicted objects' box masks over the tile's non-255 pixels."""
        truth, pred = self._done()
        valid = label != IGNORE_LABEL
        lab_boxes, pred_boxes = box_cover(truth["box"], window), box_cover(pred["box"], window)
        inter, union = lab_boxes & pred_boxes & valid, (lab_boxes | pred_boxes) & valid
        return int(np.count_nonzero(inter)), int(np.count_nonzero(union))


__all__ = ["TileWindow", "TiledComponents", "TiledObjects", "box_cover", "tile_windows"]
