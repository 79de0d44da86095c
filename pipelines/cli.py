"""The ``sarcube`` command line.

Each subcommand lives beside the Python function it wraps, as a module-level
``command`` (a :class:`click.Command`) in ``sarcube.pipelines.<module>``.
Modules are imported only when their command runs, so ``sarcube --help`` stays
fast and a command never pays for torch unless it needs it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

import click

from sarcube import __version__
from sarcube.errors import SarcubeError

#: subcommand name -> module in ``sarcube.pipelines`` that defines ``command``.
COMMANDS: dict[str, str] = {
    "info": "info",
    "demo-catalog": "demo_catalog",
    "build": "build",
    "features": "features",
    "add-layer": "add_layer",
    "train": "train",
    "predict": "predict",
    "evaluate": "evaluate",
    "export": "export",
    "quicklook": "quicklook",
    "timeseries": "timeseries",
    "report": "report",
    "publish": "publish",
    "verify": "verify",
    "demo": "demo",
}

_PACKAGE = "sarcube.pipelines"


def _module_name(command_name: str) -> str:
    return f"{_PACKAGE}.{COMMANDS[command_name]}"


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        # Only commands whose module is installed; a missing module is a
        # command not built yet, not an error.
        return [
            name for name in COMMANDS if importlib.util.find_spec(_module_name(name)) is not None
        ]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if importlib.util.find_spec(_module_name(cmd_name)) is None:
            return None
        module = importlib.import_module(_module_name(cmd_name))
        return module.command


def configure_logging(verbosity: int) -> None:
    """Root logging for the CLI: WARNING by default, -v INFO, -vv DEBUG, -q ERROR."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-1, min(verbosity, 2)), logging.DEBUG
    )
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    # Third-party chatter stays quiet unless asked for with -vv.
    for noisy in ("rasterio", "urllib3", "distributed", "numba", "fsspec", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING) if verbosity < 2 else level)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="sarcube")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", count=True, help="Only errors in the log.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int) -> None:
    """sarcube: Sentinel-1 SAR + terrain datacubes for avalanche, landslide and
    glacier mapping.

    Typical flow: build -> features -> add-layer (labels) -> train -> predict
    -> evaluate/export/quicklook/report -> publish. `sarcube demo` runs all of it on
    an embedded synthetic scene.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = verbose - quiet
    configure_logging(verbose - quiet)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sarcube`` console script.

    Deliberate errors (:class:`SarcubeError`) print one line and exit
    non-zero; anything else keeps its traceback.
    """
    try:
        result = cli.main(args=argv, prog_name="sarcube", standalone_mode=False)
    except SarcubeError as err:
        click.echo(f"Error: {err}", err=True)
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Exit as err:
        return err.exit_code
    # Without standalone mode click returns --help/--version exit codes.
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
