"""``sarcube verify DIR``: check a published archive's checksums and cube schema.

Every ``MD5SUMS`` entry, every STAC ``file:checksum``/``file:size`` and the
zipped cube against the contract (:func:`sarcube.datacube.schema.validate_cube`,
opened straight from the zip, never extracted). The first failure raises
:class:`~sarcube.errors.VerifyError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import click

from sarcube.datacube.archive import VerifyReport, verify_archive


def verify(archive_dir: str | Path) -> VerifyReport:
    """Verify the folder written by ``sarcube publish``; raises VerifyError naming the first bad file."""
    return verify_archive(archive_dir)


@click.command("verify")
@click.argument("archive_dir", type=click.Path())
def command(archive_dir: str) -> None:
    """Check every checksum (MD5SUMS, STAC) and the cube schema of the archive folder ARCHIVE_DIR."""
    click.echo(verify(archive_dir).summary())


__all__ = ["VerifyReport", "verify"]
