"""Typed errors.

`ItemError` is bad *input* (a dead URL, a corrupt file, a broken subtitle): the runner turns it into an
error row with `reason` (a short stable slug people can group by) and `detail` (what a person reads to act
on it). Anything else escaping a stage is a programmer error and is also recorded, as `internal_error`, so
one bad item never stops a run.

`ConfigError` and `ManifestError` are usage errors: raised before any work starts, nothing half-written.
`RunStopped` stops a run midway for a reason outside it (exit 1); re-running resumes.
"""
from __future__ import annotations


class MmdataError(Exception):
    """Base class for errors mmdata raises on purpose."""


class ItemError(MmdataError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ConfigError(MmdataError):
    """A wrong config value: names the key, the value and what is allowed."""


class ManifestError(MmdataError):
    """A bad manifest: names the file, row (1-based, as a person counts data rows) and column."""

    def __init__(self, path, message: str, row: int | None = None, column: str | None = None):
        where = str(path)
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")
        self.path, self.row, self.column = str(path), row, column


class RunStopped(MmdataError):
    """A run that cannot go on, through no fault of its input (the Ray cluster lost every node that could hold
    a worker): what it finished is kept, and the same command run again resumes. The CLI prints the message
    and exits 1, without a traceback."""


class MissingDependencyError(MmdataError):
    """An optional heavy dependency or system tool is missing; the message says how to install it."""
