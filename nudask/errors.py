"""The one error hierarchy of nudask.

Everything nudask raises on purpose about the user's inputs, configuration,
datasets or outputs is a :class:`NudaskError`; the command line reports those
as one line and exits 2. Anything else is a bug and keeps its traceback.
The subclasses also derive from the builtin they refine (``ValueError``,
``OSError``), so code written against the builtins keeps working.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


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


class OutputError(NudaskError, OSError):
    """An output that cannot be written (exists with other settings, locked, disk full, ...)."""


# -- refinements that keep the builtin an older caller may catch ------------------


class NotFoundError(NudaskError, FileNotFoundError):
    """A path the user named (a run folder, a config file) that does not exist."""


class DatasetNotFoundError(DatasetError, NotFoundError):
    """No dataset folder at the path given."""

    def __new__(cls, *args, **kwargs):  # OSError's layout: unpicklable otherwise (ValueError.__new__)
        return OSError.__new__(cls, *args)


class OutputExistsError(OutputError, FileExistsError):
    """An output that exists and may not be replaced (other settings, or not nudask's files)."""


class EventIndexError(DataError, IndexError):
    """An event number outside the dataset."""


class TrainingError(NudaskError, FloatingPointError):
    """Training that cannot go on (the loss diverged); the message says what to change."""


@contextlib.contextmanager
def exit_on_error(prog: str) -> Iterator[None]:
    """For command-line entry points: a :class:`NudaskError` ends the program.

    It prints ``PROG: error: MESSAGE`` on one line to stderr and exits 2 (as
    argparse does for bad arguments); any other exception is a bug and keeps
    its traceback.
    """
    try:
        yield
    except NudaskError as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def output_error(path: str | os.PathLike[str], err: OSError) -> OutputError:
    """One line for an ``OSError`` writing ``path``: the path and the errno's name."""
    import errno

    name = errno.errorcode.get(err.errno, str(err.errno)) if err.errno else type(err).__name__
    return OutputError(f"cannot write '{os.fspath(path)}' ({name}: {err.strerror or err})")
