"""The leaderboard: markdown and HTML pages generated only from run outputs, and the protocol catalogue.

- :mod:`~ferbench.leaderboard.results` reads run directories back (nothing is re-run);
- :mod:`~ferbench.leaderboard.ranking` sorts them into one board per protocol id (one protocol
  fingerprint ranked, every pair of ranked runs tested, rank groups) and groups protocol variants;
- :mod:`~ferbench.leaderboard.significance` holds the tests (corrected resampled t-test, exact
  McNemar, paired bootstrap), Holm's adjustment and the rank-group rule;
- :mod:`~ferbench.leaderboard.pages` writes ``index.md``, ``<protocol-id>.md`` and ``sensitivity.md``;
- :mod:`~ferbench.leaderboard.plots` draws a protocol page's pictures (accuracy vs cost with the
  Pareto front, source vs target, per-class F1, per-subject accuracy);
- :mod:`~ferbench.leaderboard.html` renders the same pages as static, self-contained HTML;
- :mod:`~ferbench.leaderboard.catalogue` lists the shipped protocols and describes a protocol in words.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ferbench.io import atomic_write_text
from ferbench.leaderboard.catalogue import catalogue, protocols_dir
from ferbench.leaderboard.html import html_pages
from ferbench.leaderboard.pages import markdown_pages
from ferbench.leaderboard.ranking import Board, build_boards
from ferbench.leaderboard.results import RunResult, find_runs


def write_leaderboard(run_dirs: Iterable[Path | str], out: Path | str) -> list[Path]:
    """Read every run under ``run_dirs`` (see :func:`~ferbench.leaderboard.results.find_runs`)
    and write into ``out``, atomically: ``index.md``, ``sensitivity.md`` and one
    ``<protocol-id>.md`` per protocol, the same pages as ``.html``, and the pictures they show
    (``confusion/``, ``plots/``). Returns the paths of the pages, markdown first."""
    out = Path(out)
    markdown = markdown_pages(build_boards(find_runs(run_dirs)), out)
    pages = {**markdown, **html_pages(markdown)}
    return [atomic_write_text(out / name, text) for name, text in pages.items()]


__all__ = ["Board", "RunResult", "build_boards", "catalogue", "find_runs", "protocols_dir", "write_leaderboard"]
