"""Label events: which dated polygons each pair's ``label`` holds, so splits can keep one event in one split.

``sarcube add-layer --labels F --date-field D`` burns every dated polygon (an
*event*: one avalanche, one landslide) into each pair whose
(reference_time, activity_time] holds its date; pairs of two orbits over the
same days both hold it. The ``label`` variable then carries, as the JSON attr
``schema.ATTR_LABEL_EVENTS``, the ids of the events burnt into each pair and
each event's pixel box on the grid. ``chips.splits`` reads it to list every
split's events in ``split.json`` and to refuse one event in two splits.
Static (y, x) labels (glacier outlines, undated scars) carry no events.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.errors import InputError

#: fields ``add-layer`` takes event ids from when ``--id-field`` is not given (else the feature index)
DEFAULT_ID_FIELDS = ("event_id", "id")
#: ``id_field`` recorded when the ids are the features' positions in the file
FEATURE_INDEX = ""

_DIGITS = re.compile(r"(\d+)")
#: bounds within this many pixels of a pixel edge snap to it (float error of the inverse transform)
_BOX_EPS_PX = 1e-6

#: (row0, row1, col0, col1) pixels on the cube grid, end exclusive
PixelBox = tuple[int, int, int, int]


@dataclass(frozen=True)
class LabelEvents:
    """The events of a per-pair ``label``: ids per pair index and a pixel box per id."""

    #: per pair index (the label's ``pair`` dim), the ids of the events burnt into it
    pairs: tuple[tuple[str, ...], ...]
    #: event id -> the pixel box of its polygon(s) on the grid (clipped to the cube)
    boxes: Mapping[str, PixelBox] = field(default_factory=dict)
    #: the polygon field the ids come from (``FEATURE_INDEX``: the feature's position in the file)
    id_field: str = FEATURE_INDEX

    def of_pairs(self, pairs: Iterable[int]) -> set[str]:
        """Ids of the events held by any of ``pairs``."""
        return {e for p in pairs for e in self.pairs[p]}

    def holders(self) -> dict[str, list[int]]:
        """Event id -> the pairs holding it."""
        out: dict[str, list[int]] = {}
        for p, ids in enumerate(self.pairs):
            for e in ids:
                out.setdefault(e, []).append(p)
        return out

    def to_attr(self) -> str:
        boxes = {e: list(b) for e, b in self.boxes.items()}
        return json.dumps({"id_field": self.id_field, "pairs": [list(p) for p in self.pairs], "boxes": boxes})

    @classmethod
    def from_attr(cls, text: str) -> LabelEvents:
        d = json.loads(text)
        boxes = {str(e): tuple(int(v) for v in b) for e, b in d.get("boxes", {}).items()}
        return cls(tuple(tuple(str(e) for e in p) for p in d["pairs"]), boxes, str(d.get("id_field", FEATURE_INDEX)))


def event_id(value: object) -> str:
    """An event id as text: integral numbers without a decimal point (``3.0`` -> ``"3"``), anything else as written."""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _pixel_box(geom: Any, inverse: Any, shape: tuple[int, int]) -> PixelBox:
    """Rows and columns of the grid that ``geom``'s bounds cover (end exclusive, clipped to the grid)."""
    x0, y0, x1, y1 = geom.bounds
    cols, rows = zip(*(inverse @ xy for xy in ((x0, y0), (x0, y1), (x1, y0), (x1, y1))), strict=True)
    r0, r1 = max(0, math.floor(min(rows) + _BOX_EPS_PX)), min(shape[0], math.ceil(max(rows) - _BOX_EPS_PX))
    c0, c1 = max(0, math.floor(min(cols) + _BOX_EPS_PX)), min(shape[1], math.ceil(max(cols) - _BOX_EPS_PX))
    return r0, max(r0, r1), c0, max(c0, c1)


def events_of_polygons(
    geoms: Sequence[Any], ids: Sequence[str], member: np.ndarray, transform: Any, shape: tuple[int, int], id_field: str
) -> LabelEvents:
    """The events of burnt polygons: per pair the ids of those it holds (``member``: (polygon, pair) booleans),
    and per id the pixel box of its polygons (``transform``: the grid's affine of pixel corners)."""
    pairs = tuple(
        tuple(dict.fromkeys(e for e, m in zip(ids, member[:, p], strict=True) if m)) for p in range(member.shape[1])
    )
    boxes: dict[str, PixelBox] = {}
    inverse = ~transform
    for geom, e, burnt in zip(geoms, ids, member.any(axis=1), strict=True):
        if not burnt:
            continue
        b = _pixel_box(geom, inverse, shape)
        if e in boxes:
            o = boxes[e]
            b = (min(o[0], b[0]), max(o[1], b[1]), min(o[2], b[2]), max(o[3], b[3]))
        boxes[e] = b
    return LabelEvents(pairs, boxes, id_field)


def label_events(label: xr.DataArray) -> LabelEvents | None:
    """The events recorded on ``label`` (None for static labels and labels added without event ids)."""
    text = label.attrs.get(schema.ATTR_LABEL_EVENTS)
    if not text or schema.PAIR not in label.dims:
        return None
    events = LabelEvents.from_attr(str(text))
    if len(events.pairs) != label.sizes[schema.PAIR]:
        raise InputError(
            f"{schema.LABEL!r} records events for {len(events.pairs)} pairs but has {label.sizes[schema.PAIR]}: "
            "the pairs changed after the labels were added; re-run `sarcube add-layer --labels ... --overwrite`"
        )
    return events


def natural_order(ids: Iterable[str]) -> list[str]:
    """Ids sorted with their numbers in numeric order (``ev2`` before ``ev10``)."""
    return sorted(set(ids), key=lambda e: [int(t) if t.isdigit() else t for t in _DIGITS.split(e)])


__all__ = [
    "DEFAULT_ID_FIELDS",
    "FEATURE_INDEX",
    "LabelEvents",
    "PixelBox",
    "event_id",
    "events_of_polygons",
    "label_events",
    "natural_order",
]
