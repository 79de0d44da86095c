"""docs/example.ipynb runs top to bottom (nbclient) on a tiny cube with a prediction and draws its three pictures."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from conftest import make_pair_cube
from sarcube.datacube import store
from test_export import _write_pred

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "example.ipynb"
#: seconds per cell (kernel start included in the first)
CELL_TIMEOUT_S = 180


def run_example_notebook(cube: str | Path, pred: str, workdir: Path) -> nbformat.NotebookNode:
    """Execute the example notebook on ``cube``/``pred`` (through its SARCUBE_* variables); return it executed."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {"SARCUBE_CUBE": str(cube), "SARCUBE_PRED": pred, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment
    try:
        client = NotebookClient(
            nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
        )
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def pictures(nb: nbformat.NotebookNode) -> int:
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    return sum("image/png" in out.get("data", {}) for out in outputs)


def test_example_notebook_runs_on_a_tiny_cube(tmp_path):
    cube = tmp_path / "pairs.zarr"
    store.write_cube(make_pair_cube(ny=48, nx=64), cube)
    _write_pred(cube)
    nb = run_example_notebook(cube, "hand", tmp_path)
    assert pictures(nb) == 3  # time series, change composite, prediction
    text = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
    assert "pair 0: 25 pixels >= 0.5" in text  # the hand-made prediction: 20 + 4 + 1 pixels on pair 0
