"""The ``assay`` command: one module per verb family, shared pieces in :mod:`.common`.

The console script calls :func:`console`, which imports the command-line application on
first use: a worker process of the local executor re-runs the script as it starts (the
spawn start method runs the parent's main module again), and so pays for this package
only, not for the verbs' imports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assay.cli.main import app

__all__ = ["app", "console"]


def console() -> Any:
    """The ``assay`` console script."""
    from assay.cli.main import app

    return app()


def __getattr__(name: str) -> Any:
    if name == "app":
        from assay.cli.main import app

        return app
    raise AttributeError(f"module 'assay.cli' has no attribute {name!r}")
