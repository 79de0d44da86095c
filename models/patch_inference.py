"""Scene inference of a patch classifier: one probability per chip, scored as validation scored it.

avalanche-cnn-sinha, avalanche-vae and Sinha et al.'s baseline rule classify
patches; sliding and blending their windows (:mod:`~sarcube.models.inference`,
for maps) would score something they were never trained or validated on.
:func:`predict_patches` cuts a scene into the non-overlapping grid of the
run's training chips, centre-crops each chip as the validation stream does
(:func:`~sarcube.models.augment.center_crop`; no test-time augmentation:
validation, checkpoint choice and every tuned threshold saw single crops),
scores it with :func:`patch_probability` and paints the score over the chip.
Nothing here reads files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from sarcube.errors import InputError
from sarcube.models.augment import center_crop
from sarcube.models.device import autocast_context
from sarcube.models.inference import RowReader

#: a batch of patches (N, C, [T,] h, w) -> one positive-class probability per patch (N,)
PatchProbabilityFn = Callable[[torch.Tensor], torch.Tensor]


def patch_probability(model: torch.nn.Module, patches: torch.Tensor) -> torch.Tensor:
    """One probability per patch (N,), as validation scores a patch model (no gradients).

    The baseline detector counts its detected pixels (its ``patch_probability``,
    Sinha et al.'s rule); classifiers and the VAE give their chip probability
    (:func:`sarcube.models.probability`). Run the model in eval mode.
    """
    from sarcube.models import probability

    bare = getattr(model, "module", model)
    with torch.no_grad():
        if hasattr(bare, "patch_probability"):
            return bare.patch_probability(patches)
        out = probability(model, model(patches), patches)
    if out.dim() != 1:
        raise InputError(f"{type(bare).__name__} predicts maps, not one probability per patch: predict it per pixel")
    return out


def predict_patches(
    probability_fn: PatchProbabilityFn,
    read_rows: RowReader,
    height: int,
    width: int,
    patch: int,
    input_size: int,
    *,
    band_rows: int,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Per-patch probabilities of a scene, yielded as ``(y0, band)``, band (rows, width) float32 on the CPU.

    Patches are the ``patch`` x ``patch`` chips at origins ``0, patch, 2 patch, ...``
    in y and x (full chips only: the chip grid without overlap); each is centre-cropped to ``input_size`` and scored by
    ``probability_fn`` (e.g. ``lambda x: patch_probability(model, x)``), and
    its score painted over the whole chip. Pixels outside every full chip are
    NaN. Bands are ``band_rows`` rows (the last one shorter), in order; input
    rows are read in aligned blocks of ``band_rows``, each once. ``batch_size``
    is patches per forward pass; ``on_batch(patches_done)`` follows each pass.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    if band_rows < 1 or batch_size < 1:
        raise InputError(f"band_rows={band_rows} and batch_size={batch_size} must be positive")
    if not 1 <= input_size <= patch:
        raise InputError(f"input size {input_size} must lie in 1..{patch}, the patch side")
    rows, cols = height // patch, width // patch
    if rows == 0 or cols == 0:
        raise InputError(f"a scene of {height} x {width} pixels holds no {patch} x {patch} patch: use a larger scene")
    buf = torch.zeros(0, device=device)  # input rows [buf0, next_read)
    buf0 = next_read = 0
    scores: dict[int, list[float]] = {}  # patch row -> its patches' scores, until painted
    pending: list[tuple[int, torch.Tensor]] = []
    done = emitted = 0

    def patch_row(k: int) -> torch.Tensor:
        """Inputs of patch row k: (C, [T,] patch, cols * patch)."""
        nonlocal buf, buf0, next_read
        while next_read < (k + 1) * patch:
            y1 = min(next_read + band_rows, height)
            block = read_rows(next_read, y1).float().to(device)
            buf = block if next_read == 0 else torch.cat([buf, block], dim=-2)
            next_read = y1
        if k * patch > buf0:  # rows above this patch row are not needed again
            buf, buf0 = buf[..., k * patch - buf0 :, :], k * patch
        return buf[..., :patch, : cols * patch]

    def finished_bands(final_rows: int) -> Iterator[tuple[int, torch.Tensor]]:
        nonlocal emitted
        while emitted < height and min(emitted + band_rows, height) <= final_rows:
            y1 = min(emitted + band_rows, height)
            band = torch.full((y1 - emitted, width), float("nan"))
            for k in range(emitted // patch, min(-(-y1 // patch), rows)):
                lo, hi = max(k * patch, emitted), min((k + 1) * patch, y1)
                band[lo - emitted : hi - emitted, : cols * patch] = torch.tensor(scores[k]).repeat_interleave(patch)
            for k in [k for k in scores if (k + 1) * patch <= y1]:
                del scores[k]
            yield emitted, band
            emitted = y1

    def run_batch() -> Iterator[tuple[int, torch.Tensor]]:
        nonlocal done
        batch = torch.nan_to_num(torch.stack([c for _, c in pending]), nan=0.0)
        with torch.inference_mode(), autocast_context(device):
            out = probability_fn(batch).float().reshape(-1).cpu().tolist()
        for (k, _), value in zip(pending, out, strict=True):
            scores.setdefault(k, []).append(value)
        done += len(pending)
        pending.clear()
        if on_batch is not None:
            on_batch(done)
        complete = done // cols  # patch rows with every patch scored
        yield from finished_bands(height if complete == rows else complete * patch)

    for k in range(rows):
        strip = patch_row(k)
        for j in range(cols):
            chip = strip[..., j * patch : (j + 1) * patch]
            pending.append((k, center_crop(chip, chip, input_size)[0]))
            if len(pending) >= batch_size:
                yield from run_batch()
    if pending:
        yield from run_batch()


__all__ = ["PatchProbabilityFn", "patch_probability", "predict_patches"]
