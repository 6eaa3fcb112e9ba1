"""The leaderboard: markdown pages generated only from run outputs, and the protocol catalogue.

- :mod:`~ferbench.leaderboard.results` reads run directories back (nothing is re-run);
- :mod:`~ferbench.leaderboard.ranking` sorts them into one board per protocol id (one protocol
  fingerprint ranked, every pair of ranked runs tested, rank groups) and groups protocol variants;
- :mod:`~ferbench.leaderboard.significance` holds the tests (corrected resampled t-test, exact
  McNemar, paired bootstrap), Holm's adjustment and the rank-group rule;
- :mod:`~ferbench.leaderboard.pages` writes ``index.md``, ``<protocol-id>.md`` and ``sensitivity.md``;
- :mod:`~ferbench.leaderboard.catalogue` lists the shipped protocols and describes a protocol in words.
"""

from ferbench.leaderboard.catalogue import catalogue, protocols_dir
from ferbench.leaderboard.pages import write_leaderboard
from ferbench.leaderboard.ranking import Board, build_boards
from ferbench.leaderboard.results import RunResult, find_runs

__all__ = ["Board", "RunResult", "build_boards", "catalogue", "find_runs", "protocols_dir", "write_leaderboard"]
