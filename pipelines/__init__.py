"""What users run: build, features, train, predict, evaluate, publish, demo.

Each step is a Python function of the same name as its CLI command; the
``sarcube`` CLI (:mod:`sarcube.pipelines.cli`) is a thin layer over them.
"""

__all__: list[str] = []
