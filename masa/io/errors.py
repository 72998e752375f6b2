"""Errors raised for bad user input (files, folders, URLs, cameras).

Every reader in :mod:`masa.io` reports a problem with its input as one of these, with a message
that names the file, the line or record (for text formats) and what was expected vs found, e.g.::

    det.txt line 17: expected at least 7 comma-separated numbers (frame,id,x,y,w,h,score), got 'abc'

The command line catches :class:`InputError` and :class:`FileNotFoundError` and prints the message
instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError", "InputNotFoundError", "short_repr"]


class InputError(ValueError):
    """A user-supplied input (file, folder, URL, camera) is missing, malformed or unreadable."""


class InputNotFoundError(InputError, FileNotFoundError):
    """A user-supplied path does not exist. Both an :class:`InputError` and a :class:`FileNotFoundError`."""


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages quoting user input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require_file(path: str | Path, what: str = "file") -> Path:
    """``Path(path)`` if it is an existing file; :class:`InputNotFoundError` / :class:`InputError` otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: {what} not found")
    if not path.is_file():
        raise InputError(f"{path}: expected a {what}, found a directory" if path.is_dir() else f"{path}: not a regular file")
    return path
