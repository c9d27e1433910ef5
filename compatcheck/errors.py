"""Errors that end a run, each carrying its exit code (the table in ``docs/commands.md``).

Only the CLI turns these into an exit code, and only the hook's web layer
(:mod:`compatcheck.serve.app`) turns them into HTTP statuses; the library raises them so that
the CLI, the hook and the Python API map the same conditions onto their own contracts. Nothing
below the web layer knows HTTP.
"""

from __future__ import annotations


class CompatcheckError(Exception):
    """Base class: ``str(err)`` is the one line a person reads on stderr."""

    exit_code = 2


class UsageError(CompatcheckError):
    """Bad command line, config, policy or input file: the user must fix something (exit 2)."""

    exit_code = 2


class InputError(UsageError):
    """An input file or URL could not be read or parsed; the message names the input (exit 2)."""


class NotFoundError(InputError):
    """A named thing does not exist: no stored snapshot for a service and version (exit 2)."""


class RefusedError(UsageError):
    """A request for something this installation is configured not to do (exit 2)."""


class UnavailableError(CompatcheckError):
    """Something compatcheck needed could not be reached or evaluated (exit 3)."""

    exit_code = 3


class BusyError(UnavailableError):
    """Every slot for this kind of work is taken; the same request later may well succeed."""


class DeadlineExceeded(UnavailableError):
    """The work did not finish within its time limit."""


class InternalError(CompatcheckError):
    """Compatcheck's own inputs are broken (the server's configuration, a snapshot it stored):
    neither the caller's fault nor a passing condition (exit 3)."""

    exit_code = 3


class ExpositionError(ValueError):
    """A metrics exposition is malformed; ``line`` is 1-based, 0 when not tied to one line."""

    def __init__(self, message: str, line: int = 0) -> None:
        self.reason = message
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)
