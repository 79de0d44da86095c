"""Per-pixel threshold baselines for the landslide and glacier presets (no training).

The landslide and glacier papers compare their networks with chance and with
simpler inputs, not with a detector; a reviewer still asks what a radar analyst
gets without a network. The classic answers are a threshold on one backscatter
statistic per pixel:

- landslides, **change-vector magnitude** (Bovolo, F., Bruzzone, L. (2007), "A
  theoretical framework for unsupervised change detection based on change vector
  analysis in the polar domain", IEEE TGRS 45(1), 218-236; on SAR backscatter for
  landslides e.g. Mondini, A. C. et al. (2019), "Sentinel-1 SAR amplitude imagery
  for rapid landslide detection", Remote Sensing 11(7), 760): the length of the
  vector of dB changes (after minus before mean) over VV and VH, so a scar that
  brightens VV and darkens VH counts as much as one that changes both alike;
- glaciers, **backscatter level**: the mean dB of the time series, above or
  below a threshold (the sign is tuned: wet firn is dark, dry firn bright).

:class:`ThresholdBaseline` computes the statistic, median-filters it (speckle),
and calls a pixel positive where ``sign * statistic >= threshold`` inside an
object of at least ``min_object_pixels``. :func:`tune_pixel_threshold` chooses
the filter, the sign, the object size and the exact threshold (the best of all
distinct validation scores, :func:`~sarcube.models.metrics.best_threshold`) on
the validation split only. Like :class:`~sarcube.models.baseline.BaselineDetector`
it outputs a probability-like map (>= 0.5 = detected), so train, predict and
evaluate treat it like any model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from sarcube.errors import InputError

from . import metrics
from ._blocks import OUTPUT_PROBABILITY
from .baseline import TuneResult
from .baseline_image import median_filter, object_mask
from .baseline_tuning import coordinate_search

STATISTIC_CHANGE_VECTOR = "change_vector"
STATISTIC_LEVEL = "level"
STATISTICS = (STATISTIC_CHANGE_VECTOR, STATISTIC_LEVEL)
SOFTNESS_DB = 0.5  # scale of the logistic map from dB margin to probability
#: undetected pixels (under the threshold, or in too small an object) score below this, detected ones >= 0.5
BELOW = 0.49
#: what :func:`tune_pixel_threshold` searches (the threshold itself is exact, not a grid)
PIXEL_GRID: dict[str, tuple[float, ...]] = {
    "median_px": (1, 3, 5, 7),  # 20..140 m at 20 m pixels (1 = off)
    "min_object_pixels": (1, 4, 8, 16, 32, 64),
}


class ThresholdBaseline(nn.Module):
    """A threshold on one per-pixel backscatter statistic, in dB (module docstring).

    Input (N, C, H, W), or a series (N, C, T, H, W) whose steps are averaged, with the
    channels not rescaled (dB). ``statistic="change_vector"``: ``before_channels`` and
    ``after_channels`` pair up (e.g. VV/VH before, VV/VH after) and the statistic is
    ``sqrt(sum((after - before)^2))``; ``statistic="level"``: the mean of ``channels``
    (None = all). Output (N, 1, H, W): with ``r = sigmoid((sign * s - threshold_db) / softness)``,
    ``0.5 + 0.5 r`` on detected pixels (``sign * s >= threshold_db`` in an object of at least
    ``min_object_pixels``), ``0.49 r`` elsewhere (ranked for AUPRC, never detected), 0 where
    an input is NaN.
    """

    output_kind = OUTPUT_PROBABILITY

    def __init__(
        self,
        in_channels: int,
        statistic: str = STATISTIC_LEVEL,
        channels: Sequence[int] | None = None,
        before_channels: Sequence[int] = (),
        after_channels: Sequence[int] = (),
        threshold_db: float = 0.0,
        sign: int = 1,
        median_px: int = 1,
        min_object_pixels: int = 1,
        softness_db: float = SOFTNESS_DB,
    ):
        super().__init__()
        if statistic not in STATISTICS:
            raise InputError(f"threshold baseline: statistic={statistic!r}; use {' or '.join(STATISTICS)}")
        used = list(channels or ()) + list(before_channels) + list(after_channels)
        if any(not 0 <= c < in_channels for c in used):
            raise InputError(f"threshold baseline: channels {used} are not all indices of the {in_channels} inputs")
        if statistic == STATISTIC_CHANGE_VECTOR and (
            not before_channels or len(before_channels) != len(after_channels)
        ):
            raise InputError(
                "threshold baseline: change_vector needs before_channels and after_channels of one length, "
                "e.g. [0, 1] and [2, 3] for VV/VH before and after"
            )
        if sign not in (1, -1) or median_px < 1 or median_px % 2 == 0 or softness_db <= 0:
            raise InputError(
                f"threshold baseline: sign={sign}, median_px={median_px}, softness_db={softness_db}: "
                "need sign 1 or -1, an odd median window >= 1 and softness_db > 0"
            )
        self.in_channels = in_channels
        self.statistic = statistic
        self.channels = list(channels) if channels is not None else list(range(in_channels))
        self.before_channels, self.after_channels = list(before_channels), list(after_channels)
        self.softness_db = float(softness_db)
        # tuned settings live in buffers, so a checkpoint carries them
        self.register_buffer("tuned_threshold_db", torch.tensor(float(threshold_db), dtype=torch.float64))
        self.register_buffer("tuned_sign", torch.tensor(int(sign), dtype=torch.int64))
        self.register_buffer("tuned_median_px", torch.tensor(int(median_px), dtype=torch.int64))
        self.register_buffer("tuned_min_object_pixels", torch.tensor(int(min_object_pixels), dtype=torch.int64))

    # the tuned settings as plain attributes (what coordinate_search sets by name)
    threshold_db = property(lambda self: float(self.tuned_threshold_db),
                            lambda self, v: self.tuned_threshold_db.fill_(float(v)))
    sign = property(lambda self: int(self.tuned_sign), lambda self, v: self.tuned_sign.fill_(int(v)))
    median_px = property(lambda self: int(self.tuned_median_px), lambda self, v: self.tuned_median_px.fill_(int(v)))
    min_object_pixels = property(lambda self: int(self.tuned_min_object_pixels),
                                 lambda self, v: self.tuned_min_object_pixels.fill_(int(v)))

    def settings(self) -> dict[str, float]:
        """Every tuned setting (what a run reports)."""
        names = ("threshold_db", "sign", "median_px", "min_object_pixels")
        return {name: float(getattr(self, name)) for name in names}

    def extra_repr(self) -> str:
        return f"statistic={self.statistic}, " + ", ".join(f"{k}={v:g}" for k, v in self.settings().items())

    def statistic_db(self, x: torch.Tensor) -> torch.Tensor:
        """The filtered statistic (N, 1, H, W), NaN where an input used is NaN."""
        if x.dim() == 5:
            x = x.mean(dim=2)  # a series: the mean of its steps
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise InputError(
                f"threshold baseline: input has shape {tuple(x.shape)}; give (N, {self.in_channels}, H, W)"
            )
        x = x.float()
        if self.statistic == STATISTIC_CHANGE_VECTOR:
            change = x[:, self.after_channels] - x[:, self.before_channels]
            stat = change.pow(2).sum(dim=1, keepdim=True).sqrt()
        else:
            stat = x[:, self.channels].mean(dim=1, keepdim=True)
        return median_filter(stat, self.median_px)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.probability_map(self.statistic_db(x))

    @torch.no_grad()
    def probability_map(self, stat: torch.Tensor) -> torch.Tensor:
        """The output map from :meth:`statistic_db`'s ``stat``."""
        margin = self.sign * stat - self.threshold_db
        ranked = torch.sigmoid(margin / self.softness_db)
        candidates = margin >= 0  # NaN compares False
        detected = object_mask(candidates, candidates, self.min_object_pixels)
        prob = torch.where(detected, 0.5 + 0.5 * ranked, BELOW * ranked)
        return torch.where(torch.isfinite(stat), prob, torch.zeros_like(prob))


def tune_pixel_threshold(
    model: ThresholdBaseline, x: torch.Tensor, label: torch.Tensor | np.ndarray, metric: str = "f1"
) -> TuneResult:
    """Choose the baseline's filter, sign, object size and threshold on validation chips; set them.

    ``label`` (N, H, W) with 0/1/255. For every filter window and sign the threshold is
    the exact best one over the validation scores; the minimum object size is then
    searched (:func:`~sarcube.models.baseline_tuning.coordinate_search`). Give whole
    validation chips of both classes, so false positives count.
    """
    if metric not in metrics.THRESHOLD_METRICS:
        raise InputError(f"tune_pixel_threshold: metric={metric!r}; use one of {', '.join(metrics.THRESHOLD_METRICS)}")
    lab = metrics.as_numpy(label).reshape(len(x), 1, *x.shape[-2:])
    signs = (1,) if model.statistic == STATISTIC_CHANGE_VECTOR else (1, -1)
    cache: dict[int, torch.Tensor] = {}

    def objective() -> float:
        if model.median_px not in cache:
            cache[model.median_px] = model.statistic_db(x)
        stat = cache[model.median_px]
        best = (-1.0, 1, 0.0)
        for sign in signs:  # the exact best threshold of each sign
            threshold, score = metrics.best_threshold(sign * metrics.as_numpy(stat), lab, metric=metric)
            best = max(best, (score, sign, threshold))
        model.sign, model.threshold_db = best[1], best[2]
        pred = metrics.as_numpy(model.probability_map(stat)) >= 0.5
        return metrics.score_from_counts(metrics.pixel_counts(pred, lab), metric)

    found = coordinate_search(model, PIXEL_GRID, objective)
    objective()  # set the sign and threshold of the chosen filter and object size
    values = {**found.values, "sign": float(model.sign), "threshold_db": model.threshold_db}
    return TuneResult(values, found.score, metric, found.evaluations)


__all__ = [
    "PIXEL_GRID",
    "STATISTICS",
    "STATISTIC_CHANGE_VECTOR",
    "STATISTIC_LEVEL",
    "ThresholdBaseline",
    "tune_pixel_threshold",
]
