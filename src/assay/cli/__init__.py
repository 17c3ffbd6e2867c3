"""The ``assay`` command: one module per verb family, shared pieces in :mod:`.common`."""

from assay.cli.main import app

__all__ = ["app"]
