"""The errors nudask raises about its inputs."""

from __future__ import annotations

import os


class InputError(ValueError):
    """An input file nudask cannot use; the message names it and says what to do."""

    def __init__(self, path: str | os.PathLike[str], problem: str, hint: str = ""):
        self.path = os.fspath(path)
        self.problem = problem
        self.hint = hint
        message = f"file '{self.path}': {problem}"
        super().__init__(f"{message}; {hint}" if hint else message)

    def __reduce__(self):  # keep the fields across process boundaries
        return (type(self), (self.path, self.problem, self.hint))
