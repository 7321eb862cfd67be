"""The project's exception hierarchy: everything a user can cause is an :class:`MMKDError`.

The command line catches :class:`MMKDError` alone and prints its one-line message; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class MMKDError(Exception):
    """An error the user can fix: its message says what is wrong, where, and the fix.

    A subclass whose constructor takes other arguments than the message keeps them in
    ``_init_args``, so that the error pickles: a Ray trial or cluster task raises it in a
    worker and the driver receives the same error, not a ``TypeError`` from rebuilding it."""

    _init_args: tuple = ()

    def __reduce__(self):
        if not self._init_args:
            return super().__reduce__()
        return type(self), self._init_args, self.__dict__


class ConfigError(MMKDError, ValueError):
    """A bad setting: an unknown key, a value of the wrong type or out of range, an unknown
    model, a model that cannot run on a dataset. ``source`` says where the setting came from
    (``--set``, a benchmark file, a sweep space)."""

    def __init__(self, source: str, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{source}: '{key}': {problem}. Fix: {fix}")
        self.source, self.key = source, key
        self._init_args = (source, key, problem, fix)


class DataError(MMKDError, ValueError):
    """Bad input on disk: says which file, which field, and how to fix it."""

    def __init__(self, path: Path | str, field: str, problem: str, fix: str) -> None:
        super().__init__(f"{path}: field '{field}': {problem}. Fix: {fix}")
        self.path, self.field = str(path), field
        self._init_args = (path, field, problem, fix)
