"""The base of every user-facing failure.

A command catches :class:`AssayError` once and prints ``error: FILE:LINE: message`` with
the error's exit code; anything else that escapes a command is a bug, or the operating
system's answer (a full disk, a denied permission), and is printed the same way (see
:mod:`assay.cli.common`). Each package keeps its own subclasses next to the code that
raises them; they derive from this one.
"""

from __future__ import annotations

# Exit codes shared by every verb.
EXIT_ERROR = 2  # the input, the recipe or the command line is wrong; nothing was lost
EXIT_ACCOUNTING = 3  # the books of a finished run do not balance
EXIT_NOT_CONVERGED = 4  # a fit ran but its result must not be used
EXIT_INTERNAL = 70  # a bug in assay (EX_SOFTWARE)
EXIT_INTERRUPTED = 130


class AssayError(Exception):
    """A failure the user can act on; ``str()`` is the whole message, location first.

    Subclasses that know where the problem is pass ``file`` (and ``line``); the message
    itself never repeats them.
    """

    exit_code: int = EXIT_ERROR

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.message, self.file, self.line = message, file, line
        super().__init__(message)

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        # Errors raised in worker processes cross back to the driver by pickling.
        return _rebuild, (type(self), self.message, self.file, self.line)


def _rebuild(cls: type[AssayError], message: str, file: str | None, line: int | None) -> AssayError:
    error = cls.__new__(cls)
    AssayError.__init__(error, message, file=file, line=line)
    return error
