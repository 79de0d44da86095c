"""Whole-scene inference: sliding windows, dihedral test-time augmentation, spline blending.

What avalanche-fcn-bianchi IV-B does to turn a chip network into a scene
map, in plain torch on tensors:

- windows of the training chip size slide over the scene with a stride of
  half a window; the scene is mirrored by half a window on every side first,
  so border pixels sit inside windows exactly like interior pixels do;
- each window goes through the network under all 8 rotations/flips of the
  square (the dihedral group D4); each output is transformed back and the 8
  are averaged;
- overlapping windows are blended with a 2nd-order spline window (piecewise
  quadratic, C1, zero at the window edge): with a stride of half a window the
  shifted copies sum to exactly one (a partition of unity), and the blend is
  divided by the summed weights, so the result has no seams and a constant
  network output stays that constant everywhere, borders and odd sizes too.

:func:`predict_bands` streams a scene of any height through the network
band by band (each window runs once; only a band plus one window of rows is
held), reading input rows through a callback; :func:`predict_scene` is the
same on an in-memory image; :func:`sarcube.models.inference_tiles.predict_tiles`
streams it in tiles (column panels), so not even a band of the width is held.
All run on the GPU with bf16 autocast when the device is CUDA. Nothing here reads files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from sarcube.errors import InputError

#: a batch of network inputs (N, C, [T,] h, w) -> positive-class probabilities (N, h, w), (N, 1, h, w) or per chip (N,)
ProbabilityFn = Callable[[torch.Tensor], torch.Tensor]
#: real rows [y0, y1) of the scene's input channels -> (C, [T,] y1 - y0, width) float tensor
RowReader = Callable[[int, int], torch.Tensor]

#: how a network with an input mask (the PAR attention) meets test-time augmentation: the mask computed
#: again on every transformed copy (exact TTA, the default), or once per window and transformed with it
#: (faster; its TTA mean differs, by up to 2e-2 in probability for a trained demo run: benchmarks/predict.py)
MASK_PER_TRANSFORM = "per-transform"
MASK_ONCE = "once"
MASK_MODES = (MASK_PER_TRANSFORM, MASK_ONCE)


@dataclass(frozen=True)
class MaskedProbabilityFn:
    """A network whose input mask is computed once per window and transformed with the window under TTA.

    ``mask`` maps untransformed windows (N, C, [T,] w, w) to masks (N, k, w, w);
    ``probability`` maps transformed inputs and their equally transformed masks to
    probabilities as a :data:`ProbabilityFn` does. Exact for a rotation-equivariant
    mask net; the PAR attention's 3x3 convolutions are not, so its TTA mean differs
    from running the mask net on every copy (see :data:`MASK_ONCE`).
    """

    mask: Callable[[torch.Tensor], torch.Tensor]
    probability: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Dihedral:
    """One symmetry of the square acting on the last two dims: mirror left-right, then rotate."""

    #: quarter turns counter-clockwise (as :func:`torch.rot90`)
    quarter_turns: int
    #: mirror the columns before rotating
    flip: bool

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip:
            x = x.flip(-1)
        return torch.rot90(x, self.quarter_turns, dims=(-2, -1)) if self.quarter_turns else x

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        if self.quarter_turns:
            x = torch.rot90(x, -self.quarter_turns, dims=(-2, -1))
        return x.flip(-1) if self.flip else x


#: the 8 elements of D4; the first is the identity
DIHEDRAL_TRANSFORMS: tuple[Dihedral, ...] = tuple(Dihedral(k, f) for f in (False, True) for k in range(4))
IDENTITY: tuple[Dihedral, ...] = DIHEDRAL_TRANSFORMS[:1]


def spline_profile(size: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """1-D 2nd-order spline window of ``size`` samples (pixel centres), in (0, 1].

    With ``t`` the triangle rising from 0 at the window edge to 1 at its centre,
    the weight is ``2 t**2`` for ``t < 1/2`` and ``1 - 2 (1 - t)**2`` above: a
    quadratic B-spline-like bump whose copies shifted by half a window sum to 1.
    """
    if size < 1:
        raise InputError(f"window size {size} must be at least 1 pixel")
    u = (torch.arange(size, dtype=torch.float64, device=device) + 0.5) / size
    t = 1.0 - (2.0 * u - 1.0).abs()
    w = torch.where(t < 0.5, 2.0 * t**2, 1.0 - 2.0 * (1.0 - t) ** 2)
    return w.float()


def spline_window(size: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """2-D blending window (size, size): outer product of :func:`spline_profile`."""
    p = spline_profile(size, device=device)
    return p[:, None] * p[None, :]


def mirror_index(index: torch.Tensor, size: int) -> torch.Tensor:
    """Fold any integer index into [0, size) by mirroring at the edges (edge pixel repeated).

    Works for indices any distance outside, so scenes smaller than the padding
    are still mirrored consistently.
    """
    period = 2 * size
    m = torch.remainder(index, period)
    return torch.where(m >= size, period - 1 - m, m)


@dataclass(frozen=True)
class TilingPlan:
    """Where the windows of one scene go (in coordinates of the mirrored scene).

    The scene is mirrored by ``pad = stride = window // 2`` pixels on each
    side; windows start at multiples of the stride and run until the last one
    covers the scene's far edge plus its pad.
    """

    height: int
    width: int
    window: int

    def __post_init__(self) -> None:
        if self.window < 2:
            raise InputError(f"window size {self.window} is too small: use the run's chip size (>= 2)")
        if self.height < 1 or self.width < 1:
            raise InputError(f"scene of {self.height} x {self.width} pixels is empty")

    @property
    def stride(self) -> int:
        return self.window // 2

    @property
    def pad(self) -> int:
        return self.stride

    def count(self, length: int) -> int:
        """Windows along an axis of ``length`` real pixels."""
        return math.ceil(max(length + 2 * self.pad - self.window, 0) / self.stride) + 1

    @property
    def rows(self) -> int:
        return self.count(self.height)

    @property
    def cols(self) -> int:
        return self.count(self.width)

    @property
    def windows(self) -> int:
        return self.rows * self.cols

    def start(self, k: int) -> int:
        """Real coordinate of window ``k``'s first pixel (negative inside the mirrored pad)."""
        return k * self.stride - self.pad


def _to_maps(out: torch.Tensor, n: int, window: int) -> torch.Tensor:
    """Network probabilities as (n, window, window) float32 maps (chip scores broadcast over the chip)."""
    out = out.float()
    if out.dim() == 4:
        if out.shape[1] != 1:
            raise InputError(f"probability output has {out.shape[1]} channels; expected one positive-class map")
        out = out[:, 0]
    if out.dim() == 3:
        if out.shape != (n, window, window):
            raise InputError(
                f"probability maps of shape {tuple(out.shape)} do not match the {window} x {window} windows"
            )
        return out
    return out.reshape(n, 1, 1).expand(n, window, window)


def _transformed(x: torch.Tensor, transforms: tuple[Dihedral, ...]) -> torch.Tensor:
    """The copies of ``x`` under each transform, stacked on the batch dim (transform-major)."""
    return torch.cat([t.apply(x) for t in transforms]) if len(transforms) > 1 else x


def tta_predict(
    probability_fn: ProbabilityFn | MaskedProbabilityFn,
    chips: torch.Tensor,
    transforms: tuple[Dihedral, ...] = DIHEDRAL_TRANSFORMS,
) -> torch.Tensor:
    """Mean over ``transforms`` of the back-transformed predictions of square chips (N, C, [T,] w, w) -> (N, w, w).

    With a :class:`MaskedProbabilityFn` the mask is computed once on ``chips`` and
    each copy gets it transformed as the copy is.
    """
    n, h, w = chips.shape[0], chips.shape[-2], chips.shape[-1]
    if h != w and len(transforms) > 1:
        raise InputError(f"test-time rotations need square chips, got {h} x {w}")
    batch = _transformed(chips, transforms)
    if isinstance(probability_fn, MaskedProbabilityFn):
        out = probability_fn.probability(batch, _transformed(probability_fn.mask(chips), transforms))
    else:
        out = probability_fn(batch)
    maps = _to_maps(out, batch.shape[0], w).reshape(len(transforms), n, h, w)
    # Pairwise (tree) sum: 8 equal maps sum to exactly 8x, so an invariant network passes through unchanged.
    parts = [t.invert(maps[i]) for i, t in enumerate(transforms)]
    while len(parts) > 1:
        parts = [parts[i] + parts[i + 1] if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0] / len(transforms)


def predict_bands(
    probability_fn: ProbabilityFn | MaskedProbabilityFn,
    read_rows: RowReader,
    height: int,
    width: int,
    window: int,
    *,
    band_rows: int,
    tta: bool = True,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Blended probabilities of a scene, yielded as ``(y0, band)`` with band (rows, width) float32 on the CPU.

    Bands are ``band_rows`` rows (the last one shorter), in order; input rows
    are read in blocks of ``band_rows`` aligned rows as the windows need them,
    each once. ``batch_size`` is network inputs per forward pass (windows
    times the 8 TTA transforms; at least one window). Pixels where any input
    channel is NaN (nodata) get NaN; the network sees 0 there.
    ``on_batch(windows_done)`` is called after each forward pass.
    """
    from sarcube.models.inference_tiles import predict_tiles

    tiles = predict_tiles(
        probability_fn, lambda y0, y1, x0, x1: read_rows(y0, y1)[..., x0:x1], height, width, window,
        band_rows=band_rows, tile_cols=width, tta=tta, batch_size=batch_size, device=device, on_batch=on_batch,
    )
    for y0, _, band in tiles:
        yield y0, band


def predict_scene(
    probability_fn: ProbabilityFn | MaskedProbabilityFn,
    image: torch.Tensor,
    window: int,
    *,
    tta: bool = True,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    band_rows: int | None = None,
) -> torch.Tensor:
    """Blended probability map (H, W) of an image (C, [T,] H, W) held in memory (see :func:`predict_bands`)."""
    if image.dim() < 3:
        raise InputError(f"image must be (channels, [time,] height, width), got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    bands = predict_bands(
        probability_fn,
        lambda y0, y1: image[..., y0:y1, :],
        height,
        width,
        window,
        band_rows=band_rows or height,
        tta=tta,
        batch_size=batch_size,
        device=device,
    )
    return torch.cat([band for _, band in bands])


__all__ = [
    "DIHEDRAL_TRANSFORMS",
    "IDENTITY",
    "MASK_MODES",
    "MASK_ONCE",
    "MASK_PER_TRANSFORM",
    "Dihedral",
    "MaskedProbabilityFn",
    "ProbabilityFn",
    "RowReader",
    "TilingPlan",
    "mirror_index",
    "predict_bands",
    "predict_scene",
    "spline_profile",
    "spline_window",
    "tta_predict",
]
