"""The radar change-detection baseline the papers compare against (no training).

Bianchi et al. (Tab. I) and Sinha et al. (Tab. I) compare their networks with the
operational algorithm of Eckerstorfer et al. / Karbou et al.: backscatter increase
between a reference and an activity image, a dynamic threshold from the image pair's
statistics, runout-zone masks from the terrain, and a minimum object size. This is
that algorithm on tensors, with the same output format as a network (a probability-like
map, >= 0.5 = detected), so train/predict/evaluate treat it like any model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sarcube.errors import InputError

from . import metrics
from ._blocks import OUTPUT_PROBABILITY

K_STD = 2.0  # change must exceed the local mean by this many local standard deviations
MIN_CHANGE_DB = 1.5  # ... and this many dB (debris brightens VV/VH by a few dB)
STATS_WINDOW_PX = 31  # local statistics window (31 px = 620 m at 20 m pixels); 0 = whole image
MAX_RUNOUT_SLOPE_DEG = 35.0  # debris deposits below ~35 degrees (Bianchi et al. III-A)
MIN_PAR_DEG = 20.0  # reachable from a release zone: angle of reach >= ~20 degrees (III-B)
MIN_OBJECT_PX = 10  # smaller detections are speckle (10 px = 4000 m^2 at 20 m)
OBJECT_CONNECTIVITY = 8  # diagonal neighbours join one object, as in the object metrics
SOFTNESS_DB = 0.5  # scale of the logistic map from dB margin to probability
DEFAULT_K_GRID = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune_threshold` chose and how well it scored on the validation data."""

    #: name of the detector attribute that was tuned (``k_std`` or ``patch_min_pixels``)
    parameter: str
    #: the chosen value (already set on the detector)
    value: float
    #: the validation score (``metric``) with that value
    score: float
    metric: str


class BaselineDetector(nn.Module):
    """dB-difference threshold + runout/slope mask + minimum object size; no trainable weights.

    Input (N, C, H, W) with the VV and VH differences (activity minus reference) in dB,
    not rescaled, at ``vv_channel``/``vh_channel``; slope (degrees) at ``slope_channel`` and,
    optionally, PAR (degrees) at ``par_channel`` (None = not used). Output (N, 1, H, W) in
    [0, 1]:

    1. change ``d`` = mean of the VV and VH differences;
    2. threshold ``t`` = max(local mean + ``k_std`` x local std of ``d`` in a
       ``window`` x ``window`` box (0 = whole image), ``min_change_db``);
    3. probability ``sigmoid((d - t) / softness_db)``, so >= 0.5 exactly where ``d >= t``;
    4. 0 outside the runout zone (slope > ``max_runout_slope_deg``, PAR < ``min_par_deg``
       or NaN) and where an input is NaN;
    5. detected objects (8-connected) smaller than ``min_object_pixels`` are halved
       (stay below 0.5: not detected, but still ranked above quiet pixels for AUPRC).

    Patch classification (Sinha et al.): :meth:`patch_probability` calls a patch positive
    when it holds >= ``patch_min_pixels`` detected pixels. :func:`tune_threshold` picks
    ``k_std`` (pixel level) or ``patch_min_pixels`` (patch level) on validation data; both
    live in buffers, so ``state_dict()`` saves the tuned values. Parameters: 0.
    """

    output_kind = OUTPUT_PROBABILITY

    def __init__(
        self,
        in_channels: int,
        vv_channel: int = 0,
        vh_channel: int = 1,
        slope_channel: int | None = 2,
        par_channel: int | None = None,
        k_std: float = K_STD,
        min_change_db: float = MIN_CHANGE_DB,
        window: int = STATS_WINDOW_PX,
        max_runout_slope_deg: float = MAX_RUNOUT_SLOPE_DEG,
        min_par_deg: float = MIN_PAR_DEG,
        min_object_pixels: int = MIN_OBJECT_PX,
        softness_db: float = SOFTNESS_DB,
        patch_min_pixels: int = 1,
    ):
        super().__init__()
        used = {"vv_channel": vv_channel, "vh_channel": vh_channel, "slope_channel": slope_channel, "par_channel": par_channel}
        for key, idx in used.items():
            if idx is not None and not 0 <= idx < in_channels:
                raise InputError(f"baseline: {key}={idx} is not an index of the {in_channels} input channels")
        if window < 0 or (window > 0 and window % 2 == 0):
            raise InputError(f"baseline: window={window}: use an odd number of pixels, or 0 for whole-image statistics")
        if softness_db <= 0 or min_object_pixels < 0 or patch_min_pixels < 1:
            raise InputError(
                f"baseline: softness_db={softness_db}, min_object_pixels={min_object_pixels}, "
                f"patch_min_pixels={patch_min_pixels}: need softness_db > 0, min_object_pixels >= 0, patch_min_pixels >= 1"
            )
        self.in_channels = in_channels
        self.vv_channel = vv_channel
        self.vh_channel = vh_channel
        self.slope_channel = slope_channel
        self.par_channel = par_channel
        self.min_change_db = float(min_change_db)
        self.window = int(window)
        self.max_runout_slope_deg = float(max_runout_slope_deg)
        self.min_par_deg = float(min_par_deg)
        self.min_object_pixels = int(min_object_pixels)
        self.softness_db = float(softness_db)
        # the two tunable values are buffers: a checkpoint's state_dict carries what was tuned
        self.register_buffer("tuned_k_std", torch.tensor(float(k_std), dtype=torch.float64))
        self.register_buffer("tuned_patch_min_pixels", torch.tensor(int(patch_min_pixels), dtype=torch.int64))

    @property
    def k_std(self) -> float:
        return float(self.tuned_k_std)

    @k_std.setter
    def k_std(self, value: float) -> None:
        self.tuned_k_std.fill_(float(value))

    @property
    def patch_min_pixels(self) -> int:
        return int(self.tuned_patch_min_pixels)

    @patch_min_pixels.setter
    def patch_min_pixels(self, value: int) -> None:
        self.tuned_patch_min_pixels.fill_(int(value))

    def extra_repr(self) -> str:
        return (
            f"k_std={self.k_std}, min_change_db={self.min_change_db}, window={self.window}, "
            f"max_runout_slope_deg={self.max_runout_slope_deg}, min_object_pixels={self.min_object_pixels}"
        )

    def change_db(self, x: torch.Tensor) -> torch.Tensor:
        """The change statistic ``d`` (N, 1, H, W): mean of the VV and VH dB differences."""
        return 0.5 * (x[:, self.vv_channel : self.vv_channel + 1] + x[:, self.vh_channel : self.vh_channel + 1])

    def threshold_db(self, change: torch.Tensor) -> torch.Tensor:
        """The dynamic threshold ``t`` (N, 1, H, W) from the local statistics of the change."""
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

    def runout_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Where debris may lie (N, 1, H, W) bool: gentle enough slope and, with PAR, reachable."""
        mask = torch.ones_like(x[:, :1], dtype=torch.bool)
        if self.slope_channel is not None:
            mask &= x[:, self.slope_channel : self.slope_channel + 1] <= self.max_runout_slope_deg
        if self.par_channel is not None:
            mask &= x[:, self.par_channel : self.par_channel + 1] >= self.min_par_deg  # NaN compares False
        return mask

    def _small_objects(self, detected: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) bool: detected pixels in 8-connected objects under ``min_object_pixels``."""
        if self.min_object_pixels <= 1:
            return torch.zeros_like(detected)
        det = detected.detach().cpu().numpy()
        small = np.zeros_like(det)
        for i in range(det.shape[0]):
            labels, n = metrics.connected_components(det[i, 0], OBJECT_CONNECTIVITY)
            if n == 0:
                continue
            sizes = np.bincount(labels.ravel())
            too_small = sizes < self.min_object_pixels
            too_small[0] = False
            small[i, 0] = too_small[labels]
        return torch.from_numpy(small).to(detected.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise InputError(f"baseline: input has shape {tuple(x.shape)}; give (N, {self.in_channels}, H, W)")
        with torch.no_grad():
            change = self.change_db(x.float())
            margin = change - self.threshold_db(change)
            prob = torch.sigmoid(margin / self.softness_db)
            usable = self.runout_mask(x) & torch.isfinite(x).all(dim=1, keepdim=True)
            prob = torch.where(usable, prob, torch.zeros_like(prob))
            small = self._small_objects(prob >= 0.5)
            return torch.where(small, 0.5 * prob, prob)

    def patch_probability(self, x: torch.Tensor) -> torch.Tensor:
        """Per-patch (N,) score in [0, 1]: ``n / (n + patch_min_pixels)`` with n detected pixels.

        >= 0.5 exactly when a patch holds at least ``patch_min_pixels`` detected pixels.
        """
        n = (self(x) >= 0.5).flatten(1).sum(dim=1).float()
        return n / (n + self.patch_min_pixels)


def tune_threshold(
    detector: BaselineDetector,
    x: torch.Tensor,
    label: torch.Tensor | np.ndarray,
    k_values: Sequence[float] = DEFAULT_K_GRID,
    metric: str = "f1",
    level: str = "pixel",
) -> TuneResult:
    """Choose the detector's threshold on validation data (Sinha et al. III) and set it.

    ``level="pixel"``: ``label`` (N, H, W) or (N, 1, H, W) with 0/1/255; tries every
    ``k_std`` in ``k_values`` and keeps the best pixel ``metric`` ("f1" or
    "balanced_accuracy"). ``level="patch"``: ``label`` (N,) patch labels (255 ignored);
    keeps ``k_std`` and picks ``patch_min_pixels``, the number of detected pixels from which a
    patch counts as positive, that maximizes the patch ``metric``. Ties keep the first
    (smallest) value.
    """
    if metric not in metrics.THRESHOLD_METRICS:
        raise InputError(f"tune_threshold: metric={metric!r}; use one of {', '.join(metrics.THRESHOLD_METRICS)}")
    lab = metrics.as_numpy(label)
    if level == "pixel":
        if not k_values:
            raise InputError("tune_threshold: k_values is empty; give candidate k_std values")
        original = detector.k_std
        best: tuple[float, float] | None = None
        for k in k_values:
            detector.k_std = float(k)
            pred = metrics.as_numpy(detector(x))[:, 0] >= 0.5
            score = metrics.score_from_counts(metrics.pixel_counts(pred, lab.reshape(pred.shape)), metric)
            if best is None or score > best[1]:
                best = (float(k), score)
        detector.k_std = original if best is None else best[0]
        return TuneResult("k_std", best[0], best[1], metric)
    if level == "patch":
        n = (metrics.as_numpy(detector(x))[:, 0] >= 0.5).reshape(len(x), -1).sum(axis=1)
        threshold, score = metrics.best_threshold(n.astype(np.float64), lab.reshape(-1), metric=metric)
        detector.patch_min_pixels = max(1, int(np.ceil(threshold)))
        return TuneResult("patch_min_pixels", float(detector.patch_min_pixels), score, metric)
    raise InputError(f"tune_threshold: level={level!r}; use 'pixel' or 'patch'")
