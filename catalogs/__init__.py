"""STAC sources as data: one YAML file per catalog (see :mod:`sarcube.datacube.catalog`)."""
