"""Torch networks, losses, metrics and the baseline detector.

Tensors only: nothing here reads files, STAC or zarr.
"""

__all__: list[str] = []
