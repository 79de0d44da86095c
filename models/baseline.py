"""The radar change-detection baseline the papers compare against (no training).

Bianchi et al. (Tab. I) and Sinha et al. (Tab. I) compare their networks with the
operational change detection that forecasters use:

- Vickers, H., Eckerstorfer, M., Malnes, E., Larsen, Y., Hindberg, H. (2016), "A method
  for automated snow avalanche debris detection through use of synthetic aperture radar
  (SAR) imaging", Earth and Space Science 3(11), 446-462;
- Eckerstorfer, M., Vickers, H., Malnes, E., Grahn, J. (2019), "Near-real time automatic
  snow avalanche activity monitoring system using Sentinel-1 SAR data in Norway",
  Remote Sensing 11(23), 2863 (the production system Bianchi et al. cite as [2]);
- Karbou, F. et al. (2018), "Monitoring avalanche debris in the French mountains using
  SAR observations from Sentinel-1 satellites", Proc. ISSW 2018 (Sinha et al. [3]).

Their steps: the backscatter change between a reference and an activity image,
speckle filtering of the change image, a dynamic threshold from the image pair's
own statistics, runout masks from the terrain (slope, reach), and a minimum object
size. :class:`BaselineDetector` ``method="operational"`` is that algorithm on
tensors, each parameter tuned on validation data by :func:`tune_threshold`
(:mod:`~sarcube.models.baseline_tuning`); ``method="simple"`` keeps the first, weaker
detector of this project (mean + k std in a box, no filter; preset ``baseline-simple``).
Both give the output of a network (a probability-like map, >= 0.5 = detected), so
train/predict/evaluate treat them like any model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sarcube.errors import InputError

from . import metrics
from ._blocks import OUTPUT_PROBABILITY
from .baseline_image import object_mask, robust_statistics, speckle_filter
from .baseline_tuning import OPERATIONAL_GRID, SIMPLE_GRID, SearchResult, coordinate_search

METHOD_OPERATIONAL = "operational"
METHOD_SIMPLE = "simple"
METHODS = (METHOD_OPERATIONAL, METHOD_SIMPLE)

K_STD = 2.0  # change must exceed the centre by this many (local or robust) standard deviations
MIN_CHANGE_DB = 1.5  # ... and this many dB (debris brightens VV/VH by a few dB)
STATS_WINDOW_PX = 31  # simple: local statistics window (31 px = 620 m at 20 m pixels); 0 = whole image
MAX_RUNOUT_SLOPE_DEG = 35.0  # debris deposits below ~35 degrees (Bianchi et al. III-A)
MIN_PAR_DEG = 20.0  # reachable from a release zone: angle of reach >= ~20 degrees (III-B)
MIN_OBJECT_PX = 10  # smaller detections are speckle (10 px = 4000 m^2 at 20 m)
SOFTNESS_DB = 0.5  # scale of the logistic map from dB margin to probability
#: operational: the robust statistics need this many runout pixels in a window, else all its pixels
MIN_STATS_PX = 256  # 16 x 16 px = 0.1 km^2 at 20 m


class _Tuned:
    """A tunable setting kept in the buffer ``tuned_<name>``, so ``state_dict()`` carries it."""

    def __init__(self, kind: type):
        self.kind = kind

    def __set_name__(self, owner: type, name: str) -> None:
        self.buffer = f"tuned_{name}"

    def __get__(self, obj, objtype=None):
        return self if obj is None else self.kind(getattr(obj, self.buffer))

    def __set__(self, obj, value) -> None:
        getattr(obj, self.buffer).fill_(self.kind(value))


#: tunable settings: name -> (type, buffer dtype)
TUNABLE = {
    "k_std": (float, torch.float64),
    "min_change_db": (float, torch.float64),
    "max_runout_slope_deg": (float, torch.float64),
    "min_par_deg": (float, torch.float64),
    "min_object_pixels": (int, torch.int64),
    "median_px": (int, torch.int64),
    "boxcar_px": (int, torch.int64),
    "hysteresis": (float, torch.float64),
    "patch_min_pixels": (int, torch.int64),
}
#: what each method can tune (``patch_min_pixels`` is tuned at patch level by both)
METHOD_TUNABLE = {
    METHOD_SIMPLE: ("k_std", "min_change_db", "max_runout_slope_deg", "min_par_deg", "min_object_pixels"),
    METHOD_OPERATIONAL: (
        "median_px", "boxcar_px", "k_std", "min_change_db",
        "max_runout_slope_deg", "min_par_deg", "min_object_pixels", "hysteresis",
    ),
}


class BaselineDetector(nn.Module):
    """Radar change detection: speckle filter, dynamic threshold, runout masks, minimum object size.

    Input (N, C, H, W) with the VV and VH differences (activity minus reference) in dB,
    not rescaled, at ``vv_channel``/``vh_channel``; slope (degrees) at ``slope_channel``
    and, optionally, PAR (degrees) at ``par_channel`` (None = not used). Each sample is
    one window of one pair: every statistic is the window's own, so a scene tiled into
    windows (:mod:`~sarcube.models.inference`) is thresholded window by window exactly
    like the validation chips the settings were tuned on. Output (N, 1, H, W) in [0, 1].

    ``method="operational"`` (Eckerstorfer et al. 2019, Vickers et al. 2016):

    1. change ``d`` = mean of the VV and VH differences, median-filtered over
       ``median_px`` x ``median_px`` pixels, then averaged over ``boxcar_px`` (1 = off);
    2. runout zone: slope <= ``max_runout_slope_deg`` and PAR >= ``min_par_deg``;
    3. dynamic threshold ``t = m + max(k_std * s, min_change_db)`` with ``m`` the median
       and ``s`` = 1.4826 x the median absolute deviation of ``d`` over the window's runout
       pixels (all its pixels when fewer than :data:`MIN_STATS_PX`). Median and MAD,
       unlike mean and std, are not pulled up by the debris itself nor by a large
       avalanche filling the window, and a bright steep slope outside the runout zone
       does not inflate them; a box of local statistics would be truncated at window edges;
    4. hysteresis: objects (8-connected) of ``d >= m + hysteresis * (t - m)`` that hold a
       pixel ``d >= t`` (``hysteresis = 1``: off);
    5. objects smaller than ``min_object_pixels`` are dropped.

    Detected pixels map to ``0.5 + 0.5 sigmoid((d - t_low) / softness_db)`` (>= 0.5),
    other runout pixels to ``0.5 sigmoid((d - t) / softness_db)`` (< 0.5: a pixel just
    under the threshold or in a too-small object ranks above quiet ones for AUPRC), and
    pixels outside the runout zone, with a NaN input or filled nodata (:meth:`observed`)
    to 0. Every step commutes with rotations and flips: the map is dihedral-equivariant.

    ``method="simple"`` (preset ``baseline-simple``): no filter; ``t = max(local mean +
    k_std x local std of d in a window x window box (0 = whole image), min_change_db)``;
    probability ``sigmoid((d - t) / softness_db)``; 0 outside the runout zone; detected
    objects smaller than ``min_object_pixels`` are halved.

    Patch classification (Sinha et al.): :meth:`patch_probability` calls a patch positive
    when it holds >= ``patch_min_pixels`` detected pixels. The tunable settings
    (:data:`TUNABLE`) live in buffers, so a checkpoint carries what
    :func:`tune_threshold` chose. Parameters: 0.
    """

    output_kind = OUTPUT_PROBABILITY

    k_std = _Tuned(float)
    min_change_db = _Tuned(float)
    max_runout_slope_deg = _Tuned(float)
    min_par_deg = _Tuned(float)
    min_object_pixels = _Tuned(int)
    median_px = _Tuned(int)
    boxcar_px = _Tuned(int)
    hysteresis = _Tuned(float)
    patch_min_pixels = _Tuned(int)

    def __init__(
        self,
        in_channels: int,
        vv_channel: int = 0,
        vh_channel: int = 1,
        slope_channel: int | None = 2,
        par_channel: int | None = None,
        method: str = METHOD_OPERATIONAL,
        k_std: float = K_STD,
        min_change_db: float = MIN_CHANGE_DB,
        window: int = STATS_WINDOW_PX,
        max_runout_slope_deg: float = MAX_RUNOUT_SLOPE_DEG,
        min_par_deg: float = MIN_PAR_DEG,
        min_object_pixels: int = MIN_OBJECT_PX,
        softness_db: float = SOFTNESS_DB,
        patch_min_pixels: int = 1,
        median_px: int = 1,
        boxcar_px: int = 1,
        hysteresis: float = 1.0,
    ):
        super().__init__()
        used = {
            "vv_channel": vv_channel, "vh_channel": vh_channel,
            "slope_channel": slope_channel, "par_channel": par_channel,
        }
        for key, idx in used.items():
            if idx is not None and not 0 <= idx < in_channels:
                raise InputError(f"baseline: {key}={idx} is not an index of the {in_channels} input channels")
        if method not in METHODS:
            raise InputError(f"baseline: method={method!r}; use {' or '.join(METHODS)}")
        if window < 0 or (window > 0 and window % 2 == 0):
            raise InputError(f"baseline: window={window}: use an odd number of pixels, or 0 for whole-image statistics")
        if softness_db <= 0 or min_object_pixels < 0 or patch_min_pixels < 1:
            raise InputError(
                f"baseline: softness_db={softness_db}, min_object_pixels={min_object_pixels}, "
                f"patch_min_pixels={patch_min_pixels}: need softness_db > 0, min_object_pixels >= 0, "
                "patch_min_pixels >= 1"
            )
        for key, size in (("median_px", median_px), ("boxcar_px", boxcar_px)):
            if size < 1 or size % 2 == 0:
                raise InputError(f"baseline: {key}={size}: use an odd window in pixels (1 = off)")
        if not 0.0 < hysteresis <= 1.0:
            raise InputError(f"baseline: hysteresis={hysteresis}: use a fraction in (0, 1] of the threshold (1 = off)")
        if method == METHOD_SIMPLE and (median_px, boxcar_px, hysteresis) != (1, 1, 1.0):
            raise InputError("baseline: method 'simple' has no speckle filter or hysteresis; use method 'operational'")
        self.in_channels = in_channels
        self.vv_channel = vv_channel
        self.vh_channel = vh_channel
        self.slope_channel = slope_channel
        self.par_channel = par_channel
        self.method = method
        self.window = int(window)
        self.softness_db = float(softness_db)
        #: the last :func:`tune_threshold` result on this detector (what a run plots), None before
        self.tuning: TuneResult | None = None
        initial = {
            "k_std": k_std, "min_change_db": min_change_db, "max_runout_slope_deg": max_runout_slope_deg,
            "min_par_deg": min_par_deg, "min_object_pixels": min_object_pixels, "median_px": median_px,
            "boxcar_px": boxcar_px, "hysteresis": hysteresis, "patch_min_pixels": patch_min_pixels,
        }
        for name, (kind, dtype) in TUNABLE.items():
            self.register_buffer(f"tuned_{name}", torch.tensor(kind(initial[name]), dtype=dtype))

    def settings(self) -> dict[str, float]:
        """The current value of every setting this method uses (what a run reports)."""
        return {name: float(getattr(self, name)) for name in (*METHOD_TUNABLE[self.method], "patch_min_pixels")}

    def extra_repr(self) -> str:
        return f"method={self.method}, " + ", ".join(f"{k}={v:g}" for k, v in self.settings().items())

    def change_db(self, x: torch.Tensor) -> torch.Tensor:
        """The change statistic ``d`` (N, 1, H, W): mean of the VV and VH dB differences."""
        return 0.5 * (x[:, self.vv_channel : self.vv_channel + 1] + x[:, self.vh_channel : self.vh_channel + 1])

    def filtered_change(self, x: torch.Tensor) -> torch.Tensor:
        """``d`` after the speckle filter (operational; the simple method uses ``d`` as it is)."""
        change = self.change_db(x.float())
        if self.method == METHOD_SIMPLE:
            return change
        change = torch.where(self.observed(x), change, torch.full_like(change, float("nan")))  # filters skip NaN
        return speckle_filter(change, self.median_px, self.boxcar_px)

    def threshold_db(self, change: torch.Tensor) -> torch.Tensor:
        """Simple method: the threshold ``t`` (N, 1, H, W) from local statistics of the change."""
        valid = torch.isfinite(change)
        d = torch.where(valid, change, torch.zeros_like(change)).double()
        v = valid.double()
        if self.window == 0:
            dims = (-2, -1)
            count = v.sum(dims, keepdim=True).clamp_min(1)
            mean = d.sum(dims, keepdim=True) / count
            var = (d * d).sum(dims, keepdim=True) / count - mean**2
        else:
            pool = {"kernel_size": self.window, "stride": 1, "padding": self.window // 2, "count_include_pad": True}
            count = F.avg_pool2d(v, **pool).clamp_min(1e-12)
            mean = F.avg_pool2d(d, **pool) / count
            var = F.avg_pool2d(d * d, **pool) / count - mean**2
        t = mean + self.k_std * var.clamp_min(0).sqrt()
        return t.clamp_min(self.min_change_db).to(change.dtype).expand_as(change)

    def observed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) bool: not nodata filled with 0 (chips and predict fill NaN inputs with 0 dB).

        A real pixel whose VV and VH changes are both exactly 0 dB is rare (under 0.01 %
        of the demo scene, against its ~10 % radar shadow and layover).
        """
        vv = x[:, self.vv_channel : self.vv_channel + 1]
        vh = x[:, self.vh_channel : self.vh_channel + 1]
        return (vv != 0) | (vh != 0)

    def runout_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Where debris may lie (N, 1, H, W) bool: gentle enough slope and, with PAR, reachable."""
        mask = torch.ones_like(x[:, :1], dtype=torch.bool)
        if self.slope_channel is not None:
            mask &= x[:, self.slope_channel : self.slope_channel + 1] <= self.max_runout_slope_deg
        if self.par_channel is not None:
            mask &= x[:, self.par_channel : self.par_channel + 1] >= self.min_par_deg  # NaN compares False
        return mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.probability_map(x)

    @torch.no_grad()
    def probability_map(self, x: torch.Tensor, filtered: torch.Tensor | None = None) -> torch.Tensor:
        """The output map; ``filtered`` = :meth:`filtered_change` of ``x`` when already computed."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise InputError(f"baseline: input has shape {tuple(x.shape)}; give (N, {self.in_channels}, H, W)")
        usable = self.runout_mask(x) & torch.isfinite(x).all(dim=1, keepdim=True)
        change = self.filtered_change(x) if filtered is None else filtered
        zero = torch.zeros_like(change)
        if self.method == METHOD_SIMPLE:
            prob = torch.sigmoid((change - self.threshold_db(change)) / self.softness_db)
            prob = torch.where(usable, prob, zero)
            detected = prob >= 0.5
            small = detected & ~object_mask(detected, detected, self.min_object_pixels)
            return torch.where(small, 0.5 * prob, prob)
        usable &= self.observed(x)
        centre, sigma = robust_statistics(change, usable, MIN_STATS_PX)
        high = centre + torch.clamp(self.k_std * sigma, min=self.min_change_db)
        low = centre + self.hysteresis * (high - centre)
        seeds = usable & (change >= high)  # NaN compares False
        detected = object_mask(usable & (change >= low), seeds, self.min_object_pixels)
        above = 0.5 + 0.5 * torch.sigmoid((change - low) / self.softness_db)
        below = 0.5 * torch.sigmoid((change - high) / self.softness_db)
        return torch.where(detected, above, torch.where(usable, below, zero))

    def detected_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Detected pixels per patch (N,)."""
        return (self(x) >= 0.5).flatten(1).sum(dim=1)

    def patch_probability(self, x: torch.Tensor) -> torch.Tensor:
        """Per-patch (N,) score in [0, 1]: ``n / (n + patch_min_pixels)`` with n detected pixels (Sinha et al.).

        >= 0.5 exactly when a patch holds at least ``patch_min_pixels`` detected pixels.
        """
        n = self.detected_pixels(x).float()
        return n / (n + self.patch_min_pixels)


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune_threshold` chose and how well it scored on the validation data."""

    #: setting -> chosen value, already set on the detector (a run writes them to its details)
    values: dict[str, float]
    #: the validation score (``metric``) with those values
    score: float
    metric: str
    #: distinct candidate settings scored
    evaluations: int
    #: setting -> (grid, score at each value) around the chosen settings (see ``SearchResult.curves``)
    curves: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)


def _grid_for(detector: BaselineDetector, grid: Mapping[str, Sequence[float]] | None) -> dict[str, tuple]:
    """The grid to search: the method's default, less settings whose input channel is absent."""
    default = SIMPLE_GRID if detector.method == METHOD_SIMPLE else OPERATIONAL_GRID
    chosen = {k: tuple(v) for k, v in (default if grid is None else grid).items()}
    unknown = sorted(set(chosen) - set(METHOD_TUNABLE[detector.method]))
    if unknown:
        raise InputError(
            f"tune_threshold: method {detector.method!r} cannot tune {', '.join(unknown)}; "
            f"it tunes {', '.join(METHOD_TUNABLE[detector.method])}"
        )
    if any(not values for values in chosen.values()):
        raise InputError("tune_threshold: a grid is empty; give candidate values for every setting")
    absent = {"max_runout_slope_deg": detector.slope_channel, "min_par_deg": detector.par_channel}
    return {k: v for k, v in chosen.items() if absent.get(k, 0) is not None}


def tune_threshold(
    detector: BaselineDetector,
    x: torch.Tensor,
    label: torch.Tensor | np.ndarray,
    metric: str = "f1",
    level: str = "pixel",
    grid: Mapping[str, Sequence[float]] | None = None,
) -> TuneResult:
    """Choose the detector's settings on validation data and set them.

    ``level="pixel"``: ``label`` (N, H, W) or (N, 1, H, W) with 0/1/255; maximises the
    pixel ``metric`` ("f1", "balanced_accuracy" or "accuracy") over ``grid`` (default:
    :data:`~sarcube.models.baseline_tuning.SIMPLE_GRID` for the simple method, k only,
    :data:`~sarcube.models.baseline_tuning.OPERATIONAL_GRID` for the operational one) by
    the coordinate search of :mod:`~sarcube.models.baseline_tuning`. Give whole
    validation chips of both classes, so false positives count.

    ``level="patch"`` (Sinha et al. III): ``label`` (N,) patch labels (255 ignored). The
    simple method keeps its settings and picks ``patch_min_pixels``, the number of
    detected pixels from which a patch counts as positive; the operational method
    searches its grid with, for every candidate, the best ``patch_min_pixels`` (the
    objective is the patch ``metric`` there), then sets both. Ties keep the smaller count.
    """
    if metric not in metrics.THRESHOLD_METRICS:
        raise InputError(f"tune_threshold: metric={metric!r}; use one of {', '.join(metrics.THRESHOLD_METRICS)}")
    if level not in ("pixel", "patch"):
        raise InputError(f"tune_threshold: level={level!r}; use 'pixel' or 'patch'")
    lab = metrics.as_numpy(label)
    search = _grid_for(detector, grid)
    filtered: dict[tuple[int, int], torch.Tensor] = {}

    def output() -> np.ndarray:
        key = (detector.median_px, detector.boxcar_px)  # the filtered change is cached per filter
        if key not in filtered:
            filtered[key] = detector.filtered_change(x)
        return metrics.as_numpy(detector.probability_map(x, filtered[key]))[:, 0]

    if level == "pixel":
        def pixel_score() -> float:
            pred = output() >= 0.5
            return metrics.score_from_counts(metrics.pixel_counts(pred, lab.reshape(pred.shape)), metric)

        found = coordinate_search(detector, search, pixel_score)
        detector.tuning = TuneResult(found.values, found.score, metric, found.evaluations, found.curves)
        return detector.tuning

    patch_labels = lab.reshape(-1)

    def patch_threshold() -> tuple[float, float]:
        counts = (output() >= 0.5).reshape(len(x), -1).sum(axis=1).astype(np.float64)
        return metrics.best_threshold(counts, patch_labels, metric=metric)

    found = SearchResult({}, 0.0, 0)
    if detector.method == METHOD_OPERATIONAL:
        found = coordinate_search(detector, search, lambda: patch_threshold()[1])
    threshold, score = patch_threshold()
    detector.patch_min_pixels = max(1, int(np.ceil(threshold)))
    values = {**found.values, "patch_min_pixels": float(detector.patch_min_pixels)}
    detector.tuning = TuneResult(values, score, metric, max(found.evaluations, 1), found.curves)
    return detector.tuning


__all__ = [
    "METHODS",
    "METHOD_OPERATIONAL",
    "METHOD_SIMPLE",
    "TUNABLE",
    "BaselineDetector",
    "TuneResult",
    "tune_threshold",
]
