"""What users run: each step is a module holding a Python function of the same
name and the thin ``sarcube`` CLI command over it.

    from sarcube.pipelines.build import build            # sarcube build
    from sarcube.pipelines.features import features      # sarcube features
    from sarcube.pipelines.add_layer import add_layer    # sarcube add-layer
    from sarcube.pipelines.train import train            # sarcube train
    from sarcube.pipelines.predict import predict        # sarcube predict
    from sarcube.pipelines.evaluate import evaluate      # sarcube evaluate
    from sarcube.pipelines.export import export          # sarcube export
    from sarcube.pipelines.quicklook import quicklook    # sarcube quicklook
    from sarcube.pipelines.publish import publish        # sarcube publish
    from sarcube.pipelines.verify import verify          # sarcube verify
    from sarcube.pipelines.info import info              # sarcube info
    from sarcube.pipelines.demo_catalog import demo_catalog  # sarcube demo-catalog
    from sarcube.pipelines.demo import demo              # sarcube demo

Supporting modules (not steps): ``presets`` (paper presets parsed from YAML into the
config dataclasses of ``sarcube.models.config`` and ``sarcube.datacube.chips``),
``runs`` (run directories and checkpoints), ``build_writes`` (the resumable writes
of ``build``), ``demo_workdir`` and ``demo_results`` (the demo's workdir state and
its Results section), ``loaders`` (the torch side of chip streaming), ``_dask``
(scheduler and progress), ``_query`` (the catalog query options ``search`` and ``build``
share), ``cli`` (the command registry).
No step imports another; only ``demo`` and ``cli`` compose them.
"""

__all__: list[str] = []
