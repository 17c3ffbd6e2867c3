"""What every verb shares: the consoles, inert printing, error reporting and exit codes.

Everything assay prints may hold text it did not write, so the consoles here are inert
(:mod:`assay.report.terminal`): they show every string as the characters it holds.

Every verb is wrapped by :func:`guarded`: an :class:`~assay.errors.AssayError` becomes
``error: FILE:LINE: message`` and its exit code; the operating system's refusals (a full
disk, a denied permission, a read-only file system) become ``error: PATH: reason``; any
other exception is a bug, reported in one line. ``assay --debug`` shows the traceback.
"""

from __future__ import annotations

import enum
import errno
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from assay.errors import EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED, AssayError
from assay.report.terminal import InertConsole, inert

if TYPE_CHECKING:
    from assay.engine.settings import RaySettings

__all__ = ["InertConsole", "console", "errors", "fail", "guarded", "inert", "label", "warn"]

console = InertConsole()
errors = InertConsole(stderr=True, soft_wrap=True)  # one line per error, greppable in logs


class ExecutorKind(enum.StrEnum):
    """The ``--executor`` choices of the verbs that run tasks."""

    local = "local"
    ray = "ray"


def ray_settings(executor: ExecutorKind, address: str | None) -> RaySettings | None:
    """The Ray settings ``--executor`` and ``--address`` ask for (None: run here)."""
    if address is not None and executor != ExecutorKind.ray:
        raise fail("--address needs the ray executor (--executor ray)")
    from assay.engine.settings import RaySettings  # the engine's settings, not needed by every verb

    return RaySettings(address or "auto") if executor == ExecutorKind.ray else None


def label(kind: str, message: str, style: str) -> Text:
    """``kind: message`` with ``kind`` in ``style`` and ``message`` shown inert."""
    return Text.assemble((f"{kind}:", style), " ", inert(message))


def warn(message: str, to: Console | None = None) -> None:
    (to or errors).print(label("warning", message, "yellow"))


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``error: message`` and return the exit to raise."""
    errors.print(label("error", message, "red"))
    return typer.Exit(code)


class _Options:
    debug = False


options = _Options()

_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space and run the same command again (finished work is kept)",
    errno.EDQUOT: "the disk quota is exceeded: free space and run the same command again",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def describe_os_error(exc: OSError) -> str:
    """``PATH: reason`` for an error of the operating system (or of pyarrow's file layer)."""
    reason = _OS_HINTS.get(exc.errno or 0) or exc.strerror or str(exc)
    if exc.filename is None:
        return reason if exc.errno in _OS_HINTS else str(exc)
    return f"{exc.filename}: {reason}"


F = TypeVar("F", bound=Callable[..., Any])


def guarded(command: F) -> F:
    """Run a verb so that every failure ends in one ``error:`` line and an exit code."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except BaseException as exc:  # the one place that reports every failure
            if options.debug or isinstance(exc, SystemExit):
                raise
            raise _report(exc) from None

    return run  # type: ignore[return-value]


def _report(exc: BaseException) -> typer.Exit:
    if isinstance(exc, AssayError):
        return fail(str(exc), exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return fail("interrupted; finished work is kept: run the same command again to go on",
                    EXIT_INTERRUPTED)
    if isinstance(exc, OSError):
        return fail(describe_os_error(exc))
    if isinstance(exc, MemoryError):
        return fail("out of memory: lower the workers or the shard size, or use a larger machine")
    if isinstance(exc, RecursionError):
        return fail("the input is nested too deeply to read")
    return fail(f"internal error: {type(exc).__name__}: {exc}. This is a bug in assay; "
                "run again with --debug to see the traceback, and report it", EXIT_INTERNAL)
