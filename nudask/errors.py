"""The one error hierarchy of nudask.

Everything nudask raises on purpose about the user's inputs, configuration,
datasets or outputs is a :class:`NudaskError`; the command line reports those
as one line and exits 2. Anything else is a bug and keeps its traceback.
The subclasses also derive from the builtin they refine (``ValueError``,
``OSError``), so code written against the builtins keeps working.
"""

from __future__ import annotations

import os


class NudaskError(Exception):
    """Base of the errors nudask raises on purpose; the message says what to do."""


class InputError(NudaskError, ValueError):
    """An input file nudask cannot use; the message names it and says what to do."""

    def __init__(self, path: str | os.PathLike[str], problem: str, hint: str = ""):
        self.path = os.fspath(path)
        self.problem = problem
        self.hint = hint
        message = f"file '{self.path}': {problem}"
        super().__init__(f"{message}; {hint}" if hint else message)

    def __reduce__(self):  # keep the fields across process boundaries
        return (type(self), (self.path, self.problem, self.hint))


class ConfigError(NudaskError, ValueError):
    """A configuration nudask cannot use; the message says which key and what is allowed."""


class DataError(NudaskError, ValueError):
    """A dataset (or a selection of it) that cannot be used for the task asked of it."""


class DatasetError(NudaskError, ValueError):
    """A dataset folder that is missing, incomplete, damaged or of an unknown version."""


class DatasetNotFound(DatasetError, FileNotFoundError):
    """No dataset at the path given."""


class OutputError(NudaskError, OSError):
    """An output that cannot be written (exists with other settings, locked, disk full, ...)."""


def output_error(path: str | os.PathLike[str], err: OSError) -> OutputError:
    """One line for an ``OSError`` writing ``path``: the path and the errno's name."""
    import errno

    name = errno.errorcode.get(err.errno, str(err.errno)) if err.errno else type(err).__name__
    return OutputError(f"cannot write '{os.fspath(path)}' ({name}: {err.strerror or err})")
