"""``python -m assay``: the same as the ``assay`` command."""

from assay.cli import app

app(prog_name="assay")
