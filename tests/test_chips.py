"""Chips: selection from the coarsened label map, splits that do not leak, train-only stats, blocks."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from conftest import make_tiny_cube
from sarcube.datacube import chips, schema, store
from sarcube.errors import InputError, MissingVariableError, TrainingDataError

PYX = (schema.PAIR, schema.Y, schema.X)


def make_featured_cube(
    ny: int = 64, nx: int = 64, nt: int = 6, seed: int = 0, positives: dict | None = None, px_per_blob: int = 256
) -> xr.Dataset:
    """A featured cube: pairs (t, t+1), pair features, terrain, ratios, event means (orbits 15, 66), per-pair labels.

    ``positives`` maps pair -> list of (y0, y1, x0, x1) boxes set to label 1;
    the rest is 0 except a 255 (unknown) strip along the last column.
    Debris (label 1) raises vv_diff/vh_diff there, so a model can learn it.
    """
    rng = np.random.default_rng(seed)
    ds = make_tiny_cube(ny=ny, nx=nx, nt=nt, seed=seed)
    times = ds[schema.TIME].values
    np_ = nt - 1
    ds = ds.assign_coords(schema.pair_coords(times[:-1], times[1:], [15] * np_))
    label = np.zeros((np_, ny, nx), dtype=np.uint8)
    if positives is None:  # debris blobs of 4-8 px scattered over the scene, ~1 per 16x16 px
        positives = {}
        for p in range(np_):
            n = max(2, ny * nx // px_per_blob)
            ys, xs = rng.integers(0, ny - 8, n), rng.integers(0, nx - 9, n)
            hs, ws = rng.integers(4, 9, n), rng.integers(4, 9, n)
            positives[p] = [(int(a), int(a + h), int(b), int(b + w)) for a, b, h, w in zip(ys, xs, hs, ws, strict=True)]
    for p, boxes in positives.items():
        for y0, y1, x0, x1 in boxes:
            label[p, y0:y1, x0:x1] = schema.LABEL_YES
    label[:, :, -1] = schema.LABEL_UNKNOWN
    debris = (label == schema.LABEL_YES).astype(np.float32)
    ds[schema.VV_DIFF] = schema.make_variable(schema.VV_DIFF, rng.normal(0, 1, (np_, ny, nx)) + 4 * debris, PYX)
    ds[schema.VH_DIFF] = schema.make_variable(schema.VH_DIFF, rng.normal(0, 1, (np_, ny, nx)) + 3 * debris, PYX)
    ds[schema.VVVH] = schema.make_variable(schema.VVVH, rng.uniform(0, 0.2, (np_, ny, nx)) + 0.6 * debris, PYX)
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    ds[schema.SLOPE] = schema.make_variable(schema.SLOPE, 20 + 10 * np.sin(yy / 7.0))
    ds[schema.ASPECT] = schema.make_variable(schema.ASPECT, (xx * 5.0) % 360)
    ds[schema.CURVATURE] = schema.make_variable(schema.CURVATURE, np.cos(xx / 5.0))
    ds[schema.PAR] = schema.make_variable(schema.PAR, 25 + 5 * np.cos(yy / 9.0))
    tyx = (schema.TIME, schema.Y, schema.X)
    ds[schema.VV_RATIO] = schema.make_variable(schema.VV_RATIO, rng.normal(0, 1, (nt, ny, nx)), tyx)
    ds[schema.VH_RATIO] = schema.make_variable(schema.VH_RATIO, rng.normal(0, 1, (nt, ny, nx)), tyx)
    ds = ds.assign_coords(schema.orbit_coords([15, 66]))
    for name in schema.EVENT_MEANS:  # per orbit: orbit 66 is 5 dB brighter
        means = rng.normal(-12, 1, (2, ny, nx)) + np.array([0.0, 5.0])[:, None, None]
        ds[name] = schema.make_variable(name, means, (schema.ORBIT, schema.Y, schema.X))
    ds[schema.LABEL] = schema.make_variable(schema.LABEL, label, PYX)
    return ds


@pytest.fixture
def featured(tmp_path):
    path = tmp_path / "featured.zarr"
    store.write_cube(make_featured_cube(), path)
    return path


def test_chip_counts_match_direct_count(featured):
    ds = schema.open_cube(featured)
    for spec in (chips.ChipSpec(size=16), chips.ChipSpec(size=16, overlap=8), chips.ChipSpec(size=24, overlap=12)):
        pos, valid = chips.chip_counts(ds[schema.LABEL], spec)
        lab = ds[schema.LABEL].values
        oy = chips.chip_origins(64, spec.size, spec.stride)
        assert pos.shape == (5, oy.size, oy.size)
        for p in (0, 3):
            for i, y0 in enumerate(oy):
                for j, x0 in enumerate(oy):
                    w = lab[p, y0:y0 + spec.size, x0:x0 + spec.size]
                    assert pos[p, i, j] == (w == 1).sum()
                    assert valid[p, i, j] == (w != 255).sum()


def test_selection_policies_count_hand_built_labels(tmp_path):
    # one pair, 4x4 grid of 16px chips; positives in exactly 3 chips
    ds = make_featured_cube(nt=2, positives={0: [(0, 2, 0, 2), (20, 21, 20, 21), (50, 60, 34, 40)]})
    path = tmp_path / "c.zarr"
    store.write_cube(ds, path)
    ds = schema.open_cube(path)
    spec = chips.ChipSpec(size=16, min_valid_fraction=0.5)
    pos, valid = chips.chip_counts(ds[schema.LABEL], spec)
    plan = chips.make_split(ds, chips.SplitSpec(tile_size_m=64 * 20, fractions=(1, 0, 0)), spec, valid)
    table = chips.chip_table([0], pos, valid, plan, spec, 64, 64)
    assert len(table) == 16  # the 255 column leaves 15/16 labelled in the right chips
    got = {p: len(chips.select(table, chips.TRAIN, p, spec)) for p in chips.POLICIES}
    assert got == {"positives": 3, "negatives": 13, "balanced": 6, "all": 16}
    bal = chips.select(table, chips.TRAIN, "balanced", spec, seed=3)
    assert bal.positive().sum() == 3 and (~bal.positive()).sum() == 3
    assert len(chips.select(table, chips.TRAIN, "negatives", chips.ChipSpec(size=16, max_chips=5))) == 5
    # a chip that is all 255 is never selected
    lab = ds[schema.LABEL].values.copy()
    lab[0, :16, :16] = 255
    ds2 = ds.copy()
    ds2[schema.LABEL] = schema.make_variable(schema.LABEL, lab, PYX)
    pos2, valid2 = chips.chip_counts(ds2[schema.LABEL], spec)
    assert len(chips.chip_table([0], pos2, valid2, plan, spec, 64, 64)) == 15


def test_tiles_never_shared_and_chips_never_straddle(featured):
    ds = schema.open_cube(featured)
    spec = chips.ChipSpec(size=8, overlap=4)
    pos, valid = chips.chip_counts(ds[schema.LABEL], spec)
    plan = chips.make_split(ds, chips.SplitSpec(tile_size_m=16 * 20, seed=1), spec, valid)
    assert plan.tile_px % spec.stride == 0
    assert {0, 1, 2} <= set(np.unique(plan.tiles).tolist())
    table = chips.chip_table(list(range(5)), pos, valid, plan, spec, 64, 64)
    masks = {s: plan.pixel_mask(s, (64, 64)) for s in chips.SPLITS}
    assert not (masks["train"] & masks["val"]).any() and not (masks["train"] & masks["test"]).any()
    for k in range(len(table)):
        y0, x0, s = table.y0[k], table.x0[k], chips.SPLITS[table.split[k]]
        assert masks[s][y0:y0 + 8, x0:x0 + 8].all(), "chip straddles a split boundary"
    # straddling chips exist on the grid and were dropped
    assert len(table) < 5 * chips.chip_origins(64, 8, 4).size ** 2
    again = chips.SplitPlan.from_json(plan.to_json())
    assert np.array_equal(again.tiles, plan.tiles) and again.tile_px == plan.tile_px


def test_held_out_pairs(featured):
    ds = schema.open_cube(featured)
    spec = chips.ChipSpec(size=16)
    pos, valid = chips.chip_counts(ds[schema.LABEL], spec)
    day = str(ds[schema.ACTIVITY_TIME].values[2])[:10]
    plan = chips.make_split(ds, chips.SplitSpec(kind="pairs", test=[day], tile_size_m=32 * 20), spec, valid)
    table = chips.chip_table(list(range(5)), pos, valid, plan, spec, 64, 64)
    assert set(table.pair[table.split == 2].tolist()) == {2}
    assert 2 not in set(table.pair[table.split != 2].tolist())
    # one orbit, back-to-back pairs: no purge gap; validation is the window just before the test window
    assert set(table.pair[table.split == 1].tolist()) == {1}
    assert set(table.pair[table.split == 0].tolist()) == {0, 3, 4}
    last = chips.make_split(ds, chips.SplitSpec(kind="pairs", test="last"), spec, valid)
    assert last.pair_split == {4: 2, 3: 1}
    by_tiles = chips.SplitSpec(kind="pairs", val="tiles", val_fraction=0.25, tile_size_m=32 * 20)
    tiles = chips.make_split(ds, by_tiles, spec, valid)
    assert tiles.pair_split == {4: 2} and set(np.unique(tiles.tiles).tolist()) == {0, 1}


def test_statistics_come_from_train_tiles_only(tmp_path):
    ds = make_featured_cube()
    spec = chips.ChipSpec(size=16)
    ds.load()
    pos, valid = chips.chip_counts(ds[schema.LABEL].chunk(), spec)
    plan = chips.make_split(ds, chips.SplitSpec(tile_size_m=32 * 20, seed=0), spec, valid)
    resolved = chips.resolve_channels(ds, [chips.ChannelSpec(schema.SLOPE), chips.ChannelSpec(schema.VV_DIFF)])
    pairs = list(range(5))
    mean, std = chips.train_statistics(ds.chunk(), resolved, plan, pairs)
    # put wild values in the val/test tiles: the statistics must not move
    other = ~plan.pixel_mask("train", (64, 64))
    wild = ds.copy()
    wild[schema.SLOPE] = schema.make_variable(schema.SLOPE, np.where(other, 1e4, ds[schema.SLOPE].values))
    wild[schema.VV_DIFF] = schema.make_variable(schema.VV_DIFF, np.where(other, -1e4, ds[schema.VV_DIFF].values), PYX)
    mean2, std2 = chips.train_statistics(wild.chunk(), resolved, plan, pairs)
    np.testing.assert_allclose(mean2, mean, rtol=1e-6)
    np.testing.assert_allclose(std2, std, rtol=1e-6)
    train = plan.pixel_mask("train", (64, 64))
    assert mean[0] == pytest.approx(float(ds[schema.SLOPE].values[train].mean()), rel=1e-6)
    # NaN-aware
    nan = ds.copy()
    nan[schema.SLOPE] = schema.make_variable(
        schema.SLOPE, np.where(train & (np.arange(64) % 2 == 0), np.nan, ds[schema.SLOPE].values)
    )
    m3, _ = chips.train_statistics(nan.chunk(), resolved, plan, pairs)
    assert np.isfinite(m3[0])
    # per-chunk partial sums with each chunk's window of the tile mask: any chunking, or none, agrees
    for chunked in (ds.chunk({schema.Y: 24, schema.X: 16}), ds):
        m4, s4 = chips.train_statistics(chunked, resolved, plan, pairs)
        np.testing.assert_allclose(m4, mean, rtol=1e-12)
        np.testing.assert_allclose(s4, std, rtol=1e-12)
    whole = plan.pixel_mask("val", (70, 66))
    assert np.array_equal(plan.pixel_mask("val", (70, 66), (24, 70, 16, 66)), whole[24:70, 16:66])


def read_block(
    ds: xr.Dataset, resolved: chips.ResolvedChannels, block: chips.Block, mean: list[float], std: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised inputs (C, [T,] H, W) and labels (H, W) of a block's window (same values as ``chips.assemble``)."""
    raw, labels = chips.read_window(ds, resolved, block.pair, block.window, with_labels=True)
    return chips.normalise(raw, mean, std, in_place=True), labels


def cut_chips_xbatcher(block: xr.DataArray, size: int, overlap: int = 0) -> list[xr.DataArray]:
    """Every chip of an in-memory block cut by ``xbatcher.BatchGenerator`` (the reference for ``chips.cut_chips``)."""
    import xbatcher

    dims, overlaps = {schema.Y: size, schema.X: size}, {schema.Y: overlap, schema.X: overlap}
    return list(xbatcher.BatchGenerator(block, input_dims=dims, input_overlap=overlaps))


def test_blocks_cut_the_same_chips_as_xbatcher(featured):
    ds = schema.open_cube(featured, chunks=None)
    spec = chips.ChipSpec(size=16, overlap=8, min_valid_fraction=0)
    pos, valid = chips.chip_counts(schema.open_cube(featured)[schema.LABEL], spec)
    plan = chips.make_split(ds, chips.SplitSpec(tile_size_m=10_000), spec, None)
    table = chips.chip_table([1], pos, valid, plan, spec, 64, 64)
    table = chips.ChipTable(table.pair, table.y0, table.x0, table.n_pos, table.n_valid, np.zeros_like(table.split), 16)
    resolved = chips.resolve_channels(ds, [chips.ChannelSpec(schema.VV_DIFF), chips.ChannelSpec(schema.SLOPE)])
    (block,) = chips.blocks(chips.select(table, "train", "all", spec), block_px=512)
    x, y = read_block(ds, resolved, block, [0.0, 0.0], [1.0, 1.0])
    ours = chips.cut_chips(x, block.oy, block.ox, 16)
    raw = ds[[schema.VV_DIFF]].isel({schema.PAIR: 1})[schema.VV_DIFF].load()
    theirs = cut_chips_xbatcher(raw, 16, 8)
    assert ours.shape == (len(theirs), 2, 16, 16)
    for k, chip in enumerate(theirs):
        np.testing.assert_array_equal(ours[k, 0], chip.values)
    labels = chips.cut_chips(y, block.oy, block.ox, 16)
    assert labels.dtype == np.uint8 and labels.shape == (len(theirs), 16, 16)
    # assemble == the block for any window inside it
    direct = chips.assemble(ds, resolved, 1, (8, 24, 16, 32), [0.0, 0.0], [1.0, 1.0])
    np.testing.assert_array_equal(direct, x[:, 8:24, 16:32])


def test_missing_variables_name_the_features_flag(tiny_cube):
    ds = schema.open_cube(tiny_cube)
    with pytest.raises(MissingVariableError, match=r"vv_diff.*sarcube features --pairs"):
        chips.resolve_channels(ds, [chips.ChannelSpec(schema.VV_DIFF), chips.ChannelSpec(schema.SLOPE)])


def test_empty_split_and_no_positives(tmp_path):
    ds = make_featured_cube(nt=2, positives={0: []})
    path = tmp_path / "neg.zarr"
    store.write_cube(ds, path)
    ds = schema.open_cube(path)
    spec = chips.ChipSpec(size=16)
    pos, valid = chips.chip_counts(ds[schema.LABEL], spec)
    plan = chips.make_split(ds, chips.SplitSpec(tile_size_m=32 * 20), spec, valid)
    table = chips.chip_table([0], pos, valid, plan, spec, 64, 64)
    sel = {s: chips.select(table, s, "all", spec) for s in chips.SPLITS}
    with pytest.raises(TrainingDataError, match="no positive chip"):
        chips.check_selection(sel, spec)
    sel["val"] = chips.select(table, "val", "positives", spec)
    with pytest.raises(TrainingDataError, match="val split has no chips"):
        chips.check_selection(sel, spec, need_positives=False)


def test_series_come_from_one_relative_orbit(featured):
    """Glacier series: the T steps of every sample are acquisitions of the run's relative orbit only."""
    ds = schema.open_cube(featured)  # acquisitions alternate orbit 15 (t even) and 66 (t odd), 3 each
    orbits = ds[schema.RELATIVE_ORBIT].values
    series = [chips.ChannelSpec(schema.VV, chips.TAKE_SERIES)]
    auto = chips.resolve_channels(ds, series, 2)
    assert auto.orbit == 15  # a tie on acquisitions: the lowest number
    other = chips.resolve_channels(ds, series, 2, orbit=66)
    window = (0, 16, 0, 16)
    for resolved in (auto, other):
        for pair in [None, *range(ds.sizes[schema.PAIR])]:
            idx = chips.time_indices(ds, resolved.channels[0], pair, 2, resolved.orbit)
            assert len(idx) == 2 and set(orbits[idx].tolist()) == {resolved.orbit}
            if pair is not None:  # up to the pair's activity time, in time order
                assert ds[schema.TIME].values[idx[-1]] <= ds[schema.ACTIVITY_TIME].values[pair]
            x = chips.read_window(ds, resolved, pair, window)
            np.testing.assert_array_equal(x[0], ds[schema.VV].values[idx, 0:16, 0:16])
    assert chips.time_indices(ds, auto.channels[0], None, 2, 15) == [2, 4]
    assert chips.time_indices(ds, other.channels[0], 0, 2, 66) == [1, 1]  # pair 0 ends at t 1: padded
    with pytest.raises(TrainingDataError, match="relative orbit 15 has 3 acquisitions.*series of 4"):
        chips.resolve_channels(ds, series, 4)
    with pytest.raises(InputError, match="inputs.orbit 88 is not an orbit"):
        chips.resolve_channels(ds, series, 2, orbit=88)


def test_event_means_are_read_at_the_runs_orbit(featured):
    """Landslide means: every sample reads the one orbit of the run, in training statistics and windows."""
    ds = schema.open_cube(featured)
    channels = [chips.ChannelSpec(v) for v in (schema.VV_BEFORE, schema.VH_AFTER, schema.SLOPE)]
    window = (8, 24, 16, 32)
    for orbit in (15, 66):
        resolved = chips.resolve_channels(ds, channels, orbit=orbit)
        assert [c.take for c in resolved.channels] == [chips.TAKE_AT_ORBIT, chips.TAKE_AT_ORBIT, chips.TAKE_STATIC]
        assert resolved.orbit == orbit and not resolved.per_pair
        at = {schema.ORBIT: orbit}
        for pair in (None, 0, 3):
            x = chips.read_window(ds, resolved, pair, window)
            np.testing.assert_array_equal(x[0], ds[schema.VV_BEFORE].sel(at).values[8:24, 16:32])
            np.testing.assert_array_equal(x[1], ds[schema.VH_AFTER].sel(at).values[8:24, 16:32])
        spec = chips.ChipSpec(size=16)
        _, valid = chips.chip_counts(ds[schema.LABEL], spec)
        plan = chips.make_split(ds, chips.SplitSpec(tile_size_m=32 * 20), spec, valid)
        mean, _ = chips.train_statistics(ds, resolved, plan, [0])
        train = plan.pixel_mask(chips.TRAIN, (64, 64))
        assert mean[0] == pytest.approx(float(ds[schema.VV_BEFORE].sel(at).values[train].mean()), rel=1e-5)
    assert chips.resolve_channels(ds, channels).orbit == 15
    with pytest.raises(InputError, match=r"inputs.orbit 'ascending' is not an orbit.*relative_orbit \[15, 66\]"):
        chips.resolve_channels(ds, channels, orbit=schema.ORBIT_ASCENDING)
    with pytest.raises(InputError, match="retrain"):
        chips.read_window(ds, chips.ResolvedChannels(resolved.channels), None, window)  # a run without an orbit
