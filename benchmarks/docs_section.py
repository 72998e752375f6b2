"""Rewrite one benchmark's section of docs/benchmarks.md (between its begin/end markers).

Imported by the benchmark scripts, which run as ``python benchmarks/<name>.py`` (so this folder is
on ``sys.path``).
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(begin: str, end: str, report: str, path: Path = DOCS) -> None:
    """Replace the text between ``begin`` and ``end`` with ``report`` (appended when the markers are absent)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{report.rstrip()}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
