"""benchmarks/science.py's per-pair diagnostics: the numbers the README's per-pair table explains a seed with."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "science.py"
_spec = importlib.util.spec_from_file_location("science_benchmark", _PATH)
science = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = science  # dataclasses resolve their module by name
_spec.loader.exec_module(science)


def test_local_contrast_is_the_deposit_over_its_ring_not_the_scene():
    rng = np.random.default_rng(0)
    change = rng.normal(0.0, 0.5, (80, 80)).astype(np.float32)
    change[:, 40:] += 4.0  # a broad bright half (refreeze) does not count: only the ring around each deposit does
    positive = np.zeros_like(change, dtype=bool)
    positive[10:16, 10:18] = True  # on the dark half, 3 dB over its surroundings
    change[10:16, 10:18] += 3.0
    positive[60:66, 60:68] = True  # on the bright half, 1 dB over its surroundings
    change[60:66, 60:68] += 1.0
    change[5, 5] = np.nan  # unobserved pixels are skipped
    got = science._local_contrast_db(change, positive)
    assert abs(got - 2.0) < 0.3  # the median of ~3 and ~1
    assert np.isnan(science._local_contrast_db(change, np.zeros_like(positive)))


def test_pairs_table_lists_every_seed_and_pair():
    rows = [{"pair_index": p, "positives": 10, "bright_share": 0.05, "debris_contrast_db": 2.5, "method.f1": 0.3,
             "baseline.f1": 0.1, "method.ceiling": 0.4, "baseline.ceiling": 0.2} for p in (13, 14)]
    results = [science.SeedResult(seed, pairs={"avalanche-fcn": rows}) for seed in (0, 1)]
    lines = science._pairs_markdown(results, ["avalanche-fcn"])
    body = [line for line in lines if line.startswith("| 0 ") or line.startswith("| 1 ")]
    assert len(body) == 4 and "| 5.0 | +2.5 | 30.0 | 10.0 | 40.0 | 20.0 |" in body[0]
    assert science._pairs_markdown([science.SeedResult(0)], ["avalanche-fcn"]) == []


def test_overrides_name_their_runs_and_head_the_tables():
    sets = ["split.test=2021-03-27/2021-04-14"]
    assert science._tag(sets) == science._tag(list(sets)) != science._tag(["split.test=last"])
    scores = {"avalanche-fcn": {side: dict.fromkeys(science.PIXEL, 0.1) for side in ("method", "baseline")}}
    results = [science.SeedResult(seed, scores=scores, overrides=sets) for seed in (0, 1)]
    chosen = [c for c in science.COMPARISONS if c.name == "avalanche-fcn"]
    head = science.markdown(results, chosen, 1024).splitlines()[0]
    assert "every training with split.test=2021-03-27/2021-04-14" in head
    assert "every training" not in science.markdown([science.SeedResult(0, scores=scores)], chosen, 1024)
