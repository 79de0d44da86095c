"""Chips cut from a cube: input channels, the chip grid, splits that do not leak, selection, blocks.

No torch here (``pipelines/loaders.py`` is the torch seam). The flow ``train`` runs:

1. :func:`resolve_channels` checks a preset's :class:`ChannelSpec` list
   against the cube (a missing variable raises
   :class:`~sarcube.errors.MissingVariableError` naming the
   ``sarcube features`` flag that makes it) and picks the one orbit its
   series and event-mean channels read (:func:`run_orbit`). (:mod:`.channels`)
2. :func:`chip_counts` counts positive and labelled pixels per chip of a
   :class:`ChipSpec` grid from a coarsened label map: no chip is loaded to be
   selected. (:mod:`.chip_grid`)
3. :func:`make_split` assigns spatial tiles (aligned to the chip grid) or
   held-out time windows (every pair of every orbit overlapping them, with a
   purge gap; :mod:`.windows`) to train/val/test, as a :class:`SplitPlan`
   (``split.json``, with each split's pairs and label events);
   :func:`check_split` refuses one label event in two splits; :func:`split_mask`
   gives a pair's pixels in a split for ``evaluate``. (:mod:`.splits`)
4. :func:`chip_table` keeps only chips that lie fully inside one tile,
   :func:`select` applies a policy per split, :func:`check_selection` refuses
   empty splits, :func:`train_statistics` computes mean/std over the training
   split only. (:mod:`.selection`)
5. :func:`blocks` groups the selected chips into chunk-aligned blocks. (:mod:`.batches`)

What the torch loader (``ChipStream``) calls per epoch, from :mod:`.batches`:
:func:`load_block` (each block read once) and :func:`gather_batch` (chips cut
from the loaded blocks in memory, normalised, into one batch). ``predict`` and
``ChipDataset`` call :func:`assemble`, the one function that turns a cube
window into normalised input channels, with the same float32 arithmetic.
"""

from __future__ import annotations

from sarcube.datacube.chips.batches import (
    BLOCK_PX,
    Block,
    LoadedBlock,
    blocks,
    cut_chips,
    gather_batch,
    gather_normalised,
    load_block,
)
from sarcube.datacube.chips.channels import (
    ORBIT_AUTO,
    ORBITAL_TAKES,
    TAKE_ACTIVITY,
    TAKE_AT_ORBIT,
    TAKE_AUTO,
    TAKE_PER_PAIR,
    TAKE_REFERENCE,
    TAKE_SERIES,
    TAKE_STATIC,
    TAKES,
    ChannelSpec,
    ResolvedChannels,
    StaticCache,
    Window,
    assemble,
    cube_id,
    normalise,
    orbit_position,
    read_channels,
    read_labels,
    read_window,
    resolve_channels,
    run_orbit,
    sample_pairs,
    time_indices,
    window_isel,
)
from sarcube.datacube.chips.chip_grid import (
    POLICIES,
    POLICY_ALL,
    POLICY_BALANCED,
    POLICY_NEGATIVES,
    POLICY_POSITIVES,
    ChipSpec,
    chip_counts,
    chip_origins,
)
from sarcube.datacube.chips.selection import (
    ChipTable,
    check_selection,
    chip_table,
    select,
    train_statistics,
)
from sarcube.datacube.chips.splits import (
    EXCLUDED,
    EXCLUDED_NAME,
    SPLIT_PAIRS,
    SPLIT_TILES,
    SPLITS,
    TEST,
    TRAIN,
    VAL,
    VAL_TILES,
    SplitPlan,
    SplitSpec,
    check_split,
    make_split,
    split_events,
    split_mask,
)

__all__ = [
    "BLOCK_PX",
    "EXCLUDED",
    "ORBITAL_TAKES",
    "ORBIT_AUTO",
    "EXCLUDED_NAME",
    "POLICIES",
    "POLICY_ALL",
    "POLICY_BALANCED",
    "POLICY_NEGATIVES",
    "POLICY_POSITIVES",
    "SPLITS",
    "SPLIT_PAIRS",
    "SPLIT_TILES",
    "TAKES",
    "TAKE_ACTIVITY",
    "TAKE_AT_ORBIT",
    "TAKE_AUTO",
    "TAKE_PER_PAIR",
    "TAKE_REFERENCE",
    "TAKE_SERIES",
    "TAKE_STATIC",
    "TEST",
    "TRAIN",
    "VAL",
    "VAL_TILES",
    "Block",
    "ChannelSpec",
    "ChipSpec",
    "ChipTable",
    "LoadedBlock",
    "ResolvedChannels",
    "SplitPlan",
    "SplitSpec",
    "StaticCache",
    "Window",
    "assemble",
    "blocks",
    "check_selection",
    "chip_counts",
    "chip_origins",
    "chip_table",
    "check_split",
    "cube_id",
    "cut_chips",
    "gather_batch",
    "gather_normalised",
    "load_block",
    "make_split",
    "normalise",
    "orbit_position",
    "read_channels",
    "read_labels",
    "read_window",
    "resolve_channels",
    "run_orbit",
    "sample_pairs",
    "select",
    "split_events",
    "split_mask",
    "time_indices",
    "train_statistics",
    "window_isel",
]
