"""``masa`` command line: ``masa track | eval | segment | train``.

Each subcommand module provides ``add_<cmd>_subparser(subparsers)`` (which sets ``func``) and
``run_<cmd>(args) -> int``. Arguments become configs right there; nothing below the CLI sees an
argparse namespace. User errors are printed as one line (no traceback) with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

__all__ = ["main", "build_parser", "user_message"]


def build_parser() -> argparse.ArgumentParser:
    from masa import __version__
    from masa.cli.eval import add_eval_subparser
    from masa.cli.segment import add_segment_subparser
    from masa.cli.track import add_track_subparser
    from masa.cli.train import add_train_subparser

    parser = argparse.ArgumentParser(
        prog="masa",
        description="MASA: track any object in any video (Matching Anything by Segmenting Anything).",
    )
    parser.add_argument("--version", action="version", version=f"masa {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    add_track_subparser(subparsers)
    add_eval_subparser(subparsers)
    add_segment_subparser(subparsers)
    add_train_subparser(subparsers)
    return parser


def user_message(exc: BaseException) -> str:
    """One line for a user error: an OS error raised by a library as ``<file>: <reason in words>``
    (no ``[Errno N]``); every other error's own message (ours name file/flag and expectation)."""
    if isinstance(exc, OSError) and exc.strerror and type(exc).__str__ is OSError.__str__:
        reason = exc.strerror[0].lower() + exc.strerror[1:]
        return f"{exc.filename}: {reason}" if exc.filename else reason
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``masa`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"masa {args.command}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", RuntimeWarning)
            warnings.showwarning = show_warning  # one line per warning, no source paths
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("masa: interrupted; outputs written so far were closed and kept", file=sys.stderr)
        return 130
    except (ValueError, ImportError, OSError) as exc:
        print(f"masa {args.command}: error: {user_message(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # an unexpected failure: still one line unless debugging
        if os.environ.get("MASA_DEBUG"):
            traceback.print_exc()
        print(
            f"masa {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(set MASA_DEBUG=1 to see the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
