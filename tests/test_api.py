"""The public faces: every name a package's __all__ promises resolves."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["sarcube.datacube", "sarcube.models"])
def test_all_names_resolve(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_datacube_never_imports_torch():
    import subprocess
    import sys

    code = "import sys, sarcube.datacube as d; [getattr(d, n) for n in d.__all__]; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False", "sarcube.datacube imported torch"


def test_datacube_lazy_table_lists_every_public_module():
    import pkgutil

    import sarcube.datacube as d

    found = {m.name for m in pkgutil.iter_modules(d.__path__) if not m.name.startswith("_")}
    assert found - {"schema", "store"} == set(d._MODULES)
    assert set(d.__all__) == {"add_variables", "open_cube", "validate_cube", "write_cube", "schema", "store"} | set(
        d._MODULES
    ) | set(d._FUNCTIONS)


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
#: the steps of pipelines/: a step never imports another (only demo and cli compose them)
STEPS = (
    "build",
    "features",
    "add_layer",
    "train",
    "predict",
    "evaluate",
    "export",
    "export_raster",
    "search",
    "quicklook",
    "publish",
    "verify",
    "info",
    "demo_catalog",
    "report",
    "timeseries",
)


def _imported_modules(path):
    import ast

    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_no_step_imports_another_step():
    for step in STEPS:
        path = REPO / "pipelines" / f"{step}.py"
        if not path.exists():
            continue
        others = {f"sarcube.pipelines.{s}" for s in STEPS if s != step}
        bad = sorted(set(_imported_modules(path)) & others)
        assert not bad, f"pipelines/{step}.py imports the step(s) {bad}: move the shared code to a lower layer"


def test_models_never_import_datacube_or_pipelines():
    for path in (REPO / "models").glob("*.py"):
        bad = [m for m in _imported_modules(path) if m.startswith(("sarcube.datacube", "sarcube.pipelines"))]
        assert not bad, f"models/{path.name} imports {bad}"


def test_models_init_holds_no_logic():
    import ast

    tree = ast.parse((REPO / "models" / "__init__.py").read_text())
    assert not [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]


def test_modules_stay_small():
    """One job per module (issue #13): none of datacube/, models/, pipelines/ runs past ~450 lines."""
    limit = 480
    long = {
        str(p.relative_to(REPO)): n
        for folder in ("datacube", "models", "pipelines")
        for p in (REPO / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > limit
    }
    assert not long, f"modules over {limit} lines: {long}"


def test_star_import_of_schema_gives_every_public_name():
    namespace: dict = {}
    exec("from sarcube.datacube.schema import *", namespace)  # every name in __all__ must exist
    import sarcube.datacube.schema as schema

    assert set(schema.__all__) <= set(namespace)
