"""Errors raised for bad user input (files, folders, URLs, cameras).

Every reader in :mod:`masa.io` reports a problem with its input as one of these, with a message
that names the input, the place in it and what was expected. Text formats (MOTChallenge files,
``seqinfo.ini``, JSON results) use one format, built by :meth:`InputError.at`::

    det.txt:17: 1 field ('abc'); expected at least 7 numbers (frame,id,x,y,w,h,score)

i.e. ``<file>:<1-based line>: <what is wrong>; expected <what>``. The command line catches
:class:`InputError` and :class:`FileNotFoundError` and prints the message instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError", "InputNotFoundError", "OutputError", "short_number", "short_repr"]


class InputError(ValueError):
    """A user-supplied input (file, folder, URL, camera) is missing, malformed or unreadable.

    ``source`` and ``line`` name the file and its 1-based line when the error was built by
    :meth:`at` (both ``None`` otherwise).
    """

    source: str | None = None
    line: int | None = None

    @classmethod
    def at(cls, source: str | Path, line: int | None, problem: str, expected: str | None = None) -> InputError:
        """``<source>:<line>: <problem>; expected <expected>`` (``<source>: ...`` without a line)."""
        where = f"{source}:{line}" if line is not None else f"{source}"
        message = f"{where}: {problem}" + (f"; expected {expected}" if expected else "")
        error = cls(message)
        error.source = str(source)
        error.line = None if line is None else int(line)
        return error


class OutputError(OSError):
    """An output cannot be written (disk full, no permission, a file where a folder should be).

    The message names the path and the reason in words (no errno codes).
    """

    def __init__(self, path: str | Path, problem: str, expected: str | None = None) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {problem}" + (f"; expected {expected}" if expected else ""))

    def __str__(self) -> str:
        return str(self.args[0])

    @classmethod
    def from_os_error(cls, path: str | Path, error: OSError, doing: str = "cannot write") -> OutputError:
        reason = error.strerror or type(error).__name__
        return cls(path, f"{doing}: {reason[0].lower() + reason[1:]}")


class InputNotFoundError(InputError, FileNotFoundError):
    """A user-supplied path does not exist. Both an :class:`InputError` and a :class:`FileNotFoundError`."""


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages quoting user input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_number(value: float) -> str:
    """A number for an error message: ``3`` for integral values, ``1.5`` / ``nan`` / ``1e+20`` otherwise."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else f"{value:.6g}"


def require_file(path: str | Path, what: str = "file") -> Path:
    """``Path(path)`` if it is an existing file; :class:`InputNotFoundError` / :class:`InputError` otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: {what} not found")
    if not path.is_file():
        raise InputError(f"{path}: expected a {what}, found a directory" if path.is_dir() else f"{path}: not a regular file")
    return path
