"""``sarcube evaluate CUBE --pred A --pred B``: the preset's metrics on the held-out split, side by side.

The scoring itself (pixels or patches, balanced and unbalanced patch test
sets, the split's leak check) is :mod:`sarcube.pipelines.scoring`; this step
prints its table and writes every metric as JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from sarcube.datacube import chips
from sarcube.datacube.predictions import OP_RATE, OP_THRESHOLD
from sarcube.pipelines._storage import storage_options_option
from sarcube.pipelines.scoring import (
    BALANCED,
    BALANCED_TEST_SEED,
    COLUMNS,
    UNBALANCED,
    score_predictions,
)

log = logging.getLogger(__name__)


def evaluate(
    cube: str | Path,
    preds: Sequence[str],
    *,
    split: str = chips.TEST,
    threshold: float | None = None,
    out_json: str | Path | None = None,
    storage_options: Mapping[str, Any] | None = None,
    balance_seed: int = BALANCED_TEST_SEED,
    operating_point: str | None = None,
) -> dict[str, Any]:
    """Score predictions side by side on their runs' ``split``; returns (and optionally writes) the results.

    See :func:`sarcube.pipelines.scoring.score_predictions` for what the dict holds. ``operating_point``
    (``threshold`` or ``rate``) overrides the one each prediction recorded (``predict --operating-point``).
    """
    out = score_predictions(
        cube, preds, split=split, threshold=threshold, storage_options=storage_options, balance_seed=balance_seed,
        operating_point=operating_point,
    )
    if out_json is not None:
        path = Path(out_json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2, default=str))
        log.info("wrote %s", path)
    return out


@click.command("evaluate")
@click.argument("cube", type=click.Path())
@click.option(
    "--pred",
    "preds",
    multiple=True,
    required=True,
    help="Prediction to score (NAME or pred_NAME); repeat to compare side by side.",
)
@click.option(
    "--split",
    default=chips.TEST,
    show_default=True,
    type=click.Choice(list(chips.SPLITS)),
    help="Split of each prediction's run to score on.",
)
@click.option(
    "--threshold", type=float, default=None, help="Probability threshold for all predictions (default: each run's)."
)
@click.option(
    "--operating-point", type=click.Choice([OP_THRESHOLD, OP_RATE]), default=None,
    help="Score every prediction at this operating point (default: the one each recorded at predict).",
)
@click.option(
    "--balance-seed", type=int, default=BALANCED_TEST_SEED, show_default=True,
    help="Seed of the negatives drawn into the balanced patch test set.",
)
@click.option(
    "--out",
    "out_json",
    default="evaluation.json",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="JSON file with every metric.",
)
@storage_options_option
def command(
    cube: str, preds: tuple[str, ...], split: str, threshold: float | None, operating_point: str | None,
    balance_seed: int, out_json: str, storage_options: dict[str, Any] | None,
) -> None:
    """Score predictions in CUBE on their runs' held-out split; print a table and write JSON."""
    result = evaluate(cube, preds, split=split, threshold=threshold, out_json=out_json, balance_seed=balance_seed,
                      storage_options=storage_options, operating_point=operating_point)
    click.echo(result["table"])
    click.echo(f"wrote {out_json}")


__all__ = ["BALANCED", "COLUMNS", "UNBALANCED", "evaluate"]
