"""Training presets as YAML files, one per paper (see :mod:`sarcube.pipelines.presets`)."""
