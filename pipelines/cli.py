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
import os
import sys

import click

from sarcube import __version__
from sarcube.errors import EXIT_ABORTED, EXIT_BAD_INPUT, SarcubeError, os_error_line
from sarcube.malloc import return_freed_memory
from sarcube.progress import DISABLE_ENV
from sarcube.threads import available_cores, set_threads

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
    "export-raster": "export_raster",
    "search": "search",
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


#: third-party loggers kept below the default level: their lines (e.g. odc.loader's per-asset ERRORs around
#: one failed read) repeat what sarcube's final error line says; -v shows their warnings, -vv everything
THIRD_PARTY_LOGGERS = (
    "odc", "rasterio", "urllib3", "distributed", "numba", "fsspec", "matplotlib", "botocore", "aiobotocore",
    "s3fs", "asyncio", "PIL", "pyproj", "zarr", "numcodecs", "pystac_client", "httpx",
)


def configure_logging(verbosity: int) -> None:
    """Root logging for the CLI: WARNING by default, -v INFO, -vv DEBUG, -q ERROR; third parties quieter."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-1, min(verbosity, 2)), logging.DEBUG
    )
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    from sarcube.datacube.redaction import RedactQueries

    for handler in logging.getLogger().handlers:  # every record, third-party ones too: no signed URL in a log
        handler.addFilter(RedactQueries())
    third_party = {1: logging.WARNING}.get(verbosity, logging.DEBUG if verbosity >= 2 else logging.CRITICAL)
    for noisy in THIRD_PARTY_LOGGERS:
        logging.getLogger(noisy).setLevel(third_party)


def root_cause(err: BaseException) -> BaseException:
    """The innermost exception ``err`` was raised from (its ``__cause__``/``__context__`` chain)."""
    seen = {id(err)}
    while (nxt := err.__cause__ or err.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        err = nxt
    return err


def error_line(err: SarcubeError) -> str:
    """The one line the CLI prints: the message, plus the root cause when the message does not carry it."""
    message = " ".join(str(err).split())
    cause = root_cause(err)
    detail = " ".join(str(cause).split())
    if cause is not err and detail and detail not in message:
        message = f"{message} (cause: {type(cause).__name__}: {detail})"
    return f"Error: {message}"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="sarcube")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", count=True, help="Only errors in the log.")
@click.option(
    "--threads", type=int, default=None,
    help="CPU threads for torch and OpenMP (default: the cores this process may use; OMP_NUM_THREADS if set).",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int, threads: int | None) -> None:
    """sarcube: Sentinel-1 SAR + terrain datacubes for avalanche, landslide and
    glacier mapping.

    Typical flow: build -> features -> add-layer (labels) -> train -> predict
    -> evaluate/export/quicklook/report -> publish. `sarcube demo` runs all of it on
    an embedded synthetic scene.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = verbose - quiet
    configure_logging(verbose - quiet)
    if quiet or not sys.stderr.isatty():  # no progress bars (and their \r lines) in logs, pipes and under -q
        os.environ[DISABLE_ENV] = "1"
    if threads is not None:
        set_threads(threads)
    elif "OMP_NUM_THREADS" not in os.environ:  # sarcube.threads.prepare ran after torch had loaded
        set_threads(available_cores())
    return_freed_memory()  # freed chunk buffers leave the process: peak RSS bounded by chunks (sarcube.malloc)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sarcube`` console script.

    Deliberate errors (:class:`SarcubeError`) print one line and exit with
    their code (1 data or catalog error, 2 bad input); Ctrl-C exits 130;
    anything else keeps its traceback.
    """
    bars = os.environ.get(DISABLE_ENV)
    try:
        result = cli.main(args=argv, prog_name="sarcube", standalone_mode=False)
    except SarcubeError as err:
        click.echo(error_line(err), err=True)
        return err.exit_code
    except OSError as err:  # a path the user gave that the system refuses (read-only, a file in the way)
        line = os_error_line(err)
        if line is None:
            raise
        click.echo(f"Error: {line}", err=True)
        return SarcubeError.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Aborted.", err=True)
        return EXIT_ABORTED
    except click.UsageError as err:  # one line, like every other error, with where to look
        command = err.ctx.command_path if err.ctx is not None else "sarcube"
        click.echo(f"Error: {err.format_message()} (see `{command} --help`)", err=True)
        return EXIT_BAD_INPUT
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Exit as err:
        return err.exit_code
    finally:  # a notebook or test calling main() twice gets its environment back
        if bars is None:
            os.environ.pop(DISABLE_ENV, None)
        else:
            os.environ[DISABLE_ENV] = bars
    # Without standalone mode click returns --help/--version exit codes.
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
